"""`hpsearch db` and `hpsearch dashboard`: the database schema and the served dashboard."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from hpsearch.cli.common import (
    STARTUP_WAIT_SECONDS,
    Parser,
    storage_arg,
    verbose_arg,
)
from hpsearch.errors import HpsearchError
from storage import open_storage, redact_url, resolve_url, retry_transient

logger = logging.getLogger("hpsearch")


def db_args(parser: argparse.ArgumentParser) -> None:
    db_sub = parser.add_subparsers(dest="db_command", required=True, parser_class=Parser)
    upgrade = db_sub.add_parser("upgrade", help="create the tables or bring them to this version")
    verbose_arg(upgrade)
    storage_arg(upgrade)


def db(args: argparse.Namespace) -> int:
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


def dashboard_args(parser: argparse.ArgumentParser) -> None:
    storage_arg(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port")
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


def dashboard(args: argparse.Namespace) -> int:
    from hpsearch.dashboard import app as dashboard
    from hpsearch.dashboard.notes import name_metrics

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
