"""How a worker trains the trials it holds: one interface, two implementations.

`Executor`: `submit` a claimed trial, `advance` (train a while) and get back the trials that
ended, each as an `Ended` (a result to tell, `pruned` if a checkpoint stopped it) or a
`Failed` (an error to record). The worker loop (`hpsearch.worker.loop`) claims while the executor
has `room`, and is the same for both. While training, a trial of a task with checkpoints
(`checkpoint_steps`) is shown to the worker's `judge` every that many steps with its best
value so far; the judge reports it and says whether it goes on (False: pruned).

- `SerialExecutor`: one trial at a time through the task's `run` (every task has one).
- `BatchedExecutor`: up to K trials at once, grouped by shape into batched trainers (tasks
  that support batching). A trial is handed back as soon as it ends, so its slot is refilled
  at once. A batch computes every slot, taken or not: a new batch starts with one slot and
  doubles when a trial of its group finds it full (up to K); one that is at most half full
  (near the target, or trials of several groups share K) is compacted to the next power of
  two that holds its trials. Powers of two keep the number of distinct sizes, and so
  CUDA-graph captures, small. On a CPU, the first trial of a group that has no batch (a
  trained task's) trains alone, as one at a time trains it (`Alone`), in chunks beside the
  batches: a batch of one ran slower than one at a time there (docs/benchmarks.md,
  "Minibatch trials batched on a CPU"), and a search of many groups has many groups of one.
  When a trial of its group comes while it trains, the lone trial moves into the group's
  new batch (`BatchedTrainer.adopt`: weights, optimizer state, progress) and goes on there.
  (A batch that thins out to one trial keeps it: nothing moves back.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hpsearch.errors import HpsearchError
from objectives.tasks.registry import (
    Batch,
    BatchingTask,
    Task,
    TrainedTask,
    TrialResult,
    supports_batching,
    supports_checkpoints,
)
from objectives.training.allocator import keep_freed_memory

logger = logging.getLogger(__name__)

# Steps every batch trains between two looks for ended trials and free slots.
CHUNK_STEPS = 20
MAX_AUTO_BATCH = 128
# The key of a group's lone trial (`Alone`) among the executor's batches: (ALONE, group).
ALONE = "alone"


@dataclass(eq=False)
class Held:
    """A claimed trial in training: its study, task and frozen config. `claim` is the
    worker's handle on the trial in the storage; executors never touch it."""

    study: str
    task: Task
    config: Any
    claim: Any


@dataclass(frozen=True)
class Ended:
    held: Held
    result: TrialResult
    pruned: bool = False


@dataclass(frozen=True)
class Failed:
    held: Held
    error: str


Outcome = Ended | Failed
# (trial, steps taken, best value so far) -> whether it goes on
Judge = Callable[[Held, int, float], bool]


def checkpoint_steps(task: Task) -> int | None:
    """Every how many steps a task's trials are judged (None: they are not)."""
    return task.checkpoint_steps if supports_checkpoints(task) else None


class Executor(Protocol):
    @property
    def room(self) -> int:
        """How many more trials it takes now."""
        ...

    def submit(self, held: Held) -> None:
        """Take a trial; raises if it cannot (the worker fails that trial alone)."""
        ...

    def advance(self, judge: Judge) -> list[Outcome]:
        """Train a while, showing trials to `judge` at their checkpoints; the trials that
        ended."""
        ...

    def held(self) -> list[Held]:
        """The trials in training (the worker stops and requeues them when interrupted)."""
        ...


def describe_error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:1000]


class SerialExecutor:
    """One trial at a time, trained to its end in one `advance`."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._held: Held | None = None

    @property
    def room(self) -> int:
        return 0 if self._held else 1

    def submit(self, held: Held) -> None:
        if self._held is not None:
            raise RuntimeError("SerialExecutor holds one trial at a time")
        self._held = held

    def held(self) -> list[Held]:
        return [self._held] if self._held else []

    def advance(self, judge: Judge) -> list[Outcome]:
        held = self._held
        if held is None:
            return []
        outcome: Outcome
        try:
            task = held.task
            checkpoint = None
            if supports_checkpoints(task):
                checkpoint = lambda steps, value: judge(held, steps, value)  # noqa: E731
            result = task.run(held.config, self.device, checkpoint=checkpoint)
            outcome = Ended(held, result, pruned=bool(getattr(result, "pruned", False)))
        except Exception as e:
            outcome = Failed(held, describe_error(e))
        self._held = None  # an interrupt (KeyboardInterrupt) leaves it held, for the stop
        return [outcome]


class Alone:
    """A `Batch` of one trial of a trained task, trained as one at a time trains it
    (`objectives.training.trainer.OneTrial`): the same steps and the same result as
    `train`, run in chunks."""

    capacity = 1

    def __init__(self, objective: Any, device: str) -> None:
        self.objective, self.device = objective, device
        self._config: Any = None
        self._trial: Any = None

    @property
    def free(self) -> int:
        return 0 if self._trial is not None else 1

    @property
    def occupied(self) -> int:
        return 1 - self.free

    def add(self, config: Any) -> int:
        from objectives.training.trainer import OneTrial

        if self._trial is not None:
            raise ValueError("no free slot")
        self._trial = OneTrial(config, self.objective, self.device)
        self._config = config
        return 0

    def resize(self, capacity: int) -> None:
        if capacity != 1:
            raise ValueError(f"a lone trial trains in a batch of one, not {capacity}")

    def _end(self) -> tuple[Any, Any]:
        ended = (self._config, self._trial.result())
        self._config = self._trial = None
        return ended

    def run(self, steps: int) -> list[tuple[Any, Any]]:
        if self._trial is None or self._trial.run(steps):
            return []
        return [self._end()]

    def progress(self) -> list[tuple[Any, int, float]]:
        if self._trial is None:
            return []
        p = self._trial.progress
        return [(self._config, p.steps, self.objective.best_value(self._config, p.best_kept))]

    def move_into(self, batch: Any) -> Any:
        """Hand the trial over to `batch` (a BatchedTrainer: `adopt`), where it goes on;
        its config. Left here if the batch cannot take it."""
        batch.adopt(self._trial)
        config = self._config
        self._config = self._trial = None
        return config

    def stop(self, config: Any) -> Any:
        if self._trial is None or (config is not self._config and config != self._config):
            raise ValueError("no slot holds this trial")
        self._trial.prune()
        return self._end()[1]


def _fitting(n: int) -> int:
    """The smallest power of two that holds n trials."""
    return 1 << (n - 1).bit_length()


def choose_precision(
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


class BatchedExecutor:
    """Up to `capacity` trials in training at once, one batched trainer per group."""

    def __init__(self, capacity: int, device: str, tf32: str, tasks: list[Task]) -> None:
        for task in tasks:
            if not supports_batching(task):
                raise HpsearchError(f"--batch: task {task.name!r} trains one trial at a time")
        self.capacity = capacity
        self.device = device
        self.tf32 = tf32
        self._trainers: dict[Any, Batch] = {}
        self._tasks: dict[Any, Task] = {}  # the task of each group's trials
        self._precisions: dict[Any, str] = {}
        self._held: dict[int, tuple[Held, Batch]] = {}  # id(config) -> trial and its batch
        self._judged: dict[int, int] = {}  # id(config) -> checkpoints shown to the judge
        self._most: dict[int, int] = {}  # id(config) -> most steps it can have taken
        keep_freed_memory()

    @property
    def room(self) -> int:
        return self.capacity - len(self._held)

    def _alone_objective(self, task: Task) -> Any:
        """The objective a group's first trial trains alone with (`Alone`): on a CPU, a
        trained task's; None elsewhere (it starts the group's batch)."""
        if self.device.startswith("cuda") or not isinstance(task, TrainedTask):
            return None
        return task.objective

    def held(self) -> list[Held]:
        return [held for held, _ in self._held.values()]

    def submit(self, held: Held) -> None:
        task = held.task
        assert supports_batching(task)
        key = task.batch_key(held.config)
        trainer = self._trainers.get(key)
        alone = (ALONE, key)
        lone = self._trainers.get(alone)
        if lone is not None and not lone.occupied:  # its trial ended: not yet swept
            del self._trainers[alone], self._tasks[alone]
            lone = None
        objective = self._alone_objective(task) if trainer is None and lone is None else None
        if objective is not None:
            trainer = self._trainers[alone] = Alone(objective, self.device)
            self._tasks[alone] = task
        elif trainer is None:
            precision = choose_precision(
                task, held.config, self.device, self.tf32, self._precisions
            )
            trainer = task.batch(held.config, 1 if lone is None else 2, self.device, precision)
            if isinstance(lone, Alone):  # the group's lone trial joins its batch
                lone_config = lone.move_into(trainer)
                lone_held, _ = self._held[id(lone_config)]
                self._held[id(lone_config)] = (lone_held, trainer)
                del self._trainers[alone], self._tasks[alone]
            self._trainers[key] = trainer
            self._tasks[key] = task
        elif trainer.free == 0:
            trainer.resize(min(self.capacity, 2 * trainer.capacity))
        trainer.add(held.config)
        self._held[id(held.config)] = (held, trainer)
        self._judged[id(held.config)] = 0
        self._most[id(held.config)] = 0

    def _release(self, config: Any) -> Held:
        held, _ = self._held.pop(id(config))
        self._judged.pop(id(config), None)
        self._most.pop(id(config), None)
        return held

    def _checkpoints(self, trainer: Batch, every: int, judge: Judge) -> list[Outcome]:
        """Show the judge every trial of `trainer` that has passed a checkpoint since it was
        last shown; stop (and hand back, pruned) those it stops. Looks (a host sync on a GPU)
        only when one of them may have passed a checkpoint."""
        mine = [id(h.config) for h, t in self._held.values() if t is trainer]
        for key in mine:
            self._most[key] += CHUNK_STEPS
        if not any(self._most[key] // every > self._judged[key] for key in mine):
            return []
        pruned: list[Outcome] = []
        for config, steps, value in trainer.progress():
            done = steps // every
            if done <= self._judged[id(config)]:
                continue
            self._judged[id(config)] = done
            held, _ = self._held[id(config)]
            if not judge(held, done * every, value):
                result = trainer.stop(config)
                pruned.append(Ended(self._release(config), result, pruned=True))
        return pruned

    def advance(self, judge: Judge) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for key, trainer in list(self._trainers.items()):
            if trainer.occupied == 0:
                del self._trainers[key]
                continue
            try:
                if trainer.occupied <= trainer.capacity // 2:
                    trainer.resize(_fitting(trainer.occupied))
                ended = trainer.run(CHUNK_STEPS)
            except Exception as e:  # the whole batch is lost: each of its trials fails
                error = describe_error(e)
                lost = [h for h, t in self._held.values() if t is trainer]
                logger.error("a batch of %d trials failed: %s", len(lost), error)
                for held in lost:
                    outcomes.append(Failed(self._release(held.config), error))
                del self._trainers[key]
                continue
            for config, result in ended:
                pruned = bool(getattr(result, "pruned", False))
                outcomes.append(Ended(self._release(config), result, pruned=pruned))
            every = checkpoint_steps(self._tasks[key])
            if every is not None and trainer.occupied:
                outcomes += self._checkpoints(trainer, every, judge)
        return outcomes


# --batch auto on a CPU for studies of minibatch trials only: 16 minibatch trials (rnn, budget
# 1,000, batch 256) in one batch ran 3.4x the trial-steps per second of one at a time on one
# thread, 2 already 1.3x, and a batch of one 0.8x, which is why a group's first trial trains
# alone (docs/benchmarks.md, "Minibatch trials batched on a CPU"); K is shared by a search's
# groups (size classes, optimizers, ...), so it is set to fill several groups.
CPU_MINIBATCH_BATCH = 32


def minibatch_only(settings: Any) -> bool:
    """Whether every trial a study can ask for trains in minibatches: its space's batch_size
    (trained tasks) is an integer range, or a choice of numbers only."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from objectives.training.interface import FULL_BATCH

    dim = getattr(settings, "space", {}).get("batch_size")
    if isinstance(dim, IntDistribution):
        return True
    if isinstance(dim, CategoricalDistribution):
        return FULL_BATCH not in dim.choices
    return False


def auto_batch(tasks: list[tuple[Task, Any]], device: str) -> int:
    """K for `--batch auto`, given each study's task and settings. On a GPU, from its free
    memory (a quarter of it) and the largest trial the studies can ask for, at most 128. On
    a CPU, CPU_MINIBATCH_BATCH where every study trains minibatch trials only (a minibatch
    step of a small network is mostly per-step overhead, which a batch shares), and 1
    otherwise: a full-batch step is compute-bound there, and a whole search, whose trials
    spread over many groups, ran slower batched (figures: docs/benchmarks.md, "Batched
    trials on a CPU")."""
    if not all(supports_batching(task) for task, _ in tasks):
        return 1
    if device != "cuda":
        if tasks and all(minibatch_only(settings) for _, settings in tasks):
            return CPU_MINIBATCH_BATCH
        return 1
    import torch

    largest = 0
    for task, settings in tasks:
        assert supports_batching(task)
        for depth in settings.depths:
            largest = max(largest, task.batch_bytes(settings.largest_config(depth)))
    free, _ = torch.cuda.mem_get_info()
    k = int(0.25 * free // max(largest, 1))
    return max(1, min(MAX_AUTO_BATCH, k))
