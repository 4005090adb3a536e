"""What the capacity task brings to the shared trainers (`objectives.training.interface.Objective`):
random bits to memorise, one logit, binary cross-entropy; scored on the memorised set itself
by its error count, which the result record turns into bits
(`objectives.tasks.capacity.metric`; docs/tasks.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from objectives.tasks.capacity.metric import bits_per_param, mutual_information_bits
from objectives.tasks.capacity.study import TASK, CapacityConfig
from objectives.training.interface import CHECKPOINT_STEPS, Checkpoint, Data, Outcome, Start
from objectives.training.trainer import train


def make_dataset(b: int, n_in: int, seed: int) -> tuple[Tensor, Tensor]:
    """Random inputs in {0,1}^(b x n_in) and labels in {0,1}^b, every bit uniform."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (b, n_in), generator=generator).float()
    y = torch.randint(0, 2, (b,), generator=generator).float()
    return x, y


def count_errors(logits: Tensor, y: Tensor) -> int:
    return int(((logits > 0) != (y > 0.5)).sum().item())


def capacity_score(errors: Any, b: Any) -> tuple[Any, Any, Any]:
    """What a capacity step scores (score, kept, done): the distance of its error count from
    chance, the count, and whether every sample is right. Scalars or tensors."""
    return abs(2 * errors - b), errors, errors == 0


def capacity_start(config: CapacityConfig) -> Start:
    """Chance: b // 2 errors, distance 0 (b odd: a little above chance, as it must be)."""
    return Start(score=0, kept=config.b // 2)


def best_bits(b: int, best_errors: int) -> float:
    """The bits of a trial's best score so far."""
    return mutual_information_bits(b, best_errors)


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
    pruned: bool = False  # ended early from outside (a pruner); bits are its best so far

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
        pruned: bool = False,
    ) -> CapacityResult:
        """The record of a finished run from its best error count (a run that diverged or
        was pruned keeps the best score it reached)."""
        bits = mutual_information_bits(config.b, errors)
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
            pruned=pruned,
        )

    @classmethod
    def of(
        cls,
        config: CapacityConfig,
        progress: Outcome,
        *,
        num_params: int,
        seconds: float,
        device: str,
    ) -> CapacityResult:
        """The record of one trial's ended progress (python scalars)."""
        return cls.scored(
            config,
            errors=int(progress.best_kept),
            num_params=num_params,
            steps=int(progress.steps),
            seconds=seconds,
            device=device,
            diverged=bool(progress.diverged),
            final_loss=float(progress.last_loss),
            pruned=bool(progress.pruned),
        )

    @property
    def value(self) -> float:
        """What the study maximises: the bits stored."""
        return self.bits

    def to_attrs(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CapacityObjective:
    """The capacity task's objective. Frozen and without fields: every instance is equal, so
    a batch key that holds one (`objectives.training.batched.NetworkShape`) compares by task."""

    task = TASK
    held_out = False

    def n_out(self, n_in: int) -> int:
        return 1

    def target_shape(self, n_in: int) -> tuple[int, ...]:
        return ()

    def sizes(self, config: CapacityConfig) -> tuple[int, int]:
        return config.b, 0

    def data(self, config: CapacityConfig) -> Data:
        x, y = make_dataset(config.b, config.n_in, config.seed)
        return Data(x, y, None, None, float(config.b))

    def start(self, config: CapacityConfig) -> Start:
        return capacity_start(config)

    def loss(self, out: Tensor, y: Tensor, mask: Tensor | None, count: Tensor | None) -> Tensor:
        logits = out.squeeze(-1)
        if mask is None:
            return F.binary_cross_entropy_with_logits(logits, y)
        assert count is not None
        bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return torch.where(mask, bce, 0).sum(-1) / count.clamp(min=1)

    def score(
        self, out: Tensor, y: Tensor, mask: Tensor | None, norm: Tensor | float
    ) -> tuple[Tensor, Tensor, Tensor]:
        wrong = (out.squeeze(-1) > 0) != (y > 0.5)
        if mask is not None:
            wrong = wrong & mask
        score, kept, done = capacity_score(wrong.sum(-1), norm)
        return score, kept, done

    def best_value(self, config: CapacityConfig, kept: float) -> float:
        return best_bits(config.b, int(kept))

    def result(
        self,
        config: CapacityConfig,
        progress: Outcome,
        *,
        num_params: int,
        seconds: float,
        device: str,
    ) -> CapacityResult:
        return CapacityResult.of(
            config, progress, num_params=num_params, seconds=seconds, device=device
        )

    def gap(self, full: CapacityResult, low: CapacityResult) -> float:
        """The difference of the error counts, as a fraction of b."""
        return abs(full.errors - low.errors) / full.b


OBJECTIVE = CapacityObjective()


def train_capacity(
    config: CapacityConfig,
    device: str = "cpu",
    checkpoint: Checkpoint | None = None,
    every: int = CHECKPOINT_STEPS,
) -> CapacityResult:
    """`objectives.training.trainer.train` with the capacity objective: full-batch training on
    the memorised set, until every sample is right, or as `train` says;
    `checkpoint(steps, best_bits)`."""
    result = train(config, OBJECTIVE, device, checkpoint, every)
    assert isinstance(result, CapacityResult)
    return result
