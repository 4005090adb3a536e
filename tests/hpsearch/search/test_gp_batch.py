"""gp-batch: q proposals from one GP fit, aware of each other and of RUNNING trials; asks of
queued proposals take them cheaply; studies run through the real worker, alone and in
parallel."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.search.gp_batch import GPBatchSampler
from hpsearch.search.proposals import PROPOSAL_ATTR, plan_claim
from hpsearch.search.samplers import SAMPLERS, STARTUP_TRIALS, make_sampler
from hpsearch.studies.loader import load_experiment
from hpsearch.studies.records import find_records
from hpsearch.studies.schema import Experiment
from hpsearch.worker.loop import Worker
from storage import open_storage
from tests.testing import calibration_study, filled_study, normalized, smooth_value, suggest_point


def _running(study: optuna.Study, params: dict[str, Any]) -> optuna.trial.Trial:
    """A RUNNING trial at `params`, as another worker would hold it."""
    study.enqueue_trial(params)
    trial = study.ask()
    suggest_point(trial)
    return trial


def _ask_all(study: optuna.Study, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(suggest_point(trial))
    return out


def _in_space(p: dict[str, Any]) -> bool:
    return (
        p["depth"] in (1, 2, 4)
        and isinstance(p["b"], int)
        and 500 <= p["b"] <= 16000
        and 1e-4 <= p["learning_rate"] <= 1e-1
        and 0.1 <= p["init_scale"] <= 3.0
    )


def _enqueue(study: optuna.Study, params: Any) -> None:
    """Queue points as the study's queue holds them: WAITING trials with fixed parameters."""
    for p in params:
        study.enqueue_trial(dict(p))


def test_one_fit_proposes_q_distinct_points_in_the_space():
    sampler = GPBatchSampler(q=8, seed=0, n_startup_trials=STARTUP_TRIALS)
    study = filled_study(20, sampler)
    batch = sampler.propose(study)
    assert batch is not None and sampler.fits == 1
    proposals = list(batch.params)
    assert len(proposals) == 8
    assert all(_in_space(p) for p in proposals), proposals
    points = normalized(proposals)
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    assert distances[np.triu_indices(8, 1)].min() > 1e-3, proposals
    # Queued, the asks take them without fitting, and the asked trials carry them as their
    # parameters, as any Optuna trial does.
    _enqueue(study, proposals)
    assert _ask_all(study, 8) == proposals and sampler.fits == 1
    running = study.get_trials(states=(TrialState.RUNNING,))
    assert [t.params for t in running] == proposals


def test_proposals_avoid_running_trials():
    sampler = GPBatchSampler(q=8, seed=0, n_startup_trials=STARTUP_TRIALS)
    study = filled_study(20, sampler)
    # Other workers run the best point so far and the point gp would propose next.
    best = dict(study.best_params)
    gp_next = optuna.samplers.GPSampler(seed=0, n_startup_trials=STARTUP_TRIALS)
    probe = filled_study(20, gp_next)
    taken = [best, suggest_point(probe.ask())]
    for params in taken:
        _running(study, params)
    batch = sampler.propose(study)
    assert batch is not None
    proposals = list(batch.params)
    gaps = np.linalg.norm(normalized(proposals)[:, None] - normalized(taken)[None], axis=-1)
    assert gaps.min() > 1e-3, (taken, proposals)
    points = normalized(proposals)
    spread = np.linalg.norm(points[:, None] - points[None], axis=-1)[np.triu_indices(8, 1)]
    assert spread.min() > 1e-3, proposals


def test_asks_of_queued_proposals_take_well_under_a_fit():
    sampler = GPBatchSampler(q=8, seed=0, n_startup_trials=STARTUP_TRIALS)
    study = filled_study(20, sampler)
    start = time.perf_counter()
    batch = sampler.propose(study)
    propose_seconds = time.perf_counter() - start
    assert batch is not None
    _enqueue(study, batch.params)
    asks = []
    for _ in range(8):
        start = time.perf_counter()
        trial = study.ask()
        suggest_point(trial)
        study.tell(trial, smooth_value(trial.params))
        asks.append(time.perf_counter() - start)
    assert sampler.fits == 1
    # One fit and eight acquisition optimisations against a queued trial and a storage read.
    assert max(asks) < propose_seconds / 8, (propose_seconds, asks)


def test_an_ask_with_nothing_queued_samples_as_gp_does():
    sampler = GPBatchSampler(q=4, seed=0, n_startup_trials=STARTUP_TRIALS)
    study = filled_study(20, sampler)
    gp = filled_study(20, make_sampler("gp", 0))
    proposals = _ask_all(study, 2)
    assert proposals == _ask_all(gp, 2)
    assert all(_in_space(p) for p in proposals) and sampler.fits == 0


def test_random_start_up_proposes_nothing():
    sampler = GPBatchSampler(q=4, seed=0, n_startup_trials=STARTUP_TRIALS)
    study = filled_study(STARTUP_TRIALS - 1, sampler)
    assert sampler.propose(study) is None
    assert _in_space(_ask_all(study, 1)[0]) and sampler.fits == 0


def test_gp_batch_is_a_sampler_name_like_gp(tmp_path: Path):
    assert "gp-batch" in SAMPLERS
    sampler = make_sampler("gp-batch", 0)
    assert isinstance(sampler, GPBatchSampler) and sampler.q >= 2
    assert plan_claim(make_sampler("gp", 0), _NoQueue(), 3, "w") == (None, 3, False)
    assert Experiment(archs=("rnn",), budgets=(300,), sampler="gp-batch").sampler == "gp-batch"
    path = tmp_path / "experiment.toml"
    path.write_text('archs = ["rnn"]\nbudgets = [300]\nsampler = "gp-batch"\n')
    assert load_experiment(path).sampler == "gp-batch"


class _NoQueue:
    """Stands in for a study's trials where a sampler without a queue must not touch them."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"gp needs no queue, but {name} was used")


def test_a_worker_runs_a_gp_batch_study(sqlite_url: str):
    study = calibration_study(sqlite_url, "batch", trials=18)
    storage = open_storage(sqlite_url)
    report = Worker(storage, find_records(storage, None), device="cpu", seed=0).run()
    trials = study.get_trials()
    assert report.complete == 18
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 18
    # The GP's trials were proposals queued in the study (the random start-up's were not).
    assert all(PROPOSAL_ATTR in t.system_attrs for t in trials[STARTUP_TRIALS:])
    assert not any(PROPOSAL_ATTR in t.system_attrs for t in trials[:STARTUP_TRIALS])


def test_a_fit_avoids_queued_points():
    sampler = GPBatchSampler(q=4, seed=0, n_startup_trials=STARTUP_TRIALS)
    study = filled_study(20, sampler)
    probe = GPBatchSampler(q=4, seed=0, n_startup_trials=STARTUP_TRIALS)
    first = probe.propose(filled_study(20, probe), 4)
    assert first is not None
    for params in first.params:
        study.enqueue_trial(params)
    second = sampler.propose(study, 4)
    assert second is not None
    gaps = np.linalg.norm(
        normalized(second.params)[:, None] - normalized(first.params)[None], axis=-1
    )
    assert gaps.min() > 1e-3, (first.params, second.params)
    # An ask takes a queued point without a fit.
    assert suggest_point(study.ask()) == first.params[0] and sampler.fits == 1


def test_proposal_one_is_searched_as_gp_searches_and_the_rest_more_cheaply(
    monkeypatch: pytest.MonkeyPatch,
):
    import optuna._gp.optim_mixed as optim_mixed
    import optuna.samplers._gp.sampler as gp_sampler_module

    searches: list[tuple[int, int, int]] = []
    search = optim_mixed.optimize_acqf_mixed

    def counted(acqf: Any, **kwargs: Any) -> tuple[np.ndarray, float]:
        starts = kwargs["warmstart_normalized_params_array"]
        searches.append((kwargs["n_preliminary_samples"], kwargs["n_local_search"], len(starts)))
        return search(acqf, **kwargs)

    monkeypatch.setattr(optim_mixed, "optimize_acqf_mixed", counted)
    # GPSampler reaches the module through a lazy import, which holds a copy of its names.
    monkeypatch.setattr(gp_sampler_module.optim_mixed, "optimize_acqf_mixed", counted)
    sampler = GPBatchSampler(q=5, seed=0, n_startup_trials=STARTUP_TRIALS)
    study = filled_study(20, sampler)
    batch = sampler.propose(study)
    assert batch is not None and len(batch.params) == 5
    # GPSampler's own search for the first (as gp's next trial), then the batch's cheaper one,
    # started from the best trial and the previous proposal.
    assert searches == [(2048, 10, 1)] + [(512, 3, 2)] * 4
    assert all(_in_space(p) for p in batch.params)


@pytest.mark.parametrize("kwargs", [{"later_samples": 0}, {"later_local_searches": 2}, {"q": 0}])
def test_a_batch_search_too_small_to_run_is_refused(kwargs: dict[str, int]):
    with pytest.raises(ValueError):
        GPBatchSampler(**kwargs)
