"""The `hpsearch` command: create, worker, status, export, import, plot, report, dashboard, db
upgrade.

Errors the user can fix come out as one line on stderr with exit code 2, before anything is
written to the database.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from types import FrameType
from typing import NamedTuple

from hpsearch import __version__
from hpsearch.cli import archive, create, results, service, worker
from hpsearch.cli.common import EXIT_USAGE, Parser, verbose_arg
from hpsearch.errors import HpsearchError
from storage import StorageError

logger = logging.getLogger("hpsearch")


class Command(NamedTuple):
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS = {
    "create": Command(
        "create one study per (arch, budget), or per (arch, units) of --task per-unit",
        create.create_args,
        create.create,
    ),
    "worker": Command(
        "run trials until the targets are reached", worker.worker_args, worker.worker
    ),
    "export": Command("best-bits tables", results.export_args, results.export),
    "import": Command(
        "write the studies of an archive (export --format jsonl) into the storage",
        archive.import_args,
        archive.import_,
    ),
    "plot": Command(
        "figures as self-contained HTML (and PNG if possible)", results.plot_args, results.plot
    ),
    "report": Command(
        "report.md: the paper's claims against the studies, with figures",
        results.report_args,
        results.report,
    ),
    "status": Command(
        "trials by state and best bits per study", results.status_args, results.status
    ),
    "db": Command("database schema", service.db_args, service.db),
    "dashboard": Command(
        "serve optuna-dashboard over the storage", service.dashboard_args, service.dashboard
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="hpsearch", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hpsearch {__version__}")
    verbose_arg(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, command in COMMANDS.items():
        subparser = sub.add_parser(name, help=command.help, description=command.help)
        verbose_arg(subparser)
        command.arguments(subparser)
    return parser


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # a usage error (one line, code 2) or --help (0)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats and stale-trial handling are marked experimental in Optuna and warn on every
    # use; ask-and-tell with heartbeats is what the worker does on purpose (it beats itself).
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return COMMANDS[args.command].run(args)
    except (HpsearchError, StorageError) as e:
        print(f"hpsearch {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"hpsearch {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:
        # A defect, not bad input: still one line, unless -v asks for the traceback.
        if args.verbose:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        print(
            f"hpsearch {args.command}: internal error: {type(e).__name__}: {first} "
            "(run with -v for the traceback)",
            file=sys.stderr,
        )
        return 1
