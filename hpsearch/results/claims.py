"""The paper's claims set against the storage's studies: the data of `hpsearch report`.

Each claim is measured on best rows from `hpsearch.results.rows` (never on trials read another way)
and gets one verdict:

- "agrees": the measurement is within the tolerance stated on the claim's row;
- "differs": it is outside that tolerance;
- "not enough trials": studies that speak to the claim exist, but too few of their best rows
  rest on `min_trials` complete trials (MIN_TRIALS unless the caller says otherwise), or too
  few of those rows are left to compare (two budgets for a slope, three values of T for
  diminishing returns, ...). A number measured on the thinner rows is shown, marked
  "preliminary", and earns no verdict;
- "no studies": nothing in the storage speaks to the claim; `tests_with` says what would.

A best row is the best trial of one (study, depth), split further by the trial configs' values
of activation, unroll and n_in (and optimizer, for the optimizer claim): so a study that
searched the activation gives a tanh row and a relu row, each counting its own trials.

Rendering lives in `hpsearch.results.report`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from itertools import combinations, pairwise
from statistics import mean
from typing import Any, Generic, TypeVar

import optuna

from hpsearch.results.rows import KeyedRow, PerUnitRow, keyed_rows, per_unit_rows
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
# The paper does not give n_in; claim 2 is measured at this project's default (CAPACITY_TASK.md).
DEFAULT_N_IN = int(next(f.default for f in fields(CapacityStudy) if f.name == "n_in"))  # type: ignore[arg-type]
# Claim 1: the slope of log(best bits) against log(parameters) agrees within 1 +- this.
SLOPE_TOLERANCE = 0.2
# Claim 2: "about 5" bits per parameter on average agrees within [4, 6].
MEAN_BITS_PER_PARAM_RANGE = (4.0, 6.0)
# Claim 3: the paper's ranking, best first.
PAPER_RANKING: tuple[str, ...] = ("rnn", "ugrnn", "gru", "lstm", "+rnn")
# Claim 5: once capacity has peaked at some T, a larger T may lose at most this fraction of
# the peak (saturation); more is a fall, not diminishing returns.
SATURATION_DROP = 0.10
# Claim 6: a fraction reconstructed at or above this counts as success.
RECONSTRUCTED = 0.9
# Claim 6: archs lie on one curve below n_in if their best fractions at the same number of
# units differ by at most this.
ONE_CURVE_SPREAD = 0.1
# Keys by which capacity best rows are split (`export.keyed_rows`).
SETTINGS: tuple[str, ...] = ("activation", "unroll", "n_in")
OPTIMIZER_SETTINGS: tuple[str, ...] = (*SETTINGS, "optimizer")


@dataclass(frozen=True)
class Claim:
    """One claim and its verdict. `value` is the headline number of `measured` (None when
    nothing could be measured); `rows` and the trial counts are those of the best rows that
    the verdict rests on (or, for "not enough trials", of every row that speaks to it)."""

    number: str
    claim: str
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
class Evidence:
    """The best rows the claims are measured on."""

    rows: tuple[KeyedRow, ...]
    optimizer_rows: tuple[KeyedRow, ...]
    per_unit: tuple[PerUnitRow, ...]


def collect(storage: optuna.storages.BaseStorage) -> Evidence:
    return Evidence(
        rows=tuple(keyed_rows(storage, SETTINGS)),
        optimizer_rows=tuple(keyed_rows(storage, OPTIMIZER_SETTINGS)),
        per_unit=tuple(per_unit_rows(storage)),
    )


Row = TypeVar("Row", KeyedRow, PerUnitRow)


@dataclass(frozen=True)
class _Outcome:
    verdict: str
    measured: str
    value: float | None
    why: str
    columns: tuple[str, ...] = ()
    details: tuple[tuple[Any, ...], ...] = ()


@dataclass(frozen=True)
class _Spec(Generic[Row]):
    """How one claim is judged: which rows speak to it, and the measurement on rows."""

    number: str
    claim: str
    source: str
    expected: str
    tolerance: str
    tests_with: str
    relevant: Callable[[Sequence[Row]], list[Row]]
    measure: Callable[[Sequence[Row]], _Outcome]
    trials: Callable[[Row], int] = field(default=lambda r: 0)


def _judge(spec: _Spec[Row], rows: Sequence[Row], min_trials: int) -> Claim:
    head: dict[str, Any] = {
        "number": spec.number,
        "claim": spec.claim,
        "source": spec.source,
        "expected": spec.expected,
        "tolerance": spec.tolerance,
        "tests_with": spec.tests_with,
    }
    relevant = spec.relevant(rows)
    if not relevant:
        return Claim(
            **head,
            verdict=NO_STUDIES,
            measured="-",
            value=None,
            rows=0,
            trials_min=0,
            trials_total=0,
            why=f"no studies here speak to it; it needs {spec.tests_with}",
        )
    eligible = [r for r in relevant if spec.trials(r) >= min_trials]
    # The structure (two budgets, a pair of archs, ...) is checked again on the rows left.
    out = spec.measure(spec.relevant(eligible)) if eligible else None
    if out is not None and out.verdict != NOT_ENOUGH:
        used = spec.relevant(eligible)
        counts = [spec.trials(r) for r in used]
        return Claim(
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
    why = "; ".join(reasons)
    early = spec.measure(relevant)
    counts = [spec.trials(r) for r in relevant]
    return Claim(
        **head,
        verdict=NOT_ENOUGH,
        measured="-" if early.verdict == NOT_ENOUGH else f"preliminary: {early.measured}",
        value=None,
        rows=len(relevant),
        trials_min=min(counts),
        trials_total=sum(counts),
        why=why,
        columns=early.columns,
        details=early.details,
    )


# --- helpers over capacity rows -----------------------------------------------------------


def _trials(k: KeyedRow) -> int:
    return k.row.trials_complete


def _is_default(k: KeyedRow) -> bool:
    return bool(k.get("activation") == default_activation(k.row.arch))


def _by(rows: Sequence[Row], key: Callable[[Row], Any]) -> dict[Any, list[Row]]:
    groups: dict[Any, list[Row]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return groups


def _varied(
    rows: Sequence[KeyedRow], cell: Callable[[KeyedRow], Any], varies: Callable[[KeyedRow], Any]
) -> list[KeyedRow]:
    """Rows of the cells in which `varies` takes two or more values."""
    return [
        r
        for group in _by(rows, cell).values()
        if len({varies(r) for r in group}) >= 2
        for r in group
    ]


def _best_rows(rows: Sequence[KeyedRow]) -> list[KeyedRow]:
    """The best row (highest bits per parameter) of each (arch, depth, budget, n_in, T):
    studies of one budget that differ in something else (an optimizer, an init scheme, a
    sampler) count once, as the best the search found there."""
    best: dict[tuple[Any, ...], KeyedRow] = {}
    for r in rows:
        key = (r.row.arch, r.row.depth, r.row.budget, r.get("n_in"), r.get("unroll"))
        if key not in best or r.row.bits_per_param > best[key].row.bits_per_param:
            best[key] = r
    return list(best.values())


def _best_by(rows: Sequence[KeyedRow], key: Callable[[KeyedRow], Any]) -> dict[Any, float]:
    """The highest bits per parameter for each value of `key` (two studies of the same arch
    and budget, say with different samplers, count as one)."""
    out: dict[Any, float] = {}
    for r in rows:
        k = key(r)
        out[k] = max(out.get(k, -math.inf), r.row.bits_per_param)
    return out


def _cell_name(arch: str, budget: int, depth: int, **settings: Any) -> str:
    extra = "".join(f" {k} {v}" for k, v in settings.items())
    return f"{arch} p{budget} depth {depth}{extra}"


def _f(x: float) -> str:
    return f"{x:.2f}"


def _log_slope(points: Sequence[tuple[float, float]]) -> float:
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = mean(xs), mean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


# --- claim 1: bits per parameter constant in P ----------------------------------------------


def _series(k: KeyedRow) -> tuple[Any, ...]:
    return (k.row.arch, k.row.depth, k.get("n_in"), k.get("unroll"))


def _relevant_1(rows: Sequence[KeyedRow]) -> list[KeyedRow]:
    mine = _best_rows([r for r in rows if _is_default(r) and r.row.best_bits > 0])
    # Budgets that solve to the same network (same P) give no slope: vary P itself.
    return _varied(mine, _series, lambda r: r.row.num_params)


def _measure_1(rows: Sequence[KeyedRow]) -> _Outcome:
    details = []
    slopes = []
    for (arch, depth, n_in, unroll), group in _by(rows, _series).items():
        slope = _log_slope([(r.row.num_params, r.row.best_bits) for r in group])
        bpp = [r.row.bits_per_param for r in group]
        ok = abs(slope - 1) <= SLOPE_TOLERANCE
        slopes.append(slope)
        details.append(
            (
                arch,
                depth,
                n_in,
                unroll,
                len({r.row.budget for r in group}),
                slope,
                min(bpp),
                max(bpp),
                (max(bpp) - min(bpp)) / mean(bpp),
                "yes" if ok else "no",
            )
        )
    columns = (
        "arch",
        "depth",
        "n_in",
        "T",
        "budgets",
        "slope",
        "min b/p",
        "max b/p",
        "spread",
        "within",
    )
    if not slopes:
        return _Outcome(NOT_ENOUGH, "-", None, "needs 2 budgets of one (arch, depth)")
    bad = [d for d in details if d[-1] == "no"]
    spread = max(d[8] for d in details)
    span = _f(slopes[0]) if len(slopes) == 1 else f"{_f(min(slopes))} to {_f(max(slopes))}"
    measured = (
        f"slope {span} over {len(slopes)} (arch, depth); "
        f"bits/param spread across budgets up to {spread:.0%}"
    )
    why = (
        f"every slope within 1 +- {SLOPE_TOLERANCE}"
        if not bad
        else "slope outside 1 +- {}: {}".format(
            SLOPE_TOLERANCE, ", ".join(f"{d[0]} depth {d[1]} ({_f(d[5])})" for d in bad)
        )
    )
    return _Outcome(
        DIFFERS if bad else AGREES, measured, mean(slopes), why, columns, tuple(details)
    )


# --- claim 2: about 5 bits per parameter ---------------------------------------------------


def _relevant_2(rows: Sequence[KeyedRow]) -> list[KeyedRow]:
    return _best_rows(
        [
            r
            for r in rows
            if _is_default(r) and r.get("unroll") == PAPER_UNROLL and r.get("n_in") == DEFAULT_N_IN
        ]
    )


def _measure_2(rows: Sequence[KeyedRow]) -> _Outcome:
    if not rows:
        return _Outcome(NOT_ENOUGH, "-", None, "needs one best row")
    bpp = [r.row.bits_per_param for r in rows]
    avg = mean(bpp)
    low, high = MEAN_BITS_PER_PARAM_RANGE
    details = tuple(
        (arch, len(group), mean(b := [r.row.bits_per_param for r in group]), min(b), max(b))
        for arch, group in _by(rows, lambda r: r.row.arch).items()
    )
    inside = low <= avg <= high
    return _Outcome(
        AGREES if inside else DIFFERS,
        f"mean {_f(avg)} bits/param (rows from {_f(min(bpp))} to {_f(max(bpp))})",
        avg,
        f"mean {'within' if inside else 'outside'} [{low:g}, {high:g}]",
        ("arch", "rows", "mean b/p", "min b/p", "max b/p"),
        details,
    )


# --- claim 3: the ranking of architectures ---------------------------------------------------


def _cell_3(k: KeyedRow) -> tuple[Any, ...]:
    return (k.row.budget, k.row.depth, k.get("n_in"), k.get("unroll"))


def _relevant_3(rows: Sequence[KeyedRow]) -> list[KeyedRow]:
    mine = [r for r in rows if _is_default(r) and r.row.arch in PAPER_RANKING]
    return _varied(mine, _cell_3, lambda r: r.row.arch)


def _measure_3(rows: Sequence[KeyedRow]) -> _Outcome:
    best = _best_by(rows, lambda r: (r.row.arch, _cell_3(r)))
    archs = [a for a in PAPER_RANKING if any(key[0] == a for key in best)]
    details = []
    for a, b in combinations(archs, 2):  # a is above b in the paper
        cells = sorted(
            {c for arch, c in best if arch == a} & {c for arch, c in best if arch == b}, key=repr
        )
        if not cells:
            continue
        ma, mb = mean(best[(a, c)] for c in cells), mean(best[(b, c)] for c in cells)
        details.append((f"{a} > {b}", len(cells), ma, mb, "yes" if ma > mb else "no"))
    if not details:
        return _Outcome(NOT_ENOUGH, "-", None, "needs two ranked archs at one budget and depth")
    agree = [d for d in details if d[-1] == "yes"]
    order = sorted(archs, key=lambda a: -mean(v for (x, _), v in best.items() if x == a))
    means = {a: mean(v for (x, _), v in best.items() if x == a) for a in archs}
    measured = f"{len(agree)} of {len(details)} pairs in the paper's order; measured " + " > ".join(
        f"{a} {_f(means[a])}" for a in order
    )
    wrong = [d[0] for d in details if d[-1] == "no"]
    why = "every pair in order" if not wrong else "out of order: " + ", ".join(wrong)
    return _Outcome(
        DIFFERS if wrong else AGREES,
        measured,
        len(agree) / len(details),
        why,
        ("pair", "cells", "mean b/p first", "mean b/p second", "in order"),
        tuple(details),
    )


# --- claim 4: relu and IRNN lower -------------------------------------------------------------

# (arch, activation) of a relu row -> (arch, activation) of the tanh row it is set against.
RELU_PAIRS: dict[tuple[str, str], tuple[str, str]] = {
    ("rnn", "relu"): ("rnn", "tanh"),
    ("ugrnn", "relu"): ("ugrnn", "tanh"),
    ("irnn", "relu"): ("rnn", "tanh"),
}


def _pairs_4(rows: Sequence[KeyedRow]) -> list[tuple[Any, Any, Any, float, float]]:
    """(relu key, tanh key, cell, relu bits/param, tanh bits/param) for each relu row that has
    its tanh row in the same cell; a key is (arch, activation)."""
    best = _best_by(rows, lambda r: ((r.row.arch, r.get("activation")), _cell_3(r)))
    pairs = []
    for (relu, cell), value in sorted(best.items(), key=repr):
        partner = RELU_PAIRS.get(relu)
        if partner is not None and (partner, cell) in best:
            pairs.append((relu, partner, cell, value, best[(partner, cell)]))
    return pairs


def _relevant_4(rows: Sequence[KeyedRow]) -> list[KeyedRow]:
    used = set()
    for relu, partner, cell, _, _ in _pairs_4(rows):
        used |= {(relu, cell), (partner, cell)}
    return [r for r in rows if ((r.row.arch, r.get("activation")), _cell_3(r)) in used]


def _measure_4(rows: Sequence[KeyedRow]) -> _Outcome:
    pairs = _pairs_4(rows)
    if not pairs:
        return _Outcome(NOT_ENOUGH, "-", None, "needs a relu row and its tanh row at one budget")
    relu, tanh = mean(p[3] for p in pairs), mean(p[4] for p in pairs)
    details = tuple(
        (
            "{} {} / {} {}".format(*relu_key, *tanh_key),
            "p{} depth {} n_in {} T {}".format(*cell),
            r,
            t,
            "yes" if r < t else "no",
        )
        for relu_key, tanh_key, cell, r, t in pairs
    )
    wrong = [d for d in details if d[-1] == "no"]
    return _Outcome(
        DIFFERS if wrong else AGREES,
        f"relu {_f(relu)} against tanh {_f(tanh)} bits/param "
        f"(ratio {_f(relu / tanh) if tanh > 0 else 'n/a'}) over "
        f"{len(pairs)} pair{'s' if len(pairs) > 1 else ''}",
        relu,
        "relu lower in every pair"
        if not wrong
        else f"relu not lower in {len(wrong)} of {len(pairs)} pairs",
        ("pair", "cell", "relu b/p", "tanh b/p", "lower"),
        details,
    )


# --- claim 5: capacity rises with T, with diminishing returns --------------------------------


def _cell_5(k: KeyedRow) -> tuple[Any, ...]:
    return (k.row.arch, k.row.budget, k.row.depth, k.get("activation"), k.get("n_in"))


def _relevant_5(rows: Sequence[KeyedRow]) -> list[KeyedRow]:
    return _varied(rows, _cell_5, lambda r: r.get("unroll"))


def _measure_5(rows: Sequence[KeyedRow]) -> _Outcome:
    details = []
    verdicts = []
    for cell, group in sorted(_by(rows, _cell_5).items(), key=repr):
        best = sorted(_best_by(group, lambda r: int(r.get("unroll"))).items())
        if len(best) < 2:
            continue
        ts, vs = [t for t, _ in best], [v for _, v in best]
        gains = [(vs[i + 1] - vs[i]) / (ts[i + 1] - ts[i]) for i in range(len(ts) - 1)]
        rises = vs[-1] > vs[0]
        fell = any(vs[i] < (1 - SATURATION_DROP) * max(vs[:i]) for i in range(1, len(vs)))
        diminishing = all(g2 <= g1 for g1, g2 in pairwise(gains))
        if not rises or fell or (len(ts) >= 3 and not diminishing):
            verdict = DIFFERS
        else:
            verdict = AGREES if len(ts) >= 3 else NOT_ENOUGH
        verdicts.append(verdict)
        details.append(
            (
                _cell_name(cell[0], cell[1], cell[2], act=cell[3], n_in=cell[4]),
                " / ".join(str(t) for t in ts),
                " / ".join(_f(v) for v in vs),
                "yes" if rises else "no",
                ("yes" if diminishing else "no") if len(ts) >= 3 else "-",
                "yes" if fell else "no",
            )
        )
    columns = ("cell", "T", "best b/p", "rises", "diminishing", "falls")
    if not verdicts:
        return _Outcome(NOT_ENOUGH, "-", None, "needs two values of T in one cell")
    measured = "; ".join(f"{d[0]}: {d[2]} at T {d[1]}" for d in details)
    if DIFFERS in verdicts:
        why = (
            f"{verdicts.count(DIFFERS)} of {len(verdicts)} cells do not rise with diminishing "
            f"returns (or fall more than {SATURATION_DROP:.0%} below their peak)"
        )
        verdict = DIFFERS
    elif AGREES in verdicts:
        why = "every cell rises, with gains per step of T that shrink"
        verdict = AGREES
    else:
        why = "rises, but diminishing returns need three values of T in one cell"
        verdict = NOT_ENOUGH
    value = verdicts.count(AGREES) / len(verdicts)
    return _Outcome(verdict, measured, value, why, columns, tuple(details))


# --- claim 6: per-unit capacity ---------------------------------------------------------------


def _pu_trials(r: PerUnitRow) -> int:
    return r.trials_complete


def _relevant_6a(rows: Sequence[PerUnitRow]) -> list[PerUnitRow]:
    return list(rows)


def _measure_6a(rows: Sequence[PerUnitRow]) -> _Outcome:
    above = [r for r in rows if r.units >= r.n_in]
    below = [r for r in rows if r.units < r.n_in]
    details = tuple(
        (
            r.arch,
            r.depth,
            r.n_in,
            r.units,
            r.best_fraction,
            "at or above" if r in above else "below",
        )
        for r in rows
    )
    columns = ("arch", "depth", "n_in", "units", "fraction", "units vs n_in")
    if not above or not below:
        side = "at or above" if not above else "below"
        return _Outcome(
            NOT_ENOUGH, "-", None, f"needs rows with units {side} n_in", columns, details
        )
    low_above = min(r.best_fraction for r in above)
    high_below = max(r.best_fraction for r in below)
    ok = low_above >= RECONSTRUCTED > high_below
    parts = []
    if low_above < RECONSTRUCTED:
        parts.append(f"a row at units >= n_in reconstructs only {_f(low_above)}")
    if high_below >= RECONSTRUCTED:
        parts.append(f"a row below n_in reaches {_f(high_below)}")
    return _Outcome(
        AGREES if ok else DIFFERS,
        f"units >= n_in: lowest fraction {_f(low_above)} ({len(above)} rows); units < n_in: "
        f"highest {_f(high_below)} ({len(below)} rows)",
        low_above,
        f"every row at or above n_in reaches {RECONSTRUCTED}, none below does"
        if ok
        else "; ".join(parts),
        columns,
        details,
    )


def _curve_cell(r: PerUnitRow) -> tuple[int, int, int]:
    return (r.n_in, r.depth, r.units)


def _relevant_6b(rows: Sequence[PerUnitRow]) -> list[PerUnitRow]:
    below = [r for r in rows if r.units < r.n_in]
    return [
        r
        for group in _by(below, _curve_cell).values()
        if len({r.arch for r in group}) >= 2
        for r in group
    ]


def _measure_6b(rows: Sequence[PerUnitRow]) -> _Outcome:
    details = []
    for (n_in, depth, units), group in sorted(_by(rows, _curve_cell).items()):
        best: dict[str, float] = {}
        for r in group:
            best[r.arch] = max(best.get(r.arch, -math.inf), r.best_fraction)
        if len(best) < 2:
            continue
        spread = max(best.values()) - min(best.values())
        details.append(
            (
                n_in,
                depth,
                units,
                len(best),
                min(best.values()),
                max(best.values()),
                spread,
                "yes" if spread <= ONE_CURVE_SPREAD else "no",
            )
        )
    if not details:
        return _Outcome(NOT_ENOUGH, "-", None, "needs two archs at one number of units < n_in")
    worst = max(d[6] for d in details)
    wrong = [d for d in details if d[-1] == "no"]
    return _Outcome(
        DIFFERS if wrong else AGREES,
        f"largest spread between archs {_f(worst)} over {len(details)} values of units < n_in",
        worst,
        f"spread within {ONE_CURVE_SPREAD} at every value of units"
        if not wrong
        else "spread above {} at units {}".format(
            ONE_CURVE_SPREAD, ", ".join(str(d[2]) for d in wrong)
        ),
        ("n_in", "depth", "units", "archs", "lowest", "highest", "spread", "within"),
        tuple(details),
    )


# --- claim 7: Adam best (thesis) --------------------------------------------------------------


def _cell_7(k: KeyedRow) -> tuple[Any, ...]:
    return (k.row.arch, k.row.budget, k.row.depth, *k.values[: len(SETTINGS)])


def _relevant_7(rows: Sequence[KeyedRow]) -> list[KeyedRow]:
    varied = _varied(rows, _cell_7, lambda r: r.get("optimizer"))
    cells = {_cell_7(r) for r in varied if r.get("optimizer") == "adam"}
    return [r for r in varied if _cell_7(r) in cells]


def _measure_7(rows: Sequence[KeyedRow]) -> _Outcome:
    details = []
    for cell, group in sorted(_by(rows, _cell_7).items(), key=repr):
        best = _best_by(group, lambda r: str(r.get("optimizer")))
        if "adam" not in best or len(best) < 2:
            continue
        others = {k: v for k, v in best.items() if k != "adam"}
        rival = max(others, key=lambda k: others[k])
        details.append(
            (
                _cell_name(cell[0], cell[1], cell[2], act=cell[3], T=cell[4], n_in=cell[5]),
                best["adam"],
                rival,
                others[rival],
                "yes" if best["adam"] >= others[rival] else "no",
            )
        )
    if not details:
        return _Outcome(NOT_ENOUGH, "-", None, "needs adam and another optimizer in one cell")
    wins = [d for d in details if d[-1] == "yes"]
    return _Outcome(
        AGREES if len(wins) == len(details) else DIFFERS,
        f"adam best in {len(wins)} of {len(details)} cells",
        len(wins) / len(details),
        "adam best in every cell"
        if len(wins) == len(details)
        else f"another optimizer beats adam in {len(details) - len(wins)} cells",
        ("cell", "adam b/p", "best other", "its b/p", "adam best"),
        tuple(details),
    )


# --- claim 8: n_in (the project's own measurement) ---------------------------------------------


def _cell_8(k: KeyedRow) -> tuple[Any, ...]:
    return (k.row.arch, k.row.budget, k.row.depth, k.get("activation"), k.get("unroll"))


def _relevant_8(rows: Sequence[KeyedRow]) -> list[KeyedRow]:
    return _varied(rows, _cell_8, lambda r: r.get("n_in"))


def _measure_8(rows: Sequence[KeyedRow]) -> _Outcome:
    details = []
    for cell, group in sorted(_by(rows, _cell_8).items(), key=repr):
        best = sorted(_best_by(group, lambda r: int(r.get("n_in"))).items())
        if len(best) < 2:
            continue
        vs = [v for _, v in best]
        falls = all(b < a for a, b in pairwise(vs))
        details.append(
            (
                _cell_name(cell[0], cell[1], cell[2], act=cell[3], T=cell[4]),
                " / ".join(str(n) for n, _ in best),
                " / ".join(_f(v) for v in vs),
                "yes" if falls else "no",
            )
        )
    if not details:
        return _Outcome(NOT_ENOUGH, "-", None, "needs two values of n_in in one cell")
    wrong = [d for d in details if d[-1] == "no"]
    return _Outcome(
        DIFFERS if wrong else AGREES,
        "; ".join(f"{d[0]}: {d[2]} at n_in {d[1]}" for d in details),
        (len(details) - len(wrong)) / len(details),
        "bits/param fall as n_in grows in every cell"
        if not wrong
        else f"bits/param do not fall with n_in in {len(wrong)} of {len(details)} cells",
        ("cell", "n_in", "best b/p", "falls"),
        tuple(details),
    )


# --- the claims -------------------------------------------------------------------------------

CAPACITY_CLAIMS: tuple[_Spec[KeyedRow], ...] = (
    _Spec(
        "1",
        "Capacity is linear in the number of parameters P (bits/param constant in P)",
        "paper",
        "slope of log(best bits) against log(P) ~ 1",
        f"every (arch, depth) slope within 1 +- {SLOPE_TOLERANCE}",
        "capacity studies of one arch at two or more budgets (experiments/capacity.toml)",
        _relevant_1,
        _measure_1,
        _trials,
    ),
    _Spec(
        "2",
        "About 5 bits per parameter on average",
        "paper",
        "3 to 6 over all archs and depths, ~5 on average",
        "mean over best rows in [{:g}, {:g}]".format(*MEAN_BITS_PER_PARAM_RANGE),
        f"capacity studies at T = {PAPER_UNROLL} (experiments/capacity.toml)",
        _relevant_2,
        _measure_2,
        _trials,
    ),
    _Spec(
        "3",
        "Ranking RNN > UGRNN > GRU > LSTM > +RNN",
        "paper",
        " > ".join(PAPER_RANKING),
        "every pair in the paper's order (mean best bits/param over shared budgets and depths)",
        "capacity studies of two or more of rnn, ugrnn, gru, lstm, +rnn at one budget "
        "(experiments/capacity.toml)",
        _relevant_3,
        _measure_3,
        _trials,
    ),
    _Spec(
        "4",
        "relu (RNN, UGRNN) and IRNN store less, about 3.5 bits/param",
        "paper",
        "~3.5 bits/param against ~5 for tanh",
        "relu lower than tanh in every pair of the same budget and depth (the level, ~3.5, "
        "is shown but not judged: like the tanh level, it rises with training length)",
        "rnn or ugrnn studies with activation relu (fixed or searched), or irnn studies, "
        "beside tanh ones at the same budget",
        _relevant_4,
        _measure_4,
        _trials,
    ),
    _Spec(
        "5",
        "Capacity rises with T (unroll), with diminishing returns",
        "paper",
        "grows with T and saturates",
        f"best bits/param rise from the smallest to the largest T, gains per step of T "
        f"shrink, and no T falls more than {SATURATION_DROP:.0%} below the peak",
        "studies of one arch and budget at three or more values of unroll (T)",
        _relevant_5,
        _measure_5,
        _trials,
    ),
)

OPTIMIZER_CLAIM: _Spec[KeyedRow] = _Spec(
    "7",
    "Adam trains best among the optimizers",
    "thesis",
    "Adam beat SGD-Nesterov and Adagrad",
    "adam's best bits/param at least every other optimizer's, in every cell",
    "studies with the optimizer searched (or fixed to adam and to another optimizer) at the "
    "same arch and budget",
    _relevant_7,
    _measure_7,
    _trials,
)

N_IN_CLAIM: _Spec[KeyedRow] = _Spec(
    "8",
    "Bits/param fall as n_in grows (at a fixed budget)",
    "project",
    "2.93 / 2.75 / 2.28 at n_in 16 / 32 / 64 (rnn, ~1k params, 5000 steps)",
    "best bits/param fall with every step up in n_in, in every cell",
    "studies of one arch and budget at two or more values of n_in",
    _relevant_8,
    _measure_8,
    _trials,
)

PER_UNIT_CLAIMS: tuple[_Spec[PerUnitRow], ...] = (
    _Spec(
        "6a",
        "Per-unit capacity: reconstruction succeeds if and only if units >= n_in",
        "paper",
        "every arch succeeds iff units per layer >= n_in",
        f"fraction reconstructed >= {RECONSTRUCTED} at every units >= n_in, below it for "
        "every units < n_in",
        "per-unit studies at units both below and at or above n_in",
        _relevant_6a,
        _measure_6a,
        _pu_trials,
    ),
    _Spec(
        "6b",
        "Per-unit capacity: below n_in all archs follow one curve",
        "paper",
        "the error follows one curve for all archs",
        f"best fractions of the archs within {ONE_CURVE_SPREAD} of each other at each units < n_in",
        "per-unit studies of two or more archs at the same units < n_in",
        _relevant_6b,
        _measure_6b,
        _pu_trials,
    ),
)


def judge(evidence: Evidence, min_trials: int = MIN_TRIALS) -> list[Claim]:
    """Every claim, in the paper's order, with its verdict."""
    if min_trials < 1:
        raise ValueError(f"min_trials must be positive, got {min_trials}")
    claims = [_judge(spec, evidence.rows, min_trials) for spec in CAPACITY_CLAIMS]
    claims += [_judge(spec, evidence.per_unit, min_trials) for spec in PER_UNIT_CLAIMS]
    claims.append(_judge(OPTIMIZER_CLAIM, evidence.optimizer_rows, min_trials))
    claims.append(_judge(N_IN_CLAIM, evidence.rows, min_trials))
    return claims
