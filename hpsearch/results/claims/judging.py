"""How a paper claim is judged: the verdicts, the claim object, and helpers over best rows.

A claim (`PaperClaim`) says what the paper states, what it expected, when a measurement
agrees, which best rows speak to it (`relevant`) and how it is measured on them (`measure`).
`PaperClaim.judge` turns that into one `ClaimVerdict`:

- "agrees": the measurement is within the tolerance stated on the claim's row;
- "differs": it is outside that tolerance;
- "not enough trials": rows that speak to the claim exist, but too few of them rest on
  `min_trials` complete trials (MIN_TRIALS unless the caller says otherwise), or too few of
  those rows are left to compare (two budgets for a slope, three values of T for diminishing
  returns, ...). A number measured on the thinner rows is shown, marked "preliminary", and
  earns no verdict;
- "no studies": nothing in the storage speaks to the claim; `tests_with` says what would.

A best row is the best trial of one (study, depth), split further by the trial configs' values
of activation, unroll and n_in (and optimizer, for the optimizer claim): so a study that
searched the activation gives a tanh row and a relu row, each counting its own trials. Each
row carries the run of its study (`hpsearch.results.runs`): studies that differ only in how
they were searched (a sampler comparison) are measured side by side, a row per run, never
pooled; the claims' cells include the run, and their tables name it where it is not "".
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from statistics import mean
from typing import Any, ClassVar, Generic, TypeVar

import optuna

from hpsearch.results.rows import KeyedRow, PerUnitRow, Selection, keyed_rows, per_unit_rows
from hpsearch.results.runs import runs
from hpsearch.studies.records import list_records
from objectives.tasks.capacity.study import CapacityStudy, default_activation

AGREES = "agrees"
DIFFERS = "differs"
NOT_ENOUGH = "not enough trials"
NO_STUDIES = "no studies"
VERDICTS: tuple[str, ...] = (AGREES, DIFFERS, NOT_ENOUGH, NO_STUDIES)

# Complete trials a best row needs before it counts towards a verdict.
MIN_TRIALS = 30
# The paper's main figure unrolls for T = 5 steps.
PAPER_UNROLL = 5
# The paper does not give n_in; claim 2 is measured at this project's default (docs/tasks.md).
DEFAULT_N_IN = int(next(f.default for f in fields(CapacityStudy) if f.name == "n_in"))  # type: ignore[arg-type]
# Keys by which capacity best rows are split (`rows.keyed_rows`).
SETTINGS: tuple[str, ...] = ("activation", "unroll", "n_in")
OPTIMIZER_SETTINGS: tuple[str, ...] = (*SETTINGS, "optimizer")


@dataclass(frozen=True)
class ClaimVerdict:
    """One claim and its verdict. `value` is the headline number of `measured` (None when
    nothing could be measured); `rows` and the trial counts are those of the best rows that
    the verdict rests on (or, for "not enough trials", of every row that speaks to it)."""

    number: str
    statement: str
    source: str
    expected: str
    tolerance: str
    verdict: str
    measured: str
    value: float | None
    rows: int
    trials_min: int
    trials_total: int
    why: str
    tests_with: str = ""
    columns: tuple[str, ...] = ()
    details: tuple[tuple[Any, ...], ...] = ()

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r}; allowed: {', '.join(VERDICTS)}")
        if self.details and any(len(d) != len(self.columns) for d in self.details):
            raise ValueError(f"claim {self.number}: a detail row does not fit {self.columns}")


@dataclass(frozen=True)
class KeyedRun(KeyedRow):
    """A capacity best row with the run of its study ("" for none)."""

    run: str = ""


@dataclass(frozen=True)
class PerUnitRun(PerUnitRow):
    """A per-unit best row with the run of its study ("" for none)."""

    run: str = ""


@dataclass(frozen=True)
class Evidence:
    """The best rows the claims are measured on."""

    rows: tuple[KeyedRun, ...]
    optimizer_rows: tuple[KeyedRun, ...]
    per_unit: tuple[PerUnitRun, ...]


def _fields_of(row: Any) -> dict[str, Any]:
    """A row's fields, whatever rows.py gives it (a tag, say), to copy into a subclass."""
    return {f.name: getattr(row, f.name) for f in fields(row)}


def collect(storage: optuna.storages.BaseStorage, selection: Selection | None = None) -> Evidence:
    """The best rows of the studies `selection` picks (all by default), read through
    `hpsearch.results.rows`, each with its study's run."""
    selection = selection or Selection()
    run = runs([r for r in list_records(storage) if selection.study(r)])

    def keyed(by: tuple[str, ...]) -> tuple[KeyedRun, ...]:
        return tuple(
            KeyedRun(**_fields_of(k), run=run.get(k.row.study, ""))
            for k in keyed_rows(storage, by, selection)
        )

    per_unit = tuple(
        PerUnitRun(**_fields_of(r), run=run.get(r.study, ""))
        for r in per_unit_rows(storage, selection)
    )
    return Evidence(keyed(SETTINGS), keyed(OPTIMIZER_SETTINGS), per_unit)


Row = TypeVar("Row", KeyedRun, PerUnitRun)


@dataclass(frozen=True)
class Outcome:
    """What a measurement found, before the trial counts are checked."""

    verdict: str
    measured: str
    value: float | None
    why: str
    columns: tuple[str, ...] = ()
    details: tuple[tuple[Any, ...], ...] = ()


class PaperClaim(ABC, Generic[Row]):
    """One claim: its words (class attributes) beside its measurement (the methods)."""

    number: ClassVar[str]
    statement: ClassVar[str]
    source: ClassVar[str]  # paper, thesis or project
    expected: ClassVar[str]
    tolerance: ClassVar[str]
    tests_with: ClassVar[str]  # the studies that would speak to it

    @abstractmethod
    def rows(self, evidence: Evidence) -> Sequence[Row]:
        """The kind of best rows the claim reads."""

    @abstractmethod
    def trials(self, row: Row) -> int:
        """The complete trials a row rests on."""

    @abstractmethod
    def relevant(self, rows: Sequence[Row]) -> list[Row]:
        """The rows that speak to the claim."""

    @abstractmethod
    def measure(self, rows: Sequence[Row]) -> Outcome:
        """The measurement on relevant rows, with its verdict."""

    def judge(self, evidence: Evidence, min_trials: int) -> ClaimVerdict:
        rows = self.rows(evidence)
        head: dict[str, Any] = {
            "number": self.number,
            "statement": self.statement,
            "source": self.source,
            "expected": self.expected,
            "tolerance": self.tolerance,
            "tests_with": self.tests_with,
        }
        relevant = self.relevant(rows)
        if not relevant:
            return ClaimVerdict(
                **head,
                verdict=NO_STUDIES,
                measured="-",
                value=None,
                rows=0,
                trials_min=0,
                trials_total=0,
                why=f"no studies here speak to it; it needs {self.tests_with}",
            )
        eligible = [r for r in relevant if self.trials(r) >= min_trials]
        # The structure (two budgets, a pair of archs, ...) is checked again on the rows left.
        out = self.measure(self.relevant(eligible)) if eligible else None
        if out is not None and out.verdict != NOT_ENOUGH:
            used = self.relevant(eligible)
            counts = [self.trials(r) for r in used]
            return ClaimVerdict(
                **head,
                verdict=out.verdict,
                measured=out.measured,
                value=out.value,
                rows=len(used),
                trials_min=min(counts),
                trials_total=sum(counts),
                why=out.why,
                columns=out.columns,
                details=out.details,
            )
        thin = len(relevant) - len(eligible)
        reasons = [] if out is None else [out.why]
        if thin:
            reasons.append(
                f"{thin} of {len(relevant)} rows have fewer than {min_trials} complete trials"
            )
        early = self.measure(relevant)
        counts = [self.trials(r) for r in relevant]
        return ClaimVerdict(
            **head,
            verdict=NOT_ENOUGH,
            measured="-" if early.verdict == NOT_ENOUGH else f"preliminary: {early.measured}",
            value=None,
            rows=len(relevant),
            trials_min=min(counts),
            trials_total=sum(counts),
            why="; ".join(reasons),
            columns=early.columns,
            details=early.details,
        )


class CapacityClaim(PaperClaim[KeyedRun]):
    """A claim measured on capacity best rows split by activation, unroll and n_in."""

    def rows(self, evidence: Evidence) -> Sequence[KeyedRun]:
        return evidence.rows

    def trials(self, row: KeyedRun) -> int:
        return row.row.trials_complete


class PerUnitClaim(PaperClaim[PerUnitRun]):
    """A claim measured on per-unit best rows."""

    def rows(self, evidence: Evidence) -> Sequence[PerUnitRun]:
        return evidence.per_unit

    def trials(self, row: PerUnitRun) -> int:
        return row.trials_complete


# --- helpers over best rows ----------------------------------------------------------------


def is_default(k: KeyedRun) -> bool:
    """Whether the row has its arch's own activation (tanh; relu for the IRNN)."""
    return bool(k.get("activation") == default_activation(k.row.arch))


def budget_cell(k: KeyedRun) -> tuple[Any, ...]:
    """Where two archs or activations are set against each other: one budget, depth, n_in, T,
    in one run."""
    return (k.row.budget, k.row.depth, k.get("n_in"), k.get("unroll"), k.run)


def by(rows: Sequence[Row], key: Callable[[Row], Any]) -> dict[Any, list[Row]]:
    groups: dict[Any, list[Row]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return groups


def varied(
    rows: Sequence[KeyedRun], cell: Callable[[KeyedRun], Any], varies: Callable[[KeyedRun], Any]
) -> list[KeyedRun]:
    """Rows of the cells in which `varies` takes two or more values."""
    return [
        r
        for group in by(rows, cell).values()
        if len({varies(r) for r in group}) >= 2
        for r in group
    ]


def best_per_cell(rows: Sequence[KeyedRun]) -> list[KeyedRun]:
    """The best row (highest bits per parameter) of each (arch, depth, budget, n_in, T, run):
    studies of one budget that differ in their space (an optimizer or an init scheme fixed)
    count once, as the best the search found there; runs (a sampler comparison) count apart."""
    best: dict[tuple[Any, ...], KeyedRun] = {}
    for r in rows:
        key = (r.row.arch, r.row.depth, r.row.budget, r.get("n_in"), r.get("unroll"), r.run)
        if key not in best or r.row.bits_per_param > best[key].row.bits_per_param:
            best[key] = r
    return list(best.values())


def best_by(rows: Sequence[KeyedRun], key: Callable[[KeyedRun], Any]) -> dict[Any, float]:
    """The highest bits per parameter for each value of `key` (studies that share it count
    as one: put the run in the key to keep runs apart)."""
    out: dict[Any, float] = {}
    for r in rows:
        k = key(r)
        out[k] = max(out.get(k, -math.inf), r.row.bits_per_param)
    return out


def cell_name(arch: str, budget: int, depth: int, run: str = "", **settings: Any) -> str:
    extra = "".join(f" {k} {v}" for k, v in settings.items())
    return f"{arch} p{budget} depth {depth}{extra}{with_run(run)}"


def with_run(run: str) -> str:
    """The words that name a run in a label: "" for none, " tag gp" for run gp."""
    return f" tag {run}" if run else ""


def f2(x: float) -> str:
    """A number as the claims' text writes it: two decimals."""
    return f"{x:.2f}"


def log_slope(points: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope of log(y) against log(x)."""
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = mean(xs), mean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
