"""The command line itself: --version, -v before or after the command, and every option's
default in --help."""

from __future__ import annotations

import argparse
import re

import pytest

import hpsearch
from hpsearch.cli import COMMANDS, build_parser, main
from tests.testing import hpsearch as run


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"hpsearch {hpsearch.__version__}\n"
    assert hpsearch.__version__ == "0.1.0"


def test_the_real_command_says_its_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == "hpsearch 0.1.0", result.stderr


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["status"], False),
        (["-v", "status"], True),
        (["status", "-v"], True),
        (["status", "--verbose"], True),
        (["-v", "status", "-v"], True),
        (["db", "upgrade", "-v"], True),
        (["worker", "--all", "-v"], True),
        (["create", "--arch", "rnn", "--budget", "300", "-v"], True),
    ],
)
def test_verbose_before_or_after_the_command(argv, verbose):
    assert build_parser().parse_args(argv).verbose is verbose


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser (db's subcommands too), by its command line."""
    found = {}
    todo = [("hpsearch", build_parser())]
    while todo:
        name, parser = todo.pop()
        found[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{name} {sub}", p) for sub, p in action.choices.items()]
    return found


def _has_default(action: argparse.Action) -> bool:
    default = action.default
    return not (
        default is None or default is False or default == argparse.SUPPRESS or default == []
    )


def _option_help(text: str, flag: str) -> str:
    """The help of the option whose invocation starts with `flag`, its wrapped lines joined."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(flag))
    out = [lines[at]]
    for line in lines[at + 1 :]:
        if not line.startswith("   ") or line.strip().startswith("-"):
            break
        out.append(line)
    return " ".join(" ".join(out).split())


def test_every_option_shows_its_default_in_help(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one option's help on one line
    parsers = _parsers()
    assert {f"hpsearch {name}" for name in COMMANDS} <= set(parsers)
    checked = 0
    for name, parser in parsers.items():
        text = parser.format_help()
        assert not re.search(r"default (None|False|==SUPPRESS==|\[\])\)", text), name
        for action in parser._actions:
            if not action.option_strings or not _has_default(action):
                continue
            said = _option_help(text, action.option_strings[0])
            assert "default" in said, f"{name}: {said}"
            checked += 1
    assert checked >= 10
    worker = " ".join(parsers["hpsearch worker"].format_help().split())
    assert "where trials run (auto: cuda where there is a GPU) (default auto)" in worker


def test_create_shows_defaults_without_flag_defaults(monkeypatch):
    """create's flags have no defaults of their own (a flag left out is left out of the
    experiment); their help says the schema's."""
    monkeypatch.setenv("COLUMNS", "1000")
    text = _parsers()["hpsearch create"].format_help()
    for flag, said in (
        ("--trials", "(default 100)"),
        ("--sampler", "(default gp)"),
        ("--pruner", "(default none)"),
        ("--task", "(default capacity)"),
        ("--unroll", "(default 5 for capacity, 12 for per-unit)"),
    ):
        assert said in _option_help(text, flag), flag
