from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[2]


def hpsearch(
    *args: str, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real command in a child process, as a user would."""
    inherited = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    full_env = {**inherited, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hpsearch.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
    )


def create_args(
    url: str, trials: int, *extra: str, archs: str = "rnn", depths: str = "1"
) -> list[str]:
    """The command line of `hpsearch create` for small studies at budget 300."""
    return [
        *("create", "--storage", url, "--arch", archs, "--budget", "300"),
        *("--depths", depths, "--trials", str(trials), *extra),
    ]


def snapshot(url: str) -> dict[str, tuple[int, dict]]:
    """Every study's trial count and user attrs: what a failed command must not change."""
    storage = optuna.storages.RDBStorage(url)
    return {
        s.study_name: (len(storage.get_all_trials(s._study_id, deepcopy=False)), s.user_attrs)
        for s in storage.get_all_studies()
    }


def start_worker(url: str, *extra: str) -> subprocess.Popen[str]:
    """A worker process on every study, with a fast heartbeat (1 s, grace 3 s), in a session
    of its own so that a test can kill it and everything it started."""
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


def wait_for(workers: list[subprocess.Popen[str]], timeout: float = 240) -> list[str]:
    """Wait for worker processes and return their logs; any still running at the timeout
    is killed with everything it started."""
    try:
        return [w.communicate(timeout=timeout)[1] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGKILL)


def run_workers(url: str, count: int, timeout: float = 240) -> list[str]:
    """Start `count` worker processes at once; wait for all; return their logs."""
    workers = [start_worker(url) for _ in range(count)]
    logs = wait_for(workers, timeout)
    assert [w.returncode for w in workers] == [0] * count, logs
    return logs
