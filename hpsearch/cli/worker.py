"""`hpsearch worker`: run trials of the studies until their targets are reached."""

from __future__ import annotations

import argparse
import logging
import os

from hpsearch.cli.common import (
    STARTUP_WAIT_SECONDS,
    number_or,
    storage_arg,
)
from hpsearch.errors import HpsearchError
from storage import HeartbeatPolicy, open_storage, redact_url, resolve_url, retry_transient

logger = logging.getLogger("hpsearch")
CHILD_ENV = "HPSEARCH_WORKER_CHILD"


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
    import optuna

    from hpsearch.studies.records import StudyRecord, check_task, find_records

    if args.all == bool(args.study):
        raise HpsearchError("worker needs --study NAME (repeatable) or --all, not both")
    if args.n_trials is not None and args.n_trials < 1:
        raise HpsearchError(f"--n-trials must be positive, got {args.n_trials}")
    if args.threads < 1:
        raise HpsearchError(f"--threads must be positive, got {args.threads}")
    if args.seed is not None and not 0 <= args.seed < 2**31:
        raise HpsearchError(f"--seed must be in [0, 2^31), got {args.seed}")
    try:
        policy = HeartbeatPolicy(interval=args.heartbeat_interval, grace=args.heartbeat_grace)
    except ValueError as e:
        raise HpsearchError(str(e)) from None
    processes = parse_processes(args.processes)
    if args.tf32 == "on" and args.batch == "1":
        raise HpsearchError("--tf32 on applies to batched training: add --batch N or auto")
    if args.tf32 == "on" and args.device == "cpu":
        raise HpsearchError("--tf32 on needs a CUDA device")
    url = resolve_url(args.storage)

    def connect() -> tuple[optuna.storages.RDBStorage, list[StudyRecord]]:
        storage = open_storage(url, heartbeat=policy)
        return storage, find_records(storage, None if args.all else args.study)

    # A worker waits for a database that is restarting (but not for a wrong URL or study).
    storage, records = retry_transient(connect, "connecting", deadline=STARTUP_WAIT_SECONDS)
    for record in records:
        check_task(record)

    import torch

    from hpsearch.worker.loop import Worker, resolve_device

    device = resolve_device(args.device)
    if args.tf32 == "on" and device != "cuda":
        raise HpsearchError(f"--tf32 on needs a CUDA device; this worker runs on {device}")
    if processes != 1:
        from hpsearch.worker.processes import run_processes

        storage.engine.dispose()
        gpus = torch.cuda.device_count() if device == "cuda" else 0
        count = gpus if processes == "gpus" else int(processes)
        if count < 1:
            raise HpsearchError("--processes gpus: no GPU is visible here")
        return run_processes(
            argv=args.argv,
            count=count,
            pin_gpus=processes == "gpus" or gpus > 0,
            gpus=gpus,
            seed=args.seed,
        )
    torch.set_num_threads(args.threads)
    worker = retry_transient(
        lambda: Worker(storage, records, device=device, seed=args.seed, heartbeat=policy),
        "loading studies",
        deadline=STARTUP_WAIT_SECONDS,
    )
    logger.info(
        "worker %s on %s, %s, %d studies, sampler seed %d",
        worker.name,
        redact_url(url),
        device,
        len(records),
        worker.seed,
    )
    if args.batch == "auto":
        batch = worker.auto_batch()
        logger.info("--batch auto: %d trials at once on %s", batch, device)
    else:
        batch = int(args.batch)
    if args.tf32 == "on" and batch == 1:
        raise HpsearchError("--tf32 on applies to batched training, and --batch auto chose 1")
    report = worker.run(args.n_trials, batch=batch, tf32=args.tf32)
    logger.info(
        "worker %s done: %d complete, %d failed", worker.name, report.complete, report.failed
    )
    return 0


def parse_processes(text: str) -> int | str:
    """A number or 'gpus' (checked by `number_or`); a child worker starts no more."""
    if os.environ.get(CHILD_ENV) and text != "1":
        raise HpsearchError("a worker started by --processes cannot start more workers")
    return text if text == "gpus" else int(text)
