"""The `hpsearch` command: create, worker, status, export, plot, report, dashboard, db upgrade.

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
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple, NoReturn

from hpsearch.errors import HpsearchError, unknown_choice
from hpsearch.export import Selection
from storage import (
    HeartbeatPolicy,
    StorageError,
    open_storage,
    redact_url,
    resolve_url,
    retry_transient,
)

logger = logging.getLogger("hpsearch")
EXIT_USAGE = 2
CHILD_ENV = "HPSEARCH_WORKER_CHILD"
STARTUP_WAIT_SECONDS = 120.0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not usage text plus an error, and options
    are never abbreviated (so that no shortened flag slips past a check)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """A value outside `choices=`, in the project's wording (argparse's lists reprs)."""
        if action.choices is not None and value not in action.choices:
            what = action.dest.replace("_", " ")
            raise argparse.ArgumentError(action, unknown_choice(what, value, tuple(action.choices)))


def _number_or(word: str, flag: str) -> Callable[[str], str]:
    """argparse `type=` for a flag that takes a positive number or `word`; keeps the text."""

    def check(text: str) -> str:
        if text != word and not (text.isdigit() and int(text) >= 1):
            # Raised as is by argparse: the message names the flag itself.
            raise argparse.ArgumentError(
                None, f"{flag} takes a positive number or {word!r}, got {text!r}"
            )
        return text

    return check


def _storage_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        help="database URL (default: $HPSEARCH_STORAGE, else sqlite:///hpsearch.db)",
    )


def _selection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", help="only these tasks (comma-separated)")
    parser.add_argument("--arch", help="only these archs (comma-separated)")
    parser.add_argument("--budget", help="only these budgets (comma-separated)")
    parser.add_argument("--depth", help="only these depths (comma-separated)")
    parser.add_argument(
        "--include-pruned",
        action="store_true",
        help="count pruned trials too (with the best bits they reached when stopped)",
    )


def _selection(args: argparse.Namespace) -> Selection:
    from hpsearch.experiment import parse_list

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
    )


def _create_args(parser: argparse.ArgumentParser) -> None:
    from hpsearch.experiment import add_arguments, options

    _storage_arg(parser)
    keys = ", ".join(f.name for f, _ in options())
    parser.add_argument(
        "--from",
        dest="from_file",
        type=Path,
        metavar="FILE",
        help=f"experiment file (TOML) with the keys {keys} in place of the flags: "
        "`--from experiments/smoke.toml`. It may add [[variants]] tables: groups of studies "
        "that differ in some settings, each with keys of the top level that it overrides "
        "([variants.space] merged into [space] key by key) and a tag of its own (which ends "
        "its studies' names); the file then creates every variant's studies, all checked "
        "before any is written: `--from experiments/unroll-small.toml`",
    )
    add_arguments(parser)


def _create(args: argparse.Namespace) -> int:
    from hpsearch.experiment import from_args, given_flags, load_experiments
    from hpsearch.studies import create_studies, plan_studies

    if args.from_file is not None:
        given = given_flags(args)
        if given:
            raise HpsearchError(f"--from takes everything from the file; drop {', '.join(given)}")
        experiments = load_experiments(args.from_file)
    else:
        experiments = (from_args(args),)
    plan_studies(experiments)  # validate everything before touching the database
    url = resolve_url(args.storage)
    # Waits for a database that is still starting (but not for a wrong URL or password).
    storage = retry_transient(
        lambda: open_storage(url, create=True), "connecting", deadline=STARTUP_WAIT_SECONDS
    )
    results = create_studies(storage, *experiments)
    for name, created in results:
        print(name if created else f"{name} (exists, unchanged)")
    new = [name for name, created in results if created]
    if new:
        from hpsearch.notes import publish

        publish(storage, new)
    return 0


def _worker_args(parser: argparse.ArgumentParser) -> None:
    _storage_arg(parser)
    parser.add_argument("--study", action="append", help="study name (repeatable)")
    parser.add_argument("--all", action="store_true", help="work on every study")
    parser.add_argument("--n-trials", type=int, help="stop after this many trials of its own")
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where trials run (auto: cuda where there is a GPU)",
    )
    parser.add_argument("--seed", type=int, help="sampler seed (default: random per worker)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--batch",
        default="1",
        type=_number_or("auto", "--batch"),
        help="trials trained at once, stacked into one program: a number, or "
        "'auto' (on a GPU from its free memory and the largest trial; 1 on a CPU)",
    )
    parser.add_argument(
        "--tf32",
        default="auto",
        choices=("auto", "on", "off"),
        help="TF32 matmuls in batched training on a GPU: 'auto' (where a short probe per "
        "network shape finds the results within 1%% of full precision), 'on' or 'off'",
    )
    parser.add_argument(
        "--processes",
        default="1",
        type=_number_or("gpus", "--processes"),
        help="worker processes to start here: a number, or 'gpus' for one per "
        "visible GPU (each pinned to its GPU)",
    )
    parser.add_argument("--heartbeat-interval", type=int, default=10, help="seconds")
    parser.add_argument(
        "--heartbeat-grace",
        type=int,
        default=60,
        help="seconds without a heartbeat before a trial is failed and retried",
    )


def _worker(args: argparse.Namespace) -> int:
    import optuna

    from hpsearch.studies import StudyRecord, check_task, find_records

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
    processes = _parse_processes(args.processes)
    if args.tf32 == "on" and args.batch == "1":
        raise HpsearchError("--tf32 on applies to batched training: add --batch N or auto")
    if args.tf32 == "on" and args.device == "cpu":
        raise HpsearchError("--tf32 on needs a CUDA device")
    url = resolve_url(args.storage)

    def connect() -> tuple[optuna.storages.RDBStorage, list[StudyRecord]]:
        storage = open_storage(url, heartbeat=policy)
        return storage, find_records(storage, None if args.all else args.study)

    # A worker waits for a database that is restarting (but not for a wrong URL or study).
    storage, records = retry_transient(connect, "connecting", deadline=STARTUP_WAIT_SECONDS)
    for record in records:
        check_task(record)

    import torch

    from hpsearch.worker import Worker, resolve_device

    device = resolve_device(args.device)
    if args.tf32 == "on" and device != "cuda":
        raise HpsearchError(f"--tf32 on needs a CUDA device; this worker runs on {device}")
    if processes != 1:
        from hpsearch.processes import run_processes

        storage.engine.dispose()
        gpus = torch.cuda.device_count() if device == "cuda" else 0
        count = gpus if processes == "gpus" else int(processes)
        if count < 1:
            raise HpsearchError("--processes gpus: no GPU is visible here")
        return run_processes(
            argv=args.argv,
            count=count,
            pin_gpus=processes == "gpus" or gpus > 0,
            gpus=gpus,
            seed=args.seed,
        )
    torch.set_num_threads(args.threads)
    worker = retry_transient(
        lambda: Worker(storage, records, device=device, seed=args.seed, heartbeat=policy),
        "loading studies",
        deadline=STARTUP_WAIT_SECONDS,
    )
    logger.info(
        "worker %s on %s, %s, %d studies, sampler seed %d",
        worker.name,
        redact_url(url),
        device,
        len(records),
        worker.seed,
    )
    if args.batch == "auto":
        batch = worker.auto_batch()
        logger.info("--batch auto: %d trials at once on %s", batch, device)
    else:
        batch = int(args.batch)
    if args.tf32 == "on" and batch == 1:
        raise HpsearchError("--tf32 on applies to batched training, and --batch auto chose 1")
    report = worker.run(args.n_trials, batch=batch, tf32=args.tf32)
    logger.info(
        "worker %s done: %d complete, %d failed", worker.name, report.complete, report.failed
    )
    return 0


def _parse_processes(text: str) -> int | str:
    """A number or 'gpus' (checked by `_number_or`); a child worker starts no more."""
    if os.environ.get(CHILD_ENV) and text != "1":
        raise HpsearchError("a worker started by --processes cannot start more workers")
    return text if text == "gpus" else int(text)


def _export_args(parser: argparse.ArgumentParser) -> None:
    from hpsearch.render import FORMATS, TABLES

    _storage_arg(parser)
    parser.add_argument("--format", default="md", choices=FORMATS, help="output format")
    parser.add_argument(
        "--table",
        default="best",
        choices=TABLES,
        help="best (one row per study and depth), fits (bits per parameter per "
        "arch and depth), multipliers (arch against arch), per-unit (best fraction "
        "reconstructed per per-unit study and depth), or all",
    )
    parser.add_argument("--out", type=Path, help="write to this file instead of stdout")
    _selection_args(parser)


def _export(args: argparse.Namespace) -> int:
    from hpsearch.export import best_rows, fit_rows, multipliers, per_unit_rows
    from hpsearch.render import best_table, fits_table, multipliers_table, per_unit_table, render

    if args.table == "all" and args.format == "csv":
        raise HpsearchError(
            "csv holds one table: choose --table best, fits, multipliers or per-unit"
        )
    if args.out is not None and not args.out.parent.exists():
        raise HpsearchError(f"--out {args.out}: folder {args.out.parent} does not exist")
    selection = _selection(args)
    storage = open_storage(resolve_url(args.storage))
    rows = best_rows(storage, selection)
    tables = {
        "best": lambda: [best_table(rows)],
        "fits": lambda: [fits_table(fit_rows(rows))],
        "multipliers": lambda: [multipliers_table(multipliers(rows))],
        "per-unit": lambda: [per_unit_table(per_unit_rows(storage, selection))],
        "all": lambda: [
            best_table(rows),
            fits_table(fit_rows(rows)),
            multipliers_table(multipliers(rows)),
            per_unit_table(per_unit_rows(storage, selection)),
        ],
    }[args.table]()
    text = render(tables, args.format)
    if args.out is None:
        sys.stdout.write(text)
    else:
        try:
            args.out.write_text(text)
        except OSError as e:
            raise HpsearchError(f"cannot write {args.out}: {e.strerror}") from None
    return 0


def _plot_args(parser: argparse.ArgumentParser) -> None:
    _storage_arg(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder for the figures")
    _selection_args(parser)


def _plot(args: argparse.Namespace) -> int:
    from hpsearch.plots import write_figures

    if args.out.exists() and not args.out.is_dir():
        raise HpsearchError(f"--out {args.out}: not a folder")
    if not args.out.parent.exists():
        raise HpsearchError(f"--out {args.out}: folder {args.out.parent} does not exist")
    selection = _selection(args)
    storage = open_storage(resolve_url(args.storage))
    try:
        args.out.mkdir(exist_ok=True)
        written, skipped = write_figures(storage, args.out, selection)
    except OSError as e:
        raise HpsearchError(f"cannot write into {args.out}: {e.strerror}") from None
    from hpsearch.notes import publish

    publish(storage)  # the dashboard's notes and figures, up to date
    for path in written:
        print(path)
    if skipped:
        logger.warning("%s", skipped)
    return 0


def _report_args(parser: argparse.ArgumentParser) -> None:
    from hpsearch.claims import MIN_TRIALS

    _storage_arg(parser)
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the report and its figures"
    )
    parser.add_argument(
        "--name",
        default="report.md",
        help="the markdown file's name in that folder (default report.md)",
    )
    parser.add_argument(
        "--min-trials",
        type=int,
        default=MIN_TRIALS,
        metavar="N",
        help=f"complete trials a best row needs to count towards a verdict (default {MIN_TRIALS})",
    )


def _report(args: argparse.Namespace) -> int:
    from hpsearch.report import collect_report, write_report
    from hpsearch.studies import list_records

    if args.min_trials < 1:
        raise HpsearchError(f"--min-trials must be positive, got {args.min_trials}")
    name: str = args.name
    if Path(name).name != name or not name.endswith(".md"):
        raise HpsearchError(f"--name {name!r}: give a file name ending in .md, without a folder")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise HpsearchError(f"--out {out}: not a folder")
    if not out.exists() and not out.parent.is_dir():
        raise HpsearchError(f"--out {out}: folder {out.parent} does not exist")
    if not os.access(out if out.exists() else out.parent, os.W_OK):
        raise HpsearchError(f"--out {out}: not writable")
    url = resolve_url(args.storage)
    storage = open_storage(url)
    if not list_records(storage):
        raise HpsearchError(
            f"no hpsearch studies in {redact_url(url)}: nothing to report "
            "(make some with hpsearch create)"
        )
    report = collect_report(storage, url, args.min_trials)
    try:
        out.mkdir(exist_ok=True)
        written = write_report(report, out, name)
    except OSError as e:
        raise HpsearchError(f"cannot write into {out}: {e.strerror}") from None
    for path in written:
        print(path)
    return 0


def _status_args(parser: argparse.ArgumentParser) -> None:
    _storage_arg(parser)


def _status(args: argparse.Namespace) -> int:
    from hpsearch.status import render_status, study_status

    storage = open_storage(resolve_url(args.storage))
    sys.stdout.write(render_status(study_status(storage)))
    return 0


def _db_args(parser: argparse.ArgumentParser) -> None:
    db_sub = parser.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    upgrade = db_sub.add_parser("upgrade", help="create the tables or bring them to this version")
    _storage_arg(upgrade)


def _db(args: argparse.Namespace) -> int:
    from storage import upgrade_schema

    url = resolve_url(args.storage)
    # Waits for a database that is still starting (but not for a wrong URL or password).
    before, after = retry_transient(
        lambda: upgrade_schema(url), "upgrading the schema", deadline=STARTUP_WAIT_SECONDS
    )
    if before == after:
        print(f"schema is current ({after})")
    else:
        print(f"schema upgraded from {before} to {after}")
    return 0


def _dashboard_args(parser: argparse.ArgumentParser) -> None:
    _storage_arg(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument(
        "--allow-writes",
        action="store_true",
        help="let visitors delete, rename and write to studies (read-only by default)",
    )
    parser.add_argument("--auth-user", metavar="NAME", help="ask for HTTP basic auth as this user")
    parser.add_argument(
        "--password-file",
        type=Path,
        metavar="PATH",
        help="the --auth-user password, first line of this file "
        "(default: $HPSEARCH_DASHBOARD_PASSWORD_FILE)",
    )


def _dashboard(args: argparse.Namespace) -> int:
    from hpsearch import dashboard
    from hpsearch.notes import name_metrics

    if not 1 <= args.port <= 65535:
        raise HpsearchError(f"--port must be in [1, 65535], got {args.port}")
    password_file = args.password_file or os.environ.get(dashboard.PASSWORD_FILE_VAR) or None
    login = dashboard.load_login(
        args.auth_user, None if password_file is None else Path(password_file)
    )
    url = resolve_url(args.storage)
    storage = retry_transient(
        lambda: open_storage(url), "connecting", deadline=STARTUP_WAIT_SECONDS
    )
    name_metrics(storage)
    app = dashboard.build_app(storage, allow_writes=args.allow_writes, login=login)
    logger.info(
        "dashboard for %s on http://%s:%d/ (%s, %s)",
        redact_url(url),
        args.host,
        args.port,
        "writes allowed" if args.allow_writes else "read-only",
        f"login as {login.user}" if login else "no login",
    )
    if login is None and not dashboard.is_loopback(args.host):
        logger.warning(
            "the dashboard listens on %s without a login: keep its port on a trusted interface "
            "(docker-compose.yml publishes it on 127.0.0.1) or add --auth-user",
            args.host,
        )
    dashboard.serve(app, args.host, args.port)
    return 0


class Command(NamedTuple):
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS = {
    "create": Command(
        "create one study per (arch, budget), or per (arch, units) of --task per-unit",
        _create_args,
        _create,
    ),
    "worker": Command("run trials until the targets are reached", _worker_args, _worker),
    "export": Command("best-bits tables", _export_args, _export),
    "plot": Command("figures as self-contained HTML (and PNG if possible)", _plot_args, _plot),
    "report": Command(
        "report.md: the paper's claims against the studies, with figures",
        _report_args,
        _report,
    ),
    "status": Command("trials by state and best bits per study", _status_args, _status),
    "db": Command("database schema", _db_args, _db),
    "dashboard": Command("serve optuna-dashboard over the storage", _dashboard_args, _dashboard),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hpsearch", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, command in COMMANDS.items():
        command.arguments(sub.add_parser(name, help=command.help))
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


if __name__ == "__main__":
    sys.exit(main())
