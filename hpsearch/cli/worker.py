"""`hpsearch worker`: run trials of the studies until their targets are reached. The flags are
parsed here; the start-up itself is `hpsearch.worker.startup`."""

from __future__ import annotations

import argparse

from hpsearch.cli.common import STARTUP_WAIT_SECONDS, number_or, storage_arg


def worker_args(parser: argparse.ArgumentParser) -> None:
    storage_arg(parser)
    parser.add_argument("--study", action="append", help="study name (repeatable)")
    parser.add_argument("--all", action="store_true", help="work on every study")
    parser.add_argument("--n-trials", type=int, help="stop after this many trials of its own")
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where trials run (auto: cuda where there is a GPU)",
    )
    parser.add_argument("--seed", type=int, help="sampler seed (default: random per worker)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--batch",
        default="1",
        type=number_or("auto", "--batch"),
        help="trials trained at once, stacked into one program: a number, or "
        "'auto' (on a GPU from its free memory and the largest trial; 1 on a CPU)",
    )
    parser.add_argument(
        "--tf32",
        default="auto",
        choices=("auto", "on", "off"),
        help="TF32 matmuls in batched training on a GPU: 'auto' (where a short probe per "
        "network shape finds the results within 1%% of full precision), 'on' or 'off'",
    )
    parser.add_argument(
        "--processes",
        default="1",
        type=number_or("gpus", "--processes"),
        help="worker processes to start here: a number, or 'gpus' for one per "
        "visible GPU (each pinned to its GPU)",
    )
    parser.add_argument("--heartbeat-interval", type=int, default=10, help="seconds")
    parser.add_argument(
        "--heartbeat-grace",
        type=int,
        default=60,
        help="seconds without a heartbeat before a trial is failed and retried",
    )


def worker(args: argparse.Namespace) -> int:
    from hpsearch.worker.startup import WorkerOptions, start

    return start(
        WorkerOptions(
            storage=args.storage,
            studies=tuple(args.study or ()),
            all=args.all,
            n_trials=args.n_trials,
            device=args.device,
            seed=args.seed,
            threads=args.threads,
            batch=args.batch,
            tf32=args.tf32,
            processes=args.processes,
            heartbeat_interval=args.heartbeat_interval,
            heartbeat_grace=args.heartbeat_grace,
            argv=tuple(args.argv),
            startup_wait=STARTUP_WAIT_SECONDS,
        )
    )
