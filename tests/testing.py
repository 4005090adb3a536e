"""What tests and benchmarks share: the real command in a child process, worker processes
and their clean-up, small configs and stored attrs of the capacity task, a smooth stand-in
objective for the samplers, and scratch PostgreSQL databases. Everything here is public: a
test module imports from here, never from another test module.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpsearch.studies.records import create_studies, create_study
from hpsearch.studies.schema import Experiment
from objectives.tasks.calibration.study import CalibrationStudy
from objectives.tasks.capacity.study import CapacityConfig
from storage import open_storage

ROOT = Path(__file__).resolve().parents[1]


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


def worker_command(url: str, *extra: str) -> list[str]:
    """The command line of a CPU worker on every study of `url`."""
    worker = ("worker", "--storage", url, "--all", "--device", "cpu")
    return [sys.executable, "-m", "hpsearch.cli", *worker, *extra]


def start_worker(url: str, *extra: str) -> subprocess.Popen[str]:
    """A worker process on every study, with a fast heartbeat (1 s, grace 3 s), in a session
    of its own so that a test can kill it and everything it started."""
    cmd = worker_command(url, "--heartbeat-interval", "1", "--heartbeat-grace", "3", *extra)
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


# ---- the capacity task: configs and what trials record

# A tiny network that trains in milliseconds.
SMALL: dict[str, Any] = dict(
    arch="rnn",
    n_in=16,
    hidden_size=8,
    depth=1,
    unroll=3,
    b=60,
    learning_rate=0.01,
    init_scale=1.0,
)


def capacity_config(**overrides: Any) -> CapacityConfig:
    return CapacityConfig(**{**SMALL, **overrides})


# What every capacity trial must record.
TRIAL_ATTRS = (
    "bits",
    "bits_per_param",
    "num_params",
    "hidden_size",
    "depth",
    "error_fraction",
    "steps",
    "seconds",
    "device",
)


# The space as stored by versions before it was held as Optuna distributions.
OLD_ATTRS: dict[str, Any] = {
    "task": "capacity",
    "arch": "gru",
    "budget": 2000,
    "n_in": 32,
    "unroll": 5,
    "patience": 200,
    "space": {
        "depth": {"kind": "choice", "choices": [1, 2]},
        "b": {"kind": "int", "low": 1000.0, "high": 32000.0, "log": True},
        "learning_rate": {"kind": "float", "low": 0.0001, "high": 0.1, "log": True},
        "init_scale": {"kind": "float", "low": 0.1, "high": 3.0, "log": True},
        "activation": {"kind": "fixed", "value": "tanh"},
        "optimizer": {"kind": "choice", "choices": ["adam", "sgd"]},
        "gate_bias": {"kind": "float", "low": 0.0, "high": 3.0, "log": False},
        "grad_clip": {"kind": "fixed", "value": 0.0},
        "max_steps": {"kind": "fixed", "value": 2000},
    },
}


# ---- a smooth stand-in objective over a capacity-like space, for the samplers


# The capacity task's four searched dimensions, with their kinds of distribution.
SEARCH_SPACE: dict[str, Any] = {
    "depth": CategoricalDistribution((1, 2, 4)),
    "b": IntDistribution(500, 16000, log=True),
    "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
    "init_scale": FloatDistribution(0.1, 3.0, log=True),
}


def suggest_point(trial: optuna.trial.BaseTrial) -> dict[str, Any]:
    return {
        "depth": trial.suggest_categorical("depth", (1, 2, 4)),
        "b": trial.suggest_int("b", 500, 16000, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
        "init_scale": trial.suggest_float("init_scale", 0.1, 3.0, log=True),
    }


def smooth_value(p: dict[str, Any], noise: float = 0.0) -> float:
    """A smooth stand-in for bits: best near learning_rate 3e-3, init_scale 1, large b."""
    return (
        -((math.log10(p["learning_rate"]) + 2.5) ** 2)
        - math.log(p["init_scale"]) ** 2
        + 0.1 * math.log(p["b"])
        + 0.05 * p["depth"]
        + noise
    )


def random_point(rng: np.random.Generator) -> dict[str, Any]:
    """A point of SEARCH_SPACE drawn uniformly (log scales)."""
    return {
        "depth": int(rng.choice([1, 2, 4])),
        "b": round(math.exp(rng.uniform(math.log(500), math.log(16000)))),
        "learning_rate": math.exp(rng.uniform(math.log(1e-4), math.log(1e-1))),
        "init_scale": math.exp(rng.uniform(math.log(0.1), math.log(3.0))),
    }


def filled_study(n_complete: int, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """An in-memory study with `n_complete` trials at random points, valued by smooth_value."""
    rng = np.random.default_rng(1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(n_complete):
        p = random_point(rng)
        study.add_trial(
            optuna.trial.create_trial(params=p, distributions=SEARCH_SPACE, value=smooth_value(p))
        )
    return study


def normalized(params: list[dict[str, Any]]) -> np.ndarray:
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


def calibration_study(url: str, label: str, trials: int) -> optuna.Study:
    """A gp-batch study of the calibration task (a known function, no training) in a
    storage at `url`."""
    storage = open_storage(url, create=True)
    settings = CalibrationStudy(label=label, dims=2)
    assert create_study(storage, settings, trials=trials, sampler="gp-batch", seed=0)
    return optuna.load_study(study_name=settings.name, storage=storage)


# ---- scratch PostgreSQL databases


@contextmanager
def scratch_postgres(base: str, prefix: str = "hpsearch_test") -> Iterator[str]:
    """A fresh database on the server of `base` (a SQLAlchemy URL of any driver), its URL
    in the same form, dropped afterwards with every connection to it."""
    import psycopg
    import sqlalchemy

    url = sqlalchemy.make_url(base)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- a storage of capacity studies with known best trials, for the results


def capacity_trial(
    bits: float,
    depth: int,
    b: int,
    params: int,
    state: TrialState = TrialState.COMPLETE,
    hidden: int = 10,
) -> FrozenTrial:
    """A capacity trial as a worker stores it: `bits` at `depth` and `b` with `params`
    parameters (only COMPLETE trials carry a value)."""
    attrs = {
        "bits": bits,
        "bits_per_param": bits / params,
        "num_params": params,
        "hidden_size": hidden,
        "depth": depth,
        "config": {"b": b, "learning_rate": 0.01, "init_scale": 1.0},
    }
    return create_trial(
        state=state,
        value=bits if state == TrialState.COMPLETE else None,
        params={"depth": depth, "x": 0.5},
        distributions={"depth": CategoricalDistribution([1, 2]), "x": FloatDistribution(0, 1)},
        user_attrs=attrs,
    )


def add_trials(storage: optuna.storages.BaseStorage, name: str, trials: list[FrozenTrial]) -> None:
    study = optuna.load_study(study_name=name, storage=storage)
    for t in trials:
        study.add_trial(t)


def populated_storage(url: str) -> optuna.storages.BaseStorage:
    """rnn at budgets 500 and 1000, gru at 1000, with known best trials."""
    storage = open_storage(url, create=True)
    create_studies(
        storage,
        Experiment(archs=("gru", "rnn"), budgets=(500, 1000), depths=(1, 2), trials=10, seed=0),
    )

    def add(name: str, trials: list[FrozenTrial]) -> None:
        add_trials(storage, name, trials)

    add(
        "capacity-rnn-p500",
        [
            capacity_trial(100.0, 1, 150, 400),
            capacity_trial(1200.0, 1, 1300, 400),
            capacity_trial(800.0, 2, 900, 500),
            capacity_trial(0.0, 2, 50, 500),
            capacity_trial(9999.0, 1, 9, 400, state=TrialState.FAIL),
            capacity_trial(9999.0, 1, 9, 400, state=TrialState.PRUNED),
        ],
    )
    add(
        "capacity-rnn-p1000",
        [capacity_trial(3000.0, 1, 3500, 1000), capacity_trial(2000.0, 2, 2500, 1000)],
    )
    add(
        "capacity-gru-p1000",
        [capacity_trial(1500.0, 1, 1800, 1000), capacity_trial(1000.0, 1, 1200, 1000)],
    )
    return storage
