"""The worker's claim path and fault handling, in process on SQLite."""

from __future__ import annotations

import multiprocessing
import time

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.studies.records import create_study, find_records
from hpsearch.worker.loop import Worker
from objectives.tasks.calibration.study import CalibrationStudy
from storage import Heartbeat, HeartbeatPolicy, fail_orphaned_trials, open_storage, trial_slot

POLICY = HeartbeatPolicy(interval=1, grace=2, max_retry=3)


def _setup(url: str, *, trials: int = 20, sampler: str = "random", seconds: float = 0.0):
    storage = open_storage(url, create=True, heartbeat=POLICY)
    create_study(
        storage,
        CalibrationStudy(label="c", seconds=seconds),
        trials=trials,
        sampler=sampler,
        seed=0,
    )
    return storage, find_records(storage, None)


def test_gp_sees_the_other_workers_running_trial(sqlite_url, monkeypatch):
    storage, records = _setup(sqlite_url, sampler="gp")
    study = optuna.load_study(study_name="calibration-c", storage=storage)
    for i in range(12):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x0": i / 3 - 2, "x1": 1.0 - i / 5},
                value=-float(i),
                distributions={
                    "x0": optuna.distributions.FloatDistribution(-5, 5),
                    "x1": optuna.distributions.FloatDistribution(-5, 5),
                },
            )
        )
    seen: list[list[dict]] = []
    original = optuna.samplers.GPSampler._sample_relative_impl

    def spy(self, study, completed, running, search_space):
        seen.append([dict(t.params) for t in running])
        return original(self, study, completed, running, search_space)

    monkeypatch.setattr(optuna.samplers.GPSampler, "_sample_relative_impl", spy)
    a = Worker(storage, records, device="cpu", seed=1, heartbeat=POLICY)
    b = Worker(storage, records, device="cpu", seed=2, heartbeat=POLICY)
    with Heartbeat(storage, 1) as beat:
        (held_a,) = a.claim_next(beat)
        config_a = held_a.config
        (held_b,) = b.claim_next(beat)
        config_b = held_b.config
    assert seen[0] == []
    # B's acquisition function was given A's running trial, parameters included.
    assert seen[1] == [{"x0": config_a.x[0], "x1": config_a.x[1]}]
    assert config_a.x != config_b.x


def test_worker_stops_at_target_and_records_results(sqlite_url):
    storage, records = _setup(sqlite_url, trials=7)
    report = Worker(storage, records, device="cpu", heartbeat=POLICY).run()
    assert report.complete == 7
    study = optuna.load_study(study_name="calibration-c", storage=storage)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 7
    for t in trials:
        assert t.value == -sum((v - 1.0) ** 2 for v in t.user_attrs["config"]["x"])


def test_orphaned_trial_without_heartbeat_is_failed_and_replaced(sqlite_url):
    storage, records = _setup(sqlite_url, trials=3)
    study = optuna.load_study(study_name="calibration-c", storage=storage)
    orphan = study.ask()  # asked, never beaten for: its worker died at once
    orphan.suggest_float("x0", -5, 5)
    with trial_slot(storage, "calibration-c"):
        assert fail_orphaned_trials(storage, study._study_id) == [orphan._trial_id]
    Worker(storage, records, device="cpu", heartbeat=POLICY).run()
    states = [t.state for t in study.get_trials()]
    assert states.count(TrialState.COMPLETE) == 3 and states[0] == TrialState.FAIL


def test_a_trial_beyond_the_target_is_given_back(sqlite_url, monkeypatch):
    storage, records = _setup(sqlite_url, trials=2)
    study = optuna.load_study(study_name="calibration-c", storage=storage)
    worker = Worker(storage, records, device="cpu", heartbeat=POLICY)
    # Simulate a lost lock: another worker's trials appear between counting and asking.
    original_ask = optuna.Study.ask
    sneaked = []

    def racing_ask(self, *args, **kwargs):
        if not sneaked:
            for _ in range(2):
                t = original_ask(self)
                storage.record_heartbeat(t._trial_id)
                sneaked.append(t)
        return original_ask(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "ask", racing_ask)
    with Heartbeat(storage, 1) as beat:
        assert worker.claim_next(beat) == []
    given_back = study.get_trials()[-1]
    assert given_back.state == TrialState.FAIL
    assert given_back.system_attrs["hpsearch:over_target"] is True


def _sweep_once(url: str, at: float) -> None:
    storage = open_storage(url, heartbeat=POLICY)
    records = find_records(storage, None)
    worker = Worker(storage, records, device="cpu", heartbeat=POLICY)
    while time.time() < at:
        pass
    worker.sweep()


def test_concurrent_sweeps_queue_one_retry(sqlite_url):
    storage, _ = _setup(sqlite_url)
    study = optuna.load_study(study_name="calibration-c", storage=storage)
    dead = study.ask()
    dead.suggest_float("x0", -5, 5)
    storage.record_heartbeat(dead._trial_id)
    time.sleep(POLICY.grace + 1)
    at = time.time() + 1.5
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_sweep_once, args=(sqlite_url, at)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1
    assert waiting[0].system_attrs["failed_trial"] == dead.number


def test_interrupted_trial_is_failed_and_queued_again(sqlite_url, monkeypatch):
    storage, records = _setup(sqlite_url, trials=3)
    worker = Worker(storage, records, device="cpu", heartbeat=POLICY)

    def interrupted(config, *rest):
        raise KeyboardInterrupt

    monkeypatch.setattr("objectives.tasks.calibration.study.run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        worker.run()
    study = optuna.load_study(study_name="calibration-c", storage=storage)
    first, retry = study.get_trials()
    assert first.state == TrialState.FAIL and first.user_attrs["interrupted"] is True
    assert retry.state == TrialState.WAITING and retry.params == first.params
    monkeypatch.undo()
    Worker(storage, records, device="cpu", heartbeat=POLICY).run()
    trials = study.get_trials()
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 3
    assert trials[1].state == TrialState.COMPLETE and trials[1].params == first.params


def test_failing_task_stops_the_worker_after_three(sqlite_url, monkeypatch):
    storage, records = _setup(sqlite_url, trials=10)

    def broken(config, *rest):
        raise RuntimeError("boom")

    monkeypatch.setattr("objectives.tasks.calibration.study.run", broken)
    from hpsearch.errors import HpsearchError

    with pytest.raises(HpsearchError, match="3 trials in a row failed"):
        Worker(storage, records, device="cpu", heartbeat=POLICY).run()
    trials = optuna.load_study(study_name="calibration-c", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    assert trials[0].user_attrs["error"] == "RuntimeError: boom"


@pytest.mark.timeout(120)
def test_processes_start_that_many_workers(sqlite_url):
    from tests.testing import hpsearch

    _setup(sqlite_url, trials=9, seconds=0.2)
    result = hpsearch(
        "worker",
        "--storage",
        sqlite_url,
        "--all",
        "--device",
        "cpu",
        "--processes",
        "3",
        "--seed",
        "5",
    )
    assert result.returncode == 0, result.stderr
    assert "started 3 worker processes" in result.stderr
    seeds = sorted(
        line.split("sampler seed ")[1]
        for line in result.stderr.splitlines()
        if "sampler seed" in line
    )
    assert seeds == ["5", "6", "7"]
    trials = optuna.load_study(study_name="calibration-c", storage=sqlite_url).get_trials()
    assert len({t.user_attrs["worker"] for t in trials}) == 3
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 9


def test_processes_flag_is_not_abbreviated_or_nested(sqlite_url):
    from tests.testing import hpsearch

    _setup(sqlite_url, trials=1)
    short = hpsearch("worker", "--storage", sqlite_url, "--all", "--proc", "3")
    assert short.returncode == 2 and "unrecognized arguments: --proc" in short.stderr
    nested = hpsearch(
        "worker",
        "--storage",
        sqlite_url,
        "--all",
        "--processes",
        "2",
        env={"HPSEARCH_WORKER_CHILD": "1"},
    )
    assert nested.returncode == 2 and "cannot start more workers" in nested.stderr


def test_trial_failed_under_a_claim_is_asked_again(sqlite_url, monkeypatch):
    """If the slot lock's connection dies, another worker's sweep may fail a trial between
    its ask and its first heartbeat; the claim then asks again instead of dying."""
    storage, records = _setup(sqlite_url, trials=3)
    worker = Worker(storage, records, device="cpu", heartbeat=POLICY)
    original_ask = optuna.Study.ask
    swept = []

    def ask_then_swept(self, *args, **kwargs):
        trial = original_ask(self, *args, **kwargs)
        if not swept:
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            swept.append(trial.number)
        return trial

    monkeypatch.setattr(optuna.Study, "ask", ask_then_swept)
    with Heartbeat(storage, 1) as beat:
        (claimed,) = worker.claim_next(beat)
    assert swept == [0] and claimed.claim.number == 1
    study = optuna.load_study(study_name="calibration-c", storage=storage)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.RUNNING]


def test_trial_interrupted_after_a_sweep_queued_it_is_queued_once(sqlite_url, monkeypatch):
    """A worker whose heartbeats stalled has its trial failed and queued again by another
    worker's sweep; when it is then stopped, it must not queue the same trial a second time."""
    storage, records = _setup(sqlite_url, trials=3)
    worker = Worker(storage, records, device="cpu", heartbeat=POLICY)
    other = Worker(storage, records, device="cpu", heartbeat=POLICY)
    study = optuna.load_study(study_name="calibration-c", storage=storage)

    def stalled_then_stopped(config, *rest):
        # The heartbeats stop (a frozen process, say) until the trial goes stale...
        monkeypatch.setattr(storage, "record_heartbeat", lambda trial_id: None)
        time.sleep(POLICY.grace + 1.5)
        other.sweep()
        (swept,) = study.get_trials(states=(TrialState.WAITING,))
        assert swept.system_attrs["failed_trial"] == 0
        # ...then the worker is stopped (Ctrl-C, SIGTERM).
        raise KeyboardInterrupt

    monkeypatch.setattr("objectives.tasks.calibration.study.run", stalled_then_stopped)
    with pytest.raises(KeyboardInterrupt):
        worker.run()
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].params == trials[0].params


def test_stop_queues_a_trial_once_however_often_it_is_asked(sqlite_url):
    storage, records = _setup(sqlite_url, trials=3)
    worker = Worker(storage, records, device="cpu", heartbeat=POLICY)
    study = optuna.load_study(study_name="calibration-c", storage=storage)
    with Heartbeat(storage, 1) as beat:
        (held,) = worker.claim_next(beat)
        trials = worker.studies[0].trials
        for _ in range(3):  # e.g. a retried stop after a dropped connection
            trials.stop(held.claim, beat, {"interrupted": True})
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]


def test_a_batch_is_claimed_in_one_go_and_never_beyond_the_target(sqlite_url, monkeypatch):
    storage, records = _setup(sqlite_url, trials=5)
    worker = Worker(storage, records, device="cpu", heartbeat=POLICY)
    locks = []
    import hpsearch.worker.loop  # noqa: F401
    import storage.lifecycle as lifecycle

    original = lifecycle.trial_slot

    def counting(*args, **kwargs):
        locks.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "trial_slot", counting)
    with Heartbeat(storage, 1) as beat:
        first = worker.claim_next(beat, 4)
        second = worker.claim_next(beat, 4)
    assert len(first) == 4 and len(second) == 1 and locks == [1, 1]
    study = optuna.load_study(study_name="calibration-c", storage=storage)
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING] * 5


def test_a_failed_batch_claim_gives_back_what_it_asked(sqlite_url, monkeypatch):
    storage, records = _setup(sqlite_url, trials=5)
    worker = Worker(storage, records, device="cpu", heartbeat=POLICY)
    calls = []

    def suggest_then_break(trial, study, seed):
        calls.append(trial.number)
        if len(calls) == 3:
            raise RuntimeError("the database went away")
        return CalibrationStudy(label="c").name

    monkeypatch.setattr(worker.studies[0].task, "suggest", suggest_then_break)
    with Heartbeat(storage, 1) as beat, pytest.raises(RuntimeError):
        worker.claim_next(beat, 4)
    study = optuna.load_study(study_name="calibration-c", storage=storage)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL] * 3
