"""Claim 2 (paper): about 5 bits per parameter on average.

Measured as the mean bits per parameter of the best rows at the paper's T and this project's
default n_in, each arch at its own activation, one row per (arch, depth, budget).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean

from hpsearch.results.claims.judging import (
    AGREES,
    DEFAULT_N_IN,
    DIFFERS,
    NOT_ENOUGH,
    PAPER_UNROLL,
    CapacityClaim,
    KeyedRun,
    Outcome,
    best_per_cell,
    by,
    f2,
    is_default,
    with_run,
)

# "About 5" bits per parameter on average agrees within [4, 6].
MEAN_BITS_PER_PARAM_RANGE = (4.0, 6.0)


class FiveBits(CapacityClaim):
    number = "2"
    statement = "About 5 bits per parameter on average"
    source = "paper"
    expected = "3 to 6 over all archs and depths, ~5 on average"
    tolerance = "mean over best rows in [{:g}, {:g}]".format(*MEAN_BITS_PER_PARAM_RANGE)
    tests_with = f"capacity studies at T = {PAPER_UNROLL} (experiments/capacity.toml)"

    def relevant(self, rows: Sequence[KeyedRun]) -> list[KeyedRun]:
        return best_per_cell(
            [
                r
                for r in rows
                if is_default(r)
                and r.get("unroll") == PAPER_UNROLL
                and r.get("n_in") == DEFAULT_N_IN
            ]
        )

    def measure(self, rows: Sequence[KeyedRun]) -> Outcome:
        if not rows:
            return Outcome(NOT_ENOUGH, "-", None, "needs one best row")
        bpp = [r.row.bits_per_param for r in rows]
        avg = mean(bpp)
        low, high = MEAN_BITS_PER_PARAM_RANGE
        details = tuple(
            (arch, len(group), mean(b := [r.row.bits_per_param for r in group]), min(b), max(b))
            for arch, group in by(rows, lambda r: f"{r.row.arch}{with_run(r.run)}").items()
        )
        inside = low <= avg <= high
        return Outcome(
            AGREES if inside else DIFFERS,
            f"mean {f2(avg)} bits/param (rows from {f2(min(bpp))} to {f2(max(bpp))})",
            avg,
            f"mean {'within' if inside else 'outside'} [{low:g}, {high:g}]",
            ("arch", "rows", "mean b/p", "min b/p", "max b/p"),
            details,
        )


CLAIM = FiveBits()
