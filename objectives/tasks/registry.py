"""The one explicit registry of tasks: name -> factory. Factories import inside, so looking a
task up (as `hpsearch export` and `status` never need to) costs nothing, and running one
imports torch only then."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from objectives.training.interface import CHECKPOINT_STEPS, Checkpoint, Objective

if TYPE_CHECKING:
    import optuna


class TrialResult(Protocol):
    @property
    def value(self) -> float: ...

    @property
    def diverged(self) -> bool: ...

    def to_attrs(self) -> dict[str, Any]: ...


class StudySettings(Protocol):
    @property
    def name(self) -> str: ...

    def to_attrs(self) -> dict[str, Any]: ...


class Task(Protocol):
    """What the service needs from a task."""

    name: str

    def study_from_attrs(self, attrs: Mapping[str, Any]) -> Any: ...

    def suggest(self, trial: optuna.trial.BaseTrial, study: Any, seed: int) -> Any: ...

    def run(
        self,
        config: Any,
        device: str,
        checkpoint: Checkpoint | None = None,
        every: int | None = None,
    ) -> TrialResult:
        """Train one trial. `checkpoint`, if given, is called every `every` steps (None: the
        task's default) and may end the trial early; a task without checkpoints ignores
        both."""
        ...


class TrainedTask:
    """What every trained task (its trials trained by objectives.training.trainer and
    objectives.training.batched, with the task's pieces in its objective,
    objectives/tasks/*/objective.py) does the same way: run, batches, precision probes,
    checkpoints. Here a config meets its objective and the trainer: training knows no task.
    Subclasses name their objective, read their studies and suggest their configs."""

    name: str

    @property
    def objective(self) -> Objective:
        """The task's objective (imported only when asked: it imports torch)."""
        raise NotImplementedError

    @property
    def checkpoint_steps(self) -> int:
        return CHECKPOINT_STEPS

    def run(
        self,
        config: Any,
        device: str,
        checkpoint: Checkpoint | None = None,
        every: int | None = None,
    ) -> TrialResult:
        """`objectives.training.trainer.train`: `checkpoint(steps, best_value)` every `every`
        optimizer steps (None: its CHECKPOINT_STEPS); False ends the trial, with `pruned`
        True in its result."""
        from objectives.training.trainer import train

        result: TrialResult = train(
            config,
            self.objective,
            device,
            checkpoint=checkpoint,
            every=every or self.checkpoint_steps,
        )
        return result

    def batch_key(self, config: Any) -> Any:
        """Trials with equal keys are trained together in one batch."""
        from objectives.training.batched import batch_group

        return batch_group(config, self.objective)

    def batch(self, config: Any, capacity: int, device: str, precision: str = "ieee") -> Batch:
        """A batch for trials of `config`'s key."""
        from objectives.training.batched import BatchedTrainer, shape_key

        return BatchedTrainer(
            shape_key(config, self.objective), capacity, device, precision=precision
        )

    def probe_precision(self, config: Any, device: str, precision: str) -> PrecisionVerdict:
        """Whether trials like `config` give the same results with matmuls at `precision`."""
        from objectives.training.precision import probe, probe_trials

        return probe(probe_trials(config), self.objective, device, precision)

    def batch_bytes(self, config: Any) -> int:
        from objectives.training.batched import bytes_per_trial

        return bytes_per_trial(config, self.objective)


class CapacityTask(TrainedTask):
    """The per-parameter capacity task of Collins et al. (2017)."""

    name = "capacity"

    @property
    def objective(self) -> Objective:
        from objectives.tasks.capacity.objective import OBJECTIVE

        return OBJECTIVE

    def study_from_attrs(self, attrs: Mapping[str, Any]) -> Any:
        from objectives.tasks.capacity.study import CapacityStudy

        return CapacityStudy.from_attrs(attrs)

    def suggest(self, trial: optuna.trial.BaseTrial, study: Any, seed: int) -> Any:
        from objectives.tasks.capacity.study import suggest_config

        return suggest_config(trial, study, seed)


class PerUnitTask(TrainedTask):
    """The per-unit capacity task (memory throughput) of Collins et al. (2017): reconstruct a
    random input presented T steps before, scored on held-out inputs."""

    name = "per-unit"

    @property
    def objective(self) -> Objective:
        from objectives.tasks.per_unit.objective import OBJECTIVE

        return OBJECTIVE

    def study_from_attrs(self, attrs: Mapping[str, Any]) -> Any:
        from objectives.tasks.per_unit.study import PerUnitStudy

        return PerUnitStudy.from_attrs(attrs)

    def suggest(self, trial: optuna.trial.BaseTrial, study: Any, seed: int) -> Any:
        from objectives.tasks.per_unit.study import suggest_config

        return suggest_config(trial, study, seed)


class PrecisionVerdict(Protocol):
    """What a precision probe found (objectives.training.precision.ProbeResult)."""

    @property
    def within_tolerance(self) -> bool: ...

    def describe(self) -> str: ...


class Batch(Protocol):
    """Trials of one shape in training together (objectives.training.batched.BatchedTrainer)."""

    capacity: int

    @property
    def free(self) -> int: ...

    @property
    def occupied(self) -> int: ...

    def add(self, config: Any) -> int: ...

    def resize(self, capacity: int) -> None: ...

    def run(self, steps: int) -> list[tuple[Any, Any]]: ...

    def progress(self) -> list[tuple[Any, int, float]]:
        """(config, steps taken, best value so far) of every trial held (between runs)."""
        ...

    def stop(self, config: Any) -> Any:
        """End that trial now; its result (with `pruned` True), its slot freed."""
        ...


class BatchingTask(Task, Protocol):
    """A task whose trials of one shape can be trained together (see
    objectives.training.batched)."""

    def batch_key(self, config: Any) -> Any: ...

    def batch(self, config: Any, capacity: int, device: str, precision: str = "ieee") -> Batch: ...

    def probe_precision(self, config: Any, device: str, precision: str) -> PrecisionVerdict: ...

    def batch_bytes(self, config: Any) -> int: ...


class CheckpointingTask(Task, Protocol):
    """A task whose trials can be shown to a `checkpoint` every `checkpoint_steps` steps with
    their best value so far (`run`), and stopped there (pruned) when it says False."""

    @property
    def checkpoint_steps(self) -> int: ...


def supports_checkpoints(task: Task) -> TypeGuard[CheckpointingTask]:
    steps = getattr(task, "checkpoint_steps", None)
    return isinstance(steps, int) and steps > 0


def supports_batching(task: Task) -> TypeGuard[BatchingTask]:
    return all(hasattr(task, name) for name in ("batch_key", "batch", "batch_bytes"))


class CalibrationTask:
    """A known function in place of training: measures the service itself."""

    name = "calibration"

    def study_from_attrs(self, attrs: Mapping[str, Any]) -> Any:
        from objectives.tasks.calibration.study import CalibrationStudy

        return CalibrationStudy.from_attrs(attrs)

    def suggest(self, trial: optuna.trial.BaseTrial, study: Any, seed: int) -> Any:
        from objectives.tasks.calibration.study import suggest_config

        return suggest_config(trial, study, seed)

    # A calibration "step" is a few milliseconds of waiting (calibration.STEP_SECONDS).
    checkpoint_steps = 10

    def run(
        self,
        config: Any,
        device: str,
        checkpoint: Checkpoint | None = None,
        every: int | None = None,
    ) -> TrialResult:
        """`objectives.tasks.calibration.study.run`: its value shown to `checkpoint` every
        `every` steps (None: checkpoint_steps); False ends it, with `pruned` True in its
        result."""
        from objectives.tasks.calibration.study import run

        return run(config, checkpoint, every or self.checkpoint_steps)

    def batch_key(self, config: Any) -> Any:
        return self.name  # every calibration trial can wait beside every other

    def batch(self, config: Any, capacity: int, device: str, precision: str = "ieee") -> Batch:
        from objectives.tasks.calibration.study import CalibrationBatch

        return CalibrationBatch(capacity)

    def probe_precision(self, config: Any, device: str, precision: str) -> PrecisionVerdict:
        from objectives.tasks.calibration.study import NoMatmuls

        return NoMatmuls()

    def batch_bytes(self, config: Any) -> int:
        return 1


TASKS: dict[str, Callable[[], Task]] = {
    "capacity": CapacityTask,
    "per-unit": PerUnitTask,
    "calibration": CalibrationTask,
}


def get_task(name: str) -> Task:
    try:
        factory = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}") from None
    return factory()
