"""Proposals ahead of need (`hpsearch.search.proposals.refill`, run by the worker's proposer
thread, `hpsearch.worker.proposer`): the queue is kept one batch deep while trials train,
never past the target, under the one fit lease; a dead proposer's lease runs out and another
takes over; in a steady run no claim waits for a fit; the thread has its own torch threads
and stops with the worker."""

from __future__ import annotations

import threading
import time
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.search.gp_batch import GPBatchSampler
from hpsearch.search.proposals import ProposalQueue, refill
from hpsearch.search.samplers import STARTUP_TRIALS
from hpsearch.studies.records import create_study, find_records
from hpsearch.worker.loop import Worker
from hpsearch.worker.proposer import PROPOSER_SUFFIX, AheadProposer
from objectives.tasks.calibration.study import CalibrationStudy
from storage import open_storage
from storage.lifecycle import StudyTrials
from tests.testing import calibration_study


def _started(url: str, trials: int) -> tuple[optuna.Study, Any]:
    study = calibration_study(url, "ahead", trials=trials)
    storage = open_storage(url)
    Worker(storage, find_records(storage, None), device="cpu", seed=0, ahead=False).run(
        STARTUP_TRIALS
    )
    return study, storage


def _queue(storage: Any, study: optuna.Study, target: int) -> ProposalQueue:
    mine = optuna.load_study(study_name=study.study_name, storage=storage)
    return ProposalQueue(StudyTrials(storage, mine, target=target, max_retry=3))


def _waiting(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(TrialState.WAITING,))


def test_a_refill_queues_one_batch_and_no_more_than_the_room(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=40)
    sampler = GPBatchSampler(q=4, seed=0, n_startup_trials=STARTUP_TRIALS)
    queue = _queue(storage, study, STARTUP_TRIALS + 6)
    done = refill(sampler, queue, depth=5, worker="p")
    # depth 5 beyond q 4: one fit of 5, all queued, the lease given back.
    assert (done.state, done.queued, len(_waiting(study))) == ("queued", 5, 5)
    assert not queue.fitting() and sampler.fits == 1
    assert refill(sampler, queue, depth=5, worker="p").state == "deep"
    # Room for one more: a deeper queue is asked for, one is queued, then the study is full.
    done = refill(sampler, queue, depth=8, worker="p")
    assert (done.state, done.queued, len(_waiting(study))) == ("queued", 1, 6)
    assert refill(sampler, queue, depth=8, worker="p").state == "full"
    assert sampler.fits == 2
    marks = [t.system_attrs["hpsearch:proposal"] for t in _waiting(study)]
    assert len(set(marks)) == 6


def test_no_refill_while_a_lease_holds_or_in_the_start_up(sqlite_url: str):
    study = calibration_study(sqlite_url, "early", trials=40)
    storage = open_storage(sqlite_url)
    sampler = GPBatchSampler(q=4, seed=0, n_startup_trials=STARTUP_TRIALS)
    queue = _queue(storage, study, 40)
    assert refill(sampler, queue, depth=4, worker="p").state == "start-up"
    assert not queue.fitting() and sampler.fits == 0  # no lease was taken
    Worker(storage, find_records(storage, None), device="cpu", seed=0, ahead=False).run(
        STARTUP_TRIALS
    )
    assert queue.start_fit("claim")
    assert refill(sampler, queue, depth=4, worker="p").state == "taken"
    assert sampler.fits == 0 and not _waiting(study)


def test_a_dead_proposers_lease_runs_out_and_another_takes_over(sqlite_url: str):
    study, storage = _started(sqlite_url, trials=40)
    # A proposer killed during its fit leaves its lease, no longer renewed.
    assert _queue(storage, study, 40).start_fit("dead" + PROPOSER_SUFFIX, seconds=0.6)
    worker = Worker(storage, find_records(storage, None), device="cpu", seed=2)
    proposer = AheadProposer(
        storage, [("gp-batch", worker.studies[0].trials)], worker.name, depth=8, seed=3
    )
    start = time.monotonic()
    with proposer:
        while len(_waiting(study)) < 8 and time.monotonic() - start < 60:
            time.sleep(0.1)
    assert time.monotonic() - start > 0.5  # it waited the lease out
    assert len(_waiting(study)) == 8 and proposer.fits == 1
    lease = storage.get_study_system_attrs(study._study_id)["hpsearch:fitting"]
    assert lease["by"] == worker.name + PROPOSER_SUFFIX and lease["until"] == 0


def test_the_proposer_has_its_own_torch_threads_and_stops(sqlite_url: str):
    import torch

    _, storage = _started(sqlite_url, trials=40)
    worker = Worker(storage, find_records(storage, None), device="cpu", seed=2)
    seen: list[int] = []
    proposer = AheadProposer(
        storage, [("gp-batch", worker.studies[0].trials)], worker.name, depth=8, seed=3
    )
    ahead = proposer.studies[0]
    propose = ahead.sampler.propose

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.get_num_threads())
        return propose(*args, **kwargs)

    ahead.sampler.propose = spy  # type: ignore[method-assign]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with proposer:
            deadline = time.monotonic() + 60
            while not seen and time.monotonic() < deadline:
                time.sleep(0.1)
        torch.ones(1 << 17).add_(1)
        assert torch.get_num_threads() == 2  # the worker's thread kept its own
    finally:
        torch.set_num_threads(before)
    assert seen == [1]
    assert not any(t.name.endswith(PROPOSER_SUFFIX) for t in threading.enumerate())


def _slow_study(url: str, trials: int, seconds: float) -> optuna.Study:
    storage = open_storage(url, create=True)
    settings = CalibrationStudy(label="slow", dims=2, seconds=seconds)
    assert create_study(storage, settings, trials=trials, sampler="gp-batch", seed=0)
    return optuna.load_study(study_name=settings.name, storage=storage)


@pytest.mark.integration
def test_in_a_steady_run_the_queue_never_empties_and_no_claim_waits(sqlite_url: str):
    target = STARTUP_TRIALS + 24
    study = _slow_study(sqlite_url, target, seconds=0.5)
    storage = open_storage(sqlite_url)
    worker = Worker(storage, find_records(storage, None), device="cpu", seed=0)
    entry = worker.studies[0]
    claim = entry.trials.claim
    seen: list[tuple[int, int, int]] = []  # (queued, room, claims that waited so far)

    def watched(*args: Any, **kwargs: Any) -> Any:
        backlog = entry.queue.backlog()
        seen.append((backlog.queued, backlog.room, worker.waits[entry.record.name].waited))
        return claim(*args, **kwargs)

    entry.trials.claim = watched  # type: ignore[method-assign]
    report = worker.run()
    assert report.complete == target
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * target
    points = {(t.params["x0"], t.params["x1"]) for t in trials}
    assert len(points) == target
    # Steady: from the first claim that found the queue one batch deep (8), to the end.
    first = next(i for i, (queued, _, _) in enumerate(seen) if queued >= 8)
    steady = seen[first:]
    assert all(queued > 0 or room == 0 for queued, room, _ in steady), steady
    waits = worker.waits[entry.record.name]
    assert waits.waited == steady[0][2], seen  # no claim from there on waited
    # 24 trials past the start-up, 8 a fit: all but perhaps the first fit were the proposer's.
    assert worker.proposer is not None and worker.proposer.fits >= 2
