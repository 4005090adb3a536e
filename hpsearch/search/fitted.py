"""The trials a GP fits (gp, gp-batch and the related studies of a warm start alike):
COMPLETE ones, and PRUNED ones at the last value they reported."""

from __future__ import annotations

import math

from optuna.trial import FrozenTrial, TrialState


def is_result(trial: FrozenTrial) -> bool:
    """A trial the GP fits: COMPLETE, or PRUNED with the (finite) value it reached."""
    return trial.state == TrialState.COMPLETE or (
        trial.state == TrialState.PRUNED
        and trial.values is not None
        and all(math.isfinite(v) for v in trial.values)
    )
