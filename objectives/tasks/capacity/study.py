"""The per-parameter capacity task (docs/tasks.md): study settings, the frozen per-trial
config, and the one function that turns an Optuna trial into that config.

Torch-free: training lives in `objectives.training.trainer` (with the task's pieces in
`objectives.tasks.capacity.objective`), imported only when a trial runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.distributions import FloatDistribution, IntDistribution

from objectives.networks.architectures import (
    ARCHS,
    check_arch,
    count_params,
    solve_hidden_size,
)
from objectives.tasks import space as dims
from objectives.tasks.space import Distribution
from objectives.tasks.trained import (
    check_integers,
    check_protocol_space,
    check_range,
    check_space_names,
    check_tag,
    check_training_config,
    check_training_space,
    default_activation,
    default_depths,
    numbers,
    parse_overrides,
    protocol_space,
    space_to_attrs,
    study_values,
    suggest_value,
)
from objectives.training.interface import FULL_BATCH, SETTINGS

if TYPE_CHECKING:
    import optuna

TASK = "capacity"

# The paper's protocol's dimensions (objectives.training.interface.SETTINGS), in the order they
# were added: batch_size, lr_decay, momentum_logit, l2, recurrent_init, input_scale, bias_init,
# bias_scale, input_mode.
PROTOCOL_DIMENSIONS: tuple[str, ...] = tuple(SETTINGS)
MAX_B = 10_000_000

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
    # The paper's protocol (docs/tasks.md), added after init_scheme, in this order:
    *PROTOCOL_DIMENSIONS,
)


# Dimensions added since studies were first stored, with the value every trial of an older
# study had; a stored space without them reads as fixed to that value.
ADDED_DIMENSIONS: dict[str, Distribution] = {
    "lr_schedule": dims.fixed("constant"),
    "init_scheme": dims.fixed("scaled-normal"),
    **protocol_space(),
}


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
        **protocol_space(),
    }


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
        check_range(self.space, "b", 2, MAX_B, f"[2, {MAX_B}]")
        if any(x != int(x) for x in numbers("b", self.space["b"])):
            raise ValueError("b: must be an integer")
        check_protocol_space(self.space, int(dims.bounds(self.space["b"])[0]))

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
    # The paper's protocol (objectives.training.interface.SETTINGS: the defaults train as
    # every trial did before these were added).
    batch_size: int | str = FULL_BATCH
    lr_decay: float = 1.0
    momentum_logit: float | str = "auto"
    l2: float = 0.0
    recurrent_init: str = "scheme"
    input_scale: float | str = "auto"
    bias_init: str = "constant"
    bias_scale: float = 0.0
    input_mode: str = "first"

    def __post_init__(self) -> None:
        check_training_config(self)
        if isinstance(self.b, bool) or not isinstance(self.b, int) or not 2 <= self.b <= MAX_B:
            raise ValueError(f"b must be an integer in [2, {MAX_B}], got {self.b!r}")
        if self.batch_size != FULL_BATCH and self.batch_size > self.b:  # type: ignore[operator]
            raise ValueError(f"batch_size {self.batch_size} is above b ({self.b})")

    @property
    def task(self) -> str:
        return TASK

    @property
    def num_params(self) -> int:
        return count_params(self.arch, self.n_in, self.hidden_size, self.depth)

    def to_attrs(self) -> dict[str, Any]:
        return asdict(self)


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
        batch_size=_word_or(values["batch_size"], int),
        lr_decay=float(values["lr_decay"]),
        momentum_logit=_word_or(values["momentum_logit"], float),
        l2=float(values["l2"]),
        recurrent_init=str(values["recurrent_init"]),
        input_scale=_word_or(values["input_scale"], float),
        bias_init=str(values["bias_init"]),
        bias_scale=float(values["bias_scale"]),
        input_mode=str(values["input_mode"]),
    )


def _word_or(value: Any, number: type[int] | type[float]) -> Any:
    """A word-or-number dimension's value: its word as it is, a number as `number`."""
    return value if isinstance(value, str) else number(value)


__all__ = [
    "ARCHS",
    "DIMENSIONS",
    "TASK",
    "CapacityConfig",
    "CapacityStudy",
    "build_study",
    "suggest_config",
]
