"""Benchmark for warm starts across studies (issue 21). Prints figures; not a pass/fail test.

For each seed of --seeds: a copy of the --related storage (the studies that warm it: rnn at
budgets 200 and 500, made beforehand; the run waits until they hold --related-trials results
together), in which a study of --arch, --budget, depth 1, --sampler, --space and --trials is
created with `--warm-from auto` and searched by one worker (one thread, `--seed S`); --jobs
seeds at once. It is compared with the cold study of the same seed in --cold (made by
`capacity_search.py quality`, quality-SAMPLER-sS.db): the trials each needs to reach 95% of the
best bits/param the cold study reached in its first --cold-trials trials, and the best of each
after --trials. --summarize: only the comparison, of the studies a run left in --out.

Usage: python benchmarks/warm_start.py --related /work/bench21/related.db --cold /work/bench20q
       --out /work/bench21w [--seeds 0,1,2] [--trials 200] [--jobs 2] [--summarize]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

HPSEARCH = [sys.executable, "-m", "hpsearch.cli"]
# The share of the cold study's best that counts as reached.
SHARE = 0.95
# The trial counts at which the best of each study is printed.
MARKS = (10, 25, 50, 100, 200)


def complete(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    """The study's COMPLETE trials in trial order."""
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(trials, key=lambda t: t.number)


def bits_per_param(trials: list[optuna.trial.FrozenTrial]) -> list[float]:
    return [float(t.user_attrs["bits_per_param"]) for t in trials]


def trials_to_reach(values: list[float], target: float) -> int | None:
    """The number of trials after which the best is at least `target`; None: never."""
    best = float("-inf")
    for n, value in enumerate(values, start=1):
        best = max(best, value)
        if best >= target:
            return n
    return None


def related_results(db: Path) -> int:
    """COMPLETE trials in the storage, every study together."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        query = "select count(*) from trials where state = 'COMPLETE'"
        return int(conn.execute(query).fetchone()[0])


def wait_for_related(db: Path, needed: int) -> None:
    while (have := related_results(db)) < needed:
        print(f"related studies: {have} of {needed} results; waiting", flush=True)
        time.sleep(30)


def copy_storage(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite storage (its WAL included)."""
    dst.unlink(missing_ok=True)
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def create(url: str, args: argparse.Namespace, seed: int) -> None:
    space = [arg for spec in args.space for arg in ("--space", spec)]
    subprocess.run(
        [
            *HPSEARCH,
            *("create", "--storage", url, "--arch", args.arch, "--budget", str(args.budget)),
            *("--depths", "1", "--sampler", args.sampler, "--seed", str(seed)),
            *("--trials", str(args.trials), "--warm-from", "auto", *space),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def worker(url: str, name: str, seed: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [
            *HPSEARCH,
            "worker",
            *("--storage", url, "--study", name, "--seed", str(seed)),
            "--device",
            "cpu",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
        env=env,
    )


def run(args: argparse.Namespace, name: str) -> None:
    wait_for_related(args.related, args.related_trials)
    pending = list(args.seeds)
    running: dict[int, subprocess.Popen[bytes]] = {}
    start = time.perf_counter()
    while pending or running:
        while pending and len(running) < args.jobs:
            seed = pending.pop(0)
            db = args.out / f"warm-{args.sampler}-s{seed}.db"
            copy_storage(args.related, db)
            create(f"sqlite:///{db}", args, seed)
            running[seed] = worker(f"sqlite:///{db}", name, seed, db.with_suffix(".log"))
        time.sleep(2)
        for seed, proc in list(running.items()):
            if proc.poll() is not None:
                if proc.returncode != 0:
                    raise SystemExit(f"worker of seed {seed} failed, see {args.out}")
                del running[seed]
                print(f"done: seed {seed} at {time.perf_counter() - start:.0f} s", flush=True)


def summarize(args: argparse.Namespace, name: str) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    print(
        f"| seed | cold best (of its first {args.cold_trials} trials: trials it had) | 95% of it "
        "| trials to reach it: cold "
        f"| warm | best after {args.trials}: cold | warm |"
    )
    print("|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        cold = bits_per_param(
            complete(f"sqlite:///{args.cold / f'quality-{args.sampler}-s{seed}.db'}", name)
        )
        warm = bits_per_param(
            complete(f"sqlite:///{args.out / f'warm-{args.sampler}-s{seed}.db'}", name)
        )
        reference = cold[: args.cold_trials]
        target = SHARE * max(reference)
        row: dict[str, Any] = {
            "cold_trials": len(reference),
            "warm_trials": len(warm),
            "cold_best": max(reference),
            "target": target,
            "cold_to_target": trials_to_reach(reference, target),
            "warm_to_target": trials_to_reach(warm, target),
            "cold_best_at_T": max(cold[: args.trials]),
            "warm_best_at_T": max(warm[: args.trials]) if warm else None,
        }
        row["best_after"] = {
            "cold": {n: max(cold[:n]) for n in MARKS if n <= len(cold)},
            "warm": {n: max(warm[:n]) for n in MARKS if n <= len(warm)},
        }
        rows[str(seed)] = row
        print(
            f"| {seed} | {row['cold_best']:.3f} ({len(reference)}) | {target:.3f} "
            f"| {row['cold_to_target']} | {row['warm_to_target']} "
            f"| {row['cold_best_at_T']:.3f} ({min(len(cold), args.trials)}) "
            f"| {row['warm_best_at_T'] or 0:.3f} ({min(len(warm), args.trials)}) |",
            flush=True,
        )
    for arm in ("cold", "warm"):
        print(
            f"best bits/param after {', '.join(map(str, MARKS))} trials, {arm}: "
            + "; ".join(
                f"seed {seed}: "
                + "/".join(f"{v:.2f}" for v in rows[str(seed)]["best_after"][arm].values())
                for seed in args.seeds
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--related", type=Path, required=True)
    parser.add_argument("--related-trials", type=int, default=200)
    parser.add_argument("--cold", type=Path, required=True)
    parser.add_argument("--cold-trials", type=int, default=200)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--arch", default="rnn")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--sampler", default="gp")
    parser.add_argument("--space", action="append", default=[])
    parser.add_argument("--summarize", action="store_true")
    args = parser.parse_args()
    if not args.space:
        args.space = ["max_steps=500"]
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"capacity-{args.arch}-p{args.budget}"
    if not args.summarize:
        run(args, name)
    figures = summarize(args, name)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
