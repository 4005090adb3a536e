"""What a viewer of optuna-dashboard sees beside Optuna's own plots: a markdown note per
study (task, budget or units, cells, current best, how to export) and, on capacity studies,
the bits-against-parameters figure. Written at creation, refreshed by workers as results come
in, and by `hpsearch plot`.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch.results.rows import Selection, best_rows, best_trial, fit_rows
from hpsearch.studies.records import StudyRecord, list_records, read_record
from objectives.tasks.capacity import study as capacity
from objectives.tasks.capacity.study import CapacityStudy
from objectives.tasks.per_unit import study as per_unit
from objectives.tasks.registry import get_task
from objectives.tasks.space import describe, is_searched
from storage import redact_url

logger = logging.getLogger(__name__)

FIGURE_ID = "bits-vs-params"

# What a study's objective is called in the dashboard (instead of "Objective 0") and in
# Optuna's data frames, by task. A task not listed here is called "value".
METRIC_NAMES = {capacity.TASK: "bits", per_unit.TASK: "fraction reconstructed"}
DEFAULT_METRIC_NAME = "value"
# Where Optuna 5 keeps the names set by Study.set_metric_names: a study system attr.
_METRIC_NAMES_ATTR = "study:metric_names"


def name_metrics(storage: optuna.storages.BaseStorage) -> int:
    """Name the objective of every hpsearch study after its task; studies already named so
    are left alone, so this may run on every start. Returns how many studies it named."""
    count = 0
    for frozen in storage.get_all_studies():
        record = read_record(frozen.study_name, frozen.user_attrs)
        if record is None or len(frozen.directions) != 1:
            continue
        names = [METRIC_NAMES.get(record.task, DEFAULT_METRIC_NAME)]
        if frozen.system_attrs.get(_METRIC_NAMES_ATTR) == names:
            continue
        optuna.load_study(study_name=frozen.study_name, storage=storage).set_metric_names(names)
        count += 1
    return count


def _search_line(record: StudyRecord, space: Any) -> str:
    searched = [f"`{n}` {describe(d)}" for n, d in space.items() if is_searched(d)]
    fixed = [f"`{n}` = {describe(d)}" for n, d in space.items() if not is_searched(d)]
    return (
        f"**Search** ({record.sampler}, target {record.target} trials): "
        + "; ".join(searched)
        + ". Fixed: "
        + "; ".join(fixed)
        + "."
    )


def _complete(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]


def note_text(record: StudyRecord, trials: list[optuna.trial.FrozenTrial], url: str) -> str:
    """The study's note, by its task (capacity or per-unit)."""
    if record.task == per_unit.TASK:
        return _per_unit_note(record, trials)
    return _capacity_note(record, trials, url)


def _capacity_note(record: StudyRecord, trials: list[optuna.trial.FrozenTrial], url: str) -> str:
    settings = CapacityStudy.from_attrs(record.attrs)
    hidden = ", ".join(f"{settings.hidden_size(d)} at depth {d}" for d in settings.depths)
    complete = _complete(trials)
    lines = [
        f"## {record.name}",
        "",
        "**Task**: per-parameter capacity (Collins, Sohl-Dickstein & Sussillo, ICLR 2017). The "
        f"network memorises `b` random binary labels of {settings.n_in}-bit inputs shown at the "
        f"first of {settings.unroll} steps; the value is the mutual information between true "
        "and predicted labels, in bits: `b * (1 - H2(p))`.",
        "",
        f"**Cell**: {settings.arch}; **budget**: {settings.budget} parameters; hidden units: "
        f"{hidden}.",
        "",
        _search_line(record, settings.space),
        "",
    ]
    if complete:
        best = best_trial(complete)
        a = best.user_attrs
        lines += [
            f"**Best so far**: {best.value:.1f} bits = **{a.get('bits_per_param', 0):.3f} "
            f"bits/param** (trial {best.number}: depth {a.get('depth')}, "
            f"{a.get('num_params')} parameters, b = {a.get('config', {}).get('b')}, error fraction "
            f"{a.get('error_fraction', 0):.4f}). {len(complete)} of {record.target} trials "
            "complete.",
        ]
    else:
        lines += [f"**Best so far**: no complete trial yet (target {record.target})."]
    lines += [
        "",
        "**Export**: `hpsearch export --storage " + redact_url(url) + " --arch "
        f"{settings.arch} --budget {settings.budget} --table all` (add `--format latex` for a "
        "paper); figures: `hpsearch plot --out figures/`.",
    ]
    return "\n".join(lines) + "\n"


def _per_unit_note(record: StudyRecord, trials: list[optuna.trial.FrozenTrial]) -> str:
    settings = get_task(record.task).study_from_attrs(record.attrs)
    complete = _complete(trials)
    lines = [
        f"## {record.name}",
        "",
        "**Task**: per-unit capacity (Collins, Sohl-Dickstein & Sussillo, ICLR 2017, the "
        f"memory-throughput task). A random {settings.n_in}-dimensional input, shown at the "
        f"first of {settings.unroll} steps, is to be reconstructed from the network's state at "
        "the last step; the value is the fraction reconstructed (1 is all of it). The paper "
        "finds that every cell succeeds if and only if it has at least n_in units per layer.",
        "",
        f"**Cell**: {settings.arch}; **units**: {settings.units} per layer; **n_in**: "
        f"{settings.n_in}.",
        "",
        _search_line(record, settings.space),
        "",
    ]
    if complete:
        best = best_trial(complete)
        depth = best.user_attrs.get("depth", best.params.get("depth"))
        at = f", depth {depth}" if depth is not None else ""
        lines += [
            f"**Best so far**: **{best.value:.4f}** of the input reconstructed (trial "
            f"{best.number}{at}). {len(complete)} of {record.target} trials complete.",
        ]
    else:
        lines += [f"**Best so far**: no complete trial yet (target {record.target})."]
    return "\n".join(lines) + "\n"


# The tasks whose studies get a note.
NOTED_TASKS = (capacity.TASK, per_unit.TASK)


def publish(storage: optuna.storages.RDBStorage, names: list[str] | None = None) -> int:
    """Write the note to each capacity and per-unit study (all, or those named), the figure
    to each capacity study, and name every study's objective (`name_metrics`)."""
    from optuna_dashboard import save_note, save_plotly_graph_object

    from hpsearch.results.figures import bits_vs_params

    name_metrics(storage)

    records = [
        r
        for r in list_records(storage)
        if r.task in NOTED_TASKS and (names is None or r.name in names)
    ]
    figure: Any = None
    if any(r.task == capacity.TASK for r in records):
        rows = best_rows(storage, Selection(tasks=(capacity.TASK,)))
        figure = bits_vs_params(rows, fit_rows(rows)) if rows else None
    for record in records:
        study = optuna.load_study(study_name=record.name, storage=storage)
        save_note(study, note_text(record, study.get_trials(deepcopy=False), storage.url))
        if figure is not None and record.task == capacity.TASK:
            save_plotly_graph_object(study, figure, graph_object_id=FIGURE_ID)
    return len(records)
