"""Experiment files: the keys of `Experiment` in TOML, with optional `[[variants]]`."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from hpsearch.errors import HpsearchError, unknown_choice
from hpsearch.studies.schema import CAPACITY, Experiment, check_sizes, options


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as e:
        raise HpsearchError(f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise HpsearchError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise HpsearchError(f"{path}: not UTF-8 text") from None


def _check_keys(where: str, table: Mapping[str, Any]) -> None:
    known = sorted(f.name for f in fields(Experiment))
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise HpsearchError(f"{where}unknown keys {unknown}; known: {known}")


def _from_table(where: str, table: Mapping[str, Any]) -> Experiment:
    """One experiment from the keys of a file (or of a variant merged over it), every study
    validated; `where` starts each error ("FILE: " or "FILE: variant 2: ")."""
    known = {f.name: option for f, option in options()}
    values = {}
    for key, value in table.items():
        option = known[key]
        try:
            values[key] = option.read_file(value)
        except ValueError as e:
            raise HpsearchError(f"{where}{key}: {e}") from None
        if option.choices is not None and values[key] not in option.choices:
            raise HpsearchError(f"{where}{unknown_choice(key, value, option.choices)}")
    if "archs" not in values:
        raise HpsearchError(f"{where}needs archs")
    try:
        check_sizes(values.get("task", CAPACITY), values, lambda key: key)
        experiment = Experiment(**values)
        experiment.studies()
    except HpsearchError as e:
        raise HpsearchError(f"{where}{e}") from None
    return experiment


def load_experiment(path: Path) -> Experiment:
    """The one experiment of a file without `[[variants]]` (see `load_experiments`)."""
    experiments = load_experiments(path)
    if len(experiments) != 1:
        raise HpsearchError(f"{path}: has {len(experiments)} [[variants]], not one experiment")
    return experiments[0]


def load_experiments(path: Path) -> tuple[Experiment, ...]:
    """Read an experiment file (TOML): a key per `Experiment` field (archs, budgets or units,
    task, depths, trials, ...; the flags of `create`), and a [space] table of dimension specs.

    Optional `[[variants]]`, an array of tables: groups of studies that differ in some
    settings. Each variant holds keys of the top level, which it overrides (its [variants.space]
    is merged into [space] key by key), and must set a `tag` of its own, which ends its studies'
    names. The file is then one experiment per variant (the top level alone is none of them),
    all validated here, before anything is written:

        archs = ["rnn", "gru"]
        budgets = [1000]
        [[variants]]
        tag = "t1"
        unroll = 1
        [[variants]]
        tag = "t5"
        unroll = 5
        [variants.space]
        max_steps = 4000

    makes capacity-rnn-p1000-t1, capacity-gru-p1000-t1, capacity-rnn-p1000-t5 and
    capacity-gru-p1000-t5. Without variants, the file is one experiment.
    """
    data = _read_toml(path)
    variants = data.pop("variants", None)
    _check_keys(f"{path}: ", data)
    if variants is None:
        return (_from_table(f"{path}: ", data),)
    if (
        not isinstance(variants, list)
        or not variants
        or not all(isinstance(v, dict) for v in variants)
    ):
        raise HpsearchError(f"{path}: variants: give each variant as a [[variants]] table")
    base_space = data.get("space", {})
    out: list[Experiment] = []
    tags: dict[str, int] = {}
    for number, variant in enumerate(variants, 1):
        where = f"{path}: variant {number}: "
        _check_keys(where, variant)
        tag = variant.get("tag")
        if tag is None or tag == "":
            raise HpsearchError(
                f"{where}needs a tag of its own (its studies' names would clash otherwise)"
            )
        if not isinstance(tag, str):
            raise HpsearchError(f"{where}tag: expected text, got {tag!r}")
        if tag in tags:
            raise HpsearchError(
                f"{where}tag {tag!r} is variant {tags[tag]}'s too: each variant needs a tag of "
                "its own (their studies' names would clash)"
            )
        tags[tag] = number
        merged = {**data, **variant}
        if "space" in data and "space" in variant:
            for key, table in ((f"{path}: space", base_space), (f"{where}space", variant["space"])):
                if not isinstance(table, dict):
                    raise HpsearchError(f"{key}: must be a table ([space] NAME = SPEC)")
            merged["space"] = {**base_space, **variant["space"]}
        out.append(_from_table(where, merged))
    return tuple(out)
