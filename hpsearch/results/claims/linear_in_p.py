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
    Outcome,
    best_per_cell,
    by,
    f2,
    is_default,
    log_slope,
    varied,
)
from hpsearch.results.rows import KeyedRow

# Every (arch, depth) slope must lie within 1 +- this.
SLOPE_TOLERANCE = 0.2


def _series(k: KeyedRow) -> tuple[Any, ...]:
    return (k.row.arch, k.row.depth, k.get("n_in"), k.get("unroll"))


class LinearInP(CapacityClaim):
    number = "1"
    statement = "Capacity is linear in the number of parameters P (bits/param constant in P)"
    source = "paper"
    expected = "slope of log(best bits) against log(P) ~ 1"
    tolerance = f"every (arch, depth) slope within 1 +- {SLOPE_TOLERANCE}"
    tests_with = "capacity studies of one arch at two or more budgets (experiments/capacity.toml)"

    def relevant(self, rows: Sequence[KeyedRow]) -> list[KeyedRow]:
        mine = best_per_cell([r for r in rows if is_default(r) and r.row.best_bits > 0])
        # Budgets that solve to the same network (same P) give no slope: vary P itself.
        return varied(mine, _series, lambda r: r.row.num_params)

    def measure(self, rows: Sequence[KeyedRow]) -> Outcome:
        details = []
        slopes = []
        for (arch, depth, n_in, unroll), group in by(rows, _series).items():
            slope = log_slope([(r.row.num_params, r.row.best_bits) for r in group])
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
            return Outcome(NOT_ENOUGH, "-", None, "needs 2 budgets of one (arch, depth)")
        bad = [d for d in details if d[-1] == "no"]
        spread = max(d[8] for d in details)
        span = f2(slopes[0]) if len(slopes) == 1 else f"{f2(min(slopes))} to {f2(max(slopes))}"
        measured = (
            f"slope {span} over {len(slopes)} (arch, depth); "
            f"bits/param spread across budgets up to {spread:.0%}"
        )
        why = (
            f"every slope within 1 +- {SLOPE_TOLERANCE}"
            if not bad
            else "slope outside 1 +- {}: {}".format(
                SLOPE_TOLERANCE, ", ".join(f"{d[0]} depth {d[1]} ({f2(d[5])})" for d in bad)
            )
        )
        return Outcome(
            DIFFERS if bad else AGREES, measured, mean(slopes), why, columns, tuple(details)
        )


CLAIM = LinearInP()
