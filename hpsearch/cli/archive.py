"""`hpsearch import` and `hpsearch export --table trials --format jsonl`: whole studies as
archives (`hpsearch.studies.archive`), to commit, send, merge or continue elsewhere."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hpsearch.cli.common import STARTUP_WAIT_SECONDS, selection_of, storage_arg
from hpsearch.errors import HpsearchError
from storage import open_storage, redact_url, resolve_url, retry_transient


def export_archive(args: argparse.Namespace) -> int:
    """`hpsearch export --table trials --format jsonl`: every trial of the selected studies,
    to --out (gzip-compressed when it ends in .gz) or stdout."""
    from hpsearch.studies.archive import archive_lines, write_archive, write_lines
    from hpsearch.studies.records import list_records

    if args.table != "trials":
        raise HpsearchError(
            f"--format jsonl is the archive of whole studies, not of --table {args.table}: "
            "add --table trials"
        )
    if args.depth is not None:
        raise HpsearchError("an archive holds whole studies: drop --depth")
    out: Path | None = args.out
    if out is not None and not out.parent.exists():
        raise HpsearchError(f"--out {out}: folder {out.parent} does not exist")
    selection = selection_of(args)
    url = resolve_url(args.storage)
    storage = open_storage(url)
    records = list_records(storage)
    selection.check(records)
    names = [r.name for r in records if selection.study(r)]
    if not names:
        raise HpsearchError(f"no hpsearch studies selected in {redact_url(url)}: nothing to export")
    lines = archive_lines(storage, names)
    if out is None:
        write_lines(lines, sys.stdout)
        return 0
    try:
        write_archive(lines, out)
    except OSError as e:
        raise HpsearchError(f"cannot write {out}: {e.strerror}") from None
    return 0


def import_args(parser: argparse.ArgumentParser) -> None:
    storage_arg(parser)
    parser.add_argument(
        "file",
        type=Path,
        metavar="FILE",
        help="an archive made by hpsearch export --table trials --format jsonl (.gz or not)",
    )


def import_(args: argparse.Namespace) -> int:
    """Read and check the whole archive, then check it against the storage, then write:
    a bad file or a clash writes nothing."""
    from hpsearch.studies.archive import import_archive, read_archive

    studies = read_archive(args.file)
    url = resolve_url(args.storage)
    storage = retry_transient(
        lambda: open_storage(url, create=True), "connecting", deadline=STARTUP_WAIT_SECONDS
    )
    for imported in import_archive(storage, studies):
        print(imported.describe())
    return 0
