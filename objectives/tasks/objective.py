"""A trained task's config meets its objective: the objective of a config (by its `task`,
through objectives.tasks.registry), and training's calls with it filled in, for callers that
hold a config only (tests, benchmarks).

Training knows no task (objectives.training.interface): its trainers are handed a config and
the task's objective. The objectives themselves are the tasks' own
(objectives/tasks/capacity/objective.py, objectives/tasks/per_unit/objective.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from objectives.tasks.registry import TASKS, TrainedTask, get_task
from objectives.training import batched, precision, trainer
from objectives.training.interface import CHECKPOINT_STEPS, Checkpoint, Objective, TrainingConfig


def trained_tasks() -> list[str]:
    """The names of the tasks whose trials the shared trainers train."""
    return [name for name in TASKS if isinstance(get_task(name), TrainedTask)]


def objective_of(config: TrainingConfig | str) -> Objective:
    """The objective of a config (by its `task`), or of a task name."""
    name = config if isinstance(config, str) else config.task
    task = get_task(name) if name in TASKS else None
    if not isinstance(task, TrainedTask):
        known = ", ".join(trained_tasks())
        raise ValueError(f"no trained task {name!r}; known: {known}")
    return task.objective


def train(
    config: TrainingConfig,
    device: str = "cpu",
    checkpoint: Checkpoint | None = None,
    every: int = CHECKPOINT_STEPS,
) -> Any:
    """`objectives.training.trainer.train` with the config's objective."""
    return trainer.train(config, objective_of(config), device, checkpoint, every)


def shape_key(config: TrainingConfig) -> batched.NetworkShape:
    """`objectives.training.batched.shape_key` with the config's objective."""
    return batched.shape_key(config, objective_of(config))


def batch_group(config: TrainingConfig) -> tuple[batched.NetworkShape, int]:
    """`objectives.training.batched.batch_group` with the config's objective."""
    return batched.batch_group(config, objective_of(config))


def bytes_per_trial(config: TrainingConfig) -> int:
    """`objectives.training.batched.bytes_per_trial` with the config's objective."""
    return batched.bytes_per_trial(config, objective_of(config))


def probe(
    configs: Sequence[Any],
    device: str,
    matmuls: str,
    *,
    tolerance: float = precision.TOLERANCE,
) -> precision.ProbeResult:
    """`objectives.training.precision.probe` with the configs' objective."""
    return precision.probe(configs, objective_of(configs[0]), device, matmuls, tolerance=tolerance)
