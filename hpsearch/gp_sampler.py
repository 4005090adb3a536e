"""gp: Optuna's GPSampler, fitted to the study's PRUNED trials as well as its COMPLETE ones.

Optuna's GPSampler fits only COMPLETE trials. In a study with a pruner most proposals end
PRUNED, so the GP never learns where they went: it keeps proposing points like those just
pruned, and they are pruned in turn (benchmarks/capacity_search.py pruning, 2 CPU-hours:
1,206 pruned against 11 complete, nothing better than the random start-up). Here a PRUNED
trial counts with the value it was stopped at, its last report: the best bits the network had
stored by then. That is a measurement, not a guess (the network did store those bits), and a
lower bound on what the trial would have reached, so it pulls the GP down where the pruner
judged the runs poor, which is the verdict the pruner made. Everything else (the kernel, its
priors, the acquisition, the sharing of RUNNING trials' points) is GPSampler's. The same
benchmark with PRUNED trials fitted: 126 complete, 698 pruned, best 3.49 bits/param.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import optuna
from optuna.samplers._gp.sampler import _RELATIVE_PARAMS_KEY, _SYSTEM_ATTR_MAX_LENGTH, _get_params
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from collections.abc import Iterable

    from optuna.distributions import BaseDistribution

# The states a GP fit reads: results (COMPLETE, PRUNED with a value) and pending points.
FIT_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def is_result(trial: FrozenTrial) -> bool:
    """A trial the GP fits: COMPLETE, or PRUNED with the (finite) value it reached."""
    return trial.state == TrialState.COMPLETE or (
        trial.state == TrialState.PRUNED
        and trial.values is not None
        and all(math.isfinite(v) for v in trial.values)
    )


def results(
    trials: Iterable[FrozenTrial], search_space: dict[str, BaseDistribution]
) -> list[FrozenTrial]:
    """The trials among `trials` that the GP fits, in their order: COMPLETE ones, and PRUNED
    ones with a value whose parameters cover the search space (a COMPLETE trial's always do,
    the search space being the intersection of theirs)."""
    return [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        or (is_result(t) and search_space.keys() <= t.params.keys())
    ]


class GPSampler(optuna.samplers.GPSampler):
    """optuna.samplers.GPSampler whose fit, start-up count and improvement threshold include
    PRUNED trials at their last reported value (module docstring), as does the search space
    (the intersection of the parameters of COMPLETE and PRUNED trials). Same arguments."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._intersection_search_space = optuna.search_space.IntersectionSearchSpace(
            include_pruned=True
        )

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if search_space == {}:
            return {}
        trials = study._get_trials(deepcopy=False, states=FIT_STATES, use_cache=False)
        fitted = results(trials, search_space)
        running = [
            t
            for t in trials
            if t.state == TrialState.RUNNING and search_space.keys() <= _get_params(t).keys()
        ]
        if len(fitted) < self._n_startup_trials:
            return {}
        import torch

        # As GPSampler: torch on the CPU whatever the default device; the point is shared with
        # other workers through the trial's system attrs (they treat it as pending).
        with torch.device("cpu"):
            params = self._sample_relative_impl(study, fitted, running, search_space)
        if params:
            text = json.dumps(params)
            for i in range(0, len(text), _SYSTEM_ATTR_MAX_LENGTH):
                study._storage.set_trial_system_attr(
                    trial._trial_id,
                    f"{_RELATIVE_PARAMS_KEY}:{i // _SYSTEM_ATTR_MAX_LENGTH}",
                    text[i : i + _SYSTEM_ATTR_MAX_LENGTH],
                )
        return params
