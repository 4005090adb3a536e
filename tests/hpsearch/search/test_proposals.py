"""The gp-batch proposal protocol (`hpsearch.search.proposals`): one worker at a time holds a
study's fit lease, renews it while it fits, and a dead worker's lease runs out; its claim queues
the proposals under the slot lock, never past the target, never near a point queued or run
since the fit; other workers claim from the queue only, wait for the fitter, or turn to another
study; workers together stop at exactly the target without repeating a point."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.search.gp_batch import GPBatchSampler
from hpsearch.search.proposals import (
    FIT_ATTR,
    FIT_LEASE_SECONDS,
    PROPOSAL_ATTR,
    Backlog,
    ProposalQueue,
    claim,
    plan_claim,
)
from hpsearch.search.samplers import STARTUP_TRIALS
from hpsearch.studies.records import find_records
from hpsearch.worker.loop import Worker
from objectives.tasks.calibration.study import HIGH, LOW
from storage import Heartbeat, open_storage, trial_slot
from storage.lifecycle import StudyTrials
from tests.testing import calibration_study, start_worker, wait_for


def _started(url: str, trials: int) -> tuple[optuna.Study, Any]:
    """A gp-batch study past its random start-up (STARTUP_TRIALS complete), and its storage."""
    study = calibration_study(url, "queue", trials=trials)
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


@pytest.mark.slow
def test_three_worker_processes_meet_the_target_exactly(sqlite_url: str):
    study = calibration_study(sqlite_url, "parallel", trials=30)
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
    other = calibration_study(sqlite_url, "other", trials=40)
    assert _trials(storage, busy).start_fit("fitter")  # busy's queue is empty
    worker = Worker(storage, find_records(storage, None), device="cpu", seed=2)
    start = time.monotonic()
    with Heartbeat(storage, 1) as beat:
        claimed = worker.claim_next(beat, 1)
    assert time.monotonic() - start < 20  # did not wait out the lease (120 s)
    assert [h.study for h in claimed] == [other.study_name]


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


def test_a_lease_is_its_holders_alone_to_renew_and_end(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=40)
    queue = _trials(storage, study)
    assert queue.start_fit("fitter") and queue.start_fit("fitter")  # its own: taken again
    queue.end_fit("another")  # not its lease: nothing happens
    assert queue.fitting() and not queue.start_fit("another")
    queue.end_fit("fitter")
    assert not queue.fitting() and queue.start_fit("another")


def test_the_plan_follows_the_queue(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=STARTUP_TRIALS + 6)
    sampler = GPBatchSampler(q=4, seed=0, n_startup_trials=STARTUP_TRIALS)
    queue = _trials(storage, study)
    queue.trials.target = STARTUP_TRIALS + 6
    # SHORT, the lease free: this worker fits (and holds the lease until its claim).
    how = plan_claim(sampler, queue, 1, "w")
    assert how.proposals is not None and len(how.proposals.params) == 4 and how.n == 1
    assert sampler.fits == 1 and queue.fitting()
    with Heartbeat(storage, 1) as beat:
        queued = queue.trials.claim(
            beat, "w", lambda t: None, 0, under_lock=queue.queueing(how.proposals, "w")
        )
    assert queued == [] and not queue.fitting() and queue.backlog() == Backlog(4, 2)
    # DEEP: claim from the queue only, no fit.
    assert plan_claim(sampler, queue, 2, "w") == (None, 2, True) and sampler.fits == 1
    # FULL: claim n, no fit (the claim finds queued trials or retries, or nothing).
    queue.trials.target = STARTUP_TRIALS + 4
    assert plan_claim(sampler, queue, 2, "w") == (None, 2, False) and sampler.fits == 1


def test_a_worker_not_waiting_passes_over_a_study_being_fitted(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=40)
    study.sampler = GPBatchSampler(q=4, seed=0, n_startup_trials=STARTUP_TRIALS)
    queue = _trials(storage, study)
    assert queue.start_fit("fitter")
    with Heartbeat(storage, 1) as beat:
        start = time.monotonic()
        assert claim(queue, beat, "w", lambda t: None, 1, wait=False) is None
        assert time.monotonic() - start < FIT_LEASE_SECONDS / 4
    assert not _waiting(study) and queue.fitting()


def test_a_retried_claim_queues_its_proposals_once(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=40)
    queue = _trials(storage, study)
    proposals = _proposals(study, storage, 3)
    queueing = queue.queueing(proposals, "w")
    with trial_slot(storage, study.study_name):
        queueing()
        queueing()  # a retried attempt of the same claim
    marks = [t.system_attrs[PROPOSAL_ATTR] for t in _waiting(study)]
    assert marks == [f"{proposals.id}/{i}" for i in range(3)]
