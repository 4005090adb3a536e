"""The paper's claims set against the storage's studies: the data of `hpsearch report`.

Each claim is one object in a module of its own, its words beside its measurement:

    1   linear_in_p      capacity is linear in P (paper)
    2   five_bits        about 5 bits per parameter (paper)
    3   ranking          RNN > UGRNN > GRU > LSTM > +RNN (paper)
    4   relu             relu networks store less (paper)
    5   unroll           capacity rises with T, with diminishing returns (paper)
    6a  reconstruction   per-unit: reconstruction iff units >= n_in (paper)
    6b  one_curve        per-unit: one curve below n_in (paper)
    7   optimizer        Adam trains best (thesis)
    8   input_size       bits per parameter fall as n_in grows (this project)

`judging` holds what they share: the verdicts, `PaperClaim` and how it judges, `ClaimVerdict`
(the result), the evidence (best rows from `hpsearch.results.rows`, never trials read another
way) and helpers over rows. Rendering lives in `hpsearch.results.report`.
"""

from __future__ import annotations

from typing import Any

from hpsearch.results.claims import (
    five_bits,
    input_size,
    linear_in_p,
    one_curve,
    optimizer,
    ranking,
    reconstruction,
    relu,
    unroll,
)
from hpsearch.results.claims.judging import (
    AGREES,
    DEFAULT_N_IN,
    DIFFERS,
    MIN_TRIALS,
    NO_STUDIES,
    NOT_ENOUGH,
    PAPER_UNROLL,
    VERDICTS,
    ClaimVerdict,
    Evidence,
    PaperClaim,
    collect,
)
from hpsearch.results.claims.reconstruction import SUCCESS_FRACTION

__all__ = [
    "AGREES",
    "CLAIMS",
    "DEFAULT_N_IN",
    "DIFFERS",
    "MIN_TRIALS",
    "NOT_ENOUGH",
    "NO_STUDIES",
    "PAPER_UNROLL",
    "SUCCESS_FRACTION",
    "VERDICTS",
    "ClaimVerdict",
    "Evidence",
    "PaperClaim",
    "collect",
    "judge",
]

# Every claim, in the report's order.
CLAIMS: tuple[PaperClaim[Any], ...] = (
    linear_in_p.CLAIM,
    five_bits.CLAIM,
    ranking.CLAIM,
    relu.CLAIM,
    unroll.CLAIM,
    reconstruction.CLAIM,
    one_curve.CLAIM,
    optimizer.CLAIM,
    input_size.CLAIM,
)


def judge(evidence: Evidence, min_trials: int = MIN_TRIALS) -> list[ClaimVerdict]:
    """Every claim, in the paper's order, with its verdict."""
    if min_trials < 1:
        raise ValueError(f"min_trials must be positive, got {min_trials}")
    return [claim.judge(evidence, min_trials) for claim in CLAIMS]
