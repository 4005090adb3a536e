"""Training for the capacity task: memorise a random data set, score it in bits.

Runs without Optuna: it takes a frozen `CapacityConfig` and returns a `CapacityResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from objectives.capacity import CHECKPOINT_STEPS, CapacityConfig
from objectives.cells import Params, forward, init_params, num_params
from objectives.rules import (
    HOST,
    CapacityResult,
    Progress,
    advance,
    best_bits,
    lr_factor,
    make_dataset,
    observe,
    prune,
)

__all__ = [
    "CHECKPOINT_STEPS",
    "CapacityResult",
    "Checkpoint",
    "count_errors",
    "make_dataset",
    "make_optimizer",
    "train_capacity",
]

# A checkpoint: called with (optimizer steps taken, best bits so far); False ends the trial.
Checkpoint = Callable[[int, float], bool]


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


def count_errors(logits: Tensor, y: Tensor) -> int:
    return int(((logits > 0) != (y > 0.5)).sum().item())


def _move(params: Params, device: torch.device) -> Params:
    return {k: v.to(device).requires_grad_(True) for k, v in params.items()}


def train_capacity(
    config: CapacityConfig,
    device: str = "cpu",
    checkpoint: Checkpoint | None = None,
    every: int = CHECKPOINT_STEPS,
) -> CapacityResult:
    """Full-batch training on the memorised set until neither score nor loss has improved for
    `patience` steps, every sample is right, or `max_steps` is reached.

    The rules (learning-rate schedule, stopping, the score kept, divergence) are
    `objectives.rules`', shared with `objectives.batched.BatchedTrainer`; here they run on
    python scalars, one host sync a step, which on a CPU is cheaper than their K = 1 tensor
    form (see benchmarks/batched_throughput.py --k1).

    `checkpoint`, for a pruner: called as `checkpoint(steps, best_bits)` after every `every`
    optimizer steps while the trial still has steps to go (steps < max_steps), with the best
    bits so far. If it returns False, training stops at once; the result has `pruned` True
    and the best bits so far.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    start = time.perf_counter()
    dev = torch.device(device)
    x, y = make_dataset(config.b, config.n_in, config.seed)
    x, y = x.to(dev), y.to(dev)
    init_generator = torch.Generator().manual_seed(config.seed + 1)
    params = _move(
        init_params(
            config.arch,
            config.n_in,
            config.hidden_size,
            config.depth,
            config.init_scale,
            init_generator,
        ),
        dev,
    )
    count = num_params(params)
    leaves = list(params.values())
    optimizer = make_optimizer(config.optimizer, leaves, config.learning_rate)

    def logits_now() -> Tensor:
        return forward(
            config.arch,
            params,
            x,
            depth=config.depth,
            unroll=config.unroll,
            activation=config.activation,
            gate_bias=config.gate_bias,
        )

    progress = Progress.start(config)
    while progress.active:
        logits = logits_now()
        loss = F.binary_cross_entropy_with_logits(logits, y)
        train = observe(progress, loss.item(), count_errors(logits.detach(), y), HOST)
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
            if not checkpoint(steps, best_bits(config.b, progress.best_errors)):
                prune(progress, True, HOST)

    return CapacityResult.of(
        config,
        progress,
        num_params=count,
        seconds=time.perf_counter() - start,
        device=str(dev),
    )
