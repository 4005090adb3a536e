"""A proposal never repeats a point already run, running or proposed: an acquisition search
that comes back to its warm start (the best trial, or the batch's previous proposal, as it can
where the acquisition is flat) is replaced by a point that repeats none."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
import optuna._gp.acqf as acqf_module
import optuna._gp.search_space as gp_search_space
import optuna.samplers._gp.sampler as optuna_gp
import pytest
from optuna.samplers._gp.sampler import _standardize_values
from optuna.trial import TrialState

import hpsearch.search.gp_batch
from hpsearch.search.gp import REPEAT_DISTANCE, GPSampler, scaled_distances, unrepeated
from hpsearch.search.gp_batch import GPBatchSampler
from hpsearch.search.samplers import STARTUP_TRIALS
from tests.testing import SEARCH_SPACE, filled_study, normalized, suggest_point


@pytest.fixture
def searches_return_their_warm_start(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Every acquisition search returns its last warm start unchanged (the best trial for gp
    and a batch's first proposal, the previous proposal for the later ones): what a search on
    a flat acquisition can do. Returns the warm starts seen."""
    seen: list[np.ndarray] = []

    def stuck(acqf: Any, warmstart_normalized_params_array: np.ndarray, **_: Any) -> Any:
        x = warmstart_normalized_params_array[-1].copy()
        seen.append(x)
        return x, float(acqf.eval_acqf_no_grad(x[np.newaxis])[0])

    # The names the searches call, not optuna._gp.optim_mixed itself: Optuna's sampler reaches
    # it through a lazy import that keeps whatever the module held when first used.
    for module in (optuna_gp, hpsearch.search.gp_batch):
        monkeypatch.setattr(module, "optim_mixed", SimpleNamespace(optimize_acqf_mixed=stuck))
    return seen


def _min_gap(points: list[dict[str, Any]], others: list[dict[str, Any]]) -> float:
    a, b = normalized(points), normalized(others)
    return float(np.linalg.norm(a[:, None] - b[None], axis=-1).min())


def test_gp_does_not_repeat_the_best_trial(searches_return_their_warm_start: list[np.ndarray]):
    study = filled_study(20, GPSampler(seed=0, n_startup_trials=STARTUP_TRIALS))
    params = suggest_point(study.ask())
    assert searches_return_their_warm_start  # the search ran, and came back to the best trial
    assert params != study.best_trial.params
    done = [t.params for t in study.trials if t.state == TrialState.COMPLETE]
    assert _min_gap([params], done) > 1e-3


def test_gp_does_not_repeat_a_running_trial(searches_return_their_warm_start: list[np.ndarray]):
    study = filled_study(20, GPSampler(seed=0, n_startup_trials=STARTUP_TRIALS))
    study.enqueue_trial(study.best_trial.params)
    running = study.ask()  # the best point again, held by another worker
    suggest_point(running)
    params = suggest_point(study.ask())
    assert _min_gap([params], [running.params]) > 1e-3


def test_a_batch_repeats_neither_trials_nor_itself(
    searches_return_their_warm_start: list[np.ndarray],
):
    sampler = GPBatchSampler(q=6, seed=0, n_startup_trials=STARTUP_TRIALS)
    study = filled_study(20, sampler)
    proposals = sampler.propose(study, 6)
    assert proposals is not None and len(proposals.params) == 6
    assert len(searches_return_their_warm_start) == 6  # each search came back to its start
    points = list(proposals.params)
    gaps = np.linalg.norm(normalized(points)[:, None] - normalized(points)[None], axis=-1)[
        np.triu_indices(6, 1)
    ]
    assert gaps.min() > 1e-3
    assert _min_gap(points, [t.params for t in study.trials]) > 1e-3


def _acquisition(study: optuna.Study) -> tuple[acqf_module.LogEI, np.ndarray]:
    """LogEI of a GP fitted to the study's trials, and their normalized points."""
    space = gp_search_space.SearchSpace(SEARCH_SPACE)
    X = space.get_normalized_params(study.trials)
    y, _, _ = _standardize_values(np.array([[t.value] for t in study.trials]))
    sampler = GPBatchSampler(seed=0, n_startup_trials=STARTUP_TRIALS)
    gpr = sampler.fit_gp(X, y[:, 0], space)
    return acqf_module.LogEI(gpr=gpr, search_space=space, threshold=y.max()), X


def test_a_point_that_repeats_none_is_kept_and_a_repeat_replaced():
    acqf, X = _acquisition(filled_study(20, optuna.samplers.RandomSampler(seed=0)))
    rng = np.random.RandomState(0)
    fresh = X[0].copy()
    assert unrepeated(acqf, fresh, X[1:], rng) is fresh
    replaced = unrepeated(acqf, X[0], X, rng)
    distances = scaled_distances(
        replaced, X, acqf.length_scales, np.asarray(acqf.search_space.is_categorical)
    )
    assert distances.min() >= REPEAT_DISTANCE
    # The best fresh point by the acquisition, not merely any fresh point.
    others = acqf.search_space.sample_normalized_params(64, np.random.RandomState(1))
    values = acqf.eval_acqf_no_grad(np.vstack([replaced[np.newaxis], others]))
    assert values[0] >= np.median(values[1:])


def test_a_proposal_is_checked_against_a_trial_that_had_no_point_at_the_fit():
    sampler = GPBatchSampler(q=4, seed=0, n_startup_trials=STARTUP_TRIALS)
    study = filled_study(20, sampler)
    storage = study._storage
    trial_id = storage.create_new_trial(study._study_id)  # RUNNING, its point not chosen yet
    proposals = sampler.propose(study)
    assert proposals is not None
    (fresh,) = study.get_trials(states=(TrialState.RUNNING,))
    assert not proposals.near(proposals.params[0], [fresh])  # no point: nothing to be near
    # It takes the point of a proposal after the fit: queueing that proposal would repeat it.
    for name, value in proposals.params[0].items():
        storage.set_trial_param(
            trial_id, name, SEARCH_SPACE[name].to_internal_repr(value), SEARCH_SPACE[name]
        )
    (taken,) = study.get_trials(states=(TrialState.RUNNING,))
    assert proposals.near(proposals.params[0], [taken])
