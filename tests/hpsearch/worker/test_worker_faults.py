"""A worker killed with SIGKILL mid-trial: its trial goes stale, is failed and retried with the
same parameters, and the study still reaches its target. A worker stopped with SIGTERM fails
its trials and queues each again once. Both for one trial at a time and for batched trials:
they are the same loop."""

import os
import signal
import time
from datetime import datetime

import optuna
import pytest
from optuna.trial import TrialState

from tests.testing import create_args, hpsearch, start_worker


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("batch", ["1", "4"])
def test_killed_worker_trial_is_retried(sqlite_url, batch):
    # Long trials (many steps, large b) so that the kill lands mid-trial. A batched worker
    # claims up to 4 trials in one go: 5 leave the other worker at least one, whichever
    # worker claims first.
    target = 3 if batch == "1" else 5
    assert (
        hpsearch(
            *create_args(sqlite_url, target),
            "--sampler",
            "random",
            "--seed",
            "1",
            "--space",
            "b=3000",
            "--space",
            "max_steps=4000",
            "--space",
            "learning_rate=1e-5",
            "--patience",
            "100000",
        ).returncode
        == 0
    )
    # The survivor runs from the start: the time to fail the dead trial is then the
    # heartbeat policy's (swept every interval by the survivor's heartbeat thread, even
    # while it trains), not the survivor's start-up.
    victim = start_worker(sqlite_url, "--batch", batch)
    survivor = start_worker(sqlite_url, "--batch", batch)
    storage = optuna.storages.RDBStorage(sqlite_url)
    study = optuna.load_study(study_name="capacity-rnn-p300", storage=storage)
    deadline = time.monotonic() + 60
    held = []
    while time.monotonic() < deadline and not held:
        held = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if str(t.user_attrs.get("worker", "")).endswith(f":{victim.pid}")
        ]
        time.sleep(0.1)
    assert held, "the victim never held a trial"
    time.sleep(1.0)
    killed_at = datetime.now()
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(10)
    killed = held[0]
    try:
        _, err = survivor.communicate(timeout=200)
    finally:
        if survivor.poll() is None:
            os.killpg(survivor.pid, signal.SIGKILL)
    assert survivor.returncode == 0, err

    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    dead = by_number[killed.number]
    assert dead.state == TrialState.FAIL
    # Failed within heartbeat interval (1 s) + grace (3 s), plus one sweep interval and 1 s
    # of slack, although the survivor was busy training a trial of its own at that moment.
    assert dead.datetime_complete is not None
    assert (dead.datetime_complete - killed_at).total_seconds() < 1 + 3 + 1 + 1
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == target
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    retries = [t for t in complete if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == dead.params


@pytest.mark.timeout(120)
@pytest.mark.parametrize("batch", ["1", "4"])
def test_sigterm_fails_held_trials_and_queues_each_once(sqlite_url, batch):
    from hpsearch.studies.records import create_study
    from objectives.tasks.calibration.study import CalibrationStudy
    from storage import open_storage

    storage = open_storage(sqlite_url, create=True)
    create_study(
        storage, CalibrationStudy(label="long", seconds=60), trials=6, sampler="random", seed=0
    )
    worker = start_worker(sqlite_url, "--batch", batch)
    study = optuna.load_study(study_name="calibration-long", storage=sqlite_url)
    deadline = time.monotonic() + 60
    held: list[optuna.trial.FrozenTrial] = []
    while time.monotonic() < deadline and len(held) < int(batch):
        held = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        time.sleep(0.1)
    assert len(held) == int(batch), "the worker never held its trials"
    stopped_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=30)
    assert worker.returncode == 130, err
    assert time.monotonic() - stopped_at < 10
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert sorted(t.number for t in failed) == sorted(t.number for t in held)
    assert all(t.user_attrs["interrupted"] is True for t in failed)
    assert sorted(t.system_attrs["failed_trial"] for t in waiting) == sorted(
        t.number for t in failed
    )
    assert {tuple(t.params.items()) for t in waiting} == {tuple(t.params.items()) for t in failed}
    assert not [t for t in trials if t.state == TrialState.RUNNING]
