"""gp-batch: q proposals from one GP fit, aware of each other and of RUNNING trials; asks of
queued proposals take them cheaply; studies run through the real worker, alone and in
parallel."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hpsearch.search.gp_batch import GPBatchSampler
from hpsearch.search.proposals import FIT_ATTR, PROPOSAL_ATTR, ProposalQueue, plan_claim
from hpsearch.search.samplers import SAMPLERS, STARTUP_TRIALS, make_sampler
from hpsearch.studies.records import create_study, find_records
from hpsearch.studies.schema import Experiment, load_experiment
from hpsearch.worker.loop import Worker
from objectives.tasks.calibration.study import HIGH, LOW, CalibrationStudy
from storage import Heartbeat, open_storage
from storage.lifecycle import StudyTrials
from tests.hpsearch.helpers import start_worker, wait_for

# The capacity task's four searched dimensions, with their kinds of distribution.
SPACE: dict[str, Any] = {
    "depth": CategoricalDistribution((1, 2, 4)),
    "b": IntDistribution(500, 16000, log=True),
    "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
    "init_scale": FloatDistribution(0.1, 3.0, log=True),
}


def _suggest(trial: optuna.trial.BaseTrial) -> dict[str, Any]:
    return {
        "depth": trial.suggest_categorical("depth", (1, 2, 4)),
        "b": trial.suggest_int("b", 500, 16000, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
        "init_scale": trial.suggest_float("init_scale", 0.1, 3.0, log=True),
    }


def _value(p: dict[str, Any]) -> float:
    """A smooth stand-in for bits: best near learning_rate 3e-3, init_scale 1, large b."""
    return (
        -((math.log10(p["learning_rate"]) + 2.5) ** 2)
        - math.log(p["init_scale"]) ** 2
        + 0.1 * math.log(p["b"])
        + 0.05 * p["depth"]
    )


def _study(n_complete: int, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    rng = np.random.default_rng(1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(n_complete):
        p = {
            "depth": int(rng.choice([1, 2, 4])),
            "b": round(math.exp(rng.uniform(math.log(500), math.log(16000)))),
            "learning_rate": math.exp(rng.uniform(math.log(1e-4), math.log(1e-1))),
            "init_scale": math.exp(rng.uniform(math.log(0.1), math.log(3.0))),
        }
        study.add_trial(optuna.trial.create_trial(params=p, distributions=SPACE, value=_value(p)))
    return study


def _running(study: optuna.Study, params: dict[str, Any]) -> optuna.trial.Trial:
    """A RUNNING trial at `params`, as another worker would hold it."""
    study.enqueue_trial(params)
    trial = study.ask()
    _suggest(trial)
    return trial


def _normalized(params: list[dict[str, Any]]) -> np.ndarray:
    """Points in [0, 1]^3 (log scales) and the depth's index: for distances in tests."""
    return np.array(
        [
            [
                (1, 2, 4).index(p["depth"]),
                math.log(p["b"] / 500) / math.log(32),
                math.log(p["learning_rate"] / 1e-4) / math.log(1000),
                math.log(p["init_scale"] / 0.1) / math.log(30),
            ]
            for p in params
        ]
    )


def _ask_all(study: optuna.Study, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(_suggest(trial))
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
    study = _study(20, sampler)
    batch = sampler.propose(study)
    assert batch is not None and sampler.fits == 1
    proposals = list(batch.params)
    assert len(proposals) == 8
    assert all(_in_space(p) for p in proposals), proposals
    points = _normalized(proposals)
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
    study = _study(20, sampler)
    # Other workers run the best point so far and the point gp would propose next.
    best = dict(study.best_params)
    gp_next = optuna.samplers.GPSampler(seed=0, n_startup_trials=STARTUP_TRIALS)
    probe = _study(20, gp_next)
    taken = [best, _suggest(probe.ask())]
    for params in taken:
        _running(study, params)
    batch = sampler.propose(study)
    assert batch is not None
    proposals = list(batch.params)
    gaps = np.linalg.norm(_normalized(proposals)[:, None] - _normalized(taken)[None], axis=-1)
    assert gaps.min() > 1e-3, (taken, proposals)
    points = _normalized(proposals)
    spread = np.linalg.norm(points[:, None] - points[None], axis=-1)[np.triu_indices(8, 1)]
    assert spread.min() > 1e-3, proposals


def test_asks_of_queued_proposals_take_well_under_a_fit():
    sampler = GPBatchSampler(q=8, seed=0, n_startup_trials=STARTUP_TRIALS)
    study = _study(20, sampler)
    start = time.perf_counter()
    batch = sampler.propose(study)
    propose_seconds = time.perf_counter() - start
    assert batch is not None
    _enqueue(study, batch.params)
    asks = []
    for _ in range(8):
        start = time.perf_counter()
        trial = study.ask()
        _suggest(trial)
        study.tell(trial, _value(trial.params))
        asks.append(time.perf_counter() - start)
    assert sampler.fits == 1
    # One fit and eight acquisition optimisations against a queued trial and a storage read.
    assert max(asks) < propose_seconds / 8, (propose_seconds, asks)


def test_an_ask_with_nothing_queued_samples_as_gp_does():
    sampler = GPBatchSampler(q=4, seed=0, n_startup_trials=STARTUP_TRIALS)
    study = _study(20, sampler)
    gp = _study(20, make_sampler("gp", 0))
    proposals = _ask_all(study, 2)
    assert proposals == _ask_all(gp, 2)
    assert all(_in_space(p) for p in proposals) and sampler.fits == 0


def test_random_start_up_proposes_nothing():
    sampler = GPBatchSampler(q=4, seed=0, n_startup_trials=STARTUP_TRIALS)
    study = _study(STARTUP_TRIALS - 1, sampler)
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


def _calibration(url: str, label: str, trials: int) -> optuna.Study:
    storage = open_storage(url, create=True)
    settings = CalibrationStudy(label=label, dims=2)
    assert create_study(storage, settings, trials=trials, sampler="gp-batch", seed=0)
    return optuna.load_study(study_name=settings.name, storage=storage)


def test_a_worker_runs_a_gp_batch_study(sqlite_url: str):
    study = _calibration(sqlite_url, "batch", trials=18)
    storage = open_storage(sqlite_url)
    report = Worker(storage, find_records(storage, None), device="cpu", seed=0).run()
    trials = study.get_trials()
    assert report.complete == 18
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 18
    # The GP's trials were proposals queued in the study (the random start-up's were not).
    assert all(PROPOSAL_ATTR in t.system_attrs for t in trials[STARTUP_TRIALS:])
    assert not any(PROPOSAL_ATTR in t.system_attrs for t in trials[:STARTUP_TRIALS])


def _started(url: str, trials: int) -> tuple[optuna.Study, Any]:
    """A gp-batch study past its random start-up (STARTUP_TRIALS complete), and its storage."""
    study = _calibration(url, "queue", trials=trials)
    storage = open_storage(url)
    Worker(storage, find_records(storage, None), device="cpu", seed=0).run(STARTUP_TRIALS)
    return study, storage


def _waiting(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(TrialState.WAITING,))


def test_two_workers_share_one_fit_through_the_study_queue(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=30)
    records = find_records(storage, None)
    first = Worker(storage, records, device="cpu", seed=1)
    second = Worker(storage, records, device="cpu", seed=2)
    with Heartbeat(storage, 1) as beat:
        a = first.claim_next(beat, 1)
        assert len(_waiting(study)) == 7  # one fit of 8, one taken by the worker that fitted
        b = second.claim_next(beat, 2)
    assert len(a) == 1 and len(b) == 2
    assert first.studies[0].trials.study.sampler.fits == 1  # type: ignore[attr-defined]
    assert second.studies[0].trials.study.sampler.fits == 0  # type: ignore[attr-defined]
    claimed = [storage.get_trial(h.claim.trial_id) for h in [*a, *b]]
    fits = {t.system_attrs[PROPOSAL_ATTR].split("/")[0] for t in claimed}
    assert len(fits) == 1
    # Oldest first: the batch's order.
    assert [t.system_attrs[PROPOSAL_ATTR].split("/")[1] for t in claimed] == ["0", "1", "2"]
    assert all(t.state == TrialState.RUNNING for t in claimed)
    assert len(_waiting(study)) == 5


def _trials(storage: Any, study: optuna.Study) -> ProposalQueue:
    return ProposalQueue(StudyTrials(storage, study, target=10**6, max_retry=3))


def test_while_one_worker_fits_another_waits_for_its_proposals(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=40)
    fitter = _trials(storage, study)
    assert fitter.start_fit("fitter")
    assert not fitter.start_fit("another")  # one lease at a time
    assert fitter.fitting()
    waiter = Worker(storage, find_records(storage, None), device="cpu", seed=2)
    claimed: list[Any] = []
    with Heartbeat(storage, 1) as beat:
        thread = threading.Thread(target=lambda: claimed.extend(waiter.claim_next(beat, 3)))
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive() and not claimed  # waiting for the fitter, not fitting
        proposals = _proposals(study, storage, 2)
        queueing = fitter.queueing(proposals, "fitter")
        assert fitter.trials.claim(beat, "fitter", lambda t: None, n=0, under_lock=queueing) == []
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert not fitter.fitting()  # the claim that queued the proposals ended the lease
    # It took the two queued points (fewer than the 3 it wanted) and fitted nothing itself.
    assert len(claimed) == 2
    assert waiter.studies[0].trials.study.sampler.fits == 0  # type: ignore[attr-defined]
    got = [storage.get_trial(h.claim.trial_id).system_attrs["fixed_params"] for h in claimed]
    assert got == proposals.params


def test_a_dead_fitters_lease_runs_out(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=40)
    assert _trials(storage, study).start_fit("dead", seconds=0.3)
    worker = Worker(storage, find_records(storage, None), device="cpu", seed=2)
    start = time.monotonic()
    with Heartbeat(storage, 1) as beat:
        claimed = worker.claim_next(beat, 1)
    assert 0.25 < time.monotonic() - start < 30
    assert len(claimed) == 1
    assert worker.studies[0].trials.study.sampler.fits == 1  # type: ignore[attr-defined]
    lease = storage.get_study_system_attrs(study._study_id)[FIT_ATTR]
    assert lease["by"] == worker.name and lease["until"] == 0  # taken, then given back


def test_a_short_queue_is_refilled_before_it_runs_dry(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=40)
    with Heartbeat(storage, 1) as beat:
        queue = _trials(storage, study)
        queueing = queue.queueing(_proposals(study, storage, 3), "w")
        queue.trials.claim(beat, "w", lambda t: None, 0, under_lock=queueing)
    assert len(_waiting(study)) == 3  # under half a fit of 8: the next claim refills
    worker = Worker(storage, find_records(storage, None), device="cpu", seed=2)
    with Heartbeat(storage, 1) as beat:
        claimed = worker.claim_next(beat, 1)
    assert worker.studies[0].trials.study.sampler.fits == 1  # type: ignore[attr-defined]
    assert len(claimed) == 1 and len(_waiting(study)) == 3 + 8 - 1


def _proposals(study: optuna.Study, storage: Any, q: int, **kwargs: Any) -> Any:
    sampler = GPBatchSampler(q=q, seed=0, n_startup_trials=STARTUP_TRIALS, **kwargs)
    mine = optuna.load_study(study_name=study.study_name, storage=storage, sampler=sampler)
    proposals = sampler.propose(mine, q)
    assert proposals is not None and len(proposals.params) == q
    return proposals


def _queue(storage: Any, study: optuna.Study, target: int, proposals: Any) -> None:
    queue = ProposalQueue(StudyTrials(storage, study, target=target, max_retry=3))
    with Heartbeat(storage, 1) as beat:
        queueing = queue.queueing(proposals, "w")
        assert queue.trials.claim(beat, "w", lambda t: None, n=0, under_lock=queueing) == []


def test_proposals_beyond_the_target_are_not_queued(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=30)
    proposals = _proposals(study, storage, 8)
    _queue(storage, study, STARTUP_TRIALS + 3, proposals)
    waiting = _waiting(study)
    assert [t.system_attrs["fixed_params"] for t in waiting] == proposals.params[:3]
    _queue(storage, study, STARTUP_TRIALS + 3, _proposals(study, storage, 8))
    assert len(_waiting(study)) == 3  # full: nothing more
    # Queued again (a retried claim): nothing twice.
    _queue(storage, study, 30, proposals)
    assert [t.system_attrs["fixed_params"] for t in _waiting(study)] == proposals.params


def test_a_proposal_near_a_queued_or_running_point_is_not_queued(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=30)
    # Only (nearly) the same point counts as near here, so that the test does not depend on
    # the GP's length scales.
    proposals = _proposals(study, storage, 4, min_distance=1e-6)
    # After the fit, another worker runs the third point and queued a batch with the first.
    study.enqueue_trial(dict(proposals.params[2]))
    running = study.ask()
    storage.record_heartbeat(running._trial_id)
    for name in proposals.params[2]:
        running.suggest_float(name, LOW, HIGH)
    assert running.params == proposals.params[2]
    study.enqueue_trial(dict(proposals.params[0]))
    _queue(storage, study, 30, proposals)
    assert storage.get_trial(running._trial_id).state == TrialState.RUNNING
    queued = [t.system_attrs["fixed_params"] for t in _waiting(study)]
    assert queued == [proposals.params[0], proposals.params[1], proposals.params[3]]
    marks = [t.system_attrs.get(PROPOSAL_ATTR) for t in _waiting(study)]
    assert marks == [None, f"{proposals.id}/1", f"{proposals.id}/3"]
    # A fit that knew those trials does not count them as near (it chose around them).
    known = _proposals(study, storage, 4)
    others = study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert not known.near(dict(proposals.params[2]), others)


def test_a_fit_avoids_queued_points():
    sampler = GPBatchSampler(q=4, seed=0, n_startup_trials=STARTUP_TRIALS)
    study = _study(20, sampler)
    probe = GPBatchSampler(q=4, seed=0, n_startup_trials=STARTUP_TRIALS)
    first = probe.propose(_study(20, probe), 4)
    assert first is not None
    for params in first.params:
        study.enqueue_trial(params)
    second = sampler.propose(study, 4)
    assert second is not None
    gaps = np.linalg.norm(
        _normalized(second.params)[:, None] - _normalized(first.params)[None], axis=-1
    )
    assert gaps.min() > 1e-3, (first.params, second.params)
    # An ask takes a queued point without a fit.
    assert _suggest(study.ask()) == first.params[0] and sampler.fits == 1


@pytest.mark.slow
def test_three_worker_processes_meet_the_target_exactly(sqlite_url: str):
    study = _calibration(sqlite_url, "parallel", trials=30)
    workers = [start_worker(sqlite_url) for _ in range(3)]
    logs = wait_for(workers, timeout=240)
    assert [w.returncode for w in workers] == [0, 0, 0], logs
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(30))
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 30
    points = np.array([[t.params["x0"], t.params["x1"]] for t in trials])
    gaps = np.linalg.norm(points[:, None] - points[None], axis=-1)
    pairs = [(i, j) for i, j in np.argwhere(np.triu(gaps == 0.0, 1))]
    # Which trials repeat, and how each came to be (its queue mark, if a fit proposed it).
    assert not pairs, [
        (int(k), trials[k].params, trials[k].system_attrs.get(PROPOSAL_ATTR))
        for pair in pairs
        for k in pair
    ]


def test_a_long_fit_keeps_its_lease(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=40)
    trials = _trials(storage, study)
    assert trials.start_fit("fitter", seconds=0.6)
    with trials.keep_fit("fitter", seconds=0.6):
        time.sleep(1.5)  # longer than the lease: renewed every 0.2 s
        assert not trials.start_fit("another")
    time.sleep(0.8)  # no longer renewed: it runs out
    assert trials.start_fit("another")


def test_a_worker_of_two_studies_turns_to_the_other_while_one_is_being_fitted(sqlite_url: str):
    busy, storage = _started(sqlite_url, trials=40)
    other = _calibration(sqlite_url, "other", trials=40)
    assert _trials(storage, busy).start_fit("fitter")  # busy's queue is empty
    worker = Worker(storage, find_records(storage, None), device="cpu", seed=2)
    start = time.monotonic()
    with Heartbeat(storage, 1) as beat:
        claimed = worker.claim_next(beat, 1)
    assert time.monotonic() - start < 20  # did not wait out the lease (120 s)
    assert [h.study for h in claimed] == [other.study_name]


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
    study = _study(20, sampler)
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


def test_a_queued_only_claim_takes_the_queue_and_never_samples(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=40)
    proposals = _proposals(study, storage, 2)
    _queue(storage, study, 40, proposals)
    trials = StudyTrials(
        storage, optuna.load_study(study_name=study.study_name, storage=storage), 40, 3
    )
    before = len(study.get_trials())
    with Heartbeat(storage, 1) as beat:
        claimed = trials.claim(beat, "w", lambda t: None, 3, queued_only=True)
        got = [storage.get_trial(c.trial._trial_id).system_attrs["fixed_params"] for c in claimed]
        assert got == proposals.params  # two of the three asked for: all that was queued
        assert trials.claim(beat, "w", lambda t: None, 1, queued_only=True) == []
    assert len(study.get_trials()) == before  # no trial was sampled beside the queue


def test_a_worker_that_loses_the_queue_before_its_claim_fits_outside_the_lock(
    sqlite_url: str,
):
    study, storage = _started(sqlite_url, trials=40)
    _queue(storage, study, 40, _proposals(study, storage, 4))
    worker = Worker(storage, find_records(storage, None), device="cpu", seed=2)
    entry = worker.studies[0]
    claim = entry.trials.claim
    rival = _trials(storage, study).trials

    def raced(*args: Any, **kwargs: Any) -> Any:
        # Another worker takes the whole queue between this worker's look and its claim.
        if _waiting(study):
            with Heartbeat(storage, 1) as other:
                assert len(rival.claim(other, "rival", lambda t: None, 4)) == 4
        return claim(*args, **kwargs)

    entry.trials.claim = raced  # type: ignore[method-assign]
    with Heartbeat(storage, 1) as beat:
        claimed = worker.claim_next(beat, 1)
    assert len(claimed) == 1
    # It planned again: took the fit lease, fitted once and queued a batch of 8, of which its
    # claim took one (an ask that fitted under the lock would have queued nothing).
    assert entry.trials.study.sampler.fits == 1  # type: ignore[attr-defined]
    assert len(_waiting(study)) == 8 - 1
