"""Claim 3 (paper): the ranking RNN > UGRNN > GRU > LSTM > +RNN.

Measured pair by pair: for each two ranked archs, the mean of their best bits per parameter
over the (budget, depth, n_in, T) cells both were searched in.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from statistics import mean

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
    is_default,
    varied,
    with_run,
)

# The paper's ranking, best first.
PAPER_RANKING: tuple[str, ...] = ("rnn", "ugrnn", "gru", "lstm", "+rnn")
# Two archs whose mean best bits/param differ by at most this fraction of the larger tie: the
# paper's point is that the cells store nearly the same, and a search's noise is of this order.
TIE_BAND = 0.05


class Ranking(CapacityClaim):
    number = "3"
    statement = "Ranking RNN > UGRNN > GRU > LSTM > +RNN"
    source = "paper"
    expected = " > ".join(PAPER_RANKING) + f"; pairs within {TIE_BAND:.0%} tie"
    tolerance = (
        f"every pair in the paper's order or tied, within {TIE_BAND:.0%} of the larger (mean "
        "best bits/param over shared budgets and depths)"
    )
    tests_with = (
        "capacity studies of two or more of rnn, ugrnn, gru, lstm, +rnn at one budget "
        "(experiments/capacity.toml)"
    )

    def relevant(self, rows: Sequence[KeyedRun]) -> list[KeyedRun]:
        mine = [r for r in rows if is_default(r) and r.row.arch in PAPER_RANKING]
        return varied(mine, budget_cell, lambda r: r.row.arch)

    def measure(self, rows: Sequence[KeyedRun]) -> Outcome:
        best = best_by(rows, lambda r: (r.row.arch, budget_cell(r)))
        archs = [a for a in PAPER_RANKING if any(key[0] == a for key in best)]
        details = []
        # A pair per run: the archs of one sampler comparison's arm against each other.
        for run in sorted({c[-1] for _, c in best}):
            for a, b in combinations(archs, 2):  # a is above b in the paper
                cells = sorted(
                    {c for arch, c in best if arch == a and c[-1] == run}
                    & {c for arch, c in best if arch == b},
                    key=repr,
                )
                if not cells:
                    continue
                ma, mb = mean(best[(a, c)] for c in cells), mean(best[(b, c)] for c in cells)
                tie = abs(ma - mb) <= TIE_BAND * max(ma, mb)
                in_order = "tie" if tie else "yes" if ma > mb else "no"
                details.append((f"{a} > {b}{with_run(run)}", len(cells), ma, mb, in_order))
        if not details:
            return Outcome(NOT_ENOUGH, "-", None, "needs two ranked archs at one budget and depth")
        agree = [d for d in details if d[-1] == "yes"]
        ties = [d for d in details if d[-1] == "tie"]
        means = {a: mean(v for (x, _), v in best.items() if x == a) for a in archs}
        order = sorted(archs, key=lambda a: -means[a])
        tied = f", {len(ties)} tied within {TIE_BAND:.0%}" if ties else ""
        measured = (
            f"{len(agree)} of {len(details)} pairs in the paper's order{tied}; measured "
            + " > ".join(f"{a} {f2(means[a])}" for a in order)
        )
        wrong = [d[0] for d in details if d[-1] == "no"]
        if wrong:
            why = "out of order: " + ", ".join(wrong)
        elif ties:
            why = f"every pair in order or tied within {TIE_BAND:.0%}"
        else:
            why = "every pair in order"
        return Outcome(
            DIFFERS if wrong else AGREES,
            measured,
            (len(agree) + len(ties)) / len(details),
            why,
            ("pair", "cells", "mean b/p first", "mean b/p second", "in order"),
            tuple(details),
        )


CLAIM = Ranking()
