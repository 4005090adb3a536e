"""Experiment files: the keys of `Experiment` in TOML, a `[space]` table in the one spelling of
`hpsearch.studies.spelling`, and optional `[[variants]]`."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from hpsearch.errors import HpsearchError, did_you_mean, unknown_choice
from hpsearch.studies.schema import CAPACITY, Experiment, check_sizes, options
from hpsearch.studies.spelling import SpaceError, from_file, toml_value

# Where each [space] entry of an experiment was written: NAME -> (table, value as in the file),
# so that an error about a dimension quotes the file's line.
Origins = dict[str, tuple[str, Any]]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as e:
        raise HpsearchError(f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise HpsearchError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise HpsearchError(f"{path}: not UTF-8 text") from None


def _check_keys(where: str, table: Mapping[str, Any], *extra: str) -> None:
    known = [f.name for f in fields(Experiment)] + list(extra)
    unknown = [key for key in table if key not in known]
    if not unknown:
        return
    words = ", ".join(repr(key) for key in unknown)
    hint = did_you_mean(unknown[0], known) if len(unknown) == 1 else ""
    raise HpsearchError(
        f"{where}unknown key{'s' if len(unknown) > 1 else ''} {words}{hint}; "
        f"the keys are {', '.join(known)}"
    )


def _read_space(where: str, label: str, table: Any) -> tuple[dict[str, str], Origins]:
    """A [space] (or [variants.space]) table in the flag's spelling, and where each came from."""
    if not isinstance(table, dict):
        raise HpsearchError(f"{where}space: must be a table ([space] NAME = SPEC)")
    space: dict[str, str] = {}
    origins: Origins = {}
    for name, value in table.items():
        try:
            space[name] = from_file(name, value)
        except ValueError as e:
            raise HpsearchError(f"{where}{label} {e}") from None
        origins[name] = (label, value)
    return space, origins


def _from_table(where: str, table: Mapping[str, Any], origins: Origins) -> Experiment:
    """One experiment from the keys of a file (or of a variant merged over it, its space read
    already), every study validated; `where` starts each error ("FILE: " or
    "FILE: variant 2: ")."""
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
    except SpaceError as e:
        label, value = origins[e.name]
        raise HpsearchError(f"{where}{label} {e.name} = {toml_value(value)}: {e.reason}") from None
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
        task, depths, trials, ...; the flags of `create`), and a [space] table of dimensions, each
    written as `hpsearch.studies.spelling` says (`max_steps = 2000` fixed, `max_steps =
    "200:4000"` a range, `max_steps = [200, 400, 800]` a choice; a two-number list and the old
    tables are refused with the new form in the message, so that no old file changes meaning).

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
    _check_keys(f"{path}: ", data, "variants")
    variants = data.pop("variants", None)
    base: dict[str, str] = {}
    base_origins: Origins = {}
    if "space" in data:
        base, base_origins = _read_space(f"{path}: ", "[space]", data["space"])
        data["space"] = base
    if variants is None:
        return (_from_table(f"{path}: ", data, base_origins),)
    if (
        not isinstance(variants, list)
        or not variants
        or not all(isinstance(v, dict) for v in variants)
    ):
        raise HpsearchError(f"{path}: variants: give each variant as a [[variants]] table")
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
        origins = base_origins
        if "space" in variant:
            own, own_origins = _read_space(where, "[variants.space]", variant["space"])
            merged["space"] = {**base, **own}
            origins = {**base_origins, **own_origins}
        out.append(_from_table(where, merged, origins))
    return tuple(out)
