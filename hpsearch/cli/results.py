"""`hpsearch export`, `plot`, `report` and `status`: what the studies found."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from hpsearch.cli.common import (
    selection_args,
    selection_of,
    storage_arg,
)
from hpsearch.errors import HpsearchError
from storage import open_storage, redact_url, resolve_url

logger = logging.getLogger("hpsearch")


def export_args(parser: argparse.ArgumentParser) -> None:
    from hpsearch.results.tables import FORMATS, TABLES

    storage_arg(parser)
    parser.add_argument(
        "--format",
        default="md",
        choices=(*FORMATS, "jsonl"),
        help="output format (jsonl: with --table trials, an archive for hpsearch import)",
    )
    parser.add_argument(
        "--table",
        default="best",
        choices=TABLES,
        help="best (one row per study and depth), fits (bits per parameter per "
        "arch, depth and tag), multipliers (arch against arch, per tag), per-unit (best "
        "fraction reconstructed per per-unit study and depth), trials (every trial of the "
        "selected studies, csv, json or jsonl), or all (the first four)",
    )
    parser.add_argument("--out", type=Path, help="write to this file instead of stdout")
    selection_args(parser)


def export(args: argparse.Namespace) -> int:
    from hpsearch.results.rows import (
        best_rows,
        fit_rows,
        multipliers_by_tag,
        per_unit_rows,
        trial_rows,
    )
    from hpsearch.results.tables import (
        TRIALS_FORMATS,
        best_table,
        fits_table,
        multipliers_table,
        per_unit_table,
        render,
        trials_table,
    )
    from hpsearch.studies.records import list_records

    if args.format == "jsonl":  # whole studies, to rebuild them elsewhere
        from hpsearch.cli.archive import export_archive

        return export_archive(args)
    if args.table == "all" and args.format == "csv":
        raise HpsearchError(
            "csv holds one table: choose --table best, fits, multipliers, per-unit or trials"
        )
    if args.table == "trials" and args.format not in TRIALS_FORMATS:
        raise HpsearchError(
            f"--table trials is written as csv or json, not {args.format}: "
            "add --format csv or --format json"
        )
    if args.out is not None and not args.out.parent.exists():
        raise HpsearchError(f"--out {args.out}: folder {args.out.parent} does not exist")
    selection = selection_of(args)
    storage = open_storage(resolve_url(args.storage))
    selection.check(list_records(storage))
    rows = best_rows(storage, selection)
    tables = {
        "best": lambda: [best_table(rows)],
        "fits": lambda: [fits_table(fit_rows(rows))],
        "multipliers": lambda: [multipliers_table(multipliers_by_tag(rows))],
        "per-unit": lambda: [per_unit_table(per_unit_rows(storage, selection))],
        "trials": lambda: [trials_table(trial_rows(storage, selection), flat=args.format == "csv")],
        "all": lambda: [
            best_table(rows),
            fits_table(fit_rows(rows)),
            multipliers_table(multipliers_by_tag(rows)),
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


def plot_args(parser: argparse.ArgumentParser) -> None:
    storage_arg(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder for the figures")
    selection_args(parser)


def plot(args: argparse.Namespace) -> int:
    from hpsearch.results.figures import write_figures
    from hpsearch.studies.records import list_records

    if args.out.exists() and not args.out.is_dir():
        raise HpsearchError(f"--out {args.out}: not a folder")
    if not args.out.parent.exists():
        raise HpsearchError(f"--out {args.out}: folder {args.out.parent} does not exist")
    selection = selection_of(args)
    storage = open_storage(resolve_url(args.storage))
    selection.check(list_records(storage))
    try:
        args.out.mkdir(exist_ok=True)
        written, skipped = write_figures(storage, args.out, selection)
    except OSError as e:
        raise HpsearchError(f"cannot write into {args.out}: {e.strerror}") from None
    from hpsearch.dashboard.notes import publish

    publish(storage)  # the dashboard's notes and figures, up to date
    for path in written:
        print(path)
    if skipped:
        logger.warning("%s", skipped)
    return 0


def report_args(parser: argparse.ArgumentParser) -> None:
    from hpsearch.results.claims import MIN_TRIALS

    storage_arg(parser)
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
    selection_args(parser)


def report(args: argparse.Namespace) -> int:
    from hpsearch.results.report import collect_report, write_report
    from hpsearch.studies.records import list_records

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
    selection = selection_of(args)
    url = resolve_url(args.storage)
    storage = open_storage(url)
    records = list_records(storage)
    if not records:
        raise HpsearchError(
            f"no hpsearch studies in {redact_url(url)}: nothing to report "
            "(make some with hpsearch create)"
        )
    selection.check(records)
    report = collect_report(storage, url, args.min_trials, selection=selection)
    try:
        out.mkdir(exist_ok=True)
        written = write_report(report, out, name)
    except OSError as e:
        raise HpsearchError(f"cannot write into {out}: {e.strerror}") from None
    for path in written:
        print(path)
    return 0


def status_args(parser: argparse.ArgumentParser) -> None:
    from hpsearch.results.status import STATUS_FORMATS

    storage_arg(parser)
    parser.add_argument(
        "-f",
        "--format",
        default="text",
        choices=STATUS_FORMATS,
        help="text (a table) or json (a list of one object per study, the same numbers)",
    )


def status(args: argparse.Namespace) -> int:
    from hpsearch.results.status import render_status, status_json, study_status

    storage = open_storage(resolve_url(args.storage))
    rows = study_status(storage)
    sys.stdout.write(status_json(rows) if args.format == "json" else render_status(rows))
    return 0
