"""Many trials of one trained task (capacity, per-unit) trained as one program: K networks of
the same shape with every weight stacked along a leading model axis (the layout of
`objectives.networks.cells`). The task's own pieces (data sets, loss, score, result record) are
its objective (`objectives.training.interface.Objective`), which the caller hands over in the
batch's key (`shape_key`); everything else is shared.

Per trial: its own data set (padded to the largest b in the batch and masked, so padding adds
nothing to loss, gradient or score; likewise a held-out set it is scored on), learning rate
and its decay, init, gate bias, gradient clip, momentum, L2 decay, optimizer state, early
stopping and divergence. Minibatch trials draw their samples as
`objectives.training.minibatch` says, on the device inside the step, and are scored on their
whole set at the steps `objectives.training.rules.scored` names. Minibatch trials of any b
and of batch sizes in one power-of-two class (`size_class`) share a batch: every trial draws
the batch's largest minibatch and weights only its own first batch_size samples (a mask),
which are the samples it draws trained alone. Grouped by class rather than masked over the
whole searched range, because, measured on a CPU with 64 trials of sizes 64 to 1,000, the
classes trained 1.6x the trial-steps per second of one masked program (whose average trial
computes three times its own minibatch); with 16 trials the two were even. The
summed per-trial losses give each trial exactly its own gradient. A trial that ends
(stopped, converged, diverged) leaves its slot, which a new trial of the same shape can take
at once; `resize` moves the trials held into a batch of another size (to stop computing
empty slots, or to make room).

All K networks' weights live in one flat tensor of K * P numbers, of which each named weight
is a contiguous (K, ...) view, so that the optimizer and gradient clipping are a few
whole-tensor operations however many weights a cell has. The optimizers are written out
over it, step for step as torch.optim computes them (Adam, RMSprop, SGD with Nesterov
momentum, Adagrad), because torch.optim has one learning rate per parameter tensor, not per
model.

Every tensor keeps its address while trials come and go (everything is updated in place), and
the step never waits for the host, so that on a GPU the training step is captured once as a
CUDA graph and replayed (`objectives.training.step_graph`); only a new largest b or a resize needs a
new capture, and on a GPU the padding grows by at least a quarter at a time so that this is
rare. Matmuls can run at a lower float32 precision (`objectives.training.matmul`: TF32, where
`objectives.training.precision` finds it good enough).
"""

from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from objectives.networks.cells import Params, init_params, outputs
from objectives.training.interface import (
    FULL_BATCH,
    SCORE_STEPS,
    Objective,
    TrainingConfig,
    batch_size,
    momentum,
    setting,
)
from objectives.training.matmul import FULL, PRECISIONS, matmul_precision
from objectives.training.minibatch import indices as minibatch_indices
from objectives.training.rules import DEVICE, Progress, advance, lr_factor, observe, prune, scored
from objectives.training.step_graph import StepGraph
from objectives.training.trainer import OneTrial, init_of

# The trainer's own per-model rows, first axis K (moved with the rules' rows by `resize`),
# and the rows of the held-out set of a task scored on one.
_ROWS = (
    "b",
    "norm",
    "lr",
    "clip",
    "gate_bias",
    "step_count",
    "momentum",
    "l2",
    "seed",
    "size",
    "x",
    "y",
    "mask",
)
_EVAL_ROWS = ("x_eval", "y_eval", "mask_eval")
_BUFFERS = {"adam": ("m", "v"), "rmsprop": ("v", "buf"), "sgd": ("buf",), "adagrad": ("sum",)}


@dataclass(frozen=True)
class NetworkShape:
    """What trials must share to be trained in one batch: the task (its objective), the
    network's shape, its activation, the optimizer, the batch size (of minibatch trials: its
    size class, `size_class`) and the input mode (everything else may differ from trial to
    trial)."""

    arch: str
    n_in: int
    hidden_size: int
    depth: int
    unroll: int
    activation: str
    optimizer: str
    objective: Objective
    batch_size: int | str = FULL_BATCH
    input_mode: str = "first"

    @property
    def task(self) -> str:
        return self.objective.task

    def __str__(self) -> str:
        extra = "" if self.batch_size == FULL_BATCH else f" batch up to {self.batch_size}"
        extra += "" if self.input_mode == "first" else f" input {self.input_mode}"
        return (
            f"{self.task} {self.arch} n_in {self.n_in} hidden {self.hidden_size} "
            f"depth {self.depth} unroll {self.unroll} {self.activation} {self.optimizer}" + extra
        )


def size_class(batch_size: int) -> int:
    """The minibatch sizes that share a batch: (2^(k-1), 2^k], named by 2^k. Each trial of a
    batch draws the batch's largest minibatch and weights only its own first batch_size
    samples (a mask), so padding at most doubles a trial's work. (batch_size is searched as
    an integer on a log scale, 64 to 1,000 in the recipes: grouped by exact size, nearly
    every minibatch trial would train alone; masked over the whole range, the average trial
    would do several times its own work. Figures: docs/benchmarks.md, "Minibatch trials
    batched on a CPU".)"""
    return 1 << (batch_size - 1).bit_length()


def shape_key(config: TrainingConfig, objective: Objective) -> NetworkShape:
    """Trials that can share one batch: same task (`objective`, config's), network shape,
    activation, optimizer, batch size (minibatch trials: its `size_class`) and input mode."""
    if config.task != objective.task:
        raise ValueError(f"a {config.task} trial with the {objective.task} objective")
    size = setting(config, "batch_size")
    return NetworkShape(
        arch=config.arch,
        n_in=config.n_in,
        hidden_size=config.hidden_size,
        depth=config.depth,
        unroll=config.unroll,
        activation=config.activation,
        optimizer=config.optimizer,
        objective=objective,
        batch_size=size if size == FULL_BATCH else size_class(int(size)),
        input_mode=setting(config, "input_mode"),
    )


def batch_group(config: TrainingConfig, objective: Objective) -> tuple[NetworkShape, int]:
    """Trials that share a batch: the same shape, and, trained full batch, a training set
    (capacity: b) in the same power-of-two range (2^(k-1), 2^k], so that padding to the
    largest in the batch at most doubles a trial's work. (b is searched over a wide range, 5
    octaves by default; padded to the largest b of a mixed batch, the average trial would do
    several times its own work.) Minibatch trials of any b share a batch (their step's work
    is their minibatch's, whatever b; only the scoring every SCORE_STEPS steps runs over the
    padded sets): 0 in place of the range."""
    key = shape_key(config, objective)
    if key.batch_size != FULL_BATCH:
        return key, 0
    samples, _ = objective.sizes(config)
    return key, (samples - 1).bit_length()


def bytes_per_trial(config: TrainingConfig, objective: Objective) -> int:
    """A generous estimate of the memory one trial takes in a batch: data, and the
    activations kept for the backward pass (every gate block of every layer at every step,
    about 4 tensors each, and the outputs), in float32; a held-out set's forward pass keeps
    nothing, but its data and one step's activations count."""
    from objectives.networks.architectures import GATE_BLOCKS

    b, m = objective.sizes(config)
    n, n_in = config.hidden_size, config.n_in
    target = math.prod(objective.target_shape(n_in))
    per_sample_step = config.depth * n * (GATE_BLOCKS[config.arch] + 2) * 4
    numbers = (
        b * (n_in + target + 3 + config.unroll * per_sample_step + 4 * objective.n_out(n_in))
        + m * (n_in + target + 1 + per_sample_step + objective.n_out(n_in))
        + 4 * config.num_params
    )
    return 4 * numbers


@dataclass
class _Slot:
    config: Any
    started: float


class BatchedTrainer:
    """Up to `capacity` trials of one shape (and task), trained together.

    `add(config)` puts a trial in a free slot; `run(steps)` trains every occupied slot for up
    to that many steps and returns the trials that ended, each with the same result record
    that `objectives.training.trainer.train` gives. For a pruner, between runs:
    `progress()` tells where every trial stands, and `stop(config)` ends one at once.
    """

    ADAM_BETAS = (0.9, 0.999)
    RMSPROP_ALPHA = 0.99

    weights: Tensor  # (K * P,): every model's weights, named weight by named weight
    state: dict[str, Tensor]  # optimizer buffers, laid out as `weights`
    x: Tensor  # (K, max b, n_in) data, zero-padded
    y: Tensor  # (K, max b, *target shape) targets (capacity: labels)
    mask: Tensor  # (K, max b) bool: which samples are real
    x_eval: Tensor  # (K, max held-out, n_in) held-out data (a task scored on one), likewise
    y_eval: Tensor
    mask_eval: Tensor
    rows: Progress  # the rules' rows (objectives.training.rules), one a model

    def __init__(
        self,
        key: NetworkShape,
        capacity: int,
        device: str = "cpu",
        check_every: int | None = None,
        *,
        precision: str = FULL,
        cuda_graph: bool | None = None,
    ) -> None:
        """`precision`: float32 matmul precision (objectives.training.precision); `cuda_graph`:
        capture the step as a CUDA graph (default: on a CUDA device)."""
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.key = key
        self.objective = key.objective
        self.targets = self.objective.target_shape(key.n_in)
        self.arch, self.n_in, self.hidden = key.arch, key.n_in, key.hidden_size
        self.depth, self.unroll = key.depth, key.unroll
        self.activation, self.optimizer = key.activation, key.optimizer
        # Minibatch batches: the minibatch every trial draws, the largest batch_size held
        # (each trial weights its own first batch_size samples); None: full batch.
        self.minibatch: int | None = None if key.batch_size == FULL_BATCH else 0
        self.input_mode = key.input_mode
        self.capacity = capacity
        self.device = torch.device(device)
        # How often the host looks for ended trials: every step on a CPU (no cost there),
        # every 20 steps on a GPU (each look is a host sync).
        self.check_every = check_every or (1 if self.device.type == "cpu" else 20)
        if precision != FULL and precision not in PRECISIONS.get(self.device.type, ()):
            raise ValueError(f"matmul precision {precision!r} is not available on {device}")
        self.precision = precision
        self.cuda_graph = self.device.type == "cuda" if cuda_graph is None else cuda_graph
        if self.cuda_graph and self.device.type != "cuda":
            raise ValueError("cuda_graph needs a CUDA device")
        # The captured steps, by whether the step scores the whole sets (minibatch batches
        # capture two; full-batch ones score at every step).
        self._graphs: dict[bool, StepGraph] = {}
        self._calls: list[int] = [0] * capacity  # steps run since each slot's trial came
        self.slots: list[_Slot | None] = [None] * capacity
        self.max_b = self.max_eval = 0
        self.n_out = self.objective.n_out(self.n_in)
        self._rows = _ROWS + (_EVAL_ROWS if self.objective.held_out else ())
        template = init_params(
            self.arch,
            self.n_in,
            self.hidden,
            self.depth,
            1.0,
            torch.Generator().manual_seed(0),
            n_out=self.n_out,
        )
        # name -> shape of one model's weight; in the flat tensors, weight j of every model
        # lies in one contiguous (K, *shape) block.
        self.layout = {name: tuple(t.shape) for name, t in template.items()}
        self.num_params = sum(t.numel() for t in template.values())
        self._allocate()

    # -- slots -----------------------------------------------------------------------------

    @property
    def free(self) -> int:
        return sum(1 for s in self.slots if s is None)

    @property
    def occupied(self) -> int:
        return self.capacity - self.free

    def _grown(self, size: int, current: int) -> int:
        """The padding for a set of `size` samples. With a captured step, each new padding
        means a new capture: grow by a quarter at least."""
        return max(size, -(-current * 5 // 4)) if self.cuda_graph else size

    def add(self, config: Any) -> int:
        if config.task != self.key.task:
            raise ValueError(f"{config.task} trial in a batch of {self.key}")
        if shape_key(config, self.objective) != self.key:
            shape = shape_key(config, self.objective)
            raise ValueError(f"trial of shape {shape} in a batch of {self.key}")
        if None not in self.slots:
            raise ValueError("no free slot")
        index = self.slots.index(None)
        data = self.objective.data(config)
        b = len(data.x)
        if b > self.max_b:
            self._pad_to(self._grown(b, self.max_b))
        size = batch_size(config, b) or b
        if self.minibatch is not None and size > self.minibatch:
            assert isinstance(self.key.batch_size, int)
            self.minibatch = min(self._grown(size, self.minibatch), self.key.batch_size)
            self._graphs = {}
        sets = [("x", "y", "mask", data.x, data.y)]
        if self.objective.held_out:
            assert data.x_eval is not None and data.y_eval is not None
            if len(data.x_eval) > self.max_eval:
                self._pad_eval_to(self._grown(len(data.x_eval), self.max_eval))
            sets.append(("x_eval", "y_eval", "mask_eval", data.x_eval, data.y_eval))
        fresh = init_of(config, self.n_out)
        with torch.no_grad():
            for name, view in self._blocks(self.weights).items():
                view[index] = fresh[name].to(self.device)
            for buf in self.state.values():
                for view in self._blocks(buf).values():
                    view[index] = 0
            for x_name, y_name, mask_name, x, y in sets:
                rows_x, rows_y, mask = (getattr(self, n) for n in (x_name, y_name, mask_name))
                rows_x[index] = 0
                rows_y[index] = 0
                mask[index] = False
                rows_x[index, : len(x)] = x.to(self.device)
                rows_y[index, : len(x)] = y.to(self.device)
                mask[index, : len(x)] = True
            self.b[index] = b
            self.norm[index] = data.norm
            self.lr[index] = config.learning_rate
            self.clip[index] = config.grad_clip
            self.gate_bias[index] = config.gate_bias
            self.step_count[index] = 0
            self.momentum[index] = momentum(config)
            self.l2[index] = float(setting(config, "l2"))
            self.seed[index] = config.seed
            self.size[index] = size
        self.rows.set_row(index, config, self.objective.start(config))
        self.slots[index] = _Slot(config=config, started=time.perf_counter())
        self._calls[index] = 0
        self._changed()
        return index

    def adopt(self, trial: OneTrial) -> int:
        """Take over a trial trained so far alone (`objectives.training.trainer.OneTrial`),
        in a free slot: its weights, optimizer state, step count and progress, so that it
        goes on as it would have alone (to rounding, as any trial of a batch). Its slot."""
        index = self.add(trial.config)
        progress = trial.progress
        with torch.no_grad():
            for name, view in self._blocks(self.weights).items():
                view[index] = trial.params[name].detach()
            buffers = trial.buffers()
            for buffer, flat in self.state.items():
                for name, view in self._blocks(flat).items():
                    view[index] = buffers[buffer][name]
            self.step_count[index] = progress.steps
            for f in fields(Progress):
                getattr(self.rows, f.name)[index] = getattr(progress, f.name)
        self._calls[index] = progress.steps
        slot = self.slots[index]
        assert slot is not None
        slot.started = trial.start
        return index

    def resize(self, capacity: int) -> None:
        """Move the trials held into a batch of `capacity` slots (they keep their weights,
        optimizer state and progress; only their slot numbers change), and trim the data's
        padding to the largest b still held (and a minibatch batch's minibatch to the
        largest batch_size held)."""
        held = [i for i, s in enumerate(self.slots) if s is not None]
        if capacity < len(held):
            raise ValueError(f"{len(held)} trials do not fit in {capacity} slots")
        index = torch.tensor(held, dtype=torch.long, device=self.device)
        sizes = [self.objective.sizes(s.config) for s in self.slots if s is not None]
        max_b = max((b for b, _ in sizes), default=0)
        max_eval = max((m for _, m in sizes), default=0)

        def moved(t: Tensor) -> Tensor:
            new = t.new_zeros((capacity, *t.shape[1:]))
            new[: len(held)] = t[index]
            return new

        def moved_flat(t: Tensor) -> Tensor:
            return torch.cat([moved(v.flatten(1)).flatten() for v in self._blocks(t).values()])

        # Everything is built before anything is replaced: a resize that fails (out of
        # memory) leaves the batch as it was.
        with torch.no_grad():
            rows = {name: moved(getattr(self, name)) for name in self._rows}
            for name in ("x", "y", "mask"):
                rows[name] = rows[name][:, :max_b].contiguous()
            for name in _EVAL_ROWS if self.objective.held_out else ():
                rows[name] = rows[name][:, :max_eval].contiguous()
            weights = moved_flat(self.weights.detach()).requires_grad_(True)
            state = {name: moved_flat(buf) for name, buf in self.state.items()}
            progress = self.rows.moved(index, capacity)
        for name, tensor in rows.items():
            setattr(self, name, tensor)
        self.rows = progress
        self.weights, self.state, self.max_b = weights, state, max_b
        self.max_eval = max_eval if self.objective.held_out else 0
        if self.minibatch is not None:
            configs = [s.config for s in self.slots if s is not None]
            self.minibatch = max(
                (batch_size(c, b) or b for c, (b, _) in zip(configs, sizes, strict=True)),
                default=0,
            )
        self.slots = [self.slots[i] for i in held] + [None] * (capacity - len(held))
        self._calls = [self._calls[i] for i in held] + [0] * (capacity - len(held))
        self.capacity = capacity
        self._index_models()
        self._graphs = {}
        self._changed()

    def _allocate(self) -> None:
        k, d = self.capacity, self.device
        size = k * self.num_params
        self.weights = torch.zeros(size, device=d, requires_grad=True)
        self.state = {name: torch.zeros(size, device=d) for name in _BUFFERS[self.optimizer]}
        self._index_models()
        self.b = torch.zeros(k, device=d)
        self.norm = torch.zeros(k, dtype=torch.float64, device=d)
        self.lr = torch.zeros(k, device=d)
        self.clip = torch.zeros(k, device=d)
        self.gate_bias = torch.zeros(k, 1, 1, device=d)
        self.step_count = torch.zeros(k, device=d)
        self.momentum = torch.zeros(k, device=d)
        self.l2 = torch.zeros(k, device=d)
        self.seed = torch.zeros(k, dtype=torch.long, device=d)
        self.size = torch.zeros(k, device=d)  # each trial's minibatch (full batch: b)
        # The rules' rows (objectives.training.rules), kept on the device and updated in place.
        self.rows = Progress.rows(k, d)
        self.x = torch.zeros(k, 0, self.n_in, device=d)
        self.y = torch.zeros(k, 0, *self.targets, device=d)
        self.mask = torch.zeros(k, 0, dtype=torch.bool, device=d)
        if self.objective.held_out:
            self.x_eval = torch.zeros(k, 0, self.n_in, device=d)
            self.y_eval = torch.zeros(k, 0, *self.targets, device=d)
            self.mask_eval = torch.zeros(k, 0, dtype=torch.bool, device=d)

    def _padded(self, names: tuple[str, str, str], extra: int) -> None:
        k, d = self.capacity, self.device
        x, y, mask = names
        setattr(
            self, x, torch.cat([getattr(self, x), torch.zeros(k, extra, self.n_in, device=d)], 1)
        )
        setattr(
            self,
            y,
            torch.cat([getattr(self, y), torch.zeros(k, extra, *self.targets, device=d)], 1),
        )
        padding = torch.zeros(k, extra, dtype=torch.bool, device=d)
        setattr(self, mask, torch.cat([getattr(self, mask), padding], 1))
        self._graphs = {}

    def _pad_to(self, b: int) -> None:
        """Pad every slot's data to the new largest b (padding is masked out)."""
        self._padded(("x", "y", "mask"), b - self.max_b)
        self.max_b = b

    def _pad_eval_to(self, m: int) -> None:
        """Pad every slot's held-out set to the new largest size (masked out likewise)."""
        self._padded(_EVAL_ROWS, m - self.max_eval)  # type: ignore[arg-type]
        self.max_eval = m

    def _index_models(self) -> None:
        """The model each number of a flat tensor belongs to."""
        k = torch.arange(self.capacity, device=self.device)
        self.model_of = torch.cat(
            [k.repeat_interleave(math.prod(shape)) for shape in self.layout.values()]
        )

    def _blocks(self, flat: Tensor) -> Params:
        """Each named weight's (K, *shape) block of a flat tensor, as a view."""
        out, offset, k = {}, 0, self.capacity
        for name, shape in self.layout.items():
            size = k * math.prod(shape)
            out[name] = flat[offset : offset + size].view(k, *shape)
            offset += size
        return out

    def _changed(self) -> None:
        """Called when trials come or go: what the step needs to know from the host. (A
        captured step clips always: a clip of 0 leaves a gradient exactly as it is.)"""
        held = [s.config for s in self.slots if s is not None]
        self._clipping = self.cuda_graph or any(c.grad_clip > 0 for c in held)
        self._decaying = self.cuda_graph or any(setting(c, "l2") > 0 for c in held)
        self._moving = self.cuda_graph or any(momentum(c) > 0 for c in held)

    def _tensors(self) -> list[Tensor]:
        """Every tensor the step reads or writes."""
        return [
            self.weights,
            *self.state.values(),
            *(getattr(self, name) for name in self._rows),
            *self.rows.tensors(),
            self.model_of,
        ]

    # -- training --------------------------------------------------------------------------

    def run(self, steps: int) -> list[tuple[Any, Any]]:
        """Train the occupied slots for up to `steps` steps; return the trials that ended.

        Stopping, best-score tracking and divergence (`objectives.training.rules`, the rules that
        `train` follows too) are decided on the device at every step (a model that
        stops is frozen there, at exactly the step where it stops); the host
        looks at the outcome only every `check_every` steps, so a GPU step has no host sync.
        """
        ended: list[tuple[Any, Any]] = []
        done = 0
        while done < steps and self.occupied > 0:
            chunk = min(self.check_every, steps - done)
            with self._precision():
                for _ in range(chunk):
                    self._train_step()
            done += chunk
            ended.extend(self._collect())
        return ended

    def _precision(self) -> AbstractContextManager[None]:
        """The matmul precision, set for every step (full precision too, whatever the
        process-wide setting)."""
        if self.device.type not in PRECISIONS:
            return nullcontext()
        return matmul_precision(self.device, self.precision)

    def _train_step(self) -> None:
        whole = self._scores_now()
        self._calls = [
            c + 1 if s is not None else c for c, s in zip(self._calls, self.slots, strict=True)
        ]
        if not self.cuda_graph:
            self.step(whole)
            return
        graph = self._graphs.get(whole)
        if graph is None:
            graph = self._graphs[whole] = StepGraph(lambda: self.step(whole), self._tensors)
        graph()
        if graph.failed:  # reported once; this batch trains eagerly from now on
            self.cuda_graph = False
            self._graphs = {}
            self._changed()

    def _scores_now(self) -> bool:
        """Whether this step scores any trial on its whole set (always, full batch): a
        minibatch trial at steps 0, SCORE_STEPS, ... and its last (`rules.scored`, which the
        step applies per trial on the device). The host's count of each slot's steps is the
        trial's own while it trains."""
        if self.minibatch is None:
            return True
        return any(
            s is not None and (c % SCORE_STEPS == 0 or c >= s.config.max_steps)
            for c, s in zip(self._calls, self.slots, strict=True)
        )

    def _outputs(self, params: Params, x: Tensor) -> Tensor:
        """Every model's outputs (K, b, n_out) for its inputs x (K, b, n_in)."""
        if self.capacity == 1:
            # One model: its own weights, without the model axis, so that the products are
            # plain matrix products (a batched product of one is slower on a CPU).
            return outputs(
                self.arch,
                {name: w[0] for name, w in params.items()},
                x[0],
                depth=self.depth,
                unroll=self.unroll,
                activation=self.activation,
                gate_bias=self.gate_bias[0],
                input_mode=self.input_mode,
            ).unsqueeze(0)
        return outputs(
            self.arch,
            params,
            x,
            depth=self.depth,
            unroll=self.unroll,
            activation=self.activation,
            gate_bias=self.gate_bias,
            input_mode=self.input_mode,
        )

    def step(self, whole: bool = True) -> None:
        """One training step of every model in the batch: score, stop or go on, update.
        `whole`: the step scores the whole sets (of a minibatch batch: of the trials that
        `rules.scored` names)."""
        params = self._blocks(self.weights)
        objective = self.objective
        if self.minibatch is None:
            out = self._outputs(params, self.x)
            per_model = objective.loss(out, self.y, self.mask, self.b)
            seen = per_model.detach()
            look: Tensor | bool = True
            picked: Tensor | None = None
        else:
            xb, yb = self._drawn()
            own = torch.arange(self.minibatch, device=self.device) < self.size[:, None]
            per_model = objective.loss(self._outputs(params, xb), yb, own, self.size)
            seen = per_model.detach()
            look = picked = scored(self.rows, True)
        with torch.no_grad():
            if not whole:  # no trial is scored: a placeholder it does not look at
                results = (self.rows.best_score, self.rows.best_kept, self.rows.ended & False)
            else:
                if picked is not None:
                    out = self._outputs(params, self.x)
                    full_loss = objective.loss(out, self.y, self.mask, self.b)
                    seen = torch.where(picked, full_loss, seen)
                if objective.held_out:
                    results = objective.score(
                        self._outputs(params, self.x_eval), self.y_eval, self.mask_eval, self.norm
                    )
                else:
                    results = objective.score(out, self.y, self.mask, self.norm)
            train = observe(self.rows, seen.double(), *results, DEVICE, scored=look)
        # Each model's gradient comes from its own loss only; models that stopped or left
        # add nothing (torch.where, so that a NaN loss cannot reach the others' sum).
        total = torch.where(train, per_model, 0).sum()
        # The gradient of each named weight's view, joined in the flat layout (one copy;
        # the gradient of the flat tensor itself would add up one full-size zero-padded
        # tensor per named weight).
        grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(total, list(params.values()))])
        with torch.no_grad():
            self._update(grad)
            advance(self.rows, train)

    def _drawn(self) -> tuple[Tensor, Tensor]:
        """This step's minibatch of every model, inputs (K, size, n_in) and targets (K, size,
        *target shape), size the batch's largest: the samples `objectives.training.minibatch`
        names, each model's from its own rows only. A trial's first batch_size of them are
        the samples it draws trained alone (sample j of a step does not depend on the size
        drawn); the rest are masked out of its loss. Picked as rows of the (K * max b)
        flattened sets by one index_select each, which on a CPU is several times faster than
        a gather along the sample axis (whose index is expanded over every feature)."""
        assert self.minibatch is not None
        k, size = self.capacity, self.minibatch
        chosen = minibatch_indices(self.seed, self.rows.steps, self.b, size)
        first = torch.arange(k, device=self.device)[:, None] * self.max_b  # each model's row 0
        rows = (chosen + first).flatten()
        xb = self.x.reshape(k * self.max_b, self.n_in).index_select(0, rows)
        yb = self.y.reshape(k * self.max_b, *self.targets).index_select(0, rows)
        return xb.view(k, size, self.n_in), yb.view(k, size, *self.targets)

    def progress(self) -> list[tuple[Any, int, float]]:
        """For every occupied slot, in slot order: (its config, the optimizer steps it has
        taken, the best value (capacity: bits) it has reached so far). One host sync."""
        held = [(k, s) for k, s in enumerate(self.slots) if s is not None]
        if not held:
            return []
        steps, kept = torch.stack([self.rows.steps.double(), self.rows.best_kept]).tolist()
        value = self.objective.best_value
        return [(s.config, int(steps[k]), value(s.config, kept[k])) for k, s in held]

    def stop(self, config: Any) -> Any:
        """End the trial of `config` now, as if it had ended by itself: its slot is free at
        once, and its result has `pruned` True and the best value it reached so far. (A trial
        that had already ended by its own rules, but that `run` has not returned yet, keeps
        its own result, with `pruned` False.) One host sync. `config` is matched by identity
        first, then by equality; ValueError if no slot holds it."""
        index = self._slot_of(config)
        with torch.no_grad():
            which = torch.arange(self.capacity, device=self.device) == index
            prune(self.rows, which, DEVICE)
        ((_, result),) = self._end([index])
        return result

    def _slot_of(self, config: Any) -> int:
        for same in (lambda c: c is config, lambda c: c == config):
            for k, slot in enumerate(self.slots):
                if slot is not None and same(slot.config):
                    return k
        raise ValueError("no slot holds this trial")

    def _collect(self) -> list[tuple[Any, Any]]:
        """The trials that stopped since the last look (one host sync)."""
        return self._end(self.rows.ended.nonzero().flatten().tolist())

    def _end(self, indices: list[int]) -> list[tuple[Any, Any]]:
        """The results of the trials in slots `indices`, whose slots are freed."""
        if not indices:
            return []
        rows = {f.name: getattr(self.rows, f.name).tolist() for f in fields(Progress)}
        out = []
        for k in indices:
            slot = self.slots[k]
            assert slot is not None
            result = self.objective.result(
                slot.config,
                Progress(**{name: row[k] for name, row in rows.items()}),
                num_params=self.num_params,
                seconds=time.perf_counter() - slot.started,
                device=str(self.device),
            )
            out.append((slot.config, result))
            self.slots[k] = None
            self.rows.ended[k] = False
        self._changed()
        return out

    def _update(self, grad: Tensor) -> None:
        """One optimizer step of every model. Models that stopped are updated too, harmlessly:
        their result is already kept, and their slot is reset when it is taken again."""
        model_of = self.model_of
        if self._clipping:  # torch.nn.utils.clip_grad_norm_, per model
            # Summed block by block along each model's row, not with index_add_: on a GPU its
            # atomic adds make the sum's rounding differ from run to run.
            k = self.capacity
            sq = sum(g.reshape(k, -1).square().sum(1) for g in self._blocks(grad).values())
            assert isinstance(sq, Tensor)
            coef = torch.clamp(self.clip / (sq.sqrt() + 1e-6), max=1.0)
            grad = grad * torch.where(self.clip > 0, coef, 1.0)[model_of]
        if self._decaying:  # L2 decay, added to the (clipped) gradient as torch.optim adds it
            grad = grad + self.l2[model_of] * self.weights.detach()
        self.step_count += 1
        t = self.step_count
        w, st = self.weights, self.state
        # Each model's learning rate for this step, by its schedule (objectives.training.rules).
        lr = self.lr * lr_factor(self.rows, DEVICE).float()
        if self.optimizer == "adam":
            b1, b2 = self.ADAM_BETAS
            st["m"].lerp_(grad, 1 - b1)
            st["v"].mul_(b2).addcmul_(grad, grad, value=1 - b2)
            step_size = (lr / (1 - b1**t))[model_of]
            denom = (st["v"].sqrt() / (1 - b2**t).sqrt()[model_of]).add_(1e-8)
            w.addcdiv_(st["m"] * step_size, denom, value=-1)
        elif self.optimizer == "rmsprop":
            a = self.RMSPROP_ALPHA
            st["v"].mul_(a).addcmul_(grad, grad, value=1 - a)
            denom = st["v"].sqrt().add_(1e-8)
            if self._moving:  # torch.optim's momentum form where a trial has momentum
                mom = self.momentum[model_of]
                st["buf"].mul_(mom).addcdiv_(grad, denom)
                plain = grad * lr[model_of] / denom
                w.sub_(torch.where(mom > 0, lr[model_of] * st["buf"], plain))
            else:
                w.addcdiv_(grad * lr[model_of], denom, value=-1)
        elif self.optimizer == "sgd":  # Nesterov momentum; the first step sets the buffer
            mom = self.momentum[model_of]
            st["buf"].mul_(torch.where(t > 1, self.momentum, 0.0)[model_of]).add_(grad)
            w.sub_(lr[model_of] * grad.addcmul(st["buf"], mom))
        else:  # adagrad
            st["sum"].addcmul_(grad, grad)
            w.addcdiv_(grad * lr[model_of], st["sum"].sqrt().add_(1e-10), value=-1)
