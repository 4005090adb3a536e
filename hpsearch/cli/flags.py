"""The flags of `hpsearch create`, derived from the experiment schema: one flag per field of
`hpsearch.studies.schema.Experiment`, read as its `Option` says."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, Field
from typing import Any

from hpsearch.errors import HpsearchError
from hpsearch.studies.schema import Experiment, flag, options


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
        if option.more_help is not None:
            help += option.more_help(f.name)
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
    if "archs" not in values:
        raise HpsearchError(
            "create needs --arch and --budget (or --task per-unit and --units), or --from FILE.toml"
        )
    return Experiment(**values)
