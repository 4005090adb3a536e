"""The rules of a capacity trial, written once for both trainers: its data set, when it stops,
which step's score it keeps, what divergence does, and the record it ends with.

A trial's progress is a set of rows (`Progress`): python scalars for one trial trained by
`objectives.training.train_capacity`, or (K,) tensors for K trials in
`objectives.batched.BatchedTrainer`, updated in place on the device there. `observe` and
`advance` are the rules; they use only operators that python scalars and tensors share, and
the three functions of `Ops` (HOST or DEVICE) where the two differ.

Each step: the loss and the error count of the current weights are observed, then the trial
either stops or takes an optimizer step.
- The score kept is the best seen over training, each measured on the weights of its step.
  Bits are b * (1 - H2(errors / b)) (`objectives.metric`), which for a fixed b grows with the
  distance of the error count from chance, |2 * errors - b|; so the rows keep the best
  distance (an integer, exact on any device) and the error count there, and the bits are
  computed once, from that count, in the result record.
- A trial stops when every sample is right, when its score has not improved for `patience`
  steps, after `max_steps` optimizer steps, or when its loss is not finite (NaN or inf):
  it has diverged and scores 0 bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor

from objectives.capacity import CapacityConfig
from objectives.metric import bits_per_param, mutual_information_bits


def make_dataset(b: int, n_in: int, seed: int) -> tuple[Tensor, Tensor]:
    """Random inputs in {0,1}^(b x n_in) and labels in {0,1}^b, every bit uniform."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (b, n_in), generator=generator).float()
    y = torch.randint(0, 2, (b,), generator=generator).float()
    return x, y


@dataclass(frozen=True)
class Ops:
    """What python scalars and tensors do differently."""

    where: Callable[[Any, Any, Any], Any]
    negate: Callable[[Any], Any]
    isfinite: Callable[[Any], Any]


HOST = Ops(where=lambda c, a, b: a if c else b, negate=lambda c: not c, isfinite=math.isfinite)
DEVICE = Ops(where=torch.where, negate=torch.logical_not, isfinite=torch.isfinite)


@dataclass
class Progress:
    """Where trials stand: each field a python scalar (one trial) or a (K,) tensor."""

    b: Any  # samples
    patience: Any
    max_steps: Any
    active: Any  # still training
    ended: Any  # stopped, result not yet collected
    diverged: Any
    steps: Any  # optimizer steps taken
    since_best: Any  # steps since the score last improved
    best_distance: Any  # best |2 * errors - b| seen: 0 is chance, b is every sample right
    best_errors: Any  # the error count there
    last_loss: Any  # loss of the last step observed

    @classmethod
    def start(cls, config: CapacityConfig) -> Progress:
        """One trial, as python scalars."""
        return cls(
            b=config.b,
            patience=config.patience,
            max_steps=config.max_steps,
            active=True,
            ended=False,
            diverged=False,
            steps=0,
            since_best=0,
            best_distance=0,
            best_errors=config.b // 2,
            last_loss=math.nan,
        )

    @classmethod
    def rows(cls, capacity: int, device: torch.device) -> Progress:
        """Rows for `capacity` trials, on `device`, all empty."""

        def zeros(dtype: torch.dtype) -> Tensor:
            return torch.zeros(capacity, dtype=dtype, device=device)

        return cls(
            **{f.name: zeros(torch.long) for f in fields(cls)}
            | {name: zeros(torch.bool) for name in ("active", "ended", "diverged")}
            | {"last_loss": torch.full((capacity,), math.nan, dtype=torch.float64, device=device)}
        )

    def set_row(self, index: int, config: CapacityConfig) -> None:
        """Row `index` of tensor rows starts `config`."""
        with torch.no_grad():
            for name, value in asdict(Progress.start(config)).items():
                getattr(self, name)[index] = value

    def tensors(self) -> list[Tensor]:
        return [getattr(self, f.name) for f in fields(self)]

    def moved(self, index: Tensor, capacity: int) -> Progress:
        """Tensor rows `index` moved to the front of `capacity` rows (the rest empty)."""
        out = {}
        for f in fields(self):
            old = getattr(self, f.name)
            new = old.new_zeros((capacity, *old.shape[1:]))
            if f.name == "last_loss":
                new.fill_(math.nan)
            new[: len(index)] = old[index]
            out[f.name] = new
        return Progress(**out)

    def _set(self, name: str, value: Any) -> None:
        """In place for tensors (a captured CUDA graph keeps their addresses)."""
        current = getattr(self, name)
        if isinstance(current, Tensor):
            current.copy_(value)
        else:
            setattr(self, name, value)


def observe(progress: Progress, loss: Any, errors: Any, ops: Ops) -> Any:
    """The rules for one step's loss and error count of every active trial: keep the best
    score, decide who stops. Returns which trials take an optimizer step (see `advance`)."""
    p = progress
    active = p.active
    finite = ops.isfinite(loss)
    distance = abs(2 * errors - p.b)
    improved = active & finite & (distance > p.best_distance)
    p._set("best_distance", ops.where(improved, distance, p.best_distance))
    p._set("best_errors", ops.where(improved, errors, p.best_errors))
    p._set("since_best", ops.where(improved, 0, p.since_best + active))
    not_finite = ops.negate(finite)
    stop = active & (
        not_finite | (errors == 0) | (p.since_best >= p.patience) | (p.steps >= p.max_steps)
    )
    p._set("diverged", p.diverged | (active & not_finite))
    p._set("last_loss", ops.where(active, loss, p.last_loss))
    train = active & ops.negate(stop)
    p._set("ended", p.ended | stop)
    p._set("active", train)
    return train


def advance(progress: Progress, train: Any) -> None:
    """The trials that took an optimizer step count it."""
    progress._set("steps", progress.steps + train)


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

    @classmethod
    def of(
        cls,
        config: CapacityConfig,
        progress: Progress,
        *,
        num_params: int,
        seconds: float,
        device: str,
    ) -> CapacityResult:
        """The record of one trial's ended progress (python scalars)."""
        return cls.scored(
            config,
            errors=int(progress.best_errors),
            num_params=num_params,
            steps=int(progress.steps),
            seconds=seconds,
            device=device,
            diverged=bool(progress.diverged),
            final_loss=float(progress.last_loss),
        )

    @property
    def value(self) -> float:
        """What the study maximises: the bits stored."""
        return self.bits

    def to_attrs(self) -> dict[str, Any]:
        return asdict(self)
