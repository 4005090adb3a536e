"""Pure-exploration later points (GP-UCB-PE): distinct, in the space, away from pending."""

from __future__ import annotations

import numpy as np
import optuna

from hpsearch.search.gp_batch import GPBatchSampler
from hpsearch.search.samplers import STARTUP_TRIALS
from tests.testing import filled_study, normalized, suggest_point


def _in_space(p: dict) -> bool:
    return (
        p["depth"] in (1, 2, 4)
        and isinstance(p["b"], int)
        and 500 <= p["b"] <= 16000
        and 1e-4 <= p["learning_rate"] <= 1e-1
        and 0.1 <= p["init_scale"] <= 3.0
    )


def test_exploration_points_are_distinct_in_the_space_and_away_from_pending():
    sampler = GPBatchSampler(q=6, seed=0, n_startup_trials=STARTUP_TRIALS, later="explore")
    study = filled_study(30, sampler)
    pending = []
    for _ in range(3):  # other workers' RUNNING trials at the best points so far
        best = sorted(study.trials, key=lambda t: -(t.value or -1e9))[len(pending)]
        study.enqueue_trial(best.params)
        pending.append(suggest_point(study.ask()))
    batch = sampler.propose(study)
    assert batch is not None and len(batch.params) == 6
    assert all(_in_space(p) for p in batch.params)
    points = normalized(list(batch.params))
    between = np.linalg.norm(points[:, None] - points[None], axis=-1)
    assert between[np.triu_indices(6, 1)].min() > 1e-2, batch.params
    to_pending = np.linalg.norm(points[:, None] - normalized(pending)[None], axis=-1)
    assert to_pending.min() > 1e-2, (batch.params, pending)
    assert optuna.trial.TrialState.RUNNING in {t.state for t in study.trials}
