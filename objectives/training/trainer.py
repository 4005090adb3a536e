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
    AUTO_MOMENTUM,
    CHECKPOINT_STEPS,
    Checkpoint,
    Objective,
    TrainingConfig,
    batch_size,
    momentum,
    setting,
)
from objectives.training.minibatch import indices as minibatch_indices
from objectives.training.rules import HOST, Progress, advance, lr_factor, observe, prune, scored

__all__ = [
    "CHECKPOINT_STEPS",
    "TORCH_STATE",
    "Checkpoint",
    "OneTrial",
    "make_optimizer",
    "train",
]


def make_optimizer(
    name: str,
    params: list[Tensor],
    learning_rate: float,
    *,
    momentum: float | None = None,
    l2: float = 0.0,
) -> torch.optim.Optimizer:
    """torch.optim's optimizer `name`; `momentum` for sgd (Nesterov's; None: 0.9) and rmsprop
    (None: 0), `l2` its weight decay (added to the gradient, after clipping)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=learning_rate, weight_decay=l2)
    if name == "rmsprop":
        mom = AUTO_MOMENTUM["rmsprop"] if momentum is None else momentum
        return torch.optim.RMSprop(params, lr=learning_rate, momentum=mom, weight_decay=l2)
    if name == "sgd":
        mom = AUTO_MOMENTUM["sgd"] if momentum is None else momentum
        return torch.optim.SGD(
            params, lr=learning_rate, momentum=mom, nesterov=True, weight_decay=l2
        )
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=learning_rate, weight_decay=l2)
    raise ValueError(f"unknown optimizer {name!r}")


def init_of(config: TrainingConfig, n_out: int) -> Params:
    """A trial's fresh weights (seeded by seed + 1): the one initialisation of both trainers."""
    return init_params(
        config.arch,
        config.n_in,
        config.hidden_size,
        config.depth,
        config.init_scale,
        torch.Generator().manual_seed(config.seed + 1),
        n_out=n_out,
        scheme=config.init_scheme,
        recurrent_init=setting(config, "recurrent_init"),
        input_scale=setting(config, "input_scale"),
        bias_init=setting(config, "bias_init"),
        bias_scale=float(setting(config, "bias_scale")),
    )


def _move(params: Params, device: torch.device) -> Params:
    return {k: v.to(device).requires_grad_(True) for k, v in params.items()}


# torch.optim's state of each optimizer, by the names of the batched trainer's buffers
# (objectives.training.batched, which writes the optimizers out step for step).
TORCH_STATE: dict[str, dict[str, str]] = {
    "adam": {"m": "exp_avg", "v": "exp_avg_sq"},
    "rmsprop": {"v": "square_avg", "buf": "momentum_buffer"},
    "sgd": {"buf": "momentum_buffer"},
    "adagrad": {"sum": "sum"},
}


class OneTrial:
    """One trial trained step by step, exactly as `train` trains it (which is this, run to
    its end): `run(steps)` trains up to that many optimizer steps, `progress` says where it
    stands, `prune()` ends it from outside and `result()` is its record once it has ended.
    A worker's batched executor trains a trial that is alone in its group this way on a CPU
    (`hpsearch.worker.executors`), between the chunks of the batches beside it."""

    def __init__(self, config: TrainingConfig, objective: Objective, device: str = "cpu") -> None:
        self.config, self.objective = config, objective
        self.start = time.perf_counter()
        self.device = dev = torch.device(device)
        data = objective.data(config)
        self.x, self.y = data.x.to(dev), data.y.to(dev)
        if data.x_eval is None or data.y_eval is None:
            self.x_eval, self.y_eval = self.x, self.y
        else:
            self.x_eval, self.y_eval = data.x_eval.to(dev), data.y_eval.to(dev)
        self.params = _move(init_of(config, objective.n_out(config.n_in)), dev)
        self.num_params = num_params(self.params)
        self.leaves = list(self.params.values())
        self.optimizer = make_optimizer(
            config.optimizer,
            self.leaves,
            config.learning_rate,
            momentum=momentum(config),
            l2=float(setting(config, "l2")),
        )
        self.minibatch = batch_size(config, len(self.x))
        self.seed, self.step_of, self.size = (
            torch.tensor([v], dtype=torch.long, device=dev) for v in (config.seed, 0, len(self.x))
        )
        self.norm = int(data.norm) if data.x_eval is None else data.norm  # capacity: b, exactly
        self.progress = Progress.start(config, objective.start(config))

    def _outputs(self, inputs: Tensor) -> Tensor:
        config = self.config
        return outputs(
            config.arch,
            self.params,
            inputs,
            depth=config.depth,
            unroll=config.unroll,
            activation=config.activation,
            gate_bias=config.gate_bias,
            input_mode=setting(config, "input_mode"),
        )

    def step(self) -> bool:
        """One step of the rules (`objectives.training.rules`): observe, then stop or take an
        optimizer step. Whether the trial is still training."""
        progress, objective, config = self.progress, self.objective, self.config
        if not progress.active:
            return False
        x, y, minibatch = self.x, self.y, self.minibatch
        look = scored(progress, minibatch is not None)
        if minibatch is None:
            out = self._outputs(x)
            loss = objective.loss(out, y, None, None)
            seen = loss
        else:  # this step's draw (objectives.training.minibatch), the whole set when scored
            self.step_of.fill_(progress.steps)
            chosen = minibatch_indices(self.seed, self.step_of, self.size, minibatch)[0]
            loss = objective.loss(self._outputs(x[chosen]), y[chosen], None, None)
            seen = loss
            if look:
                with torch.no_grad():
                    out = self._outputs(x)
                    seen = objective.loss(out, y, None, None)
        if look:
            with torch.no_grad():
                evaluated = self._outputs(self.x_eval) if objective.held_out else out
                score, kept, done = objective.score(evaluated, self.y_eval, None, self.norm)
            values = (score.item(), kept.item(), bool(done))
        else:
            values = (progress.best_score, progress.best_kept, False)
        train = observe(progress, seen.item(), *values, HOST, scored=look)
        if not train:
            return False
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.leaves, config.grad_clip)
        for group in self.optimizer.param_groups:
            group["lr"] = config.learning_rate * lr_factor(progress, HOST)
        self.optimizer.step()
        advance(progress, train)
        return True

    def run(self, steps: int) -> bool:
        """Up to `steps` steps; whether the trial is still training."""
        for _ in range(steps):
            if not self.step():
                return False
        return self.progress.active

    def buffers(self) -> dict[str, Params]:
        """The optimizer's state by the batched trainer's names (`TORCH_STATE`), each a
        tensor per named weight (zeros where torch.optim has none yet): what a batch needs
        to take the trial over (`BatchedTrainer.adopt`)."""
        state = self.optimizer.state
        return {
            mine: {
                name: state.get(p, {}).get(theirs, torch.zeros_like(p)).detach()
                for name, p in self.params.items()
            }
            for mine, theirs in TORCH_STATE[self.config.optimizer].items()
        }

    def prune(self) -> None:
        """End the trial now, from outside: it keeps its best value so far, marked pruned."""
        prune(self.progress, True, HOST)

    def result(self) -> Any:
        """The trial's result record (its objective's), as it stands."""
        return self.objective.result(
            self.config,
            self.progress,
            num_params=self.num_params,
            seconds=time.perf_counter() - self.start,
            device=str(self.device),
        )


def train(
    config: TrainingConfig,
    objective: Objective,
    device: str = "cpu",
    checkpoint: Checkpoint | None = None,
    every: int = CHECKPOINT_STEPS,
) -> Any:
    """Training of one trial of any trained task (its pieces: `objective`, the task's), full
    batch or in minibatches (batch_size), until neither score nor loss has improved for
    `patience` steps, the task says it is done, or `max_steps` is reached; the result record
    its objective builds (`OneTrial`, run to its end).

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
    trial = OneTrial(config, objective, device)
    progress = trial.progress
    while trial.step():
        steps = progress.steps
        if checkpoint is not None and steps % every == 0 and steps < config.max_steps:
            if not checkpoint(steps, objective.best_value(config, progress.best_kept)):
                trial.prune()
    return trial.result()
