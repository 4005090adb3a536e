"""Many worker processes on one real PostgreSQL database: exact counts, crashes, dropped
connections, and the GP's view of other workers' running trials."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from datetime import datetime

import optuna
import psycopg
import pytest
import sqlalchemy
from optuna.trial import TrialState

from hpsearch.studies.records import create_study
from objectives.tasks.calibration.study import CalibrationStudy
from storage import normalize_url, open_storage
from tests.testing import start_worker, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _study(
    url: str, label: str, *, trials: int, seconds: float, sampler: str = "random", dims: int = 2
) -> optuna.Study:
    storage = open_storage(url, create=True)
    settings = CalibrationStudy(label=label, dims=dims, seconds=seconds)
    assert create_study(storage, settings, trials=trials, sampler=sampler, seed=0)
    return optuna.load_study(study_name=settings.name, storage=storage)


def _admin(url: str) -> str:
    """A libpq URL to the server's own database, for watching and terminating backends."""
    parsed = sqlalchemy.make_url(url)
    return parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )


def _db_name(url: str) -> str:
    return str(sqlalchemy.make_url(url).database)


def _assert_exact(study: optuna.Study, target: int) -> list[optuna.trial.FrozenTrial]:
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == max(numbers) + 1
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == target
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    return trials


def test_eight_workers_reach_exactly_200(postgres_url):
    study = _study(postgres_url, "eight", trials=200, seconds=0.0)
    peak = [0]
    stop = threading.Event()

    def watch() -> None:
        with psycopg.connect(_admin(postgres_url), autocommit=True) as conn:
            while not stop.is_set():
                n = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                    (_db_name(postgres_url),),
                ).fetchone()[0]
                peak[0] = max(peak[0], n)
                time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        workers = [start_worker(postgres_url) for _ in range(8)]
        logs = wait_for(workers, 280)
    finally:
        stop.set()
        watcher.join()
    assert [w.returncode for w in workers] == [0] * 8, logs
    assert not [line for log in logs for line in log.splitlines() if " ERROR " in line]
    trials = _assert_exact(study, 200)
    assert len(trials) == 200  # nothing failed, nothing given back
    # Each worker has at most 3: its pool of 1 plus 1 overflow (its heartbeat thread may
    # beat while the main thread holds the pooled one), and one for the slot lock while it
    # holds it. (A CI run saw 17 for 8 workers: a bound of 2 each was too tight.)
    assert 0 < peak[0] <= 3 * 8, peak[0]


@pytest.mark.parametrize("batch", ["1", "4"])
def test_killed_worker_trial_is_failed_within_grace_and_retried(postgres_url, batch):
    study = _study(postgres_url, "kill", trials=12, seconds=1.5)
    # The survivors run from the start, so that the time to fail the dead trial is the
    # heartbeat policy's (interval 1 s + grace 3 s, swept every interval), not start-up.
    workers = [start_worker(postgres_url, "--batch", batch) for _ in range(3)]
    victim = workers[0]
    deadline = time.monotonic() + 60
    held: list[optuna.trial.FrozenTrial] = []
    while time.monotonic() < deadline and not held:
        held = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if str(t.user_attrs.get("worker", "")).endswith(f":{victim.pid}")
        ]
        time.sleep(0.05)
    assert held, "the victim never held a trial"
    killed_at = datetime.now()
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(10)
    logs = wait_for(workers[1:], 200)
    assert [w.returncode for w in workers[1:]] == [0, 0], logs
    trials = _assert_exact(study, 12)
    dead = next(t for t in trials if t.number == held[0].number)
    assert dead.state == TrialState.FAIL
    assert dead.datetime_complete is not None
    # Within heartbeat interval + grace (4 s), plus one sweep interval and 1 s of slack.
    assert (dead.datetime_complete - killed_at).total_seconds() < 1 + 3 + 1 + 1
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == dead.params
    # Every asked trial is accounted for: 12 complete, and those that died with the victim
    # (each retried once).
    died = [t for t in trials if t.state == TrialState.FAIL]
    assert len(trials) == 12 + len(died) and 1 <= len(died) <= int(batch)


@pytest.mark.parametrize("batch", ["1", "4"])
def test_workers_survive_all_connections_terminated(postgres_url, batch):
    study = _study(postgres_url, "cut", trials=60, seconds=0.1)
    workers = [start_worker(postgres_url, "--batch", batch) for _ in range(4)]
    terminated = 0
    # Every 0.15 s for 6 s, so that some of the kills land on queries in flight, not only on
    # idle pooled connections (which pool_pre_ping would replace unseen).
    with psycopg.connect(_admin(postgres_url), autocommit=True) as conn:
        time.sleep(2.0)
        for _ in range(40):
            time.sleep(0.15)
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (_db_name(postgres_url),),
            ).fetchall()
            terminated += len(rows)
    logs = wait_for(workers, 200)
    assert [w.returncode for w in workers] == [0] * 4, logs
    assert terminated > 0
    assert any("transient database error" in log for log in logs)
    _assert_exact(study, 60)


def test_gp_workers_do_not_duplicate_running_points(postgres_url):
    study = _study(postgres_url, "gp", trials=26, seconds=0.6, sampler="gp")
    workers = [start_worker(postgres_url) for _ in range(4)]
    logs = wait_for(workers, 280)
    assert [w.returncode for w in workers] == [0] * 4, logs
    trials = _assert_exact(study, 26)

    def point(t: optuna.trial.FrozenTrial) -> tuple[float, float]:
        return (t.params["x0"], t.params["x1"])

    overlaps = 0
    closest = math.inf  # between a GP-sampled trial and any trial running when it started
    for t in trials:
        if t.number < 10:
            continue  # the random start-up trials
        assert t.datetime_start is not None
        for other in trials:
            if other.number == t.number or other.datetime_start is None:
                continue
            end = other.datetime_complete or datetime.max
            if other.datetime_start < t.datetime_start < end:
                overlaps += 1
                closest = min(closest, math.dist(point(t), point(other)))
    assert overlaps >= 10, "workers never overlapped; the test would prove nothing"
    # No running point is proposed twice. (That the GP's acquisition is given the other
    # workers' running trials, parameters included, is shown directly, in process, by
    # tests/hpsearch/worker/test_worker_claims.py::test_gp_sees_the_other_workers_running_trial.)
    assert closest > 1e-9, closest


def test_capacity_table_on_postgres_matches_sqlite(postgres_url, sqlite_url):
    from tests.testing import hpsearch, run_workers

    args = [
        "--arch",
        "rnn,lstm",
        "--budget",
        "400",
        "--depths",
        "1,2",
        "--trials",
        "8",
        "--seed",
        "2",
        "--space",
        "max_steps=40",
    ]
    tables = {}
    for url, count in ((postgres_url, 4), (sqlite_url, 2)):
        assert hpsearch("create", "--storage", url, *args).returncode == 0
        run_workers(url, count)
        import json

        tables[url] = json.loads(hpsearch("export", "--storage", url, "--format", "json").stdout)
    pg, lite = tables[postgres_url], tables[sqlite_url]
    assert [list(r) for r in pg] == [list(r) for r in lite][: len(pg)] or len(pg) == len(lite)
    assert {tuple(r) for r in pg} == {tuple(r) for r in lite}
    for rows in (pg, lite):
        assert {r["study"] for r in rows} == {"capacity-rnn-p400", "capacity-lstm-p400"}
        assert sum(r["trials_complete"] for r in rows) == 16
        assert rows[0]["arch"] == "rnn"
    storage = optuna.storages.RDBStorage(normalize_url(postgres_url))
    for name in ("capacity-rnn-p400", "capacity-lstm-p400"):
        _assert_exact(optuna.load_study(study_name=name, storage=storage), 8)
    storage.engine.dispose()
