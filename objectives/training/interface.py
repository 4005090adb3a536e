"""What training offers a task and asks of it, torch-free so that a task's study can check its
settings against it without importing torch: the named choices of training (optimizers,
learning-rate schedules), how often a pruner looks, and the checkpoint a pruner looks
through; the fields of a config the trainers read (`TrainingConfig`), and what a task's
objective must do for them (`Objective`). Training imports no task: a caller hands the
trainers a config and its objective (objectives.tasks.registry wires them).
"""

from __future__ import annotations

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
# A trial's progress holds its schedule as an index into this tuple: append, never reorder.
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step")

# How often a trial's best value is shown to its checkpoint (a pruner), in optimizer steps.
CHECKPOINT_STEPS = 500

# A pruner's look at a running trial: called with (optimizer steps taken, best value so far);
# returning False ends the trial early (its result then says `pruned`).
Checkpoint = Callable[[int, float], bool]


class TrainingConfig(Protocol):
    """The fields of a trial's frozen config that the trainers read: the network, the data
    set's seed, the optimizer and its schedule, and when to stop. A task's config
    (objectives/tasks/*/study.py) has these and its own (capacity: b; per-unit: samples)."""

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
