"""What the service knows of a task, said once by the task itself: the name of its value, how
to print it, what sizes its studies, the words of its study note, and which results tables
it fills. Service modules (status, export, notes, figures, the worker) read this instead of
keeping a table per task, so that a new task is described in its own folder only.

Importing this module imports no torch and no task's training code: each task folder's
`__init__` holds its description, nothing else.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace

# The task folders whose `__init__` defines DESCRIPTION, by stored task name.
_PACKAGES = {
    "capacity": "objectives.tasks.capacity",
    "per-unit": "objectives.tasks.per_unit",
    "calibration": "objectives.tasks.calibration",
}


@dataclass(frozen=True)
class TaskDescription:
    """A task as the service shows it.

    name: the task's stored name (a study attr; never changes).
    metric: the name of the trial value (the dashboard's objective name, a column title).
    value_format: `str.format` pattern for one value in `status` ("{:.1f} bits").
    size_field: the study setting that sizes its studies (`budget`, `units`, or "").
    per_param: whether its value divided by the parameter count means something (bits per
      parameter): the capacity tables, fits and figures are made of such tasks only.
    summary: one paragraph for the study note, with `{field}` slots filled from the study's
      settings (str.format with the settings' attributes).
    table: the export table its best rows go to: "best" (with the fits and multipliers made
      of them; per_param tasks only), "per-unit", or "" (none).
    study: "module.Class" of its study settings; the module also defines `build_study` and
      `DIMENSIONS`, which `hpsearch create` uses ("" for a task `create` does not make).
    sizes: the `hpsearch create` setting that lists its studies' sizes, one study per arch
      and size ("budgets", "units"; "" with no `study`).
    note_setup, note_best, note_export: the study note's lines after the summary: the cell
      and its size; the best trial so far; how to export (may be ""). `{field}` slots are
      filled from the study's settings, `hidden` (hidden units at each depth), `url` (the
      storage, redacted), `target`, `complete`, and for the best line the best trial's
      `value`, `number`, `depth`, `at_depth` (", depth D" or ""), user attrs and config.
      A task without `note_setup` gets no note.
    """

    name: str
    metric: str
    value_format: str
    size_field: str
    per_param: bool
    summary: str
    table: str = ""
    study: str = ""
    sizes: str = ""
    note_setup: str = ""
    note_best: str = ""
    note_export: str = ""

    def __post_init__(self) -> None:
        if self.table not in TABLES:
            raise ValueError(f"table {self.table!r}: choose from {', '.join(map(repr, TABLES))}")
        if (self.table == "best") != self.per_param:
            raise ValueError("the best table is made of per_param tasks, and only of them")
        if bool(self.study) != bool(self.sizes):
            raise ValueError("a task create makes needs both study and sizes")
        if self.note_setup and not self.note_best:
            raise ValueError("a task with a note needs note_best")

    def format_value(self, value: float) -> str:
        return self.value_format.format(value)

    @property
    def noted(self) -> bool:
        """Whether its studies get a note on the dashboard."""
        return bool(self.note_setup)


# The export tables a task's best rows may go to ("" none).
TABLES: tuple[str, ...] = ("best", "per-unit", "")


def describe(task: str) -> TaskDescription:
    """The description of a stored task name; a ValueError names the known ones."""
    try:
        package = _PACKAGES[task]
    except KeyError:
        known = ", ".join(sorted(_PACKAGES))
        raise ValueError(f"unknown task {task!r}; known: {known}") from None
    description: TaskDescription = importlib.import_module(package).DESCRIPTION
    return description


def describe_stored(task: str) -> TaskDescription:
    """The description of a task name read from a storage: one this version does not know
    (made by a newer one, say) is shown as a bare value, in no table, with no note."""
    try:
        return describe(task)
    except ValueError:
        return replace(PLAIN, name=task)


def task_names() -> tuple[str, ...]:
    return tuple(_PACKAGES)


PLAIN = TaskDescription(
    name="", metric="value", value_format="{:.4g}", size_field="", per_param=False, summary=""
)
