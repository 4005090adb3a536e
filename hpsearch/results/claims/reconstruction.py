"""Claim 6a (paper): per-unit capacity. A network reconstructs its input if and only if it has
at least n_in units per layer.

Measured on per-unit best rows: the lowest best fraction reconstructed at units >= n_in and
the highest below.
"""

from __future__ import annotations

from collections.abc import Sequence

from hpsearch.results.claims.judging import (
    AGREES,
    DIFFERS,
    NOT_ENOUGH,
    Outcome,
    PerUnitClaim,
    PerUnitRun,
    f2,
)

# A best fraction reconstructed at or above this counts as success. (The per-unit task's own
# RECONSTRUCTED, all but 1e-4 of the input, is when a trial stops early: a stricter mark.)
SUCCESS_FRACTION = 0.9


class ReconstructionThreshold(PerUnitClaim):
    number = "6a"
    statement = "Per-unit capacity: reconstruction succeeds if and only if units >= n_in"
    source = "paper"
    expected = "every arch succeeds iff units per layer >= n_in"
    tolerance = (
        f"fraction reconstructed >= {SUCCESS_FRACTION} at every units >= n_in, below it for "
        "every units < n_in"
    )
    tests_with = "per-unit studies at units both below and at or above n_in"

    def relevant(self, rows: Sequence[PerUnitRun]) -> list[PerUnitRun]:
        return list(rows)

    def measure(self, rows: Sequence[PerUnitRun]) -> Outcome:
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
            return Outcome(
                NOT_ENOUGH, "-", None, f"needs rows with units {side} n_in", columns, details
            )
        low_above = min(r.best_fraction for r in above)
        high_below = max(r.best_fraction for r in below)
        ok = low_above >= SUCCESS_FRACTION > high_below
        parts = []
        if low_above < SUCCESS_FRACTION:
            parts.append(f"a row at units >= n_in reconstructs only {f2(low_above)}")
        if high_below >= SUCCESS_FRACTION:
            parts.append(f"a row below n_in reaches {f2(high_below)}")
        return Outcome(
            AGREES if ok else DIFFERS,
            f"units >= n_in: lowest fraction {f2(low_above)} ({len(above)} rows); units < n_in: "
            f"highest {f2(high_below)} ({len(below)} rows)",
            low_above,
            f"every row at or above n_in reaches {SUCCESS_FRACTION}, none below does"
            if ok
            else "; ".join(parts),
            columns,
            details,
        )


CLAIM = ReconstructionThreshold()
