"""What the per-unit task brings to the shared trainers (`objectives.training.interface.Objective`):
random inputs of the study's distribution to give back, n_in outputs, mean squared error; scored
on a held-out set by the fraction of its variance reconstructed (objectives.tasks.per_unit.study;
docs/tasks.md). Both trainers, one at a time and batched, take their data from `data` here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from objectives.tasks.per_unit.study import RECONSTRUCTED, SCORE_MARGIN, TASK, PerUnitConfig
from objectives.training.interface import CHECKPOINT_STEPS, Checkpoint, Data, Outcome, Start
from objectives.training.trainer import train

# Half the width of the uniform inputs: uniform on [-a, a] has variance a^2 / 3, so a = sqrt(3)
# gives variance 1, as the Gaussian inputs have.
UNIFORM_HALF_WIDTH = math.sqrt(3.0)


def _draw(rows: int, n_in: int, inputs: str, generator: torch.Generator) -> Tensor:
    if inputs == "gaussian":
        return torch.randn(rows, n_in, generator=generator)
    if inputs == "uniform":
        unit = torch.rand(rows, n_in, generator=generator)  # [0, 1)
        return (2.0 * unit - 1.0) * UNIFORM_HALF_WIDTH
    raise ValueError(f"inputs must be uniform or gaussian, got {inputs!r}")


def reconstruction_inputs(
    samples: int, eval_samples: int, n_in: int, seed: int, *, inputs: str
) -> tuple[Tensor, Tensor]:
    """(training inputs (samples, n_in), held-out inputs (eval_samples, n_in)), every number
    independent, of mean 0 and variance 1: uniform on [-sqrt(3), sqrt(3)] or standard
    Gaussian (`inputs`, objectives.tasks.per_unit.study). The held-out set is drawn first, so
    that it depends only on the seed and its own size, not on the training set's; the
    Gaussian draws are those of studies stored before `inputs` existed, number for number."""
    generator = torch.Generator().manual_seed(seed)
    held_out = _draw(eval_samples, n_in, inputs, generator)
    return _draw(samples, n_in, inputs, generator), held_out


def sum_of_squares(x: Tensor) -> float:
    """sum((x - mean(x))^2), each column's mean over the rows: the variance a reconstruction
    is measured against (objectives.tasks.per_unit.study)."""
    centred = x.double() - x.double().mean(0)
    return float(centred.square().sum())


@dataclass(frozen=True)
class PerUnitResult:
    """The record of a per-unit trial: the best held-out fraction reconstructed it reached
    (objectives.tasks.per_unit.study), and the numbers of its input that this amounts to."""

    fraction_reconstructed: float
    numbers_stored: float
    num_params: int
    hidden_size: int
    depth: int
    n_in: int
    samples: int
    eval_samples: int
    steps: int
    seconds: float
    device: str
    diverged: bool
    final_loss: float  # the training set's mean squared error at the last step observed
    pruned: bool = False  # ended early from outside (a pruner); its best so far

    @classmethod
    def of(
        cls,
        config: PerUnitConfig,
        progress: Outcome,
        *,
        num_params: int,
        seconds: float,
        device: str,
    ) -> PerUnitResult:
        """The record of one trial's ended progress (python scalars)."""
        fraction = float(progress.best_kept)
        return cls(
            fraction_reconstructed=fraction,
            numbers_stored=fraction * config.n_in,
            num_params=num_params,
            hidden_size=config.hidden_size,
            depth=config.depth,
            n_in=config.n_in,
            samples=config.samples,
            eval_samples=config.eval_samples,
            steps=int(progress.steps),
            seconds=seconds,
            device=device,
            diverged=bool(progress.diverged),
            final_loss=float(progress.last_loss),
            pruned=bool(progress.pruned),
        )

    @property
    def value(self) -> float:
        """What the study maximises: the fraction of the input variance reconstructed."""
        return self.fraction_reconstructed

    def to_attrs(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PerUnitObjective:
    """The per-unit task's objective. Frozen and without fields: every instance is equal, so
    a batch key that holds one (`objectives.training.batched.NetworkShape`) compares by task."""

    task = TASK
    held_out = True

    def n_out(self, n_in: int) -> int:
        return n_in

    def target_shape(self, n_in: int) -> tuple[int, ...]:
        return (n_in,)

    def sizes(self, config: PerUnitConfig) -> tuple[int, int]:
        return config.samples, config.eval_samples

    def data(self, config: PerUnitConfig) -> Data:
        x, held_out = reconstruction_inputs(
            config.samples, config.eval_samples, config.n_in, config.seed, inputs=config.inputs
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
        progress: Outcome,
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


OBJECTIVE = PerUnitObjective()


def train_per_unit(
    config: PerUnitConfig,
    device: str = "cpu",
    checkpoint: Checkpoint | None = None,
    every: int = CHECKPOINT_STEPS,
) -> PerUnitResult:
    """`objectives.training.trainer.train` with the per-unit objective: full-batch training on
    its training set, scored on its held-out set; `checkpoint(steps,
    best_fraction_reconstructed)`."""
    result = train(config, OBJECTIVE, device, checkpoint, every)
    assert isinstance(result, PerUnitResult)
    return result
