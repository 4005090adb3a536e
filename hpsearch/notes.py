"""What a viewer of optuna-dashboard sees beside Optuna's own plots: a markdown note per
study (task, budget, cells, current best, how to export) and the bits-against-parameters
figure. Written at creation, refreshed by workers as results come in, and by `hpsearch plot`.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch.export import Selection, best_rows, fit_rows
from hpsearch.studies import StudyRecord, list_records, read_record
from objectives.capacity import CapacityStudy
from objectives.space import describe, is_searched
from storage import redact_url

logger = logging.getLogger(__name__)

FIGURE_ID = "bits-vs-params"

# What a study's objective is called in the dashboard (instead of "Objective 0") and in
# Optuna's data frames, by task. A task not listed here is called "value".
METRIC_NAMES = {"capacity": "bits", "per-unit": "fraction reconstructed"}
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


def note_text(record: StudyRecord, trials: list[optuna.trial.FrozenTrial], url: str) -> str:
    settings = CapacityStudy.from_attrs(record.attrs)
    hidden = ", ".join(f"{settings.hidden_size(d)} at depth {d}" for d in settings.depths)
    searched = [f"`{n}` {describe(d)}" for n, d in settings.space.items() if is_searched(d)]
    fixed = [f"`{n}` = {describe(d)}" for n, d in settings.space.items() if not is_searched(d)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
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
        f"**Search** ({record.sampler}, target {record.target} trials): "
        + "; ".join(searched)
        + ". Fixed: "
        + "; ".join(fixed)
        + ".",
        "",
    ]
    if complete:
        best = max(complete, key=lambda t: (t.value, -t.number))
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


def publish(storage: optuna.storages.RDBStorage, names: list[str] | None = None) -> int:
    """Write the note and the figure to each capacity study (all, or those named), and name
    every study's objective (`name_metrics`)."""
    from optuna_dashboard import save_note, save_plotly_graph_object

    from hpsearch.plots import bits_vs_params

    name_metrics(storage)

    rows = best_rows(storage, Selection(tasks=("capacity",)))
    figure: Any = bits_vs_params(rows, fit_rows(rows)) if rows else None
    count = 0
    for record in list_records(storage):
        if record.task != "capacity" or (names is not None and record.name not in names):
            continue
        study = optuna.load_study(study_name=record.name, storage=storage)
        save_note(study, note_text(record, study.get_trials(deepcopy=False), storage.url))
        if figure is not None:
            save_plotly_graph_object(study, figure, graph_object_id=FIGURE_ID)
        count += 1
    return count
