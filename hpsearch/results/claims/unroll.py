"""Claim 5 (paper): capacity rises with T (the unroll), with diminishing returns.

Measured in each (arch, budget, depth, activation, n_in) cell studied at two or more values
of T: the best bits per parameter at each T, their rise, the gain per step of T, and any fall
below the peak.
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

# Once capacity has peaked at some T, a larger T may lose at most this fraction of the peak
# (saturation); more is a fall, not diminishing returns.
SATURATION_DROP = 0.10


def _cell(k: KeyedRun) -> tuple[Any, ...]:
    return (k.row.arch, k.row.budget, k.row.depth, k.get("activation"), k.get("n_in"), k.run)


class RisesWithT(CapacityClaim):
    number = "5"
    statement = "Capacity rises with T (unroll), with diminishing returns"
    source = "paper"
    expected = "grows with T and saturates"
    tolerance = (
        f"best bits/param rise from the smallest to the largest T, gains per step of T "
        f"shrink, and no T falls more than {SATURATION_DROP:.0%} below the peak"
    )
    tests_with = "studies of one arch and budget at three or more values of unroll (T)"

    def relevant(self, rows: Sequence[KeyedRun]) -> list[KeyedRun]:
        return varied(rows, _cell, lambda r: r.get("unroll"))

    def measure(self, rows: Sequence[KeyedRun]) -> Outcome:
        details = []
        verdicts = []
        for cell, group in sorted(by(rows, _cell).items(), key=repr):
            best = sorted(best_by(group, lambda r: int(r.get("unroll"))).items())
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
                    cell_name(cell[0], cell[1], cell[2], cell[5], act=cell[3], n_in=cell[4]),
                    " / ".join(str(t) for t in ts),
                    " / ".join(f2(v) for v in vs),
                    "yes" if rises else "no",
                    ("yes" if diminishing else "no") if len(ts) >= 3 else "-",
                    "yes" if fell else "no",
                )
            )
        columns = ("cell", "T", "best b/p", "rises", "diminishing", "falls")
        if not verdicts:
            return Outcome(NOT_ENOUGH, "-", None, "needs two values of T in one cell")
        measured = "; ".join(f"{d[0]}: {d[2]} at T {d[1]}" for d in details)
        if DIFFERS in verdicts:
            why = (
                f"{verdicts.count(DIFFERS)} of {len(verdicts)} cells do not rise with "
                f"diminishing returns (or fall more than {SATURATION_DROP:.0%} below their peak)"
            )
            verdict = DIFFERS
        elif AGREES in verdicts:
            why = "every cell rises, with gains per step of T that shrink"
            verdict = AGREES
        else:
            why = "rises, but diminishing returns need three values of T in one cell"
            verdict = NOT_ENOUGH
        value = verdicts.count(AGREES) / len(verdicts)
        return Outcome(verdict, measured, value, why, columns, tuple(details))


CLAIM = RisesWithT()
