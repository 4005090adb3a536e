"""Claim 7 (thesis): Adam trains best among the optimizers.

Measured in each (arch, budget, depth, activation, T, n_in) cell with adam and another
optimizer (searched in one study, or fixed in several): adam's best bits per parameter against
the best other optimizer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hpsearch.results.claims.judging import (
    AGREES,
    DIFFERS,
    NOT_ENOUGH,
    SETTINGS,
    CapacityClaim,
    Evidence,
    KeyedRun,
    Outcome,
    best_by,
    by,
    cell_name,
    varied,
)


def _cell(k: KeyedRun) -> tuple[Any, ...]:
    return (k.row.arch, k.row.budget, k.row.depth, *k.values[: len(SETTINGS)], k.run)


class AdamBest(CapacityClaim):
    number = "7"
    statement = "Adam trains best among the optimizers"
    source = "thesis"
    expected = "Adam beat SGD-Nesterov and Adagrad"
    tolerance = "adam's best bits/param at least every other optimizer's, in every cell"
    tests_with = (
        "studies with the optimizer searched (or fixed to adam and to another optimizer) at the "
        "same arch and budget"
    )

    def rows(self, evidence: Evidence) -> Sequence[KeyedRun]:
        return evidence.optimizer_rows

    def relevant(self, rows: Sequence[KeyedRun]) -> list[KeyedRun]:
        mixed = varied(rows, _cell, lambda r: r.get("optimizer"))
        cells = {_cell(r) for r in mixed if r.get("optimizer") == "adam"}
        return [r for r in mixed if _cell(r) in cells]

    def measure(self, rows: Sequence[KeyedRun]) -> Outcome:
        details = []
        for cell, group in sorted(by(rows, _cell).items(), key=repr):
            best = best_by(group, lambda r: str(r.get("optimizer")))
            if "adam" not in best or len(best) < 2:
                continue
            others = {k: v for k, v in best.items() if k != "adam"}
            rival = max(others, key=lambda k: others[k])
            details.append(
                (
                    cell_name(
                        cell[0], cell[1], cell[2], cell[6], act=cell[3], T=cell[4], n_in=cell[5]
                    ),
                    best["adam"],
                    rival,
                    others[rival],
                    "yes" if best["adam"] >= others[rival] else "no",
                )
            )
        if not details:
            return Outcome(NOT_ENOUGH, "-", None, "needs adam and another optimizer in one cell")
        wins = [d for d in details if d[-1] == "yes"]
        return Outcome(
            AGREES if len(wins) == len(details) else DIFFERS,
            f"adam best in {len(wins)} of {len(details)} cells",
            len(wins) / len(details),
            "adam best in every cell"
            if len(wins) == len(details)
            else f"another optimizer beats adam in {len(details) - len(wins)} cells",
            ("cell", "adam b/p", "best other", "its b/p", "adam best"),
            tuple(details),
        )


CLAIM = AdamBest()
