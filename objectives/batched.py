"""Many capacity trials trained as one program: K networks of the same shape with every
weight stacked along a leading model axis (the layout of `objectives.cells`).

Per trial: its own data set (padded to the largest b in the batch and masked, so padding adds
nothing to loss, gradient or score), learning rate, init scale, gate bias, gradient clip,
optimizer state, early stopping and divergence. The summed per-trial losses give each trial
exactly its own gradient. A trial that ends (stopped, converged, diverged) leaves its slot,
which a new trial of the same shape can take at once.

The optimizers are written out over stacked tensors, step for step as torch.optim computes
them (Adam, RMSprop, SGD with Nesterov momentum, Adagrad), because torch.optim has one
learning rate per parameter tensor, not per model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from objectives.capacity import CapacityConfig
from objectives.cells import forward, init_params, num_params
from objectives.training import CapacityResult, make_dataset

ShapeKey = tuple[str, int, int, int, int, str, str]


def shape_key(config: CapacityConfig) -> ShapeKey:
    """Trials that can share one batch: same network shape, activation and optimizer."""
    return (
        config.arch,
        config.n_in,
        config.hidden_size,
        config.depth,
        config.unroll,
        config.activation,
        config.optimizer,
    )


def bytes_per_trial(config: CapacityConfig) -> int:
    """A generous estimate of the memory one trial takes in a batch: data, and the
    activations kept for the backward pass (every gate block of every layer at every step,
    about 4 tensors each), in float32."""
    from objectives.architectures import GATE_BLOCKS

    n, b = config.hidden_size, config.b
    per_step = config.depth * b * n * (GATE_BLOCKS[config.arch] + 2) * 4
    return 4 * (b * (config.n_in + 3) + config.unroll * per_step) + 4 * 4 * config.num_params


def _mutual_information(b: Tensor, errors: Tensor) -> Tensor:
    """b * (1 - H2(errors / b)) in bits, on the device (0 log 0 = 0)."""
    p = errors / b.clamp(min=1)
    h2 = -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p)) / math.log(2)
    return b * (1 - h2)


@dataclass
class _Slot:
    config: CapacityConfig
    started: float
    steps: int = 0
    best_errors: int = 0
    last_loss: float = math.nan


class BatchedTrainer:
    """Up to `capacity` trials of one shape, trained together.

    `add(config)` puts a trial in a free slot; `run(steps)` trains every occupied slot for up
    to that many steps and returns the trials that ended, each with the same result record
    that `objectives.training.train_capacity` gives.
    """

    ADAM_BETAS = (0.9, 0.999)
    RMSPROP_ALPHA = 0.99

    def __init__(
        self, key: ShapeKey, capacity: int, device: str = "cpu", check_every: int | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.key = key
        (
            self.arch,
            self.n_in,
            self.hidden,
            self.depth,
            self.unroll,
            self.activation,
            self.optimizer,
        ) = key
        self.capacity = capacity
        self.device = torch.device(device)
        # How often the host looks for ended trials: every step on a CPU (no cost there),
        # every 20 steps on a GPU (each look is a host sync).
        self.check_every = check_every or (1 if self.device.type == "cpu" else 20)
        self.slots: list[_Slot | None] = [None] * capacity
        self.max_b = 0
        self.params: dict[str, Tensor] = {}
        self.state: dict[str, dict[str, Tensor]] = {}
        self._allocated = False

    # -- slots -----------------------------------------------------------------------------

    @property
    def free(self) -> int:
        return sum(1 for s in self.slots if s is None)

    @property
    def occupied(self) -> int:
        return self.capacity - self.free

    def add(self, config: CapacityConfig) -> int:
        if shape_key(config) != self.key:
            raise ValueError(f"trial of shape {shape_key(config)} in a batch of {self.key}")
        index = self.slots.index(None) if None in self.slots else -1
        if index < 0:
            raise ValueError("no free slot")
        if not self._allocated:
            self._allocate(config)
        if config.b > self.max_b:
            self._grow(config.b)
        gen = torch.Generator().manual_seed(config.seed + 1)
        fresh = init_params(self.arch, self.n_in, self.hidden, self.depth, config.init_scale, gen)
        x, y = make_dataset(config.b, config.n_in, config.seed)
        with torch.no_grad():
            for name, tensor in fresh.items():
                self.params[name][index] = tensor.to(self.device)
                for buf in self.state[name].values():
                    buf[index] = 0
            self.x[index] = 0
            self.y[index] = 0
            self.mask[index] = 0
            self.x[index, : config.b] = x.to(self.device)
            self.y[index, : config.b] = y.to(self.device)
            self.mask[index, : config.b] = 1
            self.b[index] = config.b
            self.lr[index] = config.learning_rate
            self.clip[index] = config.grad_clip
            self.gate_bias[index] = config.gate_bias
            self.step_count[index] = 0
            self.active[index] = True
            self.ended[index] = False
            self.diverged[index] = False
            self.steps[index] = 0
            self.since_best[index] = 0
            self.patience[index] = config.patience
            self.max_steps[index] = config.max_steps
            self.best_bits[index] = 0.0
            self.best_errors[index] = config.b // 2
            self.last_loss[index] = math.nan
        self.slots[index] = _Slot(
            config=config, started=time.perf_counter(), best_errors=config.b // 2
        )
        return index

    def _allocate(self, config: CapacityConfig) -> None:
        k = self.capacity
        gen = torch.Generator().manual_seed(0)
        template = init_params(self.arch, self.n_in, self.hidden, self.depth, 1.0, gen)
        self.params = {
            name: torch.zeros((k, *t.shape), device=self.device).requires_grad_(True)
            for name, t in template.items()
        }
        buffers = {"adam": ("m", "v"), "rmsprop": ("v",), "sgd": ("buf",), "adagrad": ("sum",)}[
            self.optimizer
        ]
        self.state = {
            name: {b: torch.zeros_like(p, requires_grad=False) for b in buffers}
            for name, p in self.params.items()
        }
        self.b = torch.zeros(k, device=self.device)
        self.lr = torch.zeros(k, device=self.device)
        self.clip = torch.zeros(k, device=self.device)
        self.gate_bias = torch.zeros(k, 1, 1, device=self.device)
        self.step_count = torch.zeros(k, device=self.device)
        # Per-model bookkeeping, kept on the device (see run()).
        self.active = torch.zeros(k, dtype=torch.bool, device=self.device)
        self.ended = torch.zeros(k, dtype=torch.bool, device=self.device)
        self.diverged = torch.zeros(k, dtype=torch.bool, device=self.device)
        self.steps = torch.zeros(k, dtype=torch.long, device=self.device)
        self.since_best = torch.zeros(k, dtype=torch.long, device=self.device)
        self.patience = torch.zeros(k, dtype=torch.long, device=self.device)
        self.max_steps = torch.zeros(k, dtype=torch.long, device=self.device)
        self.best_bits = torch.zeros(k, dtype=torch.float64, device=self.device)
        self.best_errors = torch.zeros(k, dtype=torch.float64, device=self.device)
        self.last_loss = torch.full((k,), math.nan, dtype=torch.float64, device=self.device)
        self.x = torch.zeros(k, 0, self.n_in, device=self.device)
        self.y = torch.zeros(k, 0, device=self.device)
        self.mask = torch.zeros(k, 0, device=self.device)
        self._allocated = True

    def _grow(self, b: int) -> None:
        """Pad every slot's data to the new largest b (padding is masked out)."""
        k, extra = self.capacity, b - self.max_b
        self.x = torch.cat([self.x, torch.zeros(k, extra, self.n_in, device=self.device)], 1)
        self.y = torch.cat([self.y, torch.zeros(k, extra, device=self.device)], 1)
        self.mask = torch.cat([self.mask, torch.zeros(k, extra, device=self.device)], 1)
        self.max_b = b

    # -- training --------------------------------------------------------------------------

    def run(self, steps: int) -> list[tuple[CapacityConfig, CapacityResult]]:
        """Train the occupied slots for up to `steps` steps; return the trials that ended.

        Stopping, best-score tracking and divergence are decided on the device at every step
        (a model that stops is frozen there, at exactly the step where it stops); the host
        looks at the outcome only every `check_every` steps, so a GPU step has no host sync.
        """
        ended: list[tuple[CapacityConfig, CapacityResult]] = []
        done = 0
        while done < steps and self.occupied > 0:
            chunk = min(self.check_every, steps - done)
            for _ in range(chunk):
                self._step()
            done += chunk
            ended.extend(self._collect())
        return ended

    def _step(self) -> None:
        active = self.active
        logits = forward(
            self.arch,
            self.params,
            self.x,
            depth=self.depth,
            unroll=self.unroll,
            activation=self.activation,
            gate_bias=self.gate_bias,
        )
        bce = F.binary_cross_entropy_with_logits(logits, self.y, reduction="none")
        per_model = (bce * self.mask).sum(1) / self.b.clamp(min=1)  # mean over own samples
        with torch.no_grad():
            loss = per_model.detach().double()
            wrong = (((logits > 0) != (self.y > 0.5)).double() * self.mask).sum(1)
            finite = torch.isfinite(loss)
            bits = _mutual_information(self.b.double(), wrong)
            improved = active & finite & (bits > self.best_bits)
            self.best_bits = torch.where(improved, bits, self.best_bits)
            self.best_errors = torch.where(improved, wrong, self.best_errors)
            self.since_best = torch.where(improved, 0, self.since_best + active.long())
            stop = active & (
                ~finite
                | (wrong == 0)
                | (self.since_best >= self.patience)
                | (self.steps >= self.max_steps)
            )
            self.diverged |= active & ~finite
            self.last_loss = torch.where(active, loss, self.last_loss)
            train = active & ~stop
            self.ended |= stop
            self.active = train
        # Each model's gradient comes from its own loss only; models that stopped or left
        # add nothing (torch.where, so that a NaN loss cannot reach the others' sum).
        total = torch.where(train, per_model, torch.zeros_like(per_model)).sum()
        grads = torch.autograd.grad(total, list(self.params.values()))
        keep = train.to(per_model.dtype)
        self._update(dict(zip(self.params, grads, strict=True)), keep)
        self.steps += train.long()

    def _collect(self) -> list[tuple[CapacityConfig, CapacityResult]]:
        """The trials that stopped since the last look (one host sync)."""
        indices = self.ended.nonzero().flatten().tolist()
        if not indices:
            return []
        best_errors = self.best_errors.tolist()
        steps = self.steps.tolist()
        diverged = self.diverged.tolist()
        last_loss = self.last_loss.tolist()
        out = []
        for k in indices:
            slot = self.slots[k]
            assert slot is not None
            slot.steps = int(steps[k])
            slot.best_errors = int(best_errors[k])
            slot.last_loss = float(last_loss[k])
            out.append((slot.config, self._result(slot, diverged=bool(diverged[k]))))
            self.slots[k] = None
        self.ended[indices] = False
        return out

    def _update(self, grads: dict[str, Tensor], keep: Tensor) -> None:
        with torch.no_grad():
            if bool((self.clip > 0).any()):
                sq = sum(g.pow(2).flatten(1).sum(1) for g in grads.values())
                norm = torch.sqrt(sq)  # type: ignore[arg-type]
                coef = torch.clamp(self.clip / (norm + 1e-6), max=1.0)
                coef = torch.where(self.clip > 0, coef, torch.ones_like(coef))
                grads = {n: g * coef.view(-1, *([1] * (g.dim() - 1))) for n, g in grads.items()}
            self.step_count += keep
            t = self.step_count
            for name, p in self.params.items():
                g = grads[name]
                shape = (-1, *([1] * (p.dim() - 1)))
                lr = (self.lr * keep).view(shape)
                st = self.state[name]
                if self.optimizer == "adam":
                    b1, b2 = self.ADAM_BETAS
                    kp = keep.view(shape) > 0
                    st["m"].copy_(torch.where(kp, st["m"] * b1 + g * (1 - b1), st["m"]))
                    st["v"].copy_(torch.where(kp, st["v"] * b2 + g * g * (1 - b2), st["v"]))
                    tt = t.clamp(min=1).view(shape)
                    bc1 = 1 - b1**tt
                    bc2 = 1 - b2**tt
                    denom = st["v"].sqrt() / bc2.sqrt() + 1e-8
                    p.sub_(lr / bc1 * st["m"] / denom)
                elif self.optimizer == "rmsprop":
                    a = self.RMSPROP_ALPHA
                    kp = keep.view(shape) > 0
                    st["v"].copy_(torch.where(kp, st["v"] * a + g * g * (1 - a), st["v"]))
                    p.sub_(lr * g / (st["v"].sqrt() + 1e-8))
                elif self.optimizer == "sgd":
                    kp = keep.view(shape) > 0
                    first = (t.view(shape) == 1) & kp
                    buf = torch.where(first, g, st["buf"] * 0.9 + g)
                    st["buf"].copy_(torch.where(kp, buf, st["buf"]))
                    p.sub_(lr * (g + 0.9 * st["buf"]))
                else:  # adagrad
                    kp = keep.view(shape) > 0
                    st["sum"].copy_(torch.where(kp, st["sum"] + g * g, st["sum"]))
                    p.sub_(lr * g / (st["sum"].sqrt() + 1e-10))

    def _result(self, slot: _Slot, *, diverged: bool) -> CapacityResult:
        return CapacityResult.scored(
            slot.config,
            errors=slot.best_errors,
            num_params=num_params({k: v[0] for k, v in self.params.items()}),
            steps=slot.steps,
            seconds=time.perf_counter() - slot.started,
            device=str(self.device),
            diverged=diverged,
            final_loss=slot.last_loss,
        )
