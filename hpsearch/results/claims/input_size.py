"""Claim 8 (this project's own measurement): bits per parameter fall as n_in grows at a fixed
budget, since a larger input spends more of the budget on input weights.

Measured in each (arch, budget, depth, activation, T) cell studied at two or more values of
n_in: the best bits per parameter at each n_in.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from hpsearch.results.claims.judging import (
    AGREES,
    DIFFERS,
    NOT_ENOUGH,
    CapacityClaim,
    KeyedRun,
    Outcome,
    best_by,
    by,
    cell_name,
    f2,
    varied,
)


def _cell(k: KeyedRun) -> tuple[Any, ...]:
    return (k.row.arch, k.row.budget, k.row.depth, k.get("activation"), k.get("unroll"), k.run)


class FallsWithInputSize(CapacityClaim):
    number = "8"
    statement = "Bits/param fall as n_in grows (at a fixed budget)"
    source = "project"
    expected = "2.93 / 2.75 / 2.28 at n_in 16 / 32 / 64 (rnn, ~1k params, 5000 steps)"
    tolerance = "best bits/param fall with every step up in n_in, in every cell"
    tests_with = "studies of one arch and budget at two or more values of n_in"

    def relevant(self, rows: Sequence[KeyedRun]) -> list[KeyedRun]:
        return varied(rows, _cell, lambda r: r.get("n_in"))

    def measure(self, rows: Sequence[KeyedRun]) -> Outcome:
        details = []
        for cell, group in sorted(by(rows, _cell).items(), key=repr):
            best = sorted(best_by(group, lambda r: int(r.get("n_in"))).items())
            if len(best) < 2:
                continue
            vs = [v for _, v in best]
            falls = all(b < a for a, b in pairwise(vs))
            details.append(
                (
                    cell_name(cell[0], cell[1], cell[2], cell[5], act=cell[3], T=cell[4]),
                    " / ".join(str(n) for n, _ in best),
                    " / ".join(f2(v) for v in vs),
                    "yes" if falls else "no",
                )
            )
        if not details:
            return Outcome(NOT_ENOUGH, "-", None, "needs two values of n_in in one cell")
        wrong = [d for d in details if d[-1] == "no"]
        return Outcome(
            DIFFERS if wrong else AGREES,
            "; ".join(f"{d[0]}: {d[2]} at n_in {d[1]}" for d in details),
            (len(details) - len(wrong)) / len(details),
            "bits/param fall as n_in grows in every cell"
            if not wrong
            else f"bits/param do not fall with n_in in {len(wrong)} of {len(details)} cells",
            ("cell", "n_in", "best b/p", "falls"),
            tuple(details),
        )


CLAIM = FallsWithInputSize()
