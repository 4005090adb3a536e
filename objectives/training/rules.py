"""The rules of a trial, written once for both trainers and every trained task: the
learning-rate schedule, when a trial stops, which step's score it keeps, what divergence and
pruning do. A task's own pieces (data sets, loss, what a step scores, where its score starts,
the record it ends with) are its objective (`objectives.training.interface.Objective`; the
tasks' own in objectives/tasks/*/objective.py), which the caller hands the trainers.

A trial's progress is a set of rows (`Progress`): python scalars for one trial trained by
`objectives.training.trainer.train`, or (K,) tensors for K trials in
`objectives.training.batched.BatchedTrainer`, updated in place on the device there. `observe`,
`advance`, `lr_factor` and `prune` are the rules; they use only operators that python scalars
and tensors share, and the functions of `Ops` (HOST or DEVICE) where the two differ.

Each step: the loss and the score of the current weights are observed, then the trial
either stops or takes an optimizer step, at its learning rate times `lr_factor`. The task
says what a step scores, as three numbers: the score (higher is better; a trial starts from
its task's chance score), what is kept with the best score (the task's measure there), and
whether the trial is done (nothing left to learn).
- The score kept is the best seen over training, each measured on the weights of its step.
  The capacity task's bits are b * (1 - H2(errors / b)) (`objectives.tasks.capacity.metric`),
  which for a fixed b grows with the distance of the error count from chance,
  |2 * errors - b|; so its score is that distance (an integer, exact on any device), what
  it keeps is the error count there, and the bits are computed once, from that count, in
  the result record. The per-unit task's score is the held-out fraction reconstructed,
  kept as it is.
- A trial stops when it is done (capacity: every sample right), after `max_steps` optimizer
  steps, when it has made no progress for `patience` steps, or when its loss is not finite
  (NaN or inf).
- A minibatch trial (batch_size not full) is scored on its whole training set only at the
  steps `scored` names (every SCORE_STEPS steps, and its last step): at the others its step
  says nothing of its score, and only its minibatch loss is looked at, for divergence. Its
  progress is its score and whole-set loss from one scoring to the next, and its patience is
  checked at scored steps only (so a patience shorter than SCORE_STEPS ends a trial whose
  score and loss did not improve since the last scoring).
- Progress is a score more than the trial's `margin` above the score it last progressed
  from (capacity: margin 0, any better score), or a loss below the lowest loss seen by more
  than `LOSS_MARGIN` (relative): a trial whose score plateaus while its loss still falls is
  not stopped by patience. The marks move only by such a margin, so a loss (or score) that
  creeps by less per step still counts once its change adds up to the margin.
- A trial whose loss turns NaN or inf has diverged: it stops, is marked `diverged`, and keeps
  the best score it reached before (chance, if no step before scored better).
- A trial can be ended early from outside (`prune`, for a pruner): it keeps its best score so
  far and is marked `pruned`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor

from objectives.training.interface import LR_SCHEDULES, SCORE_STEPS, Start, TrainingConfig, setting


@dataclass(frozen=True)
class Ops:
    """What python scalars and tensors do differently."""

    where: Callable[[Any, Any, Any], Any]
    negate: Callable[[Any], Any]
    isfinite: Callable[[Any], Any]
    cos: Callable[[Any], Any]
    float64: Callable[[Any], Any]  # an integer count as a float64 number
    one: Callable[[Any], Any]  # float64 1.0 in the count's shape


HOST = Ops(
    where=lambda c, a, b: a if c else b,
    negate=lambda c: not c,
    isfinite=math.isfinite,
    cos=math.cos,
    float64=float,
    one=lambda _: 1.0,
)
DEVICE = Ops(
    where=torch.where,
    negate=torch.logical_not,
    isfinite=torch.isfinite,
    cos=torch.cos,
    float64=lambda t: t.double(),
    one=lambda t: torch.ones_like(t, dtype=torch.float64),
)

# Patience counts steps without a better score or a loss this much (relative) below the
# lowest loss seen: a loss falling by 0.01% per patience window is still training.
LOSS_MARGIN = 1e-4


@dataclass
class Progress:
    """Where trials stand: each field a python scalar (one trial) or a (K,) tensor."""

    patience: Any
    max_steps: Any
    active: Any  # still training
    ended: Any  # stopped, result not yet collected
    diverged: Any
    pruned: Any  # ended from outside (`prune`)
    schedule: Any  # learning-rate schedule: its index in LR_SCHEDULES
    decay: Any  # the exponential schedule's lr_decay (float64)
    steps: Any  # optimizer steps taken
    since_best: Any  # steps since the score or the loss last improved
    best_score: Any  # best score seen (the task's chance at first)
    best_kept: Any  # what the task keeps there (capacity: the error count)
    margin: Any  # how far a score must rise above `score_mark` to be progress
    score_mark: Any  # the score patience last counted progress from
    best_loss: Any  # lowest loss seen (moved only by more than LOSS_MARGIN)
    last_loss: Any  # loss of the last step observed

    @classmethod
    def start(cls, config: TrainingConfig, start: Start) -> Progress:
        """One trial, as python scalars, from `start` (its objective's)."""
        return cls(
            patience=config.patience,
            max_steps=config.max_steps,
            active=True,
            ended=False,
            diverged=False,
            pruned=False,
            schedule=LR_SCHEDULES.index(config.lr_schedule),
            decay=float(setting(config, "lr_decay")),
            steps=0,
            since_best=0,
            best_score=start.score,
            best_kept=start.kept,
            margin=start.margin,
            score_mark=start.score,
            best_loss=math.inf,
            last_loss=math.nan,
        )

    @classmethod
    def rows(cls, capacity: int, device: torch.device) -> Progress:
        """Rows for `capacity` trials, on `device`, all empty."""

        def zeros(dtype: torch.dtype) -> Tensor:
            return torch.zeros(capacity, dtype=dtype, device=device)

        def full(value: float) -> Tensor:
            return torch.full((capacity,), value, dtype=torch.float64, device=device)

        return cls(
            **{f.name: zeros(torch.long) for f in fields(cls)}
            | {name: zeros(torch.bool) for name in _FLAGS}
            | {name: zeros(torch.float64) for name in _SCORES}
            | {name: full(value) for name, value in _EMPTY_LOSSES.items()}
        )

    def set_row(self, index: int, config: TrainingConfig, start: Start) -> None:
        """Row `index` of tensor rows starts `config` (from `start`, as `Progress.start`)."""
        with torch.no_grad():
            for name, value in asdict(Progress.start(config, start)).items():
                getattr(self, name)[index] = value

    def tensors(self) -> list[Tensor]:
        return [getattr(self, f.name) for f in fields(self)]

    def moved(self, index: Tensor, capacity: int) -> Progress:
        """Tensor rows `index` moved to the front of `capacity` rows (the rest empty)."""
        out = {}
        for f in fields(self):
            old = getattr(self, f.name)
            new = old.new_zeros((capacity, *old.shape[1:]))
            if f.name in _EMPTY_LOSSES:
                new.fill_(_EMPTY_LOSSES[f.name])
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


_FLAGS = ("active", "ended", "diverged", "pruned")
_SCORES = ("best_score", "best_kept", "margin", "score_mark", "decay")
_EMPTY_LOSSES = {"best_loss": math.inf, "last_loss": math.nan}
_COSINE, _STEP = LR_SCHEDULES.index("cosine"), LR_SCHEDULES.index("step")
_EXPONENTIAL = LR_SCHEDULES.index("exponential")


def lr_factor(progress: Progress, ops: Ops) -> Any:
    """What each trial's learning rate is multiplied by for its next optimizer step (step
    `steps`, counted from 0), by its schedule (LR_SCHEDULES; see objectives.training.interface):
    constant 1; cosine (1 + cos(pi * steps / max_steps)) / 2; step 1, then 0.1 once
    2 * steps >= max_steps and 0.01 once 4 * steps >= 3 * max_steps; exponential
    decay ** (steps / max_steps). A float64 number (a (K,) tensor for rows), computed from
    the integer step counts, so both trainers agree exactly."""
    steps, max_steps = progress.steps, progress.max_steps
    one = ops.one(steps)  # (where between two python numbers would give float32 rows)
    fraction = ops.float64(steps) / max_steps
    cosine = 0.5 * (1.0 + ops.cos(math.pi * fraction))
    exponential = progress.decay**fraction
    decayed = ops.where(
        4 * steps >= 3 * max_steps, 0.01, ops.where(2 * steps >= max_steps, 0.1, one)
    )
    schedule = progress.schedule
    return ops.where(
        schedule == _COSINE,
        cosine,
        ops.where(
            schedule == _STEP, decayed, ops.where(schedule == _EXPONENTIAL, exponential, one)
        ),
    )


def scored(progress: Progress, minibatch: bool) -> Any:
    """Which trials are scored on their whole training set at this step: every trial trained
    full batch; a minibatch trial every SCORE_STEPS steps and at its last (steps >=
    max_steps), where it would stop. A bool (a (K,) bool tensor for rows)."""
    p = progress
    if not minibatch:
        return p.steps >= 0
    return (p.steps % SCORE_STEPS == 0) | (p.steps >= p.max_steps)


def observe(
    progress: Progress,
    loss: Any,
    score: Any,
    kept: Any,
    done: Any,
    ops: Ops,
    scored: Any = True,
) -> Any:
    """The rules for one step's loss and score (score, kept, done: see the module docstring)
    of every active trial: keep the best score, decide who stops. Returns which trials take
    an optimizer step (see `advance`). `scored` (see `scored`): whether the step's score,
    done and loss are of the whole training set; where not, only the loss's finiteness
    counts (a minibatch's)."""
    p = progress
    active = p.active
    finite = ops.isfinite(loss)
    looked = active & finite & scored
    improved = looked & (score > p.best_score)
    risen = looked & (score > p.score_mark + p.margin)
    # inf * (1 - margin) is inf: any finite first loss is progress.
    lower = looked & (loss < p.best_loss * (1 - LOSS_MARGIN))
    p._set("best_score", ops.where(improved, score, p.best_score))
    p._set("best_kept", ops.where(improved, kept, p.best_kept))
    p._set("score_mark", ops.where(risen, score, p.score_mark))
    p._set("best_loss", ops.where(lower, loss, p.best_loss))
    p._set("since_best", ops.where(risen | lower, 0, p.since_best + active))
    not_finite = ops.negate(finite)
    waited = scored & (done | (p.since_best >= p.patience))
    stop = active & (not_finite | waited | (p.steps >= p.max_steps))
    p._set("diverged", p.diverged | (active & not_finite))
    p._set("last_loss", ops.where(active, loss, p.last_loss))
    train = active & ops.negate(stop)
    p._set("ended", p.ended | stop)
    p._set("active", train)
    return train


def advance(progress: Progress, train: Any) -> None:
    """The trials that took an optimizer step count it."""
    progress._set("steps", progress.steps + train)


def prune(progress: Progress, which: Any, ops: Ops) -> None:
    """End the active trials among `which` (a bool; a (K,) bool tensor for rows) now, from
    outside: they keep their best score so far and are marked pruned."""
    p = progress
    stop = p.active & which
    p._set("pruned", p.pruned | stop)
    p._set("ended", p.ended | stop)
    p._set("active", p.active & ops.negate(stop))
