"""The best-bits table: one row per (study, depth), from COMPLETE trials only.

Data (`best_rows`) is kept apart from rendering (`render`). Reads user attrs only, so it never
imports torch.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, fields

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import HpsearchError
from hpsearch.studies import StudyRecord, list_records
from objectives.architectures import ARCHS

FORMATS: tuple[str, ...] = ("md", "csv", "json")


@dataclass(frozen=True)
class BestRow:
    study: str
    task: str
    arch: str
    depth: int
    budget: int
    num_params: int
    hidden_size: int
    best_bits: float
    bits_per_param: float
    b: int
    learning_rate: float
    init_scale: float
    trials_complete: int


def _sort_key(row: BestRow) -> tuple[str, int, str, int, int, str]:
    arch_rank = ARCHS.index(row.arch) if row.arch in ARCHS else len(ARCHS)
    return (row.task, arch_rank, row.arch, row.budget, row.depth, row.study)


def _row(record: StudyRecord, depth: int, trials: list[FrozenTrial]) -> BestRow:
    # Ties go to the earliest trial, so the table does not depend on storage order.
    best = max(trials, key=lambda t: (t.value, -t.number))
    attrs = best.user_attrs
    config = attrs.get("config", {})
    assert best.value is not None
    return BestRow(
        study=record.name,
        task=record.task,
        arch=str(record.attrs.get("arch", config.get("arch", ""))),
        depth=depth,
        budget=int(record.attrs.get("budget", config.get("budget", 0))),
        num_params=int(attrs["num_params"]),
        hidden_size=int(attrs["hidden_size"]),
        best_bits=float(best.value),
        bits_per_param=float(attrs["bits_per_param"]),
        b=int(config["b"]),
        learning_rate=float(config["learning_rate"]),
        init_scale=float(config["init_scale"]),
        trials_complete=len(trials),
    )


def best_rows(storage: optuna.storages.BaseStorage) -> list[BestRow]:
    rows: list[BestRow] = []
    for record in list_records(storage):
        if record.task != "capacity":
            continue
        study_id = storage.get_study_id_from_name(record.name)
        complete = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
        by_depth: dict[int, list[FrozenTrial]] = {}
        for trial in complete:
            if trial.value is None or "depth" not in trial.user_attrs:
                continue
            by_depth.setdefault(int(trial.user_attrs["depth"]), []).append(trial)
        rows.extend(_row(record, depth, trials) for depth, trials in by_depth.items())
    return sorted(rows, key=_sort_key)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def render(rows: list[BestRow], fmt: str) -> str:
    names = [f.name for f in fields(BestRow)]
    if fmt == "json":
        return json.dumps([asdict(r) for r in rows], indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))
        return buffer.getvalue()
    if fmt == "md":
        lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
        for row in rows:
            lines.append("| " + " | ".join(_cell(v) for v in asdict(row).values()) + " |")
        return "\n".join(lines) + "\n"
    raise HpsearchError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
