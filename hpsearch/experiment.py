"""An experiment: which studies to create, from command-line flags or a TOML file."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpsearch.errors import HpsearchError
from hpsearch.samplers import check_sampler
from objectives.capacity import CapacityStudy, build_study

FILE_KEYS = frozenset(
    {
        "task",
        "archs",
        "budgets",
        "depths",
        "trials",
        "n_in",
        "unroll",
        "patience",
        "sampler",
        "seed",
        "space",
    }
)


@dataclass(frozen=True)
class Experiment:
    """One study per (arch, budget), each with `trials` as its target."""

    archs: tuple[str, ...]
    budgets: tuple[int, ...]
    depths: tuple[int, ...] | None = None  # None: 1, 2, 4 (2, 4 for +rnn)
    trials: int = 100
    n_in: int = 32
    unroll: int = 5
    patience: int = 200
    sampler: str = "gp"
    seed: int | None = None
    space: Mapping[str, Any] = field(default_factory=dict)
    tag: str = ""

    def __post_init__(self) -> None:
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

    def studies(self) -> list[CapacityStudy]:
        """Every study's settings, validated; raises before anything is written."""
        out = []
        for arch in self.archs:
            for budget in self.budgets:
                try:
                    out.append(
                        build_study(
                            arch,
                            budget,
                            depths=self.depths,
                            n_in=self.n_in,
                            unroll=self.unroll,
                            patience=self.patience,
                            overrides=self.space,
                            tag=self.tag,
                        )
                    )
                except ValueError as e:
                    raise HpsearchError(str(e)) from None
        return out


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


def _int(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise HpsearchError(f"{key}: expected a whole number, got {value!r}")
    return value


def _int_list(data: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise HpsearchError(f"{key}: expected a list of whole numbers, got {value!r}")
    return tuple(value)


def load_experiment(path: Path) -> Experiment:
    """Read an experiment file (TOML). Keys: archs, budgets, depths, trials, n_in, unroll,
    patience, sampler, seed, and a [space] table of dimension specs."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise HpsearchError(f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise HpsearchError(f"{path}: not valid TOML: {e}") from None
    unknown = sorted(set(data) - FILE_KEYS)
    if unknown:
        raise HpsearchError(f"{path}: unknown keys {unknown}; known: {sorted(FILE_KEYS)}")
    if data.get("task", "capacity") != "capacity":
        raise HpsearchError(f"{path}: unknown task {data['task']!r}; known: capacity")
    archs = data.get("archs")
    if isinstance(archs, str):
        archs = [archs]
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise HpsearchError(f"{path}: archs must be a list of names")
    space = data.get("space", {})
    if not isinstance(space, dict):
        raise HpsearchError(f"{path}: [space] must be a table")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise HpsearchError(f"{path}: seed must be a whole number")
    sampler = data.get("sampler", "gp")
    if not isinstance(sampler, str):
        raise HpsearchError(f"{path}: sampler must be a name")
    return Experiment(
        archs=tuple(archs),
        budgets=_int_list(data, "budgets"),
        depths=_int_list(data, "depths") if "depths" in data else None,
        trials=_int(data, "trials", 100),
        n_in=_int(data, "n_in", 32),
        unroll=_int(data, "unroll", 5),
        patience=_int(data, "patience", 200),
        sampler=sampler,
        seed=seed,
        space=space,
        tag=str(data.get("tag", "")),
    )
