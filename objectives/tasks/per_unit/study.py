"""The per-unit capacity task (the paper's memory-throughput measure, docs/tasks.md):
study settings, the frozen per-trial config, and the one function that turns an Optuna trial
into that config.

A random real-valued input x of n_in independent numbers, each of mean 0 and variance 1, is
presented at the first time step only; the network (one of the six cells, learned initial
state) runs `unroll` steps in all with zero input after, and a linear readout of its last
layer's state at the last step must give back the whole x (n_in outputs). Training minimises
the mean squared error, full batch, on a fixed random training set of `samples` inputs. The
study fixes the hidden units per layer (`units`), not a parameter budget; depth is searched.

The input distribution (`inputs`). The paper drew each number uniformly on [-sqrt(3), sqrt(3)]
(variance 1) and reconstructed it T = 12 steps later at n_in 64: a new study does the same by
default (`uniform`, unroll 12). Studies stored before the setting existed drew standard
Gaussian numbers (at the n_in and unroll they stored): their attrs lack `inputs` and read as
`gaussian` (INPUTS_BEFORE), so that they resume and train again on the data they began with.
Both distributions have variance 1, so the score below means the same under either.

The score (the trial's value, maximised) is the fraction of the input variance reconstructed,
measured on a held-out set of `eval_samples` fresh inputs from the same distribution:

    fraction_reconstructed = max(0, 1 - sum((xhat - x)^2) / sum((x - mean(x))^2))

(sums over the held-out samples and the n_in numbers of each; mean(x) is each number's mean
over the held-out set), and numbers_stored = fraction_reconstructed * n_in. Because the score
is measured on inputs the network never saw, rote memorisation of the training set earns
nothing: only a map that carries any input through T steps scores. As in the capacity task,
the score kept is the best seen during training (each measured on its step's weights). That
selects on the held-out set; with the default 1024 x 64 held-out numbers the chance excess of
such a maximum is of the order of the estimate's own noise (about 1e-3 of the fraction).

The training-set size. Each training sample gives n_in target numbers, and a network with P
trained parameters can fit about P numbers exactly: at samples * n_in near P a least-squares
fit interpolates its training set, and generalises worst. So by default (`samples` 0) a trial
trains on max(MIN_SAMPLES, ceil(SAMPLES_PER_PARAM * P / n_in)) inputs, four target numbers per
parameter: far enough past that threshold that what is fitted is the map, not the samples,
while the cost (one step is about 6 * P * T * samples FLOPs) stays within 4x of the smallest
set that could pin the map down. MIN_SAMPLES = 2048 (32 samples per input dimension at
n_in 64) keeps small networks, whose P / n_in is small, from fitting a few dozen points.
Each depth has its own P and so its own default; a study may fix `samples` instead. The
held-out score then measures generalisation whatever the size chosen.

Torch-free: training lives in `objectives.training.trainer` (with the task's pieces in
`objectives.tasks.per_unit.objective`), imported only when a trial runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.distributions import FloatDistribution

from objectives.networks.architectures import ARCHS, check_arch, count_params
from objectives.tasks import space as dims
from objectives.tasks.space import Distribution
from objectives.tasks.trained import (
    check_integers,
    check_space_names,
    check_tag,
    check_training_config,
    check_training_space,
    default_activation,
    default_depths,
    parse_overrides,
    space_to_attrs,
    study_values,
    suggest_value,
)

if TYPE_CHECKING:
    import optuna

TASK = "per-unit"
MIN_SAMPLES = 2048
SAMPLES_PER_PARAM = 4  # training target numbers (samples * n_in) per trained parameter
EVAL_SAMPLES = 1024
MAX_SAMPLES = 10_000_000
# A trial whose held-out fraction reaches this has stored the whole input: it stops (as a
# capacity trial with every sample right does).
RECONSTRUCTED = 1.0 - 1e-4
# Patience counts steps without the held-out fraction rising this much (absolute) above the
# score it last rose from (or the training loss falling by rules.LOSS_MARGIN): a continuous
# score that creeps up by rounding-sized amounts is not progress.
SCORE_MARGIN = 1e-4
# How each input number is drawn (module docstring): the paper's bounded uniform of variance
# 1, or standard Gaussian. Stored with the study; those stored before the setting drew
# Gaussian ones.
INPUTS: tuple[str, ...] = ("uniform", "gaussian")
INPUTS_BEFORE = "gaussian"

__all__ = [
    "DIMENSIONS",
    "INPUTS",
    "INPUTS_BEFORE",
    "TASK",
    "PerUnitConfig",
    "PerUnitStudy",
    "auto_samples",
    "build_study",
    "suggest_config",
]

# Order matters: it is the order of `trial.suggest_*` calls, which the samplers see.
DIMENSIONS: tuple[str, ...] = (
    "depth",
    "learning_rate",
    "init_scale",
    "activation",
    "optimizer",
    "gate_bias",
    "grad_clip",
    "max_steps",
    "lr_schedule",
    "init_scheme",
)

# Dimensions added since studies were first stored, with the value every trial of an older
# study had; a stored space without them reads as fixed to that value.
ADDED_DIMENSIONS: dict[str, Distribution] = {"init_scheme": dims.fixed("scaled-normal")}


def check_inputs(inputs: str) -> None:
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be {' or '.join(INPUTS)}, got {inputs!r}")


def auto_samples(num_params: int, n_in: int) -> int:
    """The default training-set size of a network of `num_params` parameters (module
    docstring): four target numbers per parameter, at least MIN_SAMPLES inputs."""
    return min(MAX_SAMPLES, max(MIN_SAMPLES, math.ceil(SAMPLES_PER_PARAM * num_params / n_in)))


def default_space(arch: str, depths: tuple[int, ...]) -> dict[str, Distribution]:
    """Defaults: learning rate, init scale and depth searched; the rest fixed, as in the
    capacity task."""
    return {
        "depth": dims.choice("depth", depths),
        "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
        "init_scale": FloatDistribution(0.1, 3.0, log=True),
        "activation": dims.fixed(default_activation(arch)),
        "optimizer": dims.fixed("adam"),
        "gate_bias": dims.fixed(1.0),
        "grad_clip": dims.fixed(0.0),
        "max_steps": dims.fixed(2000),
        "lr_schedule": dims.fixed("constant"),
        "init_scheme": dims.fixed("scaled-normal"),
    }


@dataclass(frozen=True)
class PerUnitStudy:
    """Everything fixed for one per-unit study: the network family, its hidden units per
    layer, the input size, and the search space. `to_attrs`/`from_attrs` store and read
    every field."""

    arch: str = field(metadata={"help": "cell: " + ", ".join(ARCHS)})
    units: int = field(metadata={"help": "hidden units per layer"})
    n_in: int = field(default=64, metadata={"help": "input numbers to reconstruct"})
    unroll: int = field(default=12, metadata={"help": "time steps T"})
    inputs: str = field(
        default="uniform",
        metadata={
            "help": "how each input number is drawn, with variance 1: uniform on "
            "[-sqrt(3), sqrt(3)] (the paper's) or gaussian"
        },
    )
    patience: int = field(
        default=200, metadata={"help": "steps without improvement before a trial stops"}
    )
    samples: int = field(
        default=0,
        metadata={"help": "training inputs (0: max(2048, 4 * params / n_in) at each depth)"},
    )
    eval_samples: int = field(
        default=EVAL_SAMPLES, metadata={"help": "held-out inputs the score is measured on"}
    )
    space: Mapping[str, Distribution] = field(
        default_factory=dict, metadata={"help": "search space: dimension name -> distribution"}
    )
    tag: str = field(
        default="",
        metadata={"help": "name suffix (per-unit-ARCH-nUNITS-TAG), to compare samplers, say"},
    )

    def __post_init__(self) -> None:
        check_arch(self.arch)
        check_tag(self.tag)
        check_inputs(self.inputs)
        check_integers(
            (
                ("units", self.units, 1, 65536),
                ("n_in", self.n_in, 1, 4096),
                ("unroll", self.unroll, 1, 1000),
                ("patience", self.patience, 1, 10**7),
                ("eval_samples", self.eval_samples, 2, MAX_SAMPLES),
            )
        )
        if self.samples != 0:
            check_integers((("samples", self.samples, 2, MAX_SAMPLES),))
        check_space_names(self.space, DIMENSIONS)
        check_training_space(self.arch, self.space)

    @property
    def name(self) -> str:
        base = f"{TASK}-{self.arch}-n{self.units}"
        return f"{base}-{self.tag}" if self.tag else base

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(int(d) for d in dims.values("depth", self.space["depth"]))

    def hidden_size(self, depth: int) -> int:
        """The units per layer, the same at every depth."""
        return self.units

    def num_params(self, depth: int) -> int:
        return count_params(self.arch, self.n_in, self.units, depth, n_out=self.n_in)

    def samples_at(self, depth: int) -> int:
        """The training-set size of a trial at `depth`."""
        return self.samples or auto_samples(self.num_params(depth), self.n_in)

    def largest_config(self, depth: int) -> PerUnitConfig:
        """The biggest trial this study can ask for at `depth` (learning rate and init scale
        do not change a trial's size)."""
        if depth not in self.depths:
            raise ValueError(f"depth {depth} is not searched; depths: {self.depths}")
        return PerUnitConfig(
            arch=self.arch,
            n_in=self.n_in,
            hidden_size=self.units,
            depth=depth,
            unroll=self.unroll,
            inputs=self.inputs,
            samples=self.samples_at(depth),
            eval_samples=self.eval_samples,
            learning_rate=1e-3,
            init_scale=1.0,
            activation=str(dims.values("activation", self.space["activation"])[0]),
        )

    def to_attrs(self) -> dict[str, Any]:
        """JSON-ready description, stored as the study's user attrs: the task, every field,
        the space as Optuna's JSON of each distribution."""
        return space_to_attrs(self, TASK)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> PerUnitStudy:
        """The study of stored attrs; one stored before `inputs` existed drew Gaussian
        inputs (INPUTS_BEFORE), whatever a new study's default."""
        values = study_values(cls, attrs, ADDED_DIMENSIONS)
        values.setdefault("inputs", INPUTS_BEFORE)
        return cls(**values)


def build_study(
    arch: str,
    units: int,
    *,
    depths: tuple[int, ...] | None = None,
    overrides: Mapping[str, Any] | None = None,
    **settings: Any,
) -> PerUnitStudy:
    """A study with the default space, where `overrides` (name -> spec) replace dimensions;
    `settings` are other `PerUnitStudy` fields (n_in, unroll, inputs, patience, samples,
    eval_samples, tag), defaults where left out. Specs as for `objectives.tasks.capacity.study.
    build_study` (`objectives.tasks.space.parse_dimension`)."""
    check_arch(arch)
    check_integers((("units", units, 1, 65536),))
    if depths is None:
        depths = default_depths(arch)
    if not depths:
        raise ValueError("depths: give at least one depth")
    space = parse_overrides(default_space(arch, depths), overrides, DIMENSIONS)
    return PerUnitStudy(arch=arch, units=units, space=space, **settings)


@dataclass(frozen=True)
class PerUnitConfig:
    """One training run of the per-unit task: everything `objectives.training.trainer` needs."""

    arch: str
    n_in: int
    hidden_size: int
    depth: int
    unroll: int
    samples: int
    eval_samples: int
    learning_rate: float
    init_scale: float
    activation: str = "tanh"
    optimizer: str = "adam"
    gate_bias: float = 1.0
    grad_clip: float = 0.0
    max_steps: int = 2000
    lr_schedule: str = "constant"
    init_scheme: str = "scaled-normal"
    patience: int = 200
    seed: int = 0
    # Last, with the value of every trial stored before it existed (module docstring): a
    # stored config without it reads as what it ran. A study passes its own.
    inputs: str = INPUTS_BEFORE

    def __post_init__(self) -> None:
        check_training_config(self)
        check_inputs(self.inputs)
        check_integers(
            (
                ("samples", self.samples, 2, MAX_SAMPLES),
                ("eval_samples", self.eval_samples, 2, MAX_SAMPLES),
            )
        )

    @property
    def task(self) -> str:
        return TASK

    @property
    def num_params(self) -> int:
        return count_params(self.arch, self.n_in, self.hidden_size, self.depth, n_out=self.n_in)

    def to_attrs(self) -> dict[str, Any]:
        return asdict(self)


def suggest_config(trial: optuna.trial.BaseTrial, study: PerUnitStudy, seed: int) -> PerUnitConfig:
    """The only place the per-unit task touches Optuna: trial -> frozen config."""
    values = {name: suggest_value(trial, name, study.space[name]) for name in DIMENSIONS}
    depth = int(values["depth"])
    return PerUnitConfig(
        arch=study.arch,
        n_in=study.n_in,
        hidden_size=study.units,
        depth=depth,
        unroll=study.unroll,
        inputs=study.inputs,
        samples=study.samples_at(depth),
        eval_samples=study.eval_samples,
        learning_rate=float(values["learning_rate"]),
        init_scale=float(values["init_scale"]),
        activation=str(values["activation"]),
        optimizer=str(values["optimizer"]),
        gate_bias=float(values["gate_bias"]),
        grad_clip=float(values["grad_clip"]),
        max_steps=int(values["max_steps"]),
        lr_schedule=str(values["lr_schedule"]),
        init_scheme=str(values["init_scheme"]),
        patience=study.patience,
        seed=seed,
    )
