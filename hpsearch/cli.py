"""The `hpsearch` command: create, worker, export, status.

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
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

from hpsearch.errors import HpsearchError
from storage import HeartbeatPolicy, StorageError, open_storage, redact_url, resolve_url

logger = logging.getLogger("hpsearch")
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not usage text plus an error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _storage_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        help="database URL (default: $HPSEARCH_STORAGE, else sqlite:///hpsearch.db)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hpsearch", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    create = sub.add_parser("create", help="create one study per (arch, budget)")
    _storage_arg(create)
    create.add_argument("--from", dest="from_file", type=Path, help="experiment file (TOML)")
    create.add_argument("--arch", help="comma-separated: rnn,irnn,ugrnn,gru,lstm,+rnn")
    create.add_argument("--budget", help="comma-separated parameter budgets, e.g. 200,1000")
    create.add_argument("--depths", default="1,2,4", help="depths to search (default 1,2,4)")
    create.add_argument("--trials", type=int, default=100, help="target trials per study")
    create.add_argument("--n-in", type=int, default=32, help="input bits per sample")
    create.add_argument("--unroll", type=int, default=5, help="time steps T")
    create.add_argument(
        "--patience", type=int, default=200, help="steps without improvement before a trial stops"
    )
    create.add_argument("--sampler", default="gp", help="gp, tpe or random")
    create.add_argument("--seed", type=int, help="study seed (trial data and weights)")
    create.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="fix (lr=1e-3), range (lr=1e-4:1e-1) or list (optimizer=adam,sgd)",
    )

    worker = sub.add_parser("worker", help="run trials until the targets are reached")
    _storage_arg(worker)
    worker.add_argument("--study", action="append", help="study name (repeatable)")
    worker.add_argument("--all", action="store_true", help="work on every study")
    worker.add_argument("--n-trials", type=int, help="stop after this many trials of its own")
    worker.add_argument("--device", default="auto", help="auto, cpu or cuda")
    worker.add_argument("--seed", type=int, help="sampler seed (default: random per worker)")
    worker.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    worker.add_argument("--heartbeat-interval", type=int, default=10, help="seconds")
    worker.add_argument(
        "--heartbeat-grace",
        type=int,
        default=60,
        help="seconds without a heartbeat before a trial is failed and retried",
    )

    export = sub.add_parser("export", help="best-bits table, one row per (study, depth)")
    _storage_arg(export)
    export.add_argument("--format", default="md", help="md, csv or json")
    export.add_argument("--out", type=Path, help="write to this file instead of stdout")

    status = sub.add_parser("status", help="trials by state and best bits per study")
    _storage_arg(status)
    return parser


def _create(args: argparse.Namespace) -> int:
    from hpsearch.experiment import (
        Experiment,
        load_experiment,
        parse_list,
        parse_space_args,
    )
    from hpsearch.studies import create_studies

    if args.from_file is not None:
        if args.arch or args.budget or args.space:
            raise HpsearchError(
                "--from takes everything from the file; drop --arch, --budget and --space"
            )
        experiment = load_experiment(args.from_file)
    else:
        if not args.arch or not args.budget:
            raise HpsearchError("create needs --arch and --budget (or --from FILE.toml)")
        experiment = Experiment(
            archs=parse_list(args.arch, "--arch", str),
            budgets=parse_list(args.budget, "--budget", int),
            depths=parse_list(args.depths, "--depths", int),
            trials=args.trials,
            n_in=args.n_in,
            unroll=args.unroll,
            patience=args.patience,
            sampler=args.sampler,
            seed=args.seed,
            space=parse_space_args(args.space),
        )
    experiment.studies()  # validate everything before touching the database
    storage = open_storage(resolve_url(args.storage), create=True)
    for name, created in create_studies(storage, experiment):
        print(name if created else f"{name} (exists, unchanged)")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from hpsearch.studies import check_task, find_records

    if args.all == bool(args.study):
        raise HpsearchError("worker needs --study NAME (repeatable) or --all, not both")
    if args.n_trials is not None and args.n_trials < 1:
        raise HpsearchError(f"--n-trials must be positive, got {args.n_trials}")
    if args.threads < 1:
        raise HpsearchError(f"--threads must be positive, got {args.threads}")
    if args.seed is not None and not 0 <= args.seed < 2**31:
        raise HpsearchError(f"--seed must be in [0, 2^31), got {args.seed}")
    try:
        policy = HeartbeatPolicy(interval=args.heartbeat_interval, grace=args.heartbeat_grace)
    except ValueError as e:
        raise HpsearchError(str(e)) from None
    if args.device not in ("auto", "cpu", "cuda"):
        raise HpsearchError(f"--device {args.device!r}: choose auto, cpu or cuda")
    url = resolve_url(args.storage)
    storage = open_storage(url, heartbeat=policy)
    records = find_records(storage, None if args.all else args.study)
    for record in records:
        check_task(record)

    import torch

    from hpsearch.worker import Worker, resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    worker = Worker(
        storage, records, device=device, seed=args.seed, heartbeat_interval=policy.interval
    )
    logger.info(
        "worker %s on %s, %s, %d studies, sampler seed %d",
        worker.name,
        redact_url(url),
        device,
        len(records),
        worker.seed,
    )
    report = worker.run(args.n_trials)
    logger.info(
        "worker %s done: %d complete, %d failed", worker.name, report.complete, report.failed
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from hpsearch.export import FORMATS, best_rows, render

    if args.format not in FORMATS:
        raise HpsearchError(f"unknown format {args.format!r}; choose from {', '.join(FORMATS)}")
    if args.out is not None and not args.out.parent.exists():
        raise HpsearchError(f"--out {args.out}: folder {args.out.parent} does not exist")
    storage = open_storage(resolve_url(args.storage))
    text = render(best_rows(storage), args.format)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    return 0


def _status(args: argparse.Namespace) -> int:
    from hpsearch.status import render_status, study_status

    storage = open_storage(resolve_url(args.storage))
    sys.stdout.write(render_status(study_status(storage)))
    return 0


COMMANDS = {"create": _create, "worker": _worker, "export": _export, "status": _status}


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
        return COMMANDS[args.command](args)
    except (HpsearchError, StorageError) as e:
        print(f"hpsearch {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"hpsearch {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
