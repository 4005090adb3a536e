"""An experiment: which studies to create, from command-line flags or a TOML file.

`Experiment` is the one schema of `hpsearch create`: each field is a setting, its default is
written once (on the field, or on the `CapacityStudy` field it passes on), and its `Option`
metadata says how it is read. The flags of `create` (`add_arguments`, `from_args`) and the
keys of an experiment file (`load_experiment`) are derived from these fields; the studies'
settings and stored attrs from `CapacityStudy`.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from hpsearch.errors import HpsearchError, unknown_choice
from hpsearch.pruners import PRUNERS, check_pruner
from hpsearch.samplers import SAMPLERS, check_sampler
from objectives.architectures import ARCHS
from objectives.capacity import DIMENSIONS, TASK, CapacityStudy, build_study, default_depths


def parse_list(text: str, what: str, kind: type[int] | type[str]) -> tuple[Any, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise HpsearchError(f"{what}: empty list")
    if kind is str:
        return tuple(parts)
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise HpsearchError(
            f"{what}: expected whole numbers separated by commas, got {text!r}"
        ) from None


def parse_space_args(items: list[str]) -> dict[str, str]:
    """NAME=SPEC pairs from repeated --space flags."""
    space: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise HpsearchError(
                f"--space takes NAME=VALUE, NAME=LOW:HIGH or NAME=A,B; got {item!r}"
            )
        if name.strip() in space:
            raise HpsearchError(f"--space {name.strip()} given twice")
        space[name.strip()] = spec.strip()
    return space


# How a value is read: from the flag's text (after argparse's `type`), and from the file.
# File readers raise ValueError with what is wrong; the caller names the file and key.


def _words(text: str, flag: str) -> tuple[str, ...]:
    return parse_list(text, flag, str)


def _whole_numbers(text: str, flag: str) -> tuple[int, ...]:
    return parse_list(text, flag, int)


def _space(items: list[str], flag: str) -> dict[str, str]:
    return parse_space_args(items)


def _as_given(value: Any, flag: str) -> Any:
    return value


def _file_words(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of names, got {value!r}")
    return tuple(value)


def _file_whole_numbers(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(f"expected a list of whole numbers, got {value!r}")
    return tuple(value)


def _file_whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r}")
    return value


def _file_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def _file_table(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be a table ([space] NAME = SPEC)")
    return value


@dataclass(frozen=True)
class Option:
    """How one experiment field is given: flag `flag` on `hpsearch create`, key = the field's
    name in an experiment file. Examples in `help` are in backquotes (a test runs them)."""

    help: str
    read_flag: Callable[[Any, str], Any]
    read_file: Callable[[Any], Any]
    flag: str = ""  # default: --field-name
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    repeat: bool = False
    metavar: str | None = None


WORDS: dict[str, Any] = {"read_flag": _words, "read_file": _file_words}
WHOLE_NUMBERS: dict[str, Any] = {"read_flag": _whole_numbers, "read_file": _file_whole_numbers}
WHOLE: dict[str, Any] = {"read_flag": _as_given, "read_file": _file_whole, "type": int}
TEXT: dict[str, Any] = {"read_flag": _as_given, "read_file": _file_text}
TABLE: dict[str, Any] = {"read_flag": _space, "read_file": _file_table, "repeat": True}

_STUDY_FIELDS = {f.name: f for f in fields(CapacityStudy)}


def _option(help: str, kind: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    return {"option": Option(help=help, **{**kind, **kwargs})}


def _study(name: str, kind: Mapping[str, Any], example: str = "") -> Any:
    """A field passed on to every `CapacityStudy`: its default and help are that field's."""
    study_field = _STUDY_FIELDS[name]
    help = study_field.metadata["help"] + (f": {example}" if example else "")
    return field(default=study_field.default, metadata={**_option(help, kind), "study_field": True})


def _csv(values: tuple[int, ...]) -> str:
    return ",".join(str(v) for v in values)


@dataclass(frozen=True)
class Experiment:
    """One study per (arch, budget), each with `trials` as its target."""

    archs: tuple[str, ...] = field(
        metadata=_option(
            f"cells, comma-separated, from {', '.join(ARCHS)}: `--arch rnn,gru`",
            WORDS,
            flag="--arch",
        )
    )
    budgets: tuple[int, ...] = field(
        metadata=_option(
            "parameter budgets, comma-separated: `--budget 200,1000`",
            WHOLE_NUMBERS,
            flag="--budget",
        )
    )
    task: str = field(
        default=TASK, metadata=_option("the task of the studies", TEXT, choices=(TASK,))
    )
    depths: tuple[int, ...] | None = field(
        default=None,  # default_depths(arch)
        metadata=_option(
            f"depths to search, comma-separated (default {_csv(default_depths('rnn'))}; "
            f"{_csv(default_depths('+rnn'))} for +rnn): `--depths 1,2`",
            WHOLE_NUMBERS,
        ),
    )
    trials: int = field(
        default=100, metadata=_option("target trials per study: `--trials 20`", WHOLE)
    )
    n_in: int = _study("n_in", WHOLE)
    unroll: int = _study("unroll", WHOLE)
    patience: int = _study("patience", WHOLE)
    sampler: str = field(
        default="gp",
        metadata=_option("Optuna sampler: `--sampler tpe`", TEXT, choices=SAMPLERS),
    )
    pruner: str = field(
        default="none",
        metadata=_option(
            "Optuna pruner, which may stop a trial at a checkpoint: `--pruner median`",
            TEXT,
            choices=PRUNERS,
        ),
    )
    seed: int | None = field(
        default=None,
        metadata=_option("study seed (trial data and weights; default random): `--seed 0`", WHOLE),
    )
    space: Mapping[str, Any] = field(
        default_factory=dict,
        metadata=_option(
            f"search space, repeatable; dimensions {', '.join(DIMENSIONS)}. Fix a value "
            "`--space learning_rate=1e-3`, search a range on the default's scale "
            "`--space learning_rate=1e-4:1e-1` or choose from a list "
            "`--space optimizer=adam,sgd`",
            TABLE,
            metavar="NAME=SPEC",
        ),
    )
    tag: str = _study("tag", TEXT, "`--tag tpe`")

    def __post_init__(self) -> None:
        if self.task != TASK:
            raise HpsearchError(unknown_choice("task", self.task, (TASK,)))
        if not self.archs:
            raise HpsearchError("give at least one arch")
        if not self.budgets:
            raise HpsearchError("give at least one budget")
        if len(set(self.archs)) != len(self.archs) or len(set(self.budgets)) != len(self.budgets):
            raise HpsearchError("archs and budgets must not repeat")
        if not 1 <= self.trials <= 1_000_000:
            raise HpsearchError(f"trials must be in [1, 1000000], got {self.trials}")
        if self.seed is not None and not 0 <= self.seed < 2**31:
            raise HpsearchError(f"seed must be in [0, 2^31), got {self.seed}")
        check_sampler(self.sampler)
        check_pruner(self.pruner)

    def studies(self) -> list[CapacityStudy]:
        """Every study's settings, validated; raises before anything is written."""
        settings = {
            f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("study_field")
        }
        out = []
        for arch in self.archs:
            for budget in self.budgets:
                try:
                    out.append(
                        build_study(
                            arch, budget, depths=self.depths, overrides=self.space, **settings
                        )
                    )
                except ValueError as e:
                    raise HpsearchError(str(e)) from None
        return out


def options() -> list[tuple[Field[Any], Option]]:
    """Every setting of `create`, in the schema's order."""
    return [(f, f.metadata["option"]) for f in fields(Experiment)]


def flag(f: Field[Any], option: Option) -> str:
    return option.flag or "--" + f.name.replace("_", "-")


def default(f: Field[Any]) -> Any:
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `create`, one per field. They have no defaults of their own: a flag left
    out is left out of the `Experiment`, which then takes the field's default."""
    for f, option in options():
        shown = default(f)
        help = option.help
        if shown not in (MISSING, None, "", {}):
            help += f" (default {shown})"
        parser.add_argument(
            flag(f, option),
            dest=f.name,
            type=option.type,
            choices=option.choices,
            action="append" if option.repeat else "store",
            metavar=option.metavar,
            default=argparse.SUPPRESS,
            help=help.replace("%", "%%"),
        )


def given_flags(args: argparse.Namespace) -> list[str]:
    return [flag(f, option) for f, option in options() if hasattr(args, f.name)]


def from_args(args: argparse.Namespace) -> Experiment:
    """The experiment of the flags given (see `add_arguments`)."""
    values = {
        f.name: option.read_flag(getattr(args, f.name), flag(f, option))
        for f, option in options()
        if hasattr(args, f.name)
    }
    if "archs" not in values or "budgets" not in values:
        raise HpsearchError("create needs --arch and --budget (or --from FILE.toml)")
    return Experiment(**values)


def load_experiment(path: Path) -> Experiment:
    """Read an experiment file (TOML): a key per `Experiment` field (archs, budgets, depths,
    trials, ...; the flags of `create`), and a [space] table of dimension specs."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise HpsearchError(f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise HpsearchError(f"{path}: not valid TOML: {e}") from None
    known = {f.name: option for f, option in options()}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise HpsearchError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
    missing = [key for key in ("archs", "budgets") if key not in data]
    if missing:
        raise HpsearchError(f"{path}: needs {' and '.join(missing)}")
    values = {}
    for key, value in data.items():
        option = known[key]
        try:
            values[key] = option.read_file(value)
        except ValueError as e:
            raise HpsearchError(f"{path}: {key}: {e}") from None
        if option.choices is not None and values[key] not in option.choices:
            raise HpsearchError(f"{path}: {unknown_choice(key, value, option.choices)}")
    return Experiment(**values)
