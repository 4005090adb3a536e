"""The per-parameter capacity task (CAPACITY_TASK.md section 1): study settings, the frozen
per-trial config, and the one function that turns an Optuna trial into that config.

Torch-free: training lives in `objectives.training.trainer`, imported only when a trial runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from objectives.networks.architectures import (
    ARCHS,
    GATED,
    check_arch,
    count_params,
    solve_hidden_size,
)
from objectives.tasks import space as dims
from objectives.tasks.space import Distribution, Scalar

if TYPE_CHECKING:
    import optuna

TASK = "capacity"
OPTIMIZERS: tuple[str, ...] = ("adam", "rmsprop", "sgd", "adagrad")
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu")
# Learning-rate schedules over a trial's max_steps (objectives.training.rules.lr_factor): the rate
# of
# optimizer step s (0-based) is learning_rate times
#   constant: 1
#   cosine:   (1 + cos(pi * s / max_steps)) / 2, from 1 at the first step towards 0 at the end
#   step:     1, then 0.1 from step max_steps / 2 on, 0.01 from step 3 * max_steps / 4 on
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step")
# How input and recurrent matrices start (objectives.networks.cells._matrix), init_scale times:
#   scaled-normal: N(0, 1 / fan_in)     he: N(0, 2 / fan_in)
#   orthogonal: each gate block a random orthogonal matrix
#   identity: each recurrent gate block the identity (input matrices scaled-normal)
# The IRNN's recurrent matrix is the identity whatever the scheme.
INIT_SCHEMES: tuple[str, ...] = ("scaled-normal", "identity", "orthogonal", "he")
SEARCHED_ACTIVATION: frozenset[str] = frozenset({"rnn", "ugrnn"})
MAX_DEPTH = 16
MAX_B = 10_000_000
# How often a trial's best bits are shown to its checkpoint (a pruner), in optimizer steps.
CHECKPOINT_STEPS = 500

# Order matters: it is the order of `trial.suggest_*` calls, which the samplers see.
DIMENSIONS: tuple[str, ...] = (
    "depth",
    "b",
    "learning_rate",
    "init_scale",
    "activation",
    "optimizer",
    "gate_bias",
    "grad_clip",
    "max_steps",
    "lr_schedule",  # added later: last, so that older studies' suggest order is unchanged
    "init_scheme",  # added after lr_schedule
)


# Dimensions added since studies were first stored, with the value every trial of an older
# study had; a stored space without them reads as fixed to that value.
ADDED_DIMENSIONS: dict[str, Distribution] = {
    "lr_schedule": dims.fixed("constant"),
    "init_scheme": dims.fixed("scaled-normal"),
}


def default_depths(arch: str) -> tuple[int, ...]:
    """Depths 1, 2, 4 as in the paper; the +RNN is not used at depth 1 (CAPACITY_TASK §3)."""
    return (2, 4) if arch == "+rnn" else (1, 2, 4)


def default_activation(arch: str) -> str:
    return "relu" if arch == "irnn" else "tanh"


def default_space(arch: str, budget: int, depths: tuple[int, ...]) -> dict[str, Distribution]:
    """Defaults: b, learning rate, init scale and depth searched; the rest fixed."""
    return {
        "depth": dims.choice("depth", depths),
        "b": IntDistribution(max(8, budget // 2), 16 * budget, log=True),
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


def _numbers(name: str, dim: BaseDistribution) -> list[float]:
    if isinstance(dim, FloatDistribution | IntDistribution):
        return [dim.low, dim.high]
    values = dims.values(name, dim)
    bad = [v for v in values if isinstance(v, str | bool)]
    if bad:
        raise ValueError(f"{name}: expected numbers, got {bad[0]!r}")
    return [float(v) for v in values]


def _check_range(
    space: Mapping[str, BaseDistribution], name: str, low: float, high: float, what: str
) -> None:
    for x in _numbers(name, space[name]):
        if not low <= x <= high:
            raise ValueError(f"{name}: {x:g} is out of range; allowed: {what}")


def _check_words(
    space: Mapping[str, BaseDistribution], name: str, allowed: tuple[str, ...]
) -> None:
    dim = space[name]
    if not isinstance(dim, CategoricalDistribution):
        raise ValueError(f"{name}: takes values from {', '.join(allowed)}, not a range")
    for v in dim.choices:
        if v not in allowed:
            raise ValueError(f"{name}: unknown value {v!r}; allowed: {', '.join(allowed)}")


def check_training_space(arch: str, space: Mapping[str, BaseDistribution]) -> None:
    """The checks of the dimensions that every trained task shares (depth, learning rate,
    init scale, activation, optimizer, gate bias, gradient clip, steps, schedule)."""
    depth = space["depth"]
    if not isinstance(depth, CategoricalDistribution):
        raise ValueError("depth: give a list of depths (e.g. 1,2,4), not a range")
    for d in depth.choices:
        if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_DEPTH:
            raise ValueError(f"depth: {d!r} is not an integer in [1, {MAX_DEPTH}]")
        if arch == "+rnn" and d == 1:
            raise ValueError(
                "depth: +rnn is not used at depth 1 (its depth output only mixes in the "
                "input there); choose depths of 2 or more"
            )
    _check_range(space, "learning_rate", 1e-8, 10.0, "(0, 10]")
    _check_range(space, "init_scale", 1e-6, 100.0, "(0, 100]")
    _check_range(space, "gate_bias", -20.0, 20.0, "[-20, 20]")
    _check_range(space, "grad_clip", 0.0, 1e6, "0 (off) or a positive norm")
    _check_range(space, "max_steps", 1, 10**7, "[1, 10000000]")
    if any(x != int(x) for x in _numbers("max_steps", space["max_steps"])):
        raise ValueError("max_steps: must be an integer")
    _check_words(space, "optimizer", OPTIMIZERS)
    _check_words(space, "lr_schedule", LR_SCHEDULES)
    _check_words(space, "init_scheme", INIT_SCHEMES)
    activation = space["activation"]
    if arch in SEARCHED_ACTIVATION:
        _check_words(space, "activation", ACTIVATIONS)
    elif not (
        isinstance(activation, CategoricalDistribution)
        and activation.choices == (default_activation(arch),)
    ):
        raise ValueError(
            f"activation: {arch} uses {default_activation(arch)} only; "
            f"the activation is searched for {', '.join(sorted(SEARCHED_ACTIVATION))}"
        )
    if arch not in GATED and dims.is_searched(space["gate_bias"]):
        raise ValueError(f"gate_bias: {arch} has no gates; gated cells: {', '.join(sorted(GATED))}")


def check_space_names(space: Mapping[str, BaseDistribution], dimensions: tuple[str, ...]) -> None:
    missing = [d for d in dimensions if d not in space]
    unknown = [d for d in space if d not in dimensions]
    if missing or unknown:
        raise ValueError(
            f"search space must name exactly {', '.join(dimensions)}; "
            f"missing {missing}, unknown {unknown}"
        )


def check_tag(tag: str) -> None:
    if not isinstance(tag, str) or (tag and not all(c.isalnum() or c in "-_." for c in tag)):
        raise ValueError(f"tag may hold letters, digits, '-', '_' and '.', got {tag!r}")


def check_integers(values: tuple[tuple[str, Any, int, int], ...]) -> None:
    """(name, value, low, high): each value an integer in [low, high]."""
    for name, value, low, high in values:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def space_to_attrs(study: Any, task: str) -> dict[str, Any]:
    """A study's JSON-ready description: the task, every field, the space as Optuna's JSON
    of each distribution."""
    attrs: dict[str, Any] = {"task": task}
    for f in fields(study):
        value = getattr(study, f.name)
        if f.name == "space":
            value = {name: dims.to_attrs(dim) for name, dim in value.items()}
        attrs[f.name] = value
    return attrs


def study_values(
    cls: Any, attrs: Mapping[str, Any], added: Mapping[str, Distribution]
) -> dict[str, Any]:
    """The fields of a study class read from stored attrs: fields missing there (added
    since) take their defaults, dimensions missing from the space (`added`) their old
    value."""
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in attrs:
            continue  # a field added since the study was made: its default
        value = attrs[f.name]
        if f.name == "space":
            value = {name: dims.from_attrs(name, d) for name, d in value.items()}
            for name, dim in added.items():
                value.setdefault(name, dim)
        values[f.name] = value
    return values


def parse_overrides(
    space: dict[str, Distribution],
    overrides: Mapping[str, Any] | None,
    dimensions: tuple[str, ...],
) -> dict[str, Distribution]:
    """`space` with the dimensions named in `overrides` (name -> spec) replaced."""
    for name, spec in (overrides or {}).items():
        if name not in space:
            raise ValueError(f"unknown search dimension {name!r}; known: {', '.join(dimensions)}")
        space[name] = dims.parse_dimension(name, spec, space[name])
    return space


def check_training_config(config: Any) -> None:
    """The checks of the settings every trained task's config shares."""
    check_arch(config.arch)
    for name in ("n_in", "hidden_size", "depth", "unroll", "max_steps", "patience"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not config.learning_rate > 0 or not config.init_scale > 0:
        raise ValueError("learning_rate and init_scale must be positive")
    if config.grad_clip < 0:
        raise ValueError(f"grad_clip must be >= 0 (0 is off), got {config.grad_clip}")
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer {config.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule {config.lr_schedule!r}; allowed: {', '.join(LR_SCHEDULES)}")
    if config.init_scheme not in INIT_SCHEMES:
        raise ValueError(f"init_scheme {config.init_scheme!r}; allowed: {', '.join(INIT_SCHEMES)}")
    if config.activation not in ACTIVATIONS:
        raise ValueError(f"activation {config.activation!r}; allowed: tanh, relu")
    if config.arch == "irnn" and config.activation != "relu":
        raise ValueError("irnn uses relu")
    if config.arch not in SEARCHED_ACTIVATION | {"irnn"} and config.activation != "tanh":
        raise ValueError(f"{config.arch} uses tanh")
    if config.seed < 0:
        raise ValueError(f"seed must be >= 0, got {config.seed}")


@dataclass(frozen=True)
class CapacityStudy:
    """Everything fixed for one study: the network family, budget, and the search space.

    The one declaration of these settings: `hpsearch create` derives its flags and experiment
    file keys from these fields (their defaults, and the `help` in their metadata), and
    `to_attrs`/`from_attrs` store and read every field.
    """

    arch: str = field(metadata={"help": "cell: " + ", ".join(ARCHS)})
    budget: int = field(metadata={"help": "parameter budget"})
    n_in: int = field(default=32, metadata={"help": "input bits per sample"})
    unroll: int = field(default=5, metadata={"help": "time steps T"})
    patience: int = field(
        default=200, metadata={"help": "steps without improvement before a trial stops"}
    )
    space: Mapping[str, Distribution] = field(
        default_factory=dict, metadata={"help": "search space: dimension name -> distribution"}
    )
    tag: str = field(
        default="",
        metadata={"help": "name suffix (capacity-ARCH-pBUDGET-TAG), to compare samplers, say"},
    )

    def __post_init__(self) -> None:
        check_arch(self.arch)
        check_tag(self.tag)
        check_integers(
            (
                ("budget", self.budget, 1, 10**9),
                ("n_in", self.n_in, 1, 4096),
                ("unroll", self.unroll, 1, 1000),
                ("patience", self.patience, 1, 10**7),
            )
        )
        check_space_names(self.space, DIMENSIONS)
        check_training_space(self.arch, self.space)
        for d in self.depths:
            solve_hidden_size(self.arch, self.n_in, d, self.budget)
        _check_range(self.space, "b", 2, MAX_B, f"[2, {MAX_B}]")
        if any(x != int(x) for x in _numbers("b", self.space["b"])):
            raise ValueError("b: must be an integer")

    @property
    def name(self) -> str:
        base = f"{TASK}-{self.arch}-p{self.budget}"
        return f"{base}-{self.tag}" if self.tag else base

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(int(d) for d in dims.values("depth", self.space["depth"]))

    def hidden_size(self, depth: int) -> int:
        return solve_hidden_size(self.arch, self.n_in, depth, self.budget)

    def largest_config(self, depth: int) -> CapacityConfig:
        """The biggest trial this study can ask for at `depth`: its largest b, that depth's
        hidden size, and its activation's first value (learning rate and init scale do not
        change a trial's size)."""
        if depth not in self.depths:
            raise ValueError(f"depth {depth} is not searched; depths: {self.depths}")
        _, b_high = dims.bounds(self.space["b"])
        return CapacityConfig(
            arch=self.arch,
            n_in=self.n_in,
            hidden_size=self.hidden_size(depth),
            depth=depth,
            unroll=self.unroll,
            b=int(b_high),
            learning_rate=1e-3,
            init_scale=1.0,
            activation=str(dims.values("activation", self.space["activation"])[0]),
        )

    def to_attrs(self) -> dict[str, Any]:
        """JSON-ready description, stored as the study's user attrs: every field, the space
        as Optuna's JSON of each distribution."""
        return space_to_attrs(self, TASK)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> CapacityStudy:
        """Read stored attrs, also of studies made by earlier versions (the old space format;
        no tag; no lr_schedule dimension, which was then always constant)."""
        return cls(**study_values(cls, attrs, ADDED_DIMENSIONS))


def build_study(
    arch: str,
    budget: int,
    *,
    depths: tuple[int, ...] | None = None,
    overrides: Mapping[str, Any] | None = None,
    **settings: Any,
) -> CapacityStudy:
    """A study with the default space, where `overrides` (name -> spec) replace dimensions;
    `settings` are other `CapacityStudy` fields (n_in, unroll, patience, tag), defaults
    where left out.

    Specs are strings as on the command line (``1e-3``, ``1e-4:1e-1``, ``adam,rmsprop``) or
    experiment-file values; see `objectives.tasks.space.parse_dimension`.
    """
    check_arch(arch)
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= 10**9:
        raise ValueError(f"budget must be an integer in [1, {10**9}], got {budget!r}")
    if depths is None:
        depths = default_depths(arch)
    if not depths:
        raise ValueError("depths: give at least one depth")
    space = parse_overrides(default_space(arch, budget, depths), overrides, DIMENSIONS)
    return CapacityStudy(arch=arch, budget=budget, space=space, **settings)


@dataclass(frozen=True)
class CapacityConfig:
    """One training run of the capacity task: everything `objectives.training.trainer` needs."""

    arch: str
    n_in: int
    hidden_size: int
    depth: int
    unroll: int
    b: int
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
    budget: int | None = None

    def __post_init__(self) -> None:
        check_training_config(self)
        if isinstance(self.b, bool) or not isinstance(self.b, int) or not 2 <= self.b <= MAX_B:
            raise ValueError(f"b must be an integer in [2, {MAX_B}], got {self.b!r}")

    @property
    def task(self) -> str:
        return TASK

    @property
    def num_params(self) -> int:
        return count_params(self.arch, self.n_in, self.hidden_size, self.depth)

    def to_attrs(self) -> dict[str, Any]:
        return asdict(self)


def suggest_value(trial: optuna.trial.BaseTrial, name: str, dim: Distribution) -> Scalar:
    if dim.single():  # fixed: not a trial parameter
        return dims.values(name, dim)[0]
    if isinstance(dim, CategoricalDistribution):
        choice = trial.suggest_categorical(name, dim.choices)  # type: ignore[arg-type]
        if choice is None:  # never: None is not among the choices
            raise ValueError(f"{name}: sampler returned no value")
        return choice
    if isinstance(dim, IntDistribution):
        return trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
    return trial.suggest_float(name, dim.low, dim.high, step=dim.step, log=dim.log)


def suggest_config(
    trial: optuna.trial.BaseTrial, study: CapacityStudy, seed: int
) -> CapacityConfig:
    """The only place the capacity task touches Optuna: trial -> frozen config."""
    values = {name: suggest_value(trial, name, study.space[name]) for name in DIMENSIONS}
    depth = int(values["depth"])
    return CapacityConfig(
        arch=study.arch,
        n_in=study.n_in,
        hidden_size=study.hidden_size(depth),
        depth=depth,
        unroll=study.unroll,
        b=int(values["b"]),
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
        budget=study.budget,
    )


__all__ = [
    "ARCHS",
    "DIMENSIONS",
    "INIT_SCHEMES",
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "TASK",
    "CapacityConfig",
    "CapacityStudy",
    "build_study",
    "suggest_config",
]
