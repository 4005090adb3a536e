"""What a viewer of optuna-dashboard sees beside Optuna's own plots: a markdown note per
study (task, size, cells, current best, how to export) and, on the studies of the best table
(per-parameter tasks), the bits-against-parameters figure. Written at creation, refreshed by
workers as results come in, and by `hpsearch plot`.

Each note's words are its task's description (`objectives.tasks.description`): this module
fills them in and names no task. A worker imports it to refresh notes, so plotly is imported
only where a figure is drawn.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch.results.rows import Selection, best_rows, best_trial, fit_rows
from hpsearch.studies.records import StudyRecord, list_records, read_record
from objectives.tasks.description import describe_stored
from objectives.tasks.registry import get_task
from objectives.tasks.space import describe, is_searched
from objectives.tasks.trained import protocol_space
from storage import redact_url

logger = logging.getLogger(__name__)

FIGURE_ID = "bits-vs-params"

# Where Optuna 5 keeps the names set by Study.set_metric_names: a study system attr.
_METRIC_NAMES_ATTR = "study:metric_names"


def name_metrics(storage: optuna.storages.BaseStorage) -> int:
    """Name the objective of every hpsearch study after its task's metric (instead of
    "Objective 0"); studies already named so are left alone, so this may run on every start.
    Returns how many studies it named."""
    count = 0
    for frozen in storage.get_all_studies():
        record = read_record(frozen.study_name, frozen.user_attrs)
        if record is None or len(frozen.directions) != 1:
            continue
        names = [describe_stored(record.task).metric]
        if frozen.system_attrs.get(_METRIC_NAMES_ATTR) == names:
            continue
        optuna.load_study(study_name=frozen.study_name, storage=storage).set_metric_names(names)
        count += 1
    return count


def noted(record: StudyRecord) -> bool:
    """Whether the study's task gives its studies a note."""
    return describe_stored(record.task).noted


def _search_line(record: StudyRecord, space: Any) -> str:
    searched = [f"`{n}` {describe(d)}" for n, d in space.items() if is_searched(d)]
    # The paper's protocol dimensions fixed at their defaults are the training every trial
    # had before they existed (full batch, no decay, ...): said only when set otherwise.
    quiet = protocol_space()
    fixed = [
        f"`{n}` = {describe(d)}"
        for n, d in space.items()
        if not is_searched(d) and not (n in quiet and d == quiet[n])
    ]
    return (
        f"**Search** ({record.sampler}, target {record.target} trials): "
        + "; ".join(searched)
        + ". Fixed: "
        + "; ".join(fixed)
        + "."
    )


def _complete(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]


class _Fields(dict[str, Any]):
    """The values a note's `{field}` slots are filled from; a slot with no value (an attr an
    old trial lacks) reads "-" whatever its format."""

    def __missing__(self, key: str) -> Any:
        return _Missing()


class _Missing:
    def __format__(self, spec: str) -> str:
        return "-"


def _fill(template: str, fields: Mapping[str, Any]) -> str:
    return string.Formatter().vformat(template, (), fields)


def _settings_fields(settings: Any) -> dict[str, Any]:
    """The study settings' attributes, and `hidden`: its hidden units at each depth."""
    out = {name: getattr(settings, name) for name in getattr(settings, "__dataclass_fields__", {})}
    depths = getattr(settings, "depths", None)
    if depths is not None and hasattr(settings, "hidden_size"):
        out["hidden"] = ", ".join(f"{settings.hidden_size(d)} at depth {d}" for d in depths)
    return out


def _best_fields(best: optuna.trial.FrozenTrial) -> dict[str, Any]:
    attrs = best.user_attrs
    config = attrs.get("config", {})
    depth = attrs.get("depth", best.params.get("depth"))
    return {
        **(config if isinstance(config, dict) else {}),
        **attrs,
        "value": best.value,
        "number": best.number,
        "depth": depth,
        "at_depth": "" if depth is None else f", depth {depth}",
    }


def note_text(record: StudyRecord, trials: list[optuna.trial.FrozenTrial], url: str) -> str:
    """The study's note, in its task's words (`TaskDescription.note_setup` and after); a
    task without a note gets its summary and search line only."""
    task = describe_stored(record.task)
    settings = get_task(record.task).study_from_attrs(record.attrs)
    complete = _complete(trials)
    fields = _Fields(_settings_fields(settings))
    fields.update(url=redact_url(url), target=record.target, complete=len(complete))
    lines = [f"## {record.name}", "", _fill(task.summary, fields), ""]
    if task.note_setup:
        lines += [_fill(task.note_setup, fields), ""]
    lines += [_search_line(record, settings.space), ""]
    if complete:
        lines.append(
            _fill(task.note_best, _Fields({**fields, **_best_fields(best_trial(complete))}))
        )
    else:
        lines.append(f"**Best so far**: no complete trial yet (target {record.target}).")
    if task.note_export:
        lines += ["", _fill(task.note_export, fields)]
    return "\n".join(lines) + "\n"


def publish(storage: optuna.storages.RDBStorage, names: list[str] | None = None) -> int:
    """Write the note to each noted study (all, or those named), the bits-against-parameters
    figure to each such study of the best table, and name every study's objective
    (`name_metrics`). plotly is imported only when that figure has rows to draw."""
    from optuna_dashboard import save_note, save_plotly_graph_object

    name_metrics(storage)

    records = [r for r in list_records(storage) if noted(r) and (names is None or r.name in names)]
    figure: Any = None
    if any(describe_stored(r.task).table == "best" for r in records):
        rows = best_rows(storage, Selection())
        if rows:
            from hpsearch.results.figures import bits_vs_params

            figure = bits_vs_params(rows, fit_rows(rows))
    for record in records:
        study = optuna.load_study(study_name=record.name, storage=storage)
        save_note(study, note_text(record, study.get_trials(deepcopy=False), storage.url))
        if figure is not None and describe_stored(record.task).table == "best":
            save_plotly_graph_object(study, figure, graph_object_id=FIGURE_ID)
    return len(records)
