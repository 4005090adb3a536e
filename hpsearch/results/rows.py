"""Best-bits tables: the data. One best row per (study, depth) from COMPLETE trials (and
PRUNED ones, if asked), and two summaries computed from those rows: bits per parameter per
(arch, depth, tag) and the architecture multiplier matrix of each tag (Collins et al. 2017,
Fig. 1i). `keyed_rows` splits a (study, depth) further by values of the trials' config
(activation, optimizer, ...), whether a study fixed or searched them; `per_unit_rows` are the
best rows of per-unit studies, which the capacity tables leave out; `trial_rows` is every trial.

One `Selection` picks the studies of `export`, `plot` and `report`, and `best_trial` is the one
rule for a best trial (status and the dashboard notes use it too). Studies that differ only by
their tag (a sampler comparison, say) are never pooled: every row carries its study's tag, and
the summaries are made per tag.

Reads user attrs only (never torch). Rendering lives in `hpsearch.results.tables`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import HpsearchError
from hpsearch.studies.records import StudyRecord, list_records
from objectives.networks.architectures import ARCHS
from objectives.tasks.description import describe_stored

# The export tables of best rows; a task's description says which its studies go to.
BEST_TABLE = "best"
PER_UNIT_TABLE = "per-unit"


def tag_of(record: StudyRecord) -> str:
    """The study's tag setting (its name's suffix); "" for none, and for studies made before
    tags existed."""
    return str(record.attrs.get("tag") or "")


@dataclass(frozen=True)
class Selection:
    """Which studies, depths and trials to report; None means all. `studies` are names,
    `tags` the studies' tag settings. PRUNED trials (stopped at a checkpoint, valued at the
    best bits they had reached) count only with `pruned`."""

    tasks: tuple[str, ...] | None = None
    archs: tuple[str, ...] | None = None
    budgets: tuple[int, ...] | None = None
    depths: tuple[int, ...] | None = None
    pruned: bool = False
    studies: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None

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
            and (self.studies is None or record.name in self.studies)
            and (self.tags is None or tag_of(record) in self.tags)
        )

    def check(self, records: Sequence[StudyRecord]) -> None:
        """A study or tag named that no study here has is an error naming the close ones
        (a misspelt name would otherwise select nothing, and a table come out empty)."""
        names = sorted(r.name for r in records)
        for name in self.studies or ():
            if name not in names:
                raise HpsearchError(
                    f"no hpsearch study named {name!r}"
                    + (_close(name, names) or "; `hpsearch status` lists the studies")
                )
        tags = sorted({tag_of(r) for r in records} - {""})
        for tag in self.tags or ():
            if tag not in tags:
                listed = f"; tags here: {', '.join(tags)}" if tags else "; no study here has one"
                raise HpsearchError(
                    f"no hpsearch study has the tag {tag!r}" + (_close(tag, tags) or listed)
                )


def _close(word: str, known: Sequence[str]) -> str:
    """`` (did you mean 'a' or 'b'?)`` with the names of `known` close to `word`, else ""."""
    close = [repr(c) for c in difflib.get_close_matches(word, known, n=3)]
    if not close:
        return ""
    listed = close[0] if len(close) == 1 else ", ".join(close[:-1]) + " or " + close[-1]
    return f" (did you mean {listed}?)"


@dataclass(frozen=True)
class BestRow:
    """The best trial of one (capacity study, depth). `tag` is the study's tag setting ("" for
    none); it comes last so that a table's columns before it read as they always did."""

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
    tag: str = ""


@dataclass(frozen=True)
class FitRow:
    """Bits per parameter of one (arch, depth, tag) over its budgets: the least-squares slope
    of best bits against parameters through the origin (capacity is linear in P), and the
    mean of the best rows' bits per parameter. Studies of one arch that differ by tag (a
    sampler comparison) are fitted apart: pooled, the better search's points and the worse
    one's would make one line that neither search found."""

    arch: str
    depth: int
    bits_per_param_slope: float
    mean_bits_per_param: float
    budgets: int
    tag: str = ""


@dataclass(frozen=True)
class Multipliers:
    """ratio[i][j] = mean best bits/param of archs[i] / that of archs[j] (over all depths and
    budgets of each arch), among the studies of one tag."""

    archs: tuple[str, ...]
    mean_bits_per_param: tuple[float, ...]
    ratio: tuple[tuple[float, ...], ...]
    tag: str = ""


@dataclass(frozen=True)
class KeyedRow:
    """The best row of the trials of one (study, depth) whose configs share `values` for the
    config keys `by` (a key missing from a trial's config is read from the study's attrs)."""

    by: tuple[str, ...]
    values: tuple[Any, ...]
    row: BestRow

    @property
    def tag(self) -> str:
        return self.row.tag

    def __post_init__(self) -> None:
        if len(self.by) != len(self.values):
            raise ValueError(f"keys {self.by} and values {self.values} differ in length")

    def get(self, key: str) -> Any:
        return self.values[self.by.index(key)]


@dataclass(frozen=True)
class PerUnitRow:
    """The best trial of one (per-unit study, depth): the fraction of the input reconstructed
    with `units` hidden units per layer (Collins et al. 2017, per-unit capacity)."""

    study: str
    arch: str
    depth: int
    units: int
    n_in: int
    unroll: int
    num_params: int
    best_fraction: float
    trials_complete: int
    tag: str = ""


@dataclass(frozen=True)
class TrialRow:
    """One trial of a selected study, in any state: what `study.trials_dataframe()` gives an
    Optuna user, with the study's name, task and tag. Times are ISO 8601 text (None while a
    trial has not started or finished); `user_attrs` are in name order, as every storage
    returns them in its own."""

    study: str
    task: str
    tag: str
    number: int
    state: str
    value: float | None
    datetime_start: str | None
    datetime_complete: str | None
    params: dict[str, Any]
    user_attrs: dict[str, Any]


def arch_rank(arch: str) -> int:
    return ARCHS.index(arch) if arch in ARCHS else len(ARCHS)


def _sort_key(row: BestRow) -> tuple[str, int, str, int, int, str, str]:
    """Rows of studies that differ only by tag stand next to each other. The study's name
    breaks any tie, so the order is the same whatever order a storage returns studies in."""
    return (row.task, arch_rank(row.arch), row.arch, row.budget, row.depth, row.tag, row.study)


def best_trial(trials: Iterable[FrozenTrial]) -> FrozenTrial:
    """The trial of highest value; ties go to the earliest, so tables do not depend on
    storage order. `trials` are COMPLETE, with values."""
    return max(trials, key=lambda t: (t.value, -t.number))


def _row(record: StudyRecord, depth: int, trials: list[FrozenTrial]) -> BestRow:
    best = best_trial(trials)
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
        tag=tag_of(record),
    )


def _config_value(record: StudyRecord, trial: FrozenTrial, key: str) -> Any:
    config = trial.user_attrs.get("config", {})
    return config[key] if key in config else record.attrs.get(key)


def _groups(
    storage: optuna.storages.BaseStorage, selection: Selection, table: str, by: tuple[str, ...]
) -> Iterator[tuple[StudyRecord, int, tuple[Any, ...], list[FrozenTrial]]]:
    """The finished trials of each selected study whose task's best rows go to `table`, by
    (depth, values of `by`)."""
    for record in list_records(storage):
        if describe_stored(record.task).table != table or not selection.study(record):
            continue
        study_id = storage.get_study_id_from_name(record.name)
        finished = storage.get_all_trials(study_id, deepcopy=False, states=selection.states)
        groups: dict[tuple[int, tuple[Any, ...]], list[FrozenTrial]] = {}
        for trial in finished:
            if trial.value is None or "depth" not in trial.user_attrs:
                continue
            depth = int(trial.user_attrs["depth"])
            if selection.depths is None or depth in selection.depths:
                values = tuple(_config_value(record, trial, key) for key in by)
                groups.setdefault((depth, values), []).append(trial)
        for (depth, values), trials in groups.items():
            yield record, depth, values, trials


def best_rows(
    storage: optuna.storages.BaseStorage, selection: Selection | None = None
) -> list[BestRow]:
    """One best row per (study, depth) of the tasks of the best table (per-parameter tasks:
    capacity); other tasks' studies are left out."""
    rows = [
        _row(record, depth, trials)
        for record, depth, _, trials in _groups(storage, selection or Selection(), BEST_TABLE, ())
    ]
    return sorted(rows, key=_sort_key)


def keyed_rows(
    storage: optuna.storages.BaseStorage, by: tuple[str, ...], selection: Selection | None = None
) -> list[KeyedRow]:
    """One best row per (study of the best table, depth, values of the config keys `by`)."""
    rows = [
        KeyedRow(by=by, values=values, row=_row(record, depth, trials))
        for record, depth, values, trials in _groups(
            storage, selection or Selection(), BEST_TABLE, by
        )
    ]
    return sorted(rows, key=lambda k: (_sort_key(k.row), repr(k.values)))


def _trial_depth(trial: FrozenTrial) -> Any:
    return trial.user_attrs.get("depth", trial.params.get("depth"))


def trial_rows(
    storage: optuna.storages.BaseStorage, selection: Selection | None = None
) -> list[TrialRow]:
    """Every trial of the selected studies of any task, by study name and trial number.
    `selection.depths` keeps the trials of those depths (a trial that has none, one that
    failed before it chose, is left out then); `selection.pruned` does not apply: every
    state is shown."""
    selection = selection or Selection()
    out = []
    for record in list_records(storage):
        if not selection.study(record):
            continue
        study_id = storage.get_study_id_from_name(record.name)
        for trial in sorted(storage.get_all_trials(study_id), key=lambda t: t.number):
            if selection.depths is not None and _trial_depth(trial) not in selection.depths:
                continue
            start, end = trial.datetime_start, trial.datetime_complete
            out.append(
                TrialRow(
                    study=record.name,
                    task=record.task,
                    tag=tag_of(record),
                    number=trial.number,
                    state=trial.state.name,
                    value=trial.value,
                    datetime_start=None if start is None else start.isoformat(),
                    datetime_complete=None if end is None else end.isoformat(),
                    params=dict(trial.params),
                    # By name: storages return a trial's attrs in different orders.
                    user_attrs=dict(sorted(trial.user_attrs.items())),
                )
            )
    return out


def per_unit_rows(
    storage: optuna.storages.BaseStorage, selection: Selection | None = None
) -> list[PerUnitRow]:
    """One best row per (study, depth) of the tasks of the per-unit table: the highest
    fraction reconstructed."""
    rows = []
    for record, depth, _, trials in _groups(storage, selection or Selection(), PER_UNIT_TABLE, ()):
        best = best_trial(trials)
        assert best.value is not None
        attrs = best.user_attrs
        rows.append(
            PerUnitRow(
                study=record.name,
                arch=str(record.attrs.get("arch", "")),
                depth=depth,
                units=int(record.attrs.get("units", attrs.get("hidden_size", 0))),
                n_in=int(record.attrs.get("n_in", attrs.get("n_in", 0))),
                unroll=int(record.attrs.get("unroll", 0)),
                num_params=int(attrs.get("num_params", 0)),
                best_fraction=float(best.value),
                trials_complete=len(trials),
                tag=tag_of(record),
            )
        )
    return sorted(
        rows,
        key=lambda r: (r.n_in, arch_rank(r.arch), r.arch, r.depth, r.units, r.tag, r.study),
    )


def fit_rows(rows: Iterable[BestRow]) -> list[FitRow]:
    """One fit per (arch, depth, tag), in arch order, then depth, then tag."""
    groups: dict[tuple[str, int, str], list[BestRow]] = {}
    for row in rows:
        groups.setdefault((row.arch, row.depth, row.tag), []).append(row)
    out = [fit_line(group, tag) for (_, _, tag), group in groups.items()]
    return sorted(out, key=lambda f: (arch_rank(f.arch), f.arch, f.depth, f.tag))


def fit_line(rows: Sequence[BestRow], tag: str) -> FitRow:
    """The fit of `rows` (one arch, one depth) as one line, labelled `tag`: for a caller
    that has chosen its series itself (`fit_rows` makes them by tag)."""
    if not rows or len({(r.arch, r.depth) for r in rows}) != 1:
        raise ValueError(f"a fit needs rows of one arch and depth, got {len(rows)} rows")
    sxy = sum(r.num_params * r.best_bits for r in rows)
    sxx = sum(r.num_params**2 for r in rows)
    return FitRow(
        arch=rows[0].arch,
        depth=rows[0].depth,
        bits_per_param_slope=sxy / sxx if sxx > 0 else float("nan"),
        mean_bits_per_param=sum(r.bits_per_param for r in rows) / len(rows),
        budgets=len({r.budget for r in rows}),
        tag=tag,
    )


def multipliers_by_tag(rows: Iterable[BestRow]) -> list[Multipliers]:
    """One multiplier matrix per tag, in tag order ("" first).

    One matrix per tag rather than one matrix of tag-qualified labels ("rnn gp" against
    "gru tpe"): a multiplier is the ratio of two cells searched the same way, and every
    cross-tag cell of a single matrix would mix the cells' difference with the searches'.
    Studies without a tag form the "" matrix, so a storage
    whose studies carry one tag or none has the one matrix it always had."""
    by_tag: dict[str, list[BestRow]] = {}
    for row in rows:
        by_tag.setdefault(row.tag, []).append(row)
    return [multipliers(by_tag[tag]) for tag in sorted(by_tag)]


def multipliers(rows: Iterable[BestRow]) -> Multipliers:
    """The multiplier matrix of rows of one tag; rows of several tags are a ValueError (use
    `multipliers_by_tag`), since a ratio across tags would mix the searches with the cells."""
    rows = list(rows)
    tags = sorted({row.tag for row in rows})
    if len(tags) > 1:
        raise ValueError(f"rows of tags {tags}: one multiplier matrix per tag (multipliers_by_tag)")
    per_arch: dict[str, list[float]] = {}
    for row in rows:
        per_arch.setdefault(row.arch, []).append(row.bits_per_param)
    archs = tuple(sorted(per_arch, key=lambda a: (arch_rank(a), a)))
    means = tuple(sum(per_arch[a]) / len(per_arch[a]) for a in archs)
    ratio = tuple(tuple(mi / mj if mj > 0 else float("nan") for mj in means) for mi in means)
    return Multipliers(
        archs=archs, mean_bits_per_param=means, ratio=ratio, tag=tags[0] if tags else ""
    )
