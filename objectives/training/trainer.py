"""Training of one trial, for every trained task (the capacity task: memorise a random data
set, score it in bits; the per-unit task: carry an input through T steps, score the
held-out fraction reconstructed).

Runs without Optuna and knows no task: it takes a frozen config
(`objectives.training.interface.TrainingConfig`) and the task's objective
(`objectives.training.interface.Objective`) from the caller, and returns the result record
the objective builds.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from objectives.networks.cells import Params, init_params, num_params, outputs
from objectives.training.interface import (
    CHECKPOINT_STEPS,
    Checkpoint,
    Objective,
    TrainingConfig,
)
from objectives.training.rules import HOST, Progress, advance, lr_factor, observe, prune

__all__ = [
    "CHECKPOINT_STEPS",
    "Checkpoint",
    "make_optimizer",
    "train",
]


def make_optimizer(name: str, params: list[Tensor], learning_rate: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=learning_rate)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=learning_rate)
    if name == "sgd":
        return torch.optim.SGD(params, lr=learning_rate, momentum=0.9, nesterov=True)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=learning_rate)
    raise ValueError(f"unknown optimizer {name!r}")


def _move(params: Params, device: torch.device) -> Params:
    return {k: v.to(device).requires_grad_(True) for k, v in params.items()}


def train(
    config: TrainingConfig,
    objective: Objective,
    device: str = "cpu",
    checkpoint: Checkpoint | None = None,
    every: int = CHECKPOINT_STEPS,
) -> Any:
    """Full-batch training of one trial of any trained task (its pieces: `objective`, the
    task's) until neither score nor loss has improved for `patience` steps, the task says it
    is done, or `max_steps` is reached; the result record its objective builds.

    The rules (learning-rate schedule, stopping, the score kept, divergence) are
    `objectives.training.rules`', shared with `objectives.training.batched.BatchedTrainer`;
    here they run on python scalars, one host sync a step, which on a CPU is cheaper than
    their K = 1 tensor form (figures: docs/benchmarks.md, "One trial at a time against a batch
    of one").

    `checkpoint`, for a pruner: called as `checkpoint(steps, best_value)` after every `every`
    optimizer steps while the trial still has steps to go (steps < max_steps), with the best
    value so far (capacity: bits). If it returns False, training stops at once; the result
    has `pruned` True and the best value so far.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    start = time.perf_counter()
    dev = torch.device(device)
    data = objective.data(config)
    x, y = data.x.to(dev), data.y.to(dev)
    if data.x_eval is None or data.y_eval is None:
        x_eval, y_eval = x, y
    else:
        x_eval, y_eval = data.x_eval.to(dev), data.y_eval.to(dev)
    init_generator = torch.Generator().manual_seed(config.seed + 1)
    params = _move(
        init_params(
            config.arch,
            config.n_in,
            config.hidden_size,
            config.depth,
            config.init_scale,
            init_generator,
            n_out=objective.n_out(config.n_in),
            scheme=config.init_scheme,
        ),
        dev,
    )
    count = num_params(params)
    leaves = list(params.values())
    optimizer = make_optimizer(config.optimizer, leaves, config.learning_rate)

    def outputs_of(inputs: Tensor) -> Tensor:
        return outputs(
            config.arch,
            params,
            inputs,
            depth=config.depth,
            unroll=config.unroll,
            activation=config.activation,
            gate_bias=config.gate_bias,
        )

    norm = int(data.norm) if data.x_eval is None else data.norm  # capacity: b, exactly
    progress = Progress.start(config, objective.start(config))
    while progress.active:
        out = outputs_of(x)
        loss = objective.loss(out, y, None, None)
        with torch.no_grad():
            scored = outputs_of(x_eval) if objective.held_out else out
            score, kept, done = objective.score(scored, y_eval, None, norm)
        train = observe(progress, loss.item(), score.item(), kept.item(), bool(done), HOST)
        if not train:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(leaves, config.grad_clip)
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * lr_factor(progress, HOST)
        optimizer.step()
        advance(progress, train)
        steps = progress.steps
        if checkpoint is not None and steps % every == 0 and steps < config.max_steps:
            if not checkpoint(steps, objective.best_value(config, progress.best_kept)):
                prune(progress, True, HOST)

    return objective.result(
        config,
        progress,
        num_params=count,
        seconds=time.perf_counter() - start,
        device=str(dev),
    )
