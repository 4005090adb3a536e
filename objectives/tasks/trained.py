"""What the trained tasks (capacity, per-unit) share in their studies: the default depths and
activations, the checks of the training dimensions and settings every such study and config
has, how a study is stored in and read from its attrs, how overrides replace dimensions, and
how a dimension is suggested.

Torch-free, as a task's study module must be: the names of training's choices come from
`objectives.training.interface`, those of the cells from `objectives.networks.architectures`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from objectives.networks.architectures import (
    ACTIVATIONS,
    BIAS_INITS,
    GATED,
    INIT_SCHEMES,
    RECURRENT_INITS,
    check_arch,
)
from objectives.tasks import space as dims
from objectives.tasks.space import Distribution, Scalar
from objectives.training.interface import (
    FULL_BATCH,
    INPUT_MODES,
    LR_SCHEDULES,
    OPTIMIZERS,
    SETTINGS,
    setting,
)

if TYPE_CHECKING:
    import optuna

# The cells whose activation a study may search (the others have theirs by definition).
SEARCHED_ACTIVATION: frozenset[str] = frozenset({"rnn", "ugrnn"})
MAX_DEPTH = 16


def default_depths(arch: str) -> tuple[int, ...]:
    """Depths 1, 2, 4 as in the paper; the +RNN is not used at depth 1 (docs/tasks.md)."""
    return (2, 4) if arch == "+rnn" else (1, 2, 4)


def default_activation(arch: str) -> str:
    return "relu" if arch == "irnn" else "tanh"


# -- the search space -----------------------------------------------------------------------


def numbers(name: str, dim: BaseDistribution) -> list[float]:
    """The numbers a numeric dimension spans: a range's bounds, or every listed value."""
    if isinstance(dim, FloatDistribution | IntDistribution):
        return [dim.low, dim.high]
    values = dims.values(name, dim)
    bad = [v for v in values if isinstance(v, str | bool)]
    if bad:
        raise ValueError(f"{name}: expected numbers, got {bad[0]!r}")
    return [float(v) for v in values]


def check_range(
    space: Mapping[str, BaseDistribution], name: str, low: float, high: float, what: str
) -> None:
    for x in numbers(name, space[name]):
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
    check_range(space, "learning_rate", 1e-8, 10.0, "(0, 10]")
    check_range(space, "init_scale", 1e-6, 100.0, "(0, 100]")
    check_range(space, "gate_bias", -20.0, 20.0, "[-20, 20]")
    check_range(space, "grad_clip", 0.0, 1e6, "0 (off) or a positive norm")
    check_range(space, "max_steps", 1, 10**7, "[1, 10000000]")
    if any(x != int(x) for x in numbers("max_steps", space["max_steps"])):
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


# The paper's dimensions (docs/tasks.md, "The paper's protocol") whose value is a word (their
# default, today's behaviour) or a number: the word, and how numbers are read (a range on
# that scale). Others of them are read as any dimension, from their default; these give the
# scale a range is searched on.
WORD_OR_NUMBER: dict[str, tuple[str, Distribution]] = {
    "batch_size": (FULL_BATCH, IntDistribution(1, 2, log=True)),
    "momentum_logit": ("auto", FloatDistribution(1.0, 7.0)),
    "input_scale": ("auto", FloatDistribution(1e-3, 2.0, log=True)),
}
NUMBER_SCALES: dict[str, Distribution] = {
    "grad_clip": FloatDistribution(1.0, 100.0, log=True),
    "lr_decay": FloatDistribution(1e-3, 1.0, log=True),
    "l2": FloatDistribution(1e-8, 1e-3, log=True),
    "bias_scale": FloatDistribution(-2.0, 2.0),
}


def protocol_space() -> dict[str, Distribution]:
    """The paper's dimensions, each fixed to its default (the training of every trial before
    they were added: objectives.training.interface.SETTINGS)."""
    return {name: dims.fixed(value) for name, value in SETTINGS.items()}


def _parse_protocol(name: str, spec: Any, default: Distribution) -> Distribution:
    """One of the paper's dimensions from its spec (see `parse_overrides`)."""
    if name in NUMBER_SCALES:  # numbers (floats), a range on the dimension's scale
        return dims.parse_dimension(name, spec, NUMBER_SCALES[name])
    if name not in WORD_OR_NUMBER:
        return dims.parse_dimension(name, spec, default)
    word, numeric = WORD_OR_NUMBER[name]

    def one(value: Any) -> Scalar:
        if str(value).strip() == word:
            return word
        try:
            parsed = dims.parse_dimension(name, str(value), numeric)
        except ValueError as e:
            text = str(e)
            raise ValueError(text if text.startswith(name) else f"{name}: {text}") from None
        return dims.values(name, parsed)[0]

    if isinstance(spec, str) and "," in spec:
        return dims.choice(name, tuple(one(p) for p in spec.split(",")))
    if isinstance(spec, Mapping) and "choices" in spec:
        choices = spec["choices"]
        if isinstance(choices, str) or not isinstance(choices, list | tuple):
            raise ValueError(f"{name}: choices must be a list, got {choices!r}")
        return dims.choice(name, tuple(one(v) for v in choices))
    if isinstance(spec, list | tuple) and word in [str(v) for v in spec]:
        return dims.choice(name, tuple(one(v) for v in spec))
    if (isinstance(spec, str) and ":" not in spec) or isinstance(spec, int | float):
        return dims.fixed(one(spec))
    return dims.parse_dimension(name, spec, numeric)


def _numbers_of(space: Mapping[str, BaseDistribution], name: str, word: str) -> list[float]:
    """The numbers a word-or-number dimension spans (its word left out)."""
    dim = space[name]
    if not isinstance(dim, CategoricalDistribution):
        return numbers(name, dim)
    values = [v for v in dim.choices if v != word]
    bad = [v for v in values if isinstance(v, str | bool)]
    if bad:
        raise ValueError(f"{name}: expected {word} or a number, got {bad[0]!r}")
    return [float(v) for v in values]  # type: ignore[arg-type]


def check_protocol_space(space: Mapping[str, BaseDistribution], smallest_b: int | None) -> None:
    """The checks of the paper's dimensions (those of SETTINGS present in `space`);
    `smallest_b`, the least b the study can draw, bounds batch_size (None: no b)."""
    if "batch_size" in space:
        sizes = _numbers_of(space, "batch_size", FULL_BATCH)
        for x in sizes:
            if x != int(x) or x < 1:
                raise ValueError(
                    f"batch_size: {x:g} is out of range; allowed: {FULL_BATCH!r} or an integer >= 1"
                )
            if smallest_b is not None and x > smallest_b:
                raise ValueError(
                    f"batch_size: {x:g} is above the smallest b searched ({smallest_b}); "
                    f"allowed: {FULL_BATCH!r} or at most b"
                )
    if "lr_decay" in space:
        check_range(space, "lr_decay", 1e-12, 1.0, "(0, 1]; 1 is no decay")
    if "momentum_logit" in space:
        for x in _numbers_of(space, "momentum_logit", "auto"):
            if not -20.0 <= x <= 20.0:
                raise ValueError(
                    f"momentum_logit: {x:g} is out of range; allowed: auto or [-20, 20]"
                )
    if "l2" in space:
        check_range(space, "l2", 0.0, 1.0, "[0, 1]; 0 is none")
    if "input_scale" in space:
        for x in _numbers_of(space, "input_scale", "auto"):
            if not 1e-6 <= x <= 100.0:
                raise ValueError(f"input_scale: {x:g} is out of range; allowed: auto or (0, 100]")
    if "bias_scale" in space:
        check_range(space, "bias_scale", -20.0, 20.0, "[-20, 20]")
    for name, allowed in (
        ("recurrent_init", RECURRENT_INITS),
        ("bias_init", BIAS_INITS),
        ("input_mode", INPUT_MODES),
    ):
        if name in space:
            _check_words(space, name, allowed)


def check_space_names(space: Mapping[str, BaseDistribution], dimensions: tuple[str, ...]) -> None:
    missing = [d for d in dimensions if d not in space]
    unknown = [d for d in space if d not in dimensions]
    if missing or unknown:
        raise ValueError(
            f"search space must name exactly {', '.join(dimensions)}; "
            f"missing {missing}, unknown {unknown}"
        )


def parse_overrides(
    space: dict[str, Distribution],
    overrides: Mapping[str, Any] | None,
    dimensions: tuple[str, ...],
) -> dict[str, Distribution]:
    """`space` with the dimensions named in `overrides` (name -> spec) replaced. The paper's
    dimensions (SETTINGS) are read by `_parse_protocol`: a word-or-number one (batch_size
    ``full`` or ``64`` or ``16:1024``) takes its word or numbers, and a range of lr_decay, l2,
    input_scale, batch_size or grad_clip (the paper's [1, 100]) is searched on a log scale."""
    for name, spec in (overrides or {}).items():
        if name not in space:
            raise ValueError(f"unknown search dimension {name!r}; known: {', '.join(dimensions)}")
        if name in SETTINGS or name in NUMBER_SCALES:
            space[name] = _parse_protocol(name, spec, space[name])
        else:
            space[name] = dims.parse_dimension(name, spec, space[name])
    return space


# -- settings and configs -------------------------------------------------------------------


def check_tag(tag: str) -> None:
    if not isinstance(tag, str) or (tag and not all(c.isalnum() or c in "-_." for c in tag)):
        raise ValueError(f"tag may hold letters, digits, '-', '_' and '.', got {tag!r}")


def check_integers(values: tuple[tuple[str, Any, int, int], ...]) -> None:
    """(name, value, low, high): each value an integer in [low, high]."""
    for name, value, low, high in values:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


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
    check_protocol_config(config)


def check_protocol_config(config: Any) -> None:
    """The checks of the paper's settings (SETTINGS) of a config; one without them has the
    defaults. (batch_size against b: the task's config, which knows its b.)"""
    size = setting(config, "batch_size")
    if size != FULL_BATCH and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"batch_size must be {FULL_BATCH!r} or a positive integer, got {size!r}")
    if not 0 < setting(config, "lr_decay") <= 1:
        raise ValueError(f"lr_decay must be in (0, 1], got {setting(config, 'lr_decay')}")
    logit = setting(config, "momentum_logit")
    if logit != "auto" and (isinstance(logit, str | bool) or not -20 <= logit <= 20):
        raise ValueError(f"momentum_logit must be 'auto' or in [-20, 20], got {logit!r}")
    if not 0 <= setting(config, "l2") <= 1:
        raise ValueError(f"l2 must be in [0, 1], got {setting(config, 'l2')}")
    scale = setting(config, "input_scale")
    if scale != "auto" and (isinstance(scale, str | bool) or not scale > 0):
        raise ValueError(f"input_scale must be 'auto' or positive, got {scale!r}")
    for name, allowed in (
        ("recurrent_init", RECURRENT_INITS),
        ("bias_init", BIAS_INITS),
        ("input_mode", INPUT_MODES),
    ):
        if setting(config, name) not in allowed:
            raise ValueError(f"{name} {setting(config, name)!r}; allowed: {', '.join(allowed)}")


# -- stored attrs ---------------------------------------------------------------------------


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


# -- suggestion -----------------------------------------------------------------------------


def suggest_value(trial: optuna.trial.BaseTrial, name: str, dim: Distribution) -> Scalar:
    """One dimension's value for a trial: a fixed one as it is (not a trial parameter), a
    searched one from the sampler. Called only from a task's `suggest_config`."""
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
