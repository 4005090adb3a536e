"""Best-bits tables: the data. One best row per (study, depth) from COMPLETE trials (and
PRUNED ones, if asked), and two
summaries computed from those rows: bits per parameter per (arch, depth) and the architecture
multiplier matrix (Collins et al. 2017, Fig. 1i).

Reads user attrs only (never torch). Rendering lives in `hpsearch.render`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.studies import StudyRecord, list_records
from objectives.architectures import ARCHS


@dataclass(frozen=True)
class Selection:
    """Which studies, depths and trials to report; None means all. PRUNED trials (stopped at
    a checkpoint, valued at the best bits they had reached) count only with `pruned`."""

    tasks: tuple[str, ...] | None = None
    archs: tuple[str, ...] | None = None
    budgets: tuple[int, ...] | None = None
    depths: tuple[int, ...] | None = None
    pruned: bool = False

    @property
    def states(self) -> tuple[TrialState, ...]:
        if self.pruned:
            return (TrialState.COMPLETE, TrialState.PRUNED)
        return (TrialState.COMPLETE,)

    def study(self, record: StudyRecord) -> bool:
        attrs = record.attrs
        return (
            (self.tasks is None or record.task in self.tasks)
            and (self.archs is None or attrs.get("arch") in self.archs)
            and (self.budgets is None or attrs.get("budget") in self.budgets)
        )


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


@dataclass(frozen=True)
class FitRow:
    """Bits per parameter of one (arch, depth) over its budgets: the least-squares slope of
    best bits against parameters through the origin (capacity is linear in P), and the mean
    of the best rows' bits per parameter."""

    arch: str
    depth: int
    bits_per_param_slope: float
    mean_bits_per_param: float
    budgets: int


@dataclass(frozen=True)
class Multipliers:
    """ratio[i][j] = mean best bits/param of archs[i] / that of archs[j] (over all depths and
    budgets of each arch)."""

    archs: tuple[str, ...]
    mean_bits_per_param: tuple[float, ...]
    ratio: tuple[tuple[float, ...], ...]


def arch_rank(arch: str) -> int:
    return ARCHS.index(arch) if arch in ARCHS else len(ARCHS)


def _sort_key(row: BestRow) -> tuple[str, int, str, int, int, str]:
    return (row.task, arch_rank(row.arch), row.arch, row.budget, row.depth, row.study)


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


def best_rows(
    storage: optuna.storages.BaseStorage, selection: Selection | None = None
) -> list[BestRow]:
    selection = selection or Selection()
    rows: list[BestRow] = []
    for record in list_records(storage):
        if record.task != "capacity" or not selection.study(record):
            continue
        study_id = storage.get_study_id_from_name(record.name)
        complete = storage.get_all_trials(study_id, deepcopy=False, states=selection.states)
        by_depth: dict[int, list[FrozenTrial]] = {}
        for trial in complete:
            if trial.value is None or "depth" not in trial.user_attrs:
                continue
            depth = int(trial.user_attrs["depth"])
            if selection.depths is None or depth in selection.depths:
                by_depth.setdefault(depth, []).append(trial)
        rows.extend(_row(record, depth, trials) for depth, trials in by_depth.items())
    return sorted(rows, key=_sort_key)


def fit_rows(rows: Iterable[BestRow]) -> list[FitRow]:
    groups: dict[tuple[str, int], list[BestRow]] = {}
    for row in rows:
        groups.setdefault((row.arch, row.depth), []).append(row)
    out = []
    for (arch, depth), group in groups.items():
        sxy = sum(r.num_params * r.best_bits for r in group)
        sxx = sum(r.num_params**2 for r in group)
        out.append(
            FitRow(
                arch=arch,
                depth=depth,
                bits_per_param_slope=sxy / sxx,
                mean_bits_per_param=sum(r.bits_per_param for r in group) / len(group),
                budgets=len({r.budget for r in group}),
            )
        )
    return sorted(out, key=lambda f: (arch_rank(f.arch), f.arch, f.depth))


def multipliers(rows: Iterable[BestRow]) -> Multipliers:
    per_arch: dict[str, list[float]] = {}
    for row in rows:
        per_arch.setdefault(row.arch, []).append(row.bits_per_param)
    archs = tuple(sorted(per_arch, key=lambda a: (arch_rank(a), a)))
    means = tuple(sum(per_arch[a]) / len(per_arch[a]) for a in archs)
    ratio = tuple(tuple(mi / mj if mj > 0 else float("nan") for mj in means) for mi in means)
    return Multipliers(archs=archs, mean_bits_per_param=means, ratio=ratio)
