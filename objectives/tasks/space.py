"""Search-space dimensions as Optuna distributions: each one is fixed to a value, searched over
a range (`FloatDistribution`, `IntDistribution`), or chosen from a list
(`CategoricalDistribution`). Set when a study is created, stored with the study as JSON, read
back by workers.

A fixed value is a one-element `CategoricalDistribution`, not a range with low == high: a
categorical holds text (activation, optimizer) as well as numbers and keeps the value's type
(2000 stays an int, 1.0 a float), so every fixed dimension has one form; a list of one value
(``optimizer=adam``) is the same thing as a fixed value; and Optuna itself calls it
`single()`. `is_searched` is false for it, and the task's `suggest_config` (the only code that
calls `trial.suggest_*`) passes its value through without making it a trial parameter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
    json_to_distribution,
)

Distribution = FloatDistribution | IntDistribution | CategoricalDistribution
Scalar = int | float | str
Numeric = Literal["int", "float", "text"]


def fixed(value: Scalar) -> CategoricalDistribution:
    """A dimension fixed to one value."""
    return CategoricalDistribution((value,))


def choice(name: str, values: Sequence[Scalar]) -> CategoricalDistribution:
    if len(values) < 1:
        raise ValueError(f"{name}: a choice needs at least one value")
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: choices must be distinct")
    return CategoricalDistribution(tuple(values))


def value_range(
    name: str, low: float, high: float, *, log: bool, integer: bool
) -> FloatDistribution | IntDistribution:
    """A searched range, checked with messages that name the dimension."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name}: range bounds must be finite")
    if low >= high:
        raise ValueError(f"{name}: range low {low:g} must be below high {high:g}")
    if log and low <= 0:
        raise ValueError(f"{name}: a log range needs low > 0, got {low:g}")
    if integer:
        if low != int(low) or high != int(high):
            raise ValueError(f"{name}: integer range needs integer bounds")
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)


def is_searched(dim: BaseDistribution) -> bool:
    """Whether a trial samples this dimension (it has more than one value)."""
    return not dim.single()


def values(name: str, dim: BaseDistribution) -> tuple[Scalar, ...]:
    """Every value a fixed or list dimension can take."""
    if isinstance(dim, CategoricalDistribution):
        return tuple(dim.choices)  # type: ignore[arg-type]
    if isinstance(dim, FloatDistribution | IntDistribution) and dim.single():
        return (dim.low,)
    raise ValueError(f"{name}: a range has no finite list of values")


def bounds(dim: Distribution) -> tuple[float, float]:
    """The smallest and largest value of a numeric dimension."""
    if isinstance(dim, CategoricalDistribution):
        numbers = [float(v) for v in dim.choices]  # type: ignore[arg-type]
        return min(numbers), max(numbers)
    return float(dim.low), float(dim.high)


def describe(dim: BaseDistribution) -> str:
    """``2000``, ``{adam, sgd}`` or ``[0.0001, 0.1] log``."""
    if dim.single():
        return str(dim.choices[0] if isinstance(dim, CategoricalDistribution) else dim.low)  # type: ignore[attr-defined]
    if isinstance(dim, CategoricalDistribution):
        return "{" + ", ".join(str(c) for c in dim.choices) + "}"
    assert isinstance(dim, FloatDistribution | IntDistribution)
    scale = " log" if dim.log else ""
    return f"[{dim.low:g}, {dim.high:g}]{scale}"


def to_attrs(dim: BaseDistribution) -> dict[str, Any]:
    """Optuna's JSON of the distribution, as a dict (one user attr holds the whole space)."""
    data: dict[str, Any] = json.loads(distribution_to_json(dim))
    return data


def from_attrs(name: str, data: Mapping[str, Any]) -> Distribution:
    """Read a stored dimension: Optuna's JSON (``{"name": ..., "attributes": ...}``), or the
    format of studies made before the space was held as Optuna distributions
    (``{"kind": "fixed" | "float" | "int" | "choice", ...}``)."""
    if "kind" in data:
        kind = data["kind"]
        if kind == "fixed":
            return fixed(data["value"])
        if kind == "choice":
            return choice(name, tuple(data["choices"]))
        if kind in ("float", "int"):
            return value_range(
                name,
                float(data["low"]),
                float(data["high"]),
                log=bool(data.get("log", False)),
                integer=kind == "int",
            )
        raise ValueError(f"{name}: unknown dimension kind {kind!r}")
    try:
        dim = json_to_distribution(json.dumps(dict(data)))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{name}: cannot read stored dimension {dict(data)!r}: {e}") from None
    if not isinstance(dim, FloatDistribution | IntDistribution | CategoricalDistribution):
        raise ValueError(f"{name}: unsupported distribution {type(dim).__name__}")
    return dim


def _numeric(default: BaseDistribution) -> Numeric:
    if isinstance(default, IntDistribution):
        return "int"
    if isinstance(default, FloatDistribution):
        return "float"
    assert isinstance(default, CategoricalDistribution)
    sample = default.choices[0]
    if isinstance(sample, int) and not isinstance(sample, bool):
        return "int"
    return "float" if isinstance(sample, float) else "text"


def _parse_scalar(text: str, numeric: Numeric) -> Scalar:
    text = text.strip()
    if numeric == "text":
        return text
    try:
        as_float = float(text)
    except ValueError:
        kind = "an integer" if numeric == "int" else "a number"
        raise ValueError(f"expected {kind}, got {text!r}") from None
    if not math.isfinite(as_float):
        raise ValueError(f"expected a finite number, got {text!r}")
    if numeric == "float":
        return as_float
    try:
        return int(text)
    except ValueError:
        if as_float != int(as_float):
            raise ValueError(f"expected an integer, got {text!r}") from None
        return int(as_float)


def _choices(name: str, value: Any) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{name}: choices must be a list, got {value!r}")
    return list(value)


def _log_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: log must be true or false, got {value!r}")
    return value


def parse_dimension(name: str, spec: Any, default: BaseDistribution) -> Distribution:
    """Read a dimension from a command-line string or an experiment-file value.

    Strings: ``V`` fixes the value, ``LO:HI`` searches a range (on the default's scale), and
    ``A,B,C`` chooses from a list. File values: a scalar fixes it, ``[LO, HI]`` is a range,
    ``{low=, high=, log=}`` a range with its scale, ``{choices=[...]}`` a list.
    The value type (int, float or text) comes from the default.
    """
    numeric = _numeric(default)
    integer = numeric == "int"
    default_log = bool(getattr(default, "log", False))

    def scalar(value: Any) -> Scalar:
        return _parse_scalar(str(value), numeric)

    def number(value: Any) -> float:
        return float(scalar(value))

    if isinstance(spec, str):
        if ":" in spec:
            if numeric == "text":
                raise ValueError(f"{name}: takes values, not a range: {spec!r}")
            low_text, _, high_text = spec.partition(":")
            return value_range(
                name, number(low_text), number(high_text), log=default_log, integer=integer
            )
        if "," in spec:
            return choice(name, tuple(scalar(p) for p in spec.split(",")))
        return fixed(scalar(spec))
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"choices", "low", "high", "log", "value"})
        if unknown:
            raise ValueError(f"{name}: unknown keys {unknown}; use value, choices, low/high/log")
        if "choices" in spec:
            return choice(name, tuple(scalar(v) for v in _choices(name, spec["choices"])))
        if "low" in spec and "high" in spec:
            if numeric == "text":
                raise ValueError(f"{name}: takes values, not a range")
            return value_range(
                name,
                number(spec["low"]),
                number(spec["high"]),
                log=_log_flag(name, spec.get("log", default_log)),
                integer=integer,
            )
        if "value" in spec:
            return fixed(scalar(spec["value"]))
        raise ValueError(f"{name}: expected value, choices, or low and high")
    if isinstance(spec, Sequence):
        if numeric == "text":
            return choice(name, tuple(scalar(v) for v in spec))
        if len(spec) != 2:
            raise ValueError(f"{name}: a range is [low, high], got {list(spec)}")
        return value_range(name, number(spec[0]), number(spec[1]), log=default_log, integer=integer)
    if isinstance(spec, bool):
        raise ValueError(f"{name}: expected a number or text, got {spec!r}")
    if isinstance(spec, int | float):
        return fixed(scalar(spec))
    raise ValueError(f"{name}: cannot read {spec!r}")
