"""gp and gp-batch fit PRUNED trials at the value they were stopped at: pruned proposals teach
the GP, so it stops proposing points like them (Optuna's GPSampler fits COMPLETE trials only,
and keeps proposing them)."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from hpsearch.search.gp import GPSampler, is_result, results
from hpsearch.search.gp_batch import GPBatchSampler
from hpsearch.search.samplers import STARTUP_TRIALS, make_sampler
from tests.testing import SEARCH_SPACE, filled_study, normalized, smooth_value, suggest_point

RELATIVE_KEY = "gp:relative_params:0"


def _pruned(study: optuna.Study, params: dict[str, Any], value: float) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.PRUNED,
            params=params,
            distributions=SEARCH_SPACE,
            value=value,
            intermediate_values={500: value - 0.1, 1000: value},
        )
    )


def _jittered(params: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    out = dict(params)
    out["learning_rate"] = min(0.1, max(1e-4, params["learning_rate"] * rng.uniform(0.97, 1.03)))
    out["init_scale"] = min(3.0, max(0.1, params["init_scale"] * rng.uniform(0.97, 1.03)))
    return out


def _next_of_optuna_gp() -> dict[str, Any]:
    """What Optuna's own GPSampler proposes after filled_study(20)."""
    probe = filled_study(20, optuna.samplers.GPSampler(seed=0, n_startup_trials=STARTUP_TRIALS))
    return suggest_point(probe.ask())


def _with_pruned_cluster(sampler: optuna.samplers.BaseSampler) -> tuple[optuna.Study, dict]:
    """filled_study(20) plus 15 trials pruned near the point Optuna's GPSampler proposes next, each
    stopped below every complete trial (as the pruning benchmark saw them)."""
    study = filled_study(20, sampler)
    taken = _next_of_optuna_gp()
    low = min(t.value for t in study.trials if t.value is not None) - 1.0
    rng = np.random.default_rng(0)
    for _ in range(15):
        _pruned(study, _jittered(taken, rng), low)
    return study, taken


def _gap(params: dict[str, Any], taken: dict[str, Any]) -> float:
    return float(np.linalg.norm(normalized([params])[0] - normalized([taken])[0]))


def test_results_are_complete_and_valued_pruned_trials():
    study = filled_study(3, optuna.samplers.RandomSampler(seed=0))
    params = study.trials[0].params
    _pruned(study, params, 1.0)
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.PRUNED, params=params, distributions=SEARCH_SPACE
        )
    )
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    partial = {k: v for k, v in params.items() if k != "b"}
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.PRUNED,
            params=partial,
            distributions={k: SEARCH_SPACE[k] for k in partial},
            value=1.0,
        )
    )
    _pruned(study, params, float("nan"))
    trials = study.get_trials(deepcopy=False)
    assert [is_result(t) for t in trials] == [True, True, True, True, False, False, True, False]
    # The one missing a searched parameter is left out of the fit, as is a NaN value.
    assert [t.number for t in results(trials, SEARCH_SPACE)] == [0, 1, 2, 3]


def test_pruned_trials_end_the_random_start_up():
    base = filled_study(STARTUP_TRIALS, optuna.samplers.RandomSampler(seed=0))
    for sampler, fits in [
        (make_sampler("gp", seed=0), True),
        (optuna.samplers.GPSampler(seed=0, n_startup_trials=STARTUP_TRIALS), False),
    ]:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for t in base.trials:
            _pruned(study, t.params, smooth_value(t.params))
        trial = study.ask()
        suggest_point(trial)
        # A fitted proposal is shared through the trial's system attrs; a random one is not.
        assert (RELATIVE_KEY in study._storage.get_trial(trial._trial_id).system_attrs) is fits


def test_gp_moves_away_from_points_pruned_before():
    # Optuna's GPSampler does not see the pruned trials: it proposes the same point again.
    study, taken = _with_pruned_cluster(
        optuna.samplers.GPSampler(seed=0, n_startup_trials=STARTUP_TRIALS)
    )
    assert _gap(suggest_point(study.ask()), taken) < 0.05
    # gp does, and goes elsewhere.
    study, taken = _with_pruned_cluster(make_sampler("gp", seed=0))
    assert isinstance(study.sampler, GPSampler)
    assert _gap(suggest_point(study.ask()), taken) > 0.1


def test_gp_batch_proposals_avoid_points_pruned_before():
    sampler = GPBatchSampler(q=8, seed=0, n_startup_trials=STARTUP_TRIALS)
    study, taken = _with_pruned_cluster(sampler)
    proposals = sampler.propose(study)
    assert proposals is not None and len(proposals.params) == 8
    gaps = [_gap(p, taken) for p in proposals.params]
    assert min(gaps) > 0.1, gaps
