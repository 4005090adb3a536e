"""A worker killed with SIGKILL mid-trial: its trial goes stale, is failed and retried with the
same parameters, and the study still reaches its target."""

import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import optuna
import pytest
from optuna.trial import TrialState

from tests.hpsearch.helpers import ROOT, hpsearch


def _worker(url: str, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "hpsearch.cli",
        "worker",
        "--storage",
        url,
        "--all",
        "--device",
        "cpu",
        "--heartbeat-interval",
        "1",
        "--heartbeat-grace",
        "3",
        *extra,
    ]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_killed_worker_trial_is_retried(sqlite_url):
    # Long trials (many steps, large b) so that the kill lands mid-trial.
    assert (
        hpsearch(
            "create",
            "--storage",
            sqlite_url,
            "--arch",
            "rnn",
            "--budget",
            "300",
            "--depths",
            "1",
            "--trials",
            "3",
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
    victim = _worker(sqlite_url)
    storage = optuna.storages.RDBStorage(sqlite_url)
    study = optuna.load_study(study_name="capacity-rnn-p300", storage=storage)
    deadline = time.monotonic() + 60
    running = []
    while time.monotonic() < deadline and not running:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        time.sleep(0.2)
    assert running, "the worker never started a trial"
    time.sleep(1.5)
    killed_at = datetime.now()
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(10)
    killed = running[0]

    survivor = _worker(sqlite_url)
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
    # Failed within heartbeat interval (1 s) + grace (3 s), plus 3 s for the survivor to start,
    # although the survivor was busy training a trial of its own at that moment.
    assert dead.datetime_complete is not None
    assert (dead.datetime_complete - killed_at).total_seconds() < 1 + 3 + 3
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    retries = [t for t in complete if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == dead.params
