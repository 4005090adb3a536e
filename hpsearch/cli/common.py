"""What every command shares: the parser class (one-line usage errors), the storage flag and the
row selection of export, plot and report."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from hpsearch.errors import unknown_choice
from hpsearch.results.rows import Selection

EXIT_USAGE = 2
# Seconds a command waits for a database that is still starting.
STARTUP_WAIT_SECONDS = 120.0


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with each option's default after its text: left out where there is
    none (no value, a switch that is off, a repeatable flag) or the text says it already."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or default is None
            or default is False
            or default == argparse.SUPPRESS
            or default == []
            or "default" in text.lower()
        ):
            return action.help
        return f"{text} (default %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not usage text plus an error, options are
    never abbreviated (so that no shortened flag slips past a check), and the help shows
    every option's default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """A value outside `choices=`, in the project's wording (argparse's lists reprs)."""
        if action.choices is not None and value not in action.choices:
            what = action.dest.replace("_", " ")
            raise argparse.ArgumentError(action, unknown_choice(what, value, tuple(action.choices)))


def verbose_arg(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """-v/--verbose, before the command (`top`) or after it: a command's own flag leaves the
    value given before the command as it is when it is not given again."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="debug logging, and the traceback of an internal error",
    )


def number_or(word: str, flag: str) -> Callable[[str], str]:
    """argparse `type=` for a flag that takes a positive number or `word`; keeps the text."""

    def check(text: str) -> str:
        if text != word and not (text.isdigit() and int(text) >= 1):
            # Raised as is by argparse: the message names the flag itself.
            raise argparse.ArgumentError(
                None, f"{flag} takes a positive number or {word!r}, got {text!r}"
            )
        return text

    return check


def storage_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        help="database URL (default: $HPSEARCH_STORAGE, else sqlite:///hpsearch.db)",
    )


def selection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", help="only these tasks (comma-separated)")
    parser.add_argument("--arch", help="only these archs (comma-separated)")
    parser.add_argument("--budget", help="only these budgets (comma-separated)")
    parser.add_argument("--depth", help="only these depths (comma-separated)")
    parser.add_argument(
        "--study",
        action="append",
        metavar="NAME",
        help="only this study (repeatable: --study A --study B)",
    )
    parser.add_argument(
        "--tag",
        help="only the studies of these tags (comma-separated); studies that differ only by "
        "tag are shown side by side, never pooled",
    )
    parser.add_argument(
        "--include-pruned",
        action="store_true",
        help="count pruned trials too (with the best bits they reached when stopped)",
    )


def selection_of(args: argparse.Namespace) -> Selection:
    from hpsearch.studies.schema import parse_list

    def words(text: str | None, what: str) -> tuple[str, ...] | None:
        return None if text is None else parse_list(text, what, str)

    def numbers(text: str | None, what: str) -> tuple[int, ...] | None:
        return None if text is None else parse_list(text, what, int)

    return Selection(
        tasks=words(args.task, "--task"),
        archs=words(args.arch, "--arch"),
        budgets=numbers(args.budget, "--budget"),
        depths=numbers(args.depth, "--depth"),
        pruned=args.include_pruned,
        studies=None if args.study is None else tuple(dict.fromkeys(args.study)),
        tags=words(args.tag, "--tag"),
    )
