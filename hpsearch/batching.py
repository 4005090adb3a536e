"""The worker's batched loop: up to K trials in training at once, grouped by shape into
batched trainers; each trial is told as soon as it ends and its slot is refilled at once, so
the device stays busy. Heartbeats cover every trial held (the worker's heartbeat thread beats
for all of them).

A batch computes every slot, taken or not. So a new batch starts with one slot and doubles
when a trial of its group finds it full (up to K); one that is at most half full (no new
trial to fill it: the search is near its target, or trials of several groups share K) is
compacted to the next power of two that holds its trials. Powers of two keep the number of
distinct sizes, and so CUDA-graph captures, small.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpsearch.errors import HpsearchError
from objectives.allocator import keep_freed_memory
from objectives.registry import Batch, BatchingTask, supports_batching
from storage import retry_transient

if TYPE_CHECKING:
    import optuna

    from hpsearch.progress import Progress
    from hpsearch.worker import Worker, WorkerReport, _Study
    from storage import Heartbeat

logger = logging.getLogger(__name__)

# Steps every batch trains between two looks for ended trials and free slots.
CHUNK_STEPS = 20
MAX_AUTO_BATCH = 128


@dataclass
class _Held:
    entry: _Study
    trial: optuna.trial.Trial
    config: Any
    trainer: Batch


def auto_batch(worker: Worker, device: str) -> int:
    """On a GPU, K from its free memory (a quarter of it) and the largest trial the studies
    can ask for (their largest b and hidden size), at most 128. On a CPU, 1: there a batch
    gains at most 2.3x per core when every trial has the same shape and b, and a whole
    search, whose trials spread over many groups, ran slower batched (0.86x; see
    benchmarks/capacity_search.py speed --batch)."""
    if device != "cuda":
        return 1
    import torch

    largest = 0
    for entry in worker.studies:
        if not supports_batching(entry.task):
            return 1
        settings = entry.settings
        for depth in settings.depths:
            b_dim = settings.space["b"]
            b = int(b_dim.high if b_dim.high is not None else max(b_dim.values()))
            from objectives.capacity import CapacityConfig

            probe = CapacityConfig(
                arch=settings.arch,
                n_in=settings.n_in,
                hidden_size=settings.hidden_size(depth),
                depth=depth,
                unroll=settings.unroll,
                b=b,
                learning_rate=1e-3,
                init_scale=1.0,
                activation=str(settings.space["activation"].values()[0]),
            )
            task = entry.task
            assert supports_batching(task)
            largest = max(largest, task.batch_bytes(probe))
    free, _ = torch.cuda.mem_get_info()
    k = int(0.25 * free // max(largest, 1))
    return max(1, min(MAX_AUTO_BATCH, k))


def _fitting(n: int) -> int:
    """The smallest power of two that holds n trials."""
    return 1 << (n - 1).bit_length()


def _precision(
    task: BatchingTask, config: Any, device: str, tf32: str, chosen: dict[Any, str]
) -> str:
    """The float32 matmul precision for a new batch of this shape: TF32 on a CUDA device if
    `tf32` is "on", or if it is "auto" and a probe on trials like this one finds the results
    within tolerance (once per shape); full precision otherwise."""
    if not device.startswith("cuda") or tf32 == "off":
        return "ieee"
    if tf32 == "on":
        return "tf32"
    key = task.batch_key(config)
    if key not in chosen:
        try:
            verdict = task.probe_precision(config, device, "tf32")
        except Exception as e:  # a probe that cannot run decides nothing: full precision
            logger.warning("shape %s: the TF32 probe failed (%s); using ieee", key, e)
            chosen[key] = "ieee"
        else:
            chosen[key] = "tf32" if verdict.within_tolerance else "ieee"
            logger.info("shape %s: %s; using %s", key, verdict.describe(), chosen[key])
    return chosen[key]


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:1000]


def run_batched(
    worker: Worker,
    n_trials: int | None,
    batch: int,
    heartbeat: Heartbeat,
    progress: Progress,
    report: WorkerReport,
    tf32: str = "auto",
) -> None:
    for entry in worker.studies:
        if not supports_batching(entry.task):
            raise HpsearchError(f"--batch: task {entry.record.task!r} trains one trial at a time")
    keep_freed_memory()
    trainers: dict[Any, Batch] = {}
    precisions: dict[Any, str] = {}
    held: dict[int, _Held] = {}  # id(config) -> what the worker holds
    claimed = 0
    failures_in_a_row = 0
    try:
        while True:
            # Fill every free slot (a new group gets a trainer of its own).
            while len(held) < batch and (n_trials is None or claimed < n_trials):
                got = worker._claim_any(heartbeat)
                if got is None:
                    break
                entry, trial, config = got
                claimed += 1
                task = entry.task
                assert supports_batching(task)
                key = task.batch_key(config)
                try:  # a trial that cannot join a batch (out of memory, say) fails alone
                    trainer = trainers.get(key)
                    if trainer is None:
                        precision = _precision(task, config, worker.device, tf32, precisions)
                        trainer = task.batch(config, 1, worker.device, precision)
                        trainers[key] = trainer
                    elif trainer.free == 0:
                        trainer.resize(min(batch, 2 * trainer.capacity))
                    trainer.add(config)
                except Exception as e:
                    logger.error("trial %d could not join a batch: %s", trial.number, _error(e))
                    worker._finish(
                        trial, heartbeat, None, {"error": _error(e)}, f"failing {entry.record.name}"
                    )
                    report.failed += 1
                    failures_in_a_row += 1
                    if failures_in_a_row >= 3:
                        raise HpsearchError("3 failures in a row; see the log above") from e
                    continue
                held[id(config)] = _Held(entry, trial, config, trainer)
            if not held:
                if (n_trials is None or claimed < n_trials) and retry_transient(
                    worker._others_running, "checking other workers"
                ):
                    time.sleep(1.0)
                    continue
                return
            for key, trainer in list(trainers.items()):
                if trainer.occupied == 0:
                    del trainers[key]
                    continue
                try:
                    if trainer.occupied <= trainer.capacity // 2:
                        trainer.resize(_fitting(trainer.occupied))
                    ended = trainer.run(CHUNK_STEPS)
                except Exception as e:  # the whole batch is lost: fail its trials
                    error = _error(e)
                    logger.error("a batch of %d trials failed: %s", trainer.occupied, error)
                    for h in [h for h in held.values() if h.trainer is trainer]:
                        worker._finish(
                            h.trial,
                            heartbeat,
                            None,
                            {"error": error},
                            f"failing {h.entry.record.name}",
                        )
                        del held[id(h.config)]
                        report.failed += 1
                    del trainers[key]
                    failures_in_a_row += 1
                    if failures_in_a_row >= 3:
                        raise HpsearchError("3 failures in a row; see the log above") from e
                    continue
                failures_in_a_row = 0
                for config, result in ended:
                    h = held.pop(id(config))
                    worker._report(h.entry, h.trial, config, result, heartbeat)
                    name = h.entry.record.name
                    report.per_study[name] = report.per_study.get(name, 0) + 1
                    report.complete += 1
                    progress.update()
    except KeyboardInterrupt:
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            for h in held.values():
                worker._stop_trial(h.entry, h.trial, heartbeat, {"interrupted": True})
            logger.warning("interrupted: %d trials failed and queued again", len(held))
        finally:
            signal.signal(signal.SIGTERM, previous)
        raise
