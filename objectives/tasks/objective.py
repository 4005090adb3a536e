"""What a trained task brings to the shared trainers (`objectives.training.trainer.train` and
`objectives.training.batched.BatchedTrainer`): its data sets, its readout width, its loss,
what a step scores, where a trial's score starts, and the record a trial ends with. Everything
else (the cells, the optimizers, the rules of `objectives.training.rules`) is the same for
every task.

Two objectives:
- capacity (objectives.tasks.capacity.study): random bits, one logit, binary cross-entropy;
  scored on the memorised set itself by its error count (bits, objectives.tasks.capacity.metric).
- per-unit (objectives.tasks.per_unit.study): Gaussian inputs to give back, n_in outputs,
  mean squared error; scored on a held-out set by the fraction of its variance reconstructed.

Shapes: `out` is the network's output (..., b, n_out) (`objectives.networks.cells.outputs`); targets
are (..., b, *target_shape). One trial (no model axis) passes `mask` None; a batch passes
(K, b) masks of its real (not padding) samples and (K,) rows `count` (training samples) and
`norm` (the score's per-trial constant, `Data.norm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from objectives.tasks.capacity.study import TASK as CAPACITY_TASK
from objectives.tasks.capacity.study import CapacityConfig
from objectives.tasks.per_unit.study import RECONSTRUCTED, SCORE_MARGIN, PerUnitConfig
from objectives.tasks.per_unit.study import TASK as PER_UNIT_TASK
from objectives.training.rules import (
    CapacityResult,
    PerUnitResult,
    Progress,
    Start,
    best_bits,
    capacity_score,
    capacity_start,
    make_dataset,
)


@dataclass(frozen=True)
class Data:
    """One trial's data: training inputs (b, n_in) and targets (b, *target_shape), the
    held-out ones its score is measured on (None: scored on the training set), and `norm`,
    the constant its score needs (capacity: b; per-unit: the held-out sum of squares)."""

    x: Tensor
    y: Tensor
    x_eval: Tensor | None
    y_eval: Tensor | None
    norm: float


class Objective(Protocol):
    task: str
    held_out: bool  # scored on a held-out set (an extra forward pass a step, no gradient)

    def n_out(self, n_in: int) -> int:
        """The readout's width for inputs of n_in numbers."""
        ...

    def target_shape(self, n_in: int) -> tuple[int, ...]:
        """The shape of one sample's target."""
        ...

    def sizes(self, config: Any) -> tuple[int, int]:
        """(training samples, held-out samples)."""
        ...

    def data(self, config: Any) -> Data: ...

    def start(self, config: Any) -> Start: ...

    def loss(self, out: Tensor, y: Tensor, mask: Tensor | None, count: Tensor | None) -> Tensor:
        """The training loss: a scalar (mask None), or each model's (K,)."""
        ...

    def score(
        self, out: Tensor, y: Tensor, mask: Tensor | None, norm: Tensor | float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(score, kept, done) of the outputs on the set scored (see objectives.training.rules)."""
        ...

    def best_value(self, config: Any, kept: float) -> float:
        """The trial's value at its best score so far (what a pruner is shown)."""
        ...

    def result(
        self, config: Any, progress: Progress, *, num_params: int, seconds: float, device: str
    ) -> Any: ...

    def gap(self, full: Any, low: Any) -> float:
        """How far apart two results of one trial are (a precision probe's measure)."""
        ...


class CapacityObjective:
    task = CAPACITY_TASK
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
        progress: Progress,
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


def reconstruction_inputs(
    samples: int, eval_samples: int, n_in: int, seed: int
) -> tuple[Tensor, Tensor]:
    """(training inputs (samples, n_in), held-out inputs (eval_samples, n_in)), every number
    standard Gaussian and independent. The held-out set is drawn first, so that it depends
    only on the seed and its own size, not on the training set's."""
    generator = torch.Generator().manual_seed(seed)
    held_out = torch.randn(eval_samples, n_in, generator=generator)
    return torch.randn(samples, n_in, generator=generator), held_out


def sum_of_squares(x: Tensor) -> float:
    """sum((x - mean(x))^2), each column's mean over the rows: the variance a reconstruction
    is measured against (objectives.tasks.per_unit.study)."""
    centred = x.double() - x.double().mean(0)
    return float(centred.square().sum())


class PerUnitObjective:
    task = PER_UNIT_TASK
    held_out = True

    def n_out(self, n_in: int) -> int:
        return n_in

    def target_shape(self, n_in: int) -> tuple[int, ...]:
        return (n_in,)

    def sizes(self, config: PerUnitConfig) -> tuple[int, int]:
        return config.samples, config.eval_samples

    def data(self, config: PerUnitConfig) -> Data:
        x, held_out = reconstruction_inputs(
            config.samples, config.eval_samples, config.n_in, config.seed
        )
        return Data(x, x, held_out, held_out, sum_of_squares(held_out))

    def start(self, config: PerUnitConfig) -> Start:
        return Start(score=0.0, kept=0.0, margin=SCORE_MARGIN)

    def loss(self, out: Tensor, y: Tensor, mask: Tensor | None, count: Tensor | None) -> Tensor:
        if mask is None:
            return F.mse_loss(out, y)
        assert count is not None
        squares = torch.where(mask.unsqueeze(-1), (out - y).square(), 0)
        return squares.sum((-1, -2)) / (count.clamp(min=1) * out.shape[-1])

    def score(
        self, out: Tensor, y: Tensor, mask: Tensor | None, norm: Tensor | float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The fraction of the held-out variance reconstructed (clipped below at 0; NaN for
        outputs that are not finite, which is never better), kept as it is; done once it
        reaches objectives.tasks.per_unit.study.RECONSTRUCTED."""
        error = out - y
        if mask is not None:
            error = torch.where(mask.unsqueeze(-1), error, 0)
        fraction = 1.0 - error.double().square().sum((-1, -2)) / norm
        score = fraction.clamp(min=0.0)
        return score, score, fraction >= RECONSTRUCTED

    def best_value(self, config: PerUnitConfig, kept: float) -> float:
        return float(kept)

    def result(
        self,
        config: PerUnitConfig,
        progress: Progress,
        *,
        num_params: int,
        seconds: float,
        device: str,
    ) -> PerUnitResult:
        return PerUnitResult.of(
            config, progress, num_params=num_params, seconds=seconds, device=device
        )

    def gap(self, full: PerUnitResult, low: PerUnitResult) -> float:
        """The difference of the fractions reconstructed."""
        return abs(full.fraction_reconstructed - low.fraction_reconstructed)


OBJECTIVES: dict[str, Objective] = {
    CAPACITY_TASK: CapacityObjective(),
    PER_UNIT_TASK: PerUnitObjective(),
}


def objective_of(config: Any) -> Objective:
    """The objective of a config (by its `task`), or of a task name."""
    task = config if isinstance(config, str) else config.task
    try:
        return OBJECTIVES[task]
    except KeyError:
        raise ValueError(f"no trained task {task!r}; known: {', '.join(OBJECTIVES)}") from None
