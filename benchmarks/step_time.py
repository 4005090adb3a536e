"""Benchmark: milliseconds per training step of one long-ish trial (issue 10): one trial with
`train_capacity`, and batches of K = 1 and K = 8 with `BatchedTrainer`, each for a fixed
number of steps (early stopping off), for each learning-rate schedule asked for. Prints
figures; not a test.

Each way is timed whole (data set, initialisation, training) after one short untimed warm-up,
--repeats times, and divided by the steps it took (a trial that memorises its set stops
early; a batch takes as many steps as its longest trial, each training K trials); the
median is printed.

Usage: OMP_NUM_THREADS=1 python benchmarks/step_time.py [--arch rnn] [--budget 1000]
       [--b 1000] [--steps 2000] [--repeats 3] [--schedules constant,cosine,step]
       [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import fields, replace
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from objectives.networks.architectures import solve_hidden_size  # noqa: E402
from objectives.tasks.capacity.objective import train_capacity  # noqa: E402
from objectives.tasks.capacity.study import CapacityConfig  # noqa: E402
from objectives.tasks.objective import shape_key  # noqa: E402
from objectives.training.batched import BatchedTrainer  # noqa: E402


def _config(args: argparse.Namespace, schedule: str, seed: int) -> CapacityConfig:
    extra = {}
    if any(f.name == "lr_schedule" for f in fields(CapacityConfig)):
        extra["lr_schedule"] = schedule
    elif schedule != "constant":
        raise SystemExit("this version has no lr_schedule")
    return CapacityConfig(
        arch=args.arch,
        n_in=32,
        hidden_size=solve_hidden_size(args.arch, 32, 1, args.budget),
        depth=1,
        unroll=5,
        b=args.b,
        learning_rate=1e-3 * (1 + seed % 7),
        init_scale=1.0,
        max_steps=args.steps,
        patience=10**7,
        seed=seed,
        **extra,  # type: ignore[arg-type]
    )


def _alone(configs: list[CapacityConfig], device: str) -> tuple[float, int]:
    start = time.perf_counter()
    result = train_capacity(configs[0], device)
    return time.perf_counter() - start, result.steps


def _batch(configs: list[CapacityConfig], k: int, device: str) -> tuple[float, int]:
    start = time.perf_counter()
    trainer = BatchedTrainer(shape_key(configs[0]), k, device)
    for c in configs[:k]:
        trainer.add(c)
    ended = trainer.run(configs[0].max_steps + 1)
    return time.perf_counter() - start, max(r.steps for _, r in ended)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="rnn")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--b", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--schedules", default="constant")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}")
    for schedule in args.schedules.split(","):
        configs = [_config(args, schedule, seed) for seed in range(8)]
        train_capacity(replace(configs[0], max_steps=5), args.device)  # warm-up
        ways: list[tuple[str, Callable[[], tuple[float, int]]]] = [
            ("train_capacity", partial(_alone, configs, args.device)),
            ("batch K=1", partial(_batch, configs, 1, args.device)),
            ("batch K=8", partial(_batch, configs, 8, args.device)),
        ]
        for name, run in ways:
            runs = [run() for _ in range(args.repeats)]
            ms = 1000 * statistics.median(t / max(1, steps) for t, steps in runs)
            shown = ", ".join(f"{t:.2f}s/{steps}" for t, steps in runs)
            print(f"{schedule:8s} {name:15s} {ms:7.3f} ms/step  (runs, s/steps: {shown})")


if __name__ == "__main__":
    main()
