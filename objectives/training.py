"""Training for the capacity task: memorise a random data set, score it in bits.

Runs without Optuna: it takes a frozen `CapacityConfig` and returns a `CapacityResult`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from objectives.capacity import CapacityConfig
from objectives.cells import Params, forward, init_params, num_params
from objectives.metric import bits_per_param, mutual_information_bits


@dataclass(frozen=True)
class CapacityResult:
    bits: float
    bits_per_param: float
    num_params: int
    hidden_size: int
    depth: int
    b: int
    errors: int
    error_fraction: float
    steps: int
    seconds: float
    device: str
    diverged: bool
    final_loss: float

    @classmethod
    def scored(
        cls,
        config: CapacityConfig,
        *,
        errors: int,
        num_params: int,
        steps: int,
        seconds: float,
        device: str,
        diverged: bool,
        final_loss: float,
    ) -> CapacityResult:
        """The record of a finished run from its best error count; a diverged run scores 0
        bits (chance: b // 2 errors)."""
        if diverged:
            errors = config.b // 2
        bits = 0.0 if diverged else mutual_information_bits(config.b, errors)
        return cls(
            bits=bits,
            bits_per_param=bits_per_param(bits, num_params),
            num_params=num_params,
            hidden_size=config.hidden_size,
            depth=config.depth,
            b=config.b,
            errors=errors,
            error_fraction=errors / config.b,
            steps=steps,
            seconds=seconds,
            device=device,
            diverged=diverged,
            final_loss=final_loss,
        )

    @property
    def value(self) -> float:
        """What the study maximises: the bits stored."""
        return self.bits

    def to_attrs(self) -> dict[str, Any]:
        return asdict(self)


def make_dataset(b: int, n_in: int, seed: int) -> tuple[Tensor, Tensor]:
    """Random inputs in {0,1}^(b x n_in) and labels in {0,1}^b, every bit uniform."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (b, n_in), generator=generator).float()
    y = torch.randint(0, 2, (b,), generator=generator).float()
    return x, y


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


def train_capacity(config: CapacityConfig, device: str = "cpu") -> CapacityResult:
    """Full-batch training on the memorised set until the score stops improving for
    `patience` steps, every sample is right, or `max_steps` is reached.

    The score is the best mutual information seen over training (each measured on the
    weights of that step). A loss that turns NaN or inf ends the run with 0 bits.
    """
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

    best_bits = 0.0
    best_errors = config.b // 2
    since_best = 0
    steps = 0
    diverged = False
    loss_value = math.nan
    while True:
        logits = logits_now()
        loss = F.binary_cross_entropy_with_logits(logits, y)
        loss_value = float(loss.item())
        if not math.isfinite(loss_value):
            diverged = True
            break
        errors = count_errors(logits.detach(), y)
        bits = mutual_information_bits(config.b, errors)
        if bits > best_bits:
            best_bits, best_errors, since_best = bits, errors, 0
        else:
            since_best += 1
        if errors == 0 or since_best >= config.patience or steps >= config.max_steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(leaves, config.grad_clip)
        optimizer.step()
        steps += 1

    return CapacityResult.scored(
        config,
        errors=best_errors,
        num_params=count,
        steps=steps,
        seconds=time.perf_counter() - start,
        device=str(dev),
        diverged=diverged,
        final_loss=loss_value,
    )
