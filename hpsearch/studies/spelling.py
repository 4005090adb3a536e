"""How a user spells a search dimension: one syntax, the same in flags and experiment files.

On the command line (`--space NAME=SPEC`, repeatable) and in a file's `[space]` table:

    what            flag                          file
    a fixed value   --space max_steps=2000        max_steps = 2000
    a range         --space max_steps=200:4000    max_steps = "200:4000"
    a choice        --space max_steps=200,400,800 max_steps = [200, 400, 800]

A range is searched on the scale of the dimension's default (log for learning_rate, b and
init_scale). A string in a file is read exactly as a flag's SPEC is, so `"200:4000"` is a range
and `"adam,sgd"` a choice of two anywhere. A list in a file is always a choice.

Files written before this syntax read `[200, 4000]` as a range and `{ choices = [...] }`,
`{ low = ..., high = ..., log = ... }`, `{ value = ... }` as tables; so that no old file
silently changes meaning, those are refused with the new form in the message:

- a table of any kind (the old forms; a range's scale is now always the default's);
- a list of two values of which one is a number (it was a range for a numeric dimension):
  two numbers as a choice are written as the flag's string, `max_steps = "200,400"`.
  A list of two words (`activation = ["tanh", "relu"]`) was a choice before too, and is read.

Every spelling ends as the flag's text (`Experiment.space` holds NAME -> SPEC), which the
task's `build_study` reads with `objectives.tasks.space.parse_dimension`; the checks here say
what is wrong in the user's words, naming the dimension as it was written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpsearch.errors import HpsearchError, did_you_mean
from objectives.tasks import space as dims


class SpaceError(HpsearchError):
    """A dimension of the space that cannot be used, as the user spelt it on the command line;
    the file loader says it again in the file's words (`name`, `spec`, `reason`)."""

    def __init__(self, name: str, spec: str, reason: str) -> None:
        super().__init__(f"--space {name}={spec}: {reason}")
        self.name = name
        self.spec = spec
        self.reason = reason


def parse_space_args(items: list[str]) -> dict[str, str]:
    """NAME -> SPEC from repeated --space NAME=SPEC flags."""
    space: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise HpsearchError(
                f"--space takes NAME=VALUE, NAME=LOW:HIGH or NAME=A,B,C; got {item!r}"
            )
        if name.strip() in space:
            raise HpsearchError(f"--space {name.strip()} given twice")
        space[name.strip()] = spec.strip()
    return space


def _is_numeric(dim: BaseDistribution) -> bool:
    if isinstance(dim, FloatDistribution | IntDistribution):
        return True
    assert isinstance(dim, CategoricalDistribution)
    return all(isinstance(c, int | float) and not isinstance(c, bool) for c in dim.choices)


def _parts(spec: str) -> list[str]:
    if ":" in spec:
        low, _, high = spec.partition(":")
        return [low, high]
    return spec.split(",")


def entry_error(name: str, spec: str, default: Mapping[str, BaseDistribution]) -> SpaceError | None:
    """What is wrong with one dimension's SPEC on its own, given the study's default space
    (whose dimension says the value type and the range's scale); None if nothing is."""
    if name not in default:
        return SpaceError(
            name,
            spec,
            f"unknown search dimension{did_you_mean(name, default)}; known: {', '.join(default)}",
        )
    if _is_numeric(default[name]):
        parts = [p.strip() for p in _parts(spec)]
        bad = [p for p in parts if not _is_number(p)]
        if bad:
            reason = "not a number" if len(parts) == 1 else f"{bad[0]!r} is not a number"
            return SpaceError(name, spec, reason)
    try:
        dims.parse_dimension(name, spec, default[name])
    except ValueError as e:
        return SpaceError(name, spec, without_name(name, str(e)))
    return None


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def without_name(name: str, message: str) -> str:
    """A task's message about dimension `name` ("name: ...") without its leading name."""
    head, sep, rest = message.partition(": ")
    return rest if sep and head == name else message


def spell(dim: BaseDistribution) -> str:
    """A distribution in the flag's spelling: ``2000``, ``200:4000``, ``adam,sgd``."""
    if isinstance(dim, CategoricalDistribution):
        return ",".join(str(c) for c in dim.choices)
    assert isinstance(dim, FloatDistribution | IntDistribution)
    if dim.single():
        return str(dim.low)
    return f"{dim.low}:{dim.high}" + (" (log)" if dim.log else "")


def spell_attrs(name: str, data: Mapping[str, Any]) -> str:
    """A stored dimension (Optuna's JSON, or the oldest format) in the flag's spelling."""
    return spell(dims.from_attrs(name, data))


def toml_value(value: Any) -> str:
    """A value as TOML writes it, for messages that show a file's line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)


def _looks_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) or (isinstance(value, str) and _is_number(value))


def _choice_form(name: str, values: list[Any]) -> str:
    """The new file form of a choice of `values`."""
    if len(values) == 2 and any(_looks_numeric(v) for v in values):
        return f'{name} = "{",".join(str(v) for v in values)}"'
    return f"{name} = {toml_value(values)}"


def from_file(name: str, value: Any) -> str:
    """A `[space]` value of an experiment file in the flag's spelling; a ValueError says what
    to write instead (see the module docstring)."""
    written = f"{name} = {toml_value(value)}"
    if isinstance(value, dict):
        if "choices" in value and isinstance(value["choices"], list):
            new = _choice_form(name, value["choices"])
        elif "low" in value and "high" in value:
            new = f'{name} = "{value["low"]}:{value["high"]}" (a range on the dimension\'s '
            new += "default scale)"
        elif "value" in value:
            new = f"{name} = {toml_value(value['value'])}"
        else:
            new = f'{name} = VALUE, {name} = "LOW:HIGH" or {name} = [A, B, C]'
        raise ValueError(f"{written} is the old table form, no longer read; write {new}")
    if isinstance(value, bool):
        raise ValueError(f"{written}: expected a number, text or a list of choices")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{written}: empty")
        return value.strip()
    if not isinstance(value, list):
        raise ValueError(f"{written}: expected a number, text or a list of choices")
    if not value:
        raise ValueError(f"{written}: an empty list of choices")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise ValueError(f"{written}: a choice is a number or a word, got {toml_value(v)}")
        if isinstance(v, str) and ("," in v or ":" in v or not v.strip()):
            raise ValueError(f"{written}: a choice holds no ',' or ':', got {toml_value(v)}")
    if len(value) == 2 and any(_looks_numeric(v) for v in value):
        low, high = value
        raise ValueError(
            f"{written} is ambiguous (a list is a choice now, two numbers were a range before): "
            f'write {name} = "{low}:{high}" for the range or {name} = "{low},{high}" for the '
            "two choices"
        )
    return ",".join(str(v).strip() for v in value)
