"""Claim 6b (paper): per-unit capacity. Below n_in units, all archs follow one curve.

Measured at each number of units below n_in studied for two or more archs: the spread of their
best fractions reconstructed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from hpsearch.results.claims.judging import (
    AGREES,
    DIFFERS,
    NOT_ENOUGH,
    Outcome,
    PerUnitClaim,
    PerUnitRun,
    by,
    f2,
)

# Archs lie on one curve below n_in if their best fractions at the same number of units
# differ by at most this.
ONE_CURVE_SPREAD = 0.1


def _cell(r: PerUnitRun) -> tuple[int, int, int, str]:
    return (r.n_in, r.depth, r.units, r.run)


class OneCurve(PerUnitClaim):
    number = "6b"
    statement = "Per-unit capacity: below n_in all archs follow one curve"
    source = "paper"
    expected = "the error follows one curve for all archs"
    tolerance = (
        f"best fractions of the archs within {ONE_CURVE_SPREAD} of each other at each units < n_in"
    )
    tests_with = "per-unit studies of two or more archs at the same units < n_in"

    def relevant(self, rows: Sequence[PerUnitRun]) -> list[PerUnitRun]:
        below = [r for r in rows if r.units < r.n_in]
        return [
            r
            for group in by(below, _cell).values()
            if len({r.arch for r in group}) >= 2
            for r in group
        ]

    def measure(self, rows: Sequence[PerUnitRun]) -> Outcome:
        details = []
        for (n_in, depth, units, run), group in sorted(by(rows, _cell).items()):
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
                    run or "-",
                )
            )
        if not details:
            return Outcome(NOT_ENOUGH, "-", None, "needs two archs at one number of units < n_in")
        worst = max(d[6] for d in details)
        wrong = [d for d in details if d[-2] == "no"]
        return Outcome(
            DIFFERS if wrong else AGREES,
            f"largest spread between archs {f2(worst)} over {len(details)} values of units < n_in",
            worst,
            f"spread within {ONE_CURVE_SPREAD} at every value of units"
            if not wrong
            else "spread above {} at units {}".format(
                ONE_CURVE_SPREAD, ", ".join(str(d[2]) for d in wrong)
            ),
            ("n_in", "depth", "units", "archs", "lowest", "highest", "spread", "within", "tag"),
            tuple(details),
        )


CLAIM = OneCurve()
