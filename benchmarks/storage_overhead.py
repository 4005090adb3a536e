"""Benchmark for many workers on one database (issue 3). Prints figures; not a test.

  workers: per-trial overhead of the service (claim, heartbeats, sweeps, results) with the
           calibration task, for 1, 4, 16 worker processes on PostgreSQL and 1 on SQLite;
           once with a no-op objective (every worker hammers the database) and once with a
           2-second stand-in for training (sleep: the CPU stays free, as with GPU training).
  phases:  where one worker's time goes per trial (claim = lock + sweeps + count + ask +
           sampler; finish = result attrs + state), random sampler and GPSampler with 100
           and 500 completed trials in the capacity task's search space.

Usage: python benchmarks/storage_overhead.py workers|phases [--postgres URL]
PostgreSQL: a database is created and dropped on the server of --postgres (default: local).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpsearch.studies.records import create_study, find_records  # noqa: E402
from hpsearch.worker.loop import Worker  # noqa: E402
from objectives.tasks.calibration.study import CalibrationStudy  # noqa: E402
from objectives.tasks.capacity.study import build_study  # noqa: E402
from storage import Heartbeat, HeartbeatPolicy, open_storage  # noqa: E402
from tests.testing import scratch_postgres, worker_command  # noqa: E402


def run_workers(url: str, workers: int, trials: int, seconds: float) -> dict[str, float]:
    storage = open_storage(url, create=True)
    create_study(
        storage,
        CalibrationStudy(label="bench", seconds=seconds),
        trials=trials,
        sampler="random",
        seed=0,
    )
    storage.engine.dispose()
    cmd = worker_command(url)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    logs = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - start
    if any(p.returncode for p in procs):
        raise SystemExit("a worker failed:\n" + "\n".join(logs))
    study = optuna.load_study(study_name="calibration-bench", storage=url)
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == trials
    # Per trial, from the trials themselves: the gap between one trial's end and the next
    # trial's start on the same worker, plus the part of the trial that is not the objective.
    by_worker: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in done:
        by_worker.setdefault(t.user_attrs["worker"], []).append(t)
    gaps = []
    for mine in by_worker.values():
        mine.sort(key=lambda t: t.datetime_start)
        for prev, nxt in itertools.pairwise(mine):
            gaps.append((nxt.datetime_start - prev.datetime_complete).total_seconds())
    inside = [
        (t.datetime_complete - t.datetime_start).total_seconds() - t.user_attrs["seconds"]
        for t in done
    ]
    per_trial = [g + i for g, i in zip(gaps, inside, strict=False)]
    return {
        "workers": workers,
        "trials": trials,
        "objective_seconds": seconds,
        "wall_seconds": wall,
        "trials_per_second": trials / wall,
        "overhead_ms_per_trial_median": 1000 * statistics.median(per_trial),
        "overhead_ms_per_trial_p90": 1000 * statistics.quantiles(per_trial, n=10)[-1],
        "overhead_share_of_10s_trial_median": statistics.median(per_trial) / 10.0,
    }


def workers_part(pg: str) -> list[dict[str, float]]:
    rows = []
    for seconds, trials_per_worker in ((0.0, 40), (2.0, 6)):
        for n in (1, 4, 16):
            with scratch_postgres(pg, "hpsearch_bench") as url:
                row = {
                    "storage": "postgresql",
                    **run_workers(url, n, n * trials_per_worker, seconds),
                }
            print(json.dumps(row), flush=True)
            rows.append(row)
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            row = {"storage": "sqlite", **run_workers(url, 1, trials_per_worker, seconds)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def _prefill(url: str, sampler: str, completed: int) -> None:
    storage = open_storage(url, create=True)
    settings = build_study("rnn", 1000)
    create_study(storage, settings, trials=completed + 20, sampler=sampler, seed=0)
    study = optuna.load_study(study_name=settings.name, storage=storage)
    rng = random.Random(0)
    dists = {
        "depth": optuna.distributions.CategoricalDistribution([1, 2, 4]),
        "b": optuna.distributions.IntDistribution(500, 16000, log=True),
        "learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
        "init_scale": optuna.distributions.FloatDistribution(0.1, 3.0, log=True),
    }
    trials = []
    for _ in range(completed):
        params = {
            "depth": rng.choice([1, 2, 4]),
            "b": rng.randint(500, 16000),
            "learning_rate": 10 ** rng.uniform(-4, -1),
            "init_scale": rng.uniform(0.1, 3),
        }
        trials.append(
            optuna.trial.create_trial(
                params=params, distributions=dists, value=rng.uniform(0, 3000)
            )
        )
    study.add_trials(trials)
    storage.engine.dispose()


def phases(url: str, sampler: str, completed: int, claims: int = 10) -> dict[str, object]:
    _prefill(url, sampler, completed)
    policy = HeartbeatPolicy()
    storage = open_storage(url, heartbeat=policy)
    worker = Worker(storage, find_records(storage, None), device="cpu", seed=0, heartbeat=policy)
    claim, finish = [], []

    class Done:
        value = 1.0
        diverged = False

        def to_attrs(self) -> dict[str, object]:
            return {
                "bits": 1.0,
                "bits_per_param": 0.001,
                "num_params": 1000,
                "hidden_size": 18,
                "depth": 1,
                "b": 1000,
                "errors": 0,
                "error_fraction": 0.0,
                "steps": 1,
                "seconds": 0.0,
                "device": "cpu",
                "diverged": False,
                "final_loss": 0.0,
            }

    with Heartbeat(storage, policy.interval) as beat:
        for _ in range(claims):
            t0 = time.perf_counter()
            (held,) = worker.claim_next(beat)
            t1 = time.perf_counter()
            attrs = {**Done().to_attrs(), "config": held.config.to_attrs()}
            worker.studies[0].trials.complete(held.claim, beat, Done().value, attrs)
            t2 = time.perf_counter()
            claim.append(t1 - t0)
            finish.append(t2 - t1)
    storage.engine.dispose()
    return {
        "sampler": sampler,
        "completed_before": completed,
        "claim_ms_median": 1000 * statistics.median(claim),
        "finish_ms_median": 1000 * statistics.median(finish),
    }


def phases_part(pg: str) -> list[dict[str, object]]:
    rows = []
    for sampler, completed in (("random", 100), ("gp", 100), ("gp", 500)):
        with scratch_postgres(pg, "hpsearch_bench") as url:
            row = {"storage": "postgresql", **phases(url, sampler, completed)}
        print(json.dumps(row), flush=True)
        rows.append(row)
        with tempfile.TemporaryDirectory() as tmp:
            row = {"storage": "sqlite", **phases(f"sqlite:///{tmp}/b.db", sampler, completed)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=("workers", "phases"))
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = workers_part(args.postgres) if args.part == "workers" else phases_part(args.postgres)
    (args.out / f"storage_{args.part}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
