"""Claim 1 (paper): capacity is linear in the number of parameters P.

Measured as the least-squares slope of log(best bits) against log(P) over the budgets of one
(arch, depth, n_in, T), each arch at its own activation: a slope of 1 means bits per parameter
do not change with P.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean
from typing import Any

from hpsearch.results.claims.judging import (
    AGREES,
    DIFFERS,
    NOT_ENOUGH,
    CapacityClaim,
    KeyedRun,
    Outcome,
    best_per_cell,
    by,
    f2,
    is_default,
    log_slope,
    varied,
    with_run,
)

# Every (arch, depth) slope must lie within 1 +- this.
SLOPE_TOLERANCE = 0.2
# A slope is judged only over this many budgets (of different P) at least, whose largest is at
# least MIN_SPAN times the smallest: two budgets a factor of 2 apart would let any curve pass
# for a line.
MIN_BUDGETS = 3
MIN_SPAN = 10.0


def _series(k: KeyedRun) -> tuple[Any, ...]:
    return (k.row.arch, k.row.depth, k.get("n_in"), k.get("unroll"), k.run)


def _span(group: Sequence[KeyedRun]) -> float:
    budgets = [r.row.budget for r in group]
    return max(budgets) / min(budgets)


def _judged(group: Sequence[KeyedRun]) -> bool:
    """Whether a series has budgets enough, and far enough apart, for its slope to count."""
    return len({r.row.budget for r in group}) >= MIN_BUDGETS and _span(group) >= MIN_SPAN


class LinearInP(CapacityClaim):
    number = "1"
    statement = "Capacity is linear in the number of parameters P (bits/param constant in P)"
    source = "paper"
    expected = "slope of log(best bits) against log(P) ~ 1"
    tolerance = (
        f"every (arch, depth) slope within 1 +- {SLOPE_TOLERANCE}, each over at least "
        f"{MIN_BUDGETS} budgets spanning at least {MIN_SPAN:g}x"
    )
    tests_with = (
        f"capacity studies of one arch at {MIN_BUDGETS} or more budgets spanning {MIN_SPAN:g}x "
        "or more (experiments/capacity.toml)"
    )

    def relevant(self, rows: Sequence[KeyedRun]) -> list[KeyedRun]:
        mine = best_per_cell([r for r in rows if is_default(r) and r.row.best_bits > 0])
        # Budgets that solve to the same network (same P) give no slope: vary P itself.
        return varied(mine, _series, lambda r: r.row.num_params)

    def measure(self, rows: Sequence[KeyedRun]) -> Outcome:
        details = []
        slopes = []
        short = []
        reach = []  # (budgets, span, series) of each series
        for (arch, depth, n_in, unroll, run), group in by(rows, _series).items():
            label = f"{arch}{with_run(run)}"
            slope = log_slope([(r.row.num_params, r.row.best_bits) for r in group])
            bpp = [r.row.bits_per_param for r in group]
            judged = _judged(group)
            budgets = len({r.row.budget for r in group})
            reach.append((budgets, _span(group), f"{label} depth {depth}"))
            if judged:
                slopes.append(slope)
            else:
                short.append(f"{label} depth {depth}")
            within = "yes" if abs(slope - 1) <= SLOPE_TOLERANCE else "no"
            details.append(
                (
                    label,
                    depth,
                    n_in,
                    unroll,
                    budgets,
                    f"{_span(group):.3g}x",
                    slope,
                    min(bpp),
                    max(bpp),
                    (max(bpp) - min(bpp)) / mean(bpp),
                    within if judged else "-",
                )
            )
        columns = (
            "arch",
            "depth",
            "n_in",
            "T",
            "budgets",
            "span",
            "slope",
            "min b/p",
            "max b/p",
            "spread",
            "within",
        )
        needs = f"{MIN_BUDGETS} budgets spanning {MIN_SPAN:g}x in P"
        if not details:
            return Outcome(NOT_ENOUGH, "-", None, "needs 2 budgets of one (arch, depth)")
        if not slopes:
            budgets, widest, series = max(reach)
            return Outcome(
                NOT_ENOUGH,
                "-",
                None,
                f"needs {needs} in one (arch, depth); the most here: {budgets} budgets "
                f"spanning {widest:.3g}x ({series})",
                columns,
                tuple(details),
            )
        judged_rows = [d for d in details if d[-1] != "-"]
        bad = [d for d in judged_rows if d[-1] == "no"]
        spread = max(d[9] for d in judged_rows)
        span = f2(slopes[0]) if len(slopes) == 1 else f"{f2(min(slopes))} to {f2(max(slopes))}"
        measured = (
            f"slope {span} over {len(slopes)} (arch, depth); "
            f"bits/param spread across budgets up to {spread:.0%}"
        )
        why = (
            f"every slope within 1 +- {SLOPE_TOLERANCE}"
            if not bad
            else "slope outside 1 +- {}: {}".format(
                SLOPE_TOLERANCE, ", ".join(f"{d[0]} depth {d[1]} ({f2(d[6])})" for d in bad)
            )
        )
        if short:
            why += f"; not judged, fewer than {needs}: {', '.join(short)}"
        return Outcome(
            DIFFERS if bad else AGREES, measured, mean(slopes), why, columns, tuple(details)
        )


CLAIM = LinearInP()
