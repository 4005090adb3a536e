"""Claim 4 (paper): relu networks (the RNN and UGRNN restricted to relu, and the IRNN) store
less than tanh ones, about 3.5 bits per parameter.

Measured by setting each relu row against the tanh row of the same (budget, depth, n_in, T).
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
    best_by,
    budget_cell,
    f2,
    with_run,
)

# (arch, activation) of a relu row -> (arch, activation) of the tanh row it is set against.
RELU_PAIRS: dict[tuple[str, str], tuple[str, str]] = {
    ("rnn", "relu"): ("rnn", "tanh"),
    ("ugrnn", "relu"): ("ugrnn", "tanh"),
    ("irnn", "relu"): ("rnn", "tanh"),
}


def _pairs(rows: Sequence[KeyedRun]) -> list[tuple[Any, Any, Any, float, float]]:
    """(relu key, tanh key, cell, relu bits/param, tanh bits/param) for each relu row that has
    its tanh row in the same cell; a key is (arch, activation)."""
    best = best_by(rows, lambda r: ((r.row.arch, r.get("activation")), budget_cell(r)))
    pairs = []
    for (relu, cell), value in sorted(best.items(), key=repr):
        partner = RELU_PAIRS.get(relu)
        if partner is not None and (partner, cell) in best:
            pairs.append((relu, partner, cell, value, best[(partner, cell)]))
    return pairs


class ReluLower(CapacityClaim):
    number = "4"
    statement = "relu (RNN, UGRNN) and IRNN store less, about 3.5 bits/param"
    source = "paper"
    expected = "~3.5 bits/param against ~5 for tanh"
    tolerance = (
        "relu lower than tanh in every pair of the same budget and depth (the level, ~3.5, "
        "is shown but not judged: like the tanh level, it rises with training length)"
    )
    tests_with = (
        "rnn or ugrnn studies with activation relu (fixed or searched), or irnn studies, "
        "beside tanh ones at the same budget"
    )

    def relevant(self, rows: Sequence[KeyedRun]) -> list[KeyedRun]:
        used = set()
        for relu, partner, cell, _, _ in _pairs(rows):
            used |= {(relu, cell), (partner, cell)}
        return [r for r in rows if ((r.row.arch, r.get("activation")), budget_cell(r)) in used]

    def measure(self, rows: Sequence[KeyedRun]) -> Outcome:
        pairs = _pairs(rows)
        if not pairs:
            return Outcome(NOT_ENOUGH, "-", None, "needs a relu row and its tanh row at one budget")
        relu, tanh = mean(p[3] for p in pairs), mean(p[4] for p in pairs)
        details = tuple(
            (
                "{} {} / {} {}".format(*relu_key, *tanh_key),
                "p{} depth {} n_in {} T {}".format(*cell[:4]) + with_run(cell[4]),
                r,
                t,
                "yes" if r < t else "no",
            )
            for relu_key, tanh_key, cell, r, t in pairs
        )
        wrong = [d for d in details if d[-1] == "no"]
        return Outcome(
            DIFFERS if wrong else AGREES,
            f"relu {f2(relu)} against tanh {f2(tanh)} bits/param "
            f"(ratio {f2(relu / tanh) if tanh > 0 else 'n/a'}) over "
            f"{len(pairs)} pair{'s' if len(pairs) > 1 else ''}",
            relu,
            "relu lower in every pair"
            if not wrong
            else f"relu not lower in {len(wrong)} of {len(pairs)} pairs",
            ("pair", "cell", "relu b/p", "tanh b/p", "lower"),
            details,
        )


CLAIM = ReluLower()
