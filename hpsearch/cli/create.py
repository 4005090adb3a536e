"""`hpsearch create`: studies from flags or an experiment file."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hpsearch.cli.common import (
    STARTUP_WAIT_SECONDS,
    storage_arg,
)
from hpsearch.errors import HpsearchError
from storage import open_storage, resolve_url, retry_transient

logger = logging.getLogger("hpsearch")


def create_args(parser: argparse.ArgumentParser) -> None:
    from hpsearch.cli.flags import add_arguments
    from hpsearch.studies.schema import options

    storage_arg(parser)
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


def create(args: argparse.Namespace) -> int:
    from hpsearch.cli.flags import from_args, given_flags
    from hpsearch.studies.loader import load_experiments
    from hpsearch.studies.records import create_studies, plan_studies

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
    for result in results:
        if result.action == "created":
            print(result.name)
        elif result.action == "retargeted":
            print(f"{result.name}: target {result.target_before} -> {result.target}")
        else:
            print(f"{result.name} (exists, unchanged)")
    # A study's note shows its target: new and retargeted studies get theirs (re)written.
    changed = [result.name for result in results if result.action != "unchanged"]
    if changed:
        from hpsearch.dashboard.notes import publish

        publish(storage, changed)
    return 0
