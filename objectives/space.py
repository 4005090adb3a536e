"""Search-space dimensions: each one is fixed to a value, searched over a range, or chosen from
a list. Set when a study is created, stored with the study as plain JSON, read back by workers.

Torch-free and Optuna-free: the task's `suggest_config` is the only code that turns these into
`trial.suggest_*` calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["fixed", "float", "int", "choice"]
Scalar = int | float | str


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter: `fixed` (value), `float`/`int` (low, high, log) or `choice`."""

    name: str
    kind: Kind
    value: Scalar | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Scalar, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "fixed":
            if self.value is None:
                raise ValueError(f"{self.name}: a fixed dimension needs a value")
        elif self.kind in ("float", "int"):
            if self.low is None or self.high is None:
                raise ValueError(f"{self.name}: a range needs low and high")
            if not (math.isfinite(self.low) and math.isfinite(self.high)):
                raise ValueError(f"{self.name}: range bounds must be finite")
            if self.low >= self.high:
                raise ValueError(
                    f"{self.name}: range low {self.low:g} must be below high {self.high:g}"
                )
            if self.log and self.low <= 0:
                raise ValueError(f"{self.name}: a log range needs low > 0, got {self.low:g}")
            if self.kind == "int" and (self.low != int(self.low) or self.high != int(self.high)):
                raise ValueError(f"{self.name}: integer range needs integer bounds")
        elif self.kind == "choice":
            if len(self.choices) < 1:
                raise ValueError(f"{self.name}: a choice needs at least one value")
            if len(set(self.choices)) != len(self.choices):
                raise ValueError(f"{self.name}: choices must be distinct")
        else:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")

    @property
    def searched(self) -> bool:
        return self.kind != "fixed" and not (self.kind == "choice" and len(self.choices) == 1)

    def values(self) -> tuple[Scalar, ...]:
        """Every value this dimension can take, for fixed and choice dimensions."""
        if self.kind == "fixed":
            assert self.value is not None
            return (self.value,)
        if self.kind == "choice":
            return self.choices
        raise ValueError(f"{self.name}: a range has no finite list of values")

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "fixed":
            return {"kind": "fixed", "value": self.value}
        if self.kind == "choice":
            return {"kind": "choice", "choices": list(self.choices)}
        return {"kind": self.kind, "low": self.low, "high": self.high, "log": self.log}

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> Dimension:
        kind = data.get("kind")
        if kind == "fixed":
            return cls(name, "fixed", value=data["value"])
        if kind == "choice":
            return cls(name, "choice", choices=tuple(data["choices"]))
        if kind in ("float", "int"):
            return cls(
                name, kind, low=data["low"], high=data["high"], log=bool(data.get("log", False))
            )
        raise ValueError(f"{name}: unknown dimension kind {kind!r}")

    def describe(self) -> str:
        if self.kind == "fixed":
            return f"{self.value}"
        if self.kind == "choice":
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        scale = " log" if self.log else ""
        return f"[{self.low:g}, {self.high:g}]{scale}"


def _parse_scalar(text: str, numeric: Kind) -> Scalar:
    text = text.strip()
    if numeric in ("int", "float"):
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
    return text


def _choices(name: str, value: Any) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{name}: choices must be a list, got {value!r}")
    return list(value)


def _log_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: log must be true or false, got {value!r}")
    return value


def parse_dimension(name: str, spec: Any, default: Dimension) -> Dimension:
    """Read a dimension from a command-line string or an experiment-file value.

    Strings: ``V`` fixes the value, ``LO:HI`` searches a range (on the default's scale), and
    ``A,B,C`` chooses from a list. File values: a scalar fixes it, ``[LO, HI]`` is a range,
    ``{low=, high=, log=}`` a range with its scale, ``{choices=[...]}`` a list.
    The value type (int, float or text) comes from the default.
    """
    numeric: Kind
    if default.kind in ("float", "int"):
        numeric = default.kind
    else:
        sample = default.values()[0]
        numeric = (
            "int"
            if isinstance(sample, int) and not isinstance(sample, bool)
            else "float"
            if isinstance(sample, float)
            else "choice"
        )
    range_kind: Kind = "int" if numeric == "int" else "float"

    def scalar(value: Any) -> Scalar:
        return _parse_scalar(str(value), numeric)

    if isinstance(spec, str):
        if ":" in spec:
            if numeric == "choice":
                raise ValueError(f"{name}: takes values, not a range: {spec!r}")
            low_text, _, high_text = spec.partition(":")
            low, high = float(scalar(low_text)), float(scalar(high_text))
            return Dimension(name, range_kind, low=low, high=high, log=default.log)
        if "," in spec:
            return Dimension(name, "choice", choices=tuple(scalar(p) for p in spec.split(",")))
        return Dimension(name, "fixed", value=scalar(spec))
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"choices", "low", "high", "log", "value"})
        if unknown:
            raise ValueError(f"{name}: unknown keys {unknown}; use value, choices, low/high/log")
        if "choices" in spec:
            choices = _choices(name, spec["choices"])
            return Dimension(name, "choice", choices=tuple(scalar(v) for v in choices))
        if "low" in spec and "high" in spec:
            if numeric == "choice":
                raise ValueError(f"{name}: takes values, not a range")
            return Dimension(
                name,
                range_kind,
                low=float(scalar(spec["low"])),
                high=float(scalar(spec["high"])),
                log=_log_flag(name, spec.get("log", default.log)),
            )
        if "value" in spec:
            return Dimension(name, "fixed", value=scalar(spec["value"]))
        raise ValueError(f"{name}: expected value, choices, or low and high")
    if isinstance(spec, Sequence):
        if numeric == "choice":
            return Dimension(name, "choice", choices=tuple(scalar(v) for v in spec))
        if len(spec) != 2:
            raise ValueError(f"{name}: a range is [low, high], got {list(spec)}")
        return Dimension(
            name,
            range_kind,
            low=float(scalar(spec[0])),
            high=float(scalar(spec[1])),
            log=default.log,
        )
    if isinstance(spec, bool):
        raise ValueError(f"{name}: expected a number or text, got {spec!r}")
    if isinstance(spec, int | float | str):
        return Dimension(name, "fixed", value=scalar(spec))
    raise ValueError(f"{name}: cannot read {spec!r}")
