"""What the service knows of a task, said once by the task itself: the name of its value, how
to print it, what sizes its studies, the words of its study note, and which results tables
it fills. Service modules (status, export, notes, figures, the worker) read this instead of
keeping a table per task, so that a new task is described in its own folder only.

Importing this module imports no torch and no task's training code: each task folder's
`__init__` holds its description, nothing else.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

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
    """

    name: str
    metric: str
    value_format: str
    size_field: str
    per_param: bool
    summary: str

    def format_value(self, value: float) -> str:
        return self.value_format.format(value)


def describe(task: str) -> TaskDescription:
    """The description of a stored task name; a ValueError names the known ones."""
    try:
        package = _PACKAGES[task]
    except KeyError:
        known = ", ".join(sorted(_PACKAGES))
        raise ValueError(f"unknown task {task!r}; known: {known}") from None
    description: TaskDescription = importlib.import_module(package).DESCRIPTION
    return description


def task_names() -> tuple[str, ...]:
    return tuple(_PACKAGES)
