"""A worker's start-up, from the options of `hpsearch worker` to trials running: check the
options, connect (waiting for a database that is restarting), find the studies, pick the
device, then run one worker here or start `--processes` of them.

The command line only parses (`hpsearch.cli.worker`); everything a worker decides before its
first trial is here, so that it reads top to bottom and can be called without argparse.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import optuna

from hpsearch.errors import HpsearchError
from hpsearch.studies.records import StudyRecord, check_task, find_records
from hpsearch.worker.processes import CHILD_ENV, run_processes
from hpsearch.worker.progress import ProgressBar
from storage import HeartbeatPolicy, open_storage, redact_url, resolve_url, retry_transient

logger = logging.getLogger("hpsearch")


@dataclass(frozen=True)
class WorkerOptions:
    """What `hpsearch worker` was asked, as given (checked by `start`).

    studies: the names of --study (empty with --all). batch and processes keep their text
    ("auto", "gpus" or a number). argv: the command line, passed on to child workers.
    startup_wait: seconds to wait for a database that is still starting.
    """

    storage: str | None
    studies: tuple[str, ...]
    all: bool
    n_trials: int | None
    device: str
    seed: int | None
    threads: int
    batch: str
    tf32: str
    processes: str
    heartbeat_interval: int
    heartbeat_grace: int
    argv: tuple[str, ...]
    startup_wait: float


def start(options: WorkerOptions) -> int:
    """Run the worker (or workers) the options ask for; the exit code."""
    if options.all and options.studies:
        raise HpsearchError("--study and --all: give one, not both")
    if not options.all and not options.studies:
        raise HpsearchError("needs --study NAME (repeatable) or --all")
    if options.n_trials is not None and options.n_trials < 1:
        raise HpsearchError(f"--n-trials must be positive, got {options.n_trials}")
    if options.threads < 1:
        raise HpsearchError(f"--threads must be positive, got {options.threads}")
    if options.seed is not None and not 0 <= options.seed < 2**31:
        raise HpsearchError(f"--seed must be in [0, 2^31), got {options.seed}")
    try:
        policy = HeartbeatPolicy(interval=options.heartbeat_interval, grace=options.heartbeat_grace)
    except ValueError as e:
        raise HpsearchError(str(e)) from None
    processes = parse_processes(options.processes)
    if options.tf32 == "on" and options.batch == "1":
        raise HpsearchError("--tf32 on applies to batched training: add --batch N or auto")
    if options.tf32 == "on" and options.device == "cpu":
        raise HpsearchError("--tf32 on needs a CUDA device")
    url = resolve_url(options.storage)

    def connect() -> tuple[optuna.storages.RDBStorage, list[StudyRecord]]:
        storage = open_storage(url, heartbeat=policy)
        return storage, find_records(storage, None if options.all else list(options.studies))

    # A worker waits for a database that is restarting (but not for a wrong URL or study).
    storage, records = retry_transient(connect, "connecting", deadline=options.startup_wait)
    for record in records:
        check_task(record)

    import torch

    from hpsearch.worker.loop import Worker, resolve_device

    device = resolve_device(options.device)
    if options.tf32 == "on" and device != "cuda":
        raise HpsearchError(f"--tf32 on needs a CUDA device; this worker runs on {device}")
    if processes != 1:
        storage.engine.dispose()
        gpus = torch.cuda.device_count() if device == "cuda" else 0
        count = gpus if processes == "gpus" else int(processes)
        if count < 1:
            raise HpsearchError("--processes gpus: no GPU is visible here")
        # One bar for the machine, drawn here and fed by the children (they draw none).
        with ProgressBar(storage, records) as bar:
            return run_processes(
                argv=list(options.argv),
                count=count,
                pin_gpus=processes == "gpus" or gpus > 0,
                gpus=gpus,
                seed=options.seed,
                bar=bar,
            )
    torch.set_num_threads(options.threads)
    worker = retry_transient(
        lambda: Worker(storage, records, device=device, seed=options.seed, heartbeat=policy),
        "loading studies",
        deadline=options.startup_wait,
    )
    logger.info(
        "worker %s on %s, %s, %d studies, sampler seed %d",
        worker.name,
        redact_url(url),
        device,
        len(records),
        worker.seed,
    )
    if options.batch == "auto":
        batch = worker.auto_batch()
        logger.info("--batch auto: %d trials at once on %s", batch, device)
    else:
        batch = int(options.batch)
    if options.tf32 == "on" and batch == 1:
        raise HpsearchError("--tf32 on applies to batched training, and --batch auto chose 1")
    report = worker.run(options.n_trials, batch=batch, tf32=options.tf32)
    logger.info(
        "worker %s done: %d complete, %d failed", worker.name, report.complete, report.failed
    )
    return 0


def parse_processes(text: str) -> int | str:
    """A number or 'gpus' (checked by `number_or`); a child worker starts no more."""
    if os.environ.get(CHILD_ENV) and text != "1":
        raise HpsearchError("a worker started by --processes cannot start more workers")
    return text if text == "gpus" else int(text)
