"""What training offers a task and asks of it, torch-free so that a task's study can check its
settings against it without importing torch: the named choices of training (optimizers,
learning-rate schedules), how often a pruner looks, and the checkpoint a pruner looks
through; the fields of a config the trainers read (`TrainingConfig`), and what a task's
objective must do for them (`Objective`). Training imports no task: a caller hands the
trainers a config and its objective (objectives.tasks.registry wires them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from torch import Tensor

# The optimizers of `objectives.training.trainer.make_optimizer` (and of the batched
# trainer, written out step for step as torch.optim computes them).
OPTIMIZERS: tuple[str, ...] = ("adam", "rmsprop", "sgd", "adagrad")

# Learning-rate schedules over a trial's max_steps (objectives.training.rules.lr_factor): the
# rate of optimizer step s (0-based) is learning_rate times
#   constant: 1
#   cosine:   (1 + cos(pi * s / max_steps)) / 2, from 1 at the first step towards 0 at the end
#   step:     1, then 0.1 from step max_steps / 2 on, 0.01 from step 3 * max_steps / 4 on
#   exponential: lr_decay ** (s / max_steps), from 1 down to lr_decay at the end (the
#             paper's decay, docs/tasks.md "The paper's protocol")
# A trial's progress holds its schedule as an index into this tuple: append, never reorder.
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step", "exponential")

# How a trial's inputs reach the network (objectives.networks.cells.outputs): at the first
# of its T steps only, or at every step.
INPUT_MODES: tuple[str, ...] = ("first", "every")

# A trial's batch_size: FULL_BATCH (every step on the whole training set) or an integer, the
# minibatch drawn at random for each step (objectives.training.minibatch).
FULL_BATCH = "full"

# How often a trial's best value is shown to its checkpoint (a pruner), in optimizer steps.
CHECKPOINT_STEPS = 500

# A minibatch trial is scored on its whole training set every SCORE_STEPS optimizer steps
# (and at its last step), not at every step: a full pass at every step would cost more than
# the minibatch step itself. Its patience is checked at those steps only.
SCORE_STEPS = CHECKPOINT_STEPS

# A pruner's look at a running trial: called with (optimizer steps taken, best value so far);
# returning False ends the trial early (its result then says `pruned`).
Checkpoint = Callable[[int, float], bool]


class TrainingConfig(Protocol):
    """The fields of a trial's frozen config that the trainers read: the network, the data
    set's seed, the optimizer and its schedule, and when to stop. A task's config
    (objectives/tasks/*/study.py) has these and its own (capacity: b; per-unit: samples).

    The settings added later (`SETTINGS`) are read with `setting`: a config without one
    trains as every trial did before it was added."""

    @property
    def task(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def arch(self) -> str: ...
    @property
    def n_in(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def depth(self) -> int: ...
    @property
    def unroll(self) -> int: ...
    @property
    def activation(self) -> str: ...
    @property
    def gate_bias(self) -> float: ...
    @property
    def init_scale(self) -> float: ...
    @property
    def init_scheme(self) -> str: ...
    @property
    def optimizer(self) -> str: ...
    @property
    def learning_rate(self) -> float: ...
    @property
    def lr_schedule(self) -> str: ...
    @property
    def grad_clip(self) -> float: ...
    @property
    def max_steps(self) -> int: ...
    @property
    def patience(self) -> int: ...
    @property
    def num_params(self) -> int: ...


# Settings a config may lack (added to the capacity task after the first studies), each with
# the value that gives the training of every trial before it was added:
#   batch_size: FULL_BATCH or a minibatch size           lr_decay: the exponential schedule's
#   momentum_logit: "auto" (sgd 0.9, rmsprop 0) or x,      factor over the run
#     momentum sigmoid(x)                                 l2: weight decay (0: none)
#   recurrent_init: "scheme" (init_scheme's), identity, orthogonal or normal
#   input_scale: "auto" (init_scale) or the input matrices' scale
#   bias_init: constant or normal, times bias_scale       input_mode: INPUT_MODES
SETTINGS: dict[str, Any] = {
    "batch_size": FULL_BATCH,
    "lr_decay": 1.0,
    "momentum_logit": "auto",
    "l2": 0.0,
    "recurrent_init": "scheme",
    "input_scale": "auto",
    "bias_init": "constant",
    "bias_scale": 0.0,
    "input_mode": "first",
}

# The momentum of momentum_logit "auto": today's, per optimizer (sgd is Nesterov's).
AUTO_MOMENTUM: dict[str, float] = {"sgd": 0.9, "rmsprop": 0.0}


def setting(config: Any, name: str) -> Any:
    """A later setting of `config` (SETTINGS), its old behaviour where the config lacks it."""
    return getattr(config, name, SETTINGS[name])


def momentum(config: Any) -> float:
    """The momentum of an sgd or rmsprop trial: momentum_logit x gives sigmoid(x) (the
    paper's range x in [1, 7] is momentum 0.73 to 0.999); "auto" today's value (sgd 0.9,
    rmsprop 0). Other optimizers have none (0)."""
    logit = setting(config, "momentum_logit")
    if config.optimizer not in AUTO_MOMENTUM:
        return 0.0
    if logit == "auto":
        return AUTO_MOMENTUM[config.optimizer]
    return 1.0 / (1.0 + math.exp(-float(logit)))


def batch_size(config: Any, samples: int) -> int | None:
    """The minibatch of each step, or None for the whole training set (`samples`)."""
    size = setting(config, "batch_size")
    if size == FULL_BATCH:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= samples:
        raise ValueError(f"batch_size must be {FULL_BATCH!r} or in [1, {samples}], got {size!r}")
    return size


class Start(NamedTuple):
    """Where a trial's score starts (its task's chance), and its patience margin."""

    score: float
    kept: float
    margin: float = 0.0


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


class Outcome(Protocol):
    """Where an ended trial stands, as its objective reads it to build its result record
    (`objectives.training.rules.Progress`, python scalars)."""

    steps: Any  # optimizer steps taken
    best_kept: Any  # what the objective keeps at the best score (capacity: the error count)
    diverged: Any
    pruned: Any
    last_loss: Any


class Objective(Protocol):
    """What a trained task brings to the shared trainers (`objectives.training.trainer.train`
    and `objectives.training.batched.BatchedTrainer`): its data sets, its readout width, its
    loss, what a step scores, where a trial's score starts, and the record a trial ends
    with. Everything else (the cells, the optimizers, the rules of
    `objectives.training.rules`) is the same for every task. The tasks' own objectives are in
    objectives/tasks/*/objective.py.

    Shapes: `out` is the network's output (..., b, n_out) (`objectives.networks.cells.outputs`);
    targets are (..., b, *target_shape). One trial (no model axis) passes `mask` None; a
    batch passes (K, b) masks of its real (not padding) samples and (K,) rows `count`
    (training samples) and `norm` (the score's per-trial constant, `Data.norm`).
    """

    @property
    def task(self) -> str:
        """The task's name, as its configs' `task`."""
        ...

    @property
    def held_out(self) -> bool:
        """Scored on a held-out set (an extra forward pass a step, no gradient)."""
        ...

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
        self, config: Any, progress: Outcome, *, num_params: int, seconds: float, device: str
    ) -> Any: ...

    def gap(self, full: Any, low: Any) -> float:
        """How far apart two results of one trial are (a precision probe's measure)."""
        ...
