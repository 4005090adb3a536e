"""What a results page's numbers rest on: the settings of the studies shown and the versions of
the software that ran them. A short run (1000 steps, 10 trials) stores fewer bits than the
paper's; said on the page, it does not read as a failed replication.

Reads study attrs only; the torch version is read from the installed package's metadata, so
that nothing here imports torch.
"""

from __future__ import annotations

import importlib.metadata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna

import hpsearch
from hpsearch.studies.records import PRUNER_KEY, TARGET_KEY, StudyRecord
from objectives.tasks import space as dims
from objectives.tasks.description import describe

# The settings every page states, whether or not they vary: how long a trial trains, how the
# search ran, how many trials it was to have.
STATED: tuple[str, ...] = ("max_steps", "patience", "sampler", "pruner", "seed", "target trials")
# Left out of the settings that vary: what the rows show anyway (the task, the arch, the size
# field), the space as a whole (each of its dimensions is a setting of its own), and the
# dimensions whose range follows from the arch and size (b from the budget, depth from the
# arch), which vary wherever budgets or archs do.
NOT_LISTED = frozenset({"task", "arch", "space", "b", "depth", TARGET_KEY})


@dataclass(frozen=True)
class Settings:
    """The settings of one task's studies: (setting, summary over the studies) pairs."""

    task: str
    studies: int
    stated: tuple[tuple[str, str], ...]
    varying: tuple[tuple[str, str], ...]


def _text(value: Any) -> str:
    return "none" if value == "" else str(value)


def study_settings(record: StudyRecord) -> dict[str, str]:
    """Every setting of one study as text: its attrs, and each dimension of its space as
    `objectives.tasks.space.describe` writes it (``2000``, ``[0.0001, 0.1] log``)."""
    attrs = record.attrs
    out = {key: _text(value) for key, value in attrs.items() if key != "space"}
    for name, stored in dict(attrs.get("space", {})).items():
        try:
            out[name] = dims.describe(dims.from_attrs(name, stored))
        except ValueError:
            out[name] = str(stored)
    out["target trials"] = _text(attrs.get(TARGET_KEY, "-"))
    out.setdefault(PRUNER_KEY, "none")  # studies made before pruning existed had none
    return out


def summarise(values: Sequence[str]) -> str:
    """``2000`` when every study has the same value, else each value with its count, the most
    common first: ``2000 (5 studies), 1000 (1 study)``."""
    counts = Counter(values)
    if len(counts) == 1:
        return values[0]
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{v} ({n} {'study' if n == 1 else 'studies'})" for v, n in ranked)


def _size_field(task: str) -> str:
    try:
        return describe(task).size_field
    except ValueError:  # a task this version does not know
        return ""


def installed_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> tuple[tuple[str, str], ...]:
    return (
        ("hpsearch", hpsearch.__version__),
        ("Optuna", optuna.__version__),
        ("torch", installed_version("torch")),
    )


def task_settings(task: str, records: Sequence[StudyRecord]) -> Settings:
    """The settings behind the studies `records` of one task: those of STATED, and every
    other that differs between them."""
    settings = [study_settings(r) for r in records]
    stated = tuple((key, summarise([s.get(key, "-") for s in settings])) for key in STATED)
    skip = set(STATED) | NOT_LISTED | {_size_field(task)}
    varying = []
    for key in sorted(set().union(*settings) - skip):
        values = [s.get(key, "-") for s in settings]
        if len(set(values)) > 1:
            varying.append((key, summarise(values)))
    return Settings(task, len(records), stated, tuple(varying))


def settings_by_task(records: Sequence[StudyRecord]) -> tuple[Settings, ...]:
    """`task_settings` of each task's studies, by task name: tasks have settings of their
    own, so each is summed up apart."""
    tasks = sorted({r.task for r in records})
    return tuple(task_settings(t, [r for r in records if r.task == t]) for t in tasks)
