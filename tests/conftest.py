from __future__ import annotations

import inspect
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testing import scratch_postgres

POSTGRES_ENV = "HPSEARCH_TEST_POSTGRES_URL"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hpsearch.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the test server, dropped afterwards. Without the variable the test
    skips, and CI (which sets it) fails on skipped postgres tests."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set: CI must run the postgres tests")
        pytest.skip(f"{POSTGRES_ENV} is not set")
    with scratch_postgres(base) as url:
        yield url


@pytest.fixture
def password_role(postgres_url: str) -> Iterator[tuple[str, str, str]]:
    """A role on the test server that must log in with its password over TCP (the server
    trusts every local connection otherwise), a password with @ : / % in it, and a database
    the role owns: (role, password, database). A pg_hba.conf line for this role alone asks
    for scram-sha-256; it is removed, and the role and database dropped, afterwards."""
    import psycopg
    import sqlalchemy
    from psycopg import sql

    role = f"hpsearch_pw_{uuid.uuid4().hex[:8]}"
    database = f"{role}_db"
    password = f"p@ss:w/rd%41 #?&='\"x{uuid.uuid4().hex[:6]}"
    url = sqlalchemy.make_url(postgres_url)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        if not os.access(hba, os.W_OK):
            pytest.fail(f"{hba} is not writable: cannot ask this server for a password")
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )
    line = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
    hba.write_text(line + hba.read_text())
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
        yield role, password, database
    finally:
        hba.write_text(hba.read_text().replace(line, ""))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


# The fast lane is `pytest -m "not integration"`. A test is integration when it is marked slow
# or when it starts processes (the real command in a child, worker processes, a browser): its
# module holds `subprocess` or `multiprocessing` or a helper that starts the command, or its
# own source names one of them. Derived from the test's code, so it cannot drift.
PROCESS_WORDS = re.compile(
    r"\b(subprocess|multiprocessing|Popen)\b|\b(hpsearch|start_worker|run_workers)\("
)


PROCESS_HELPERS = frozenset({"hpsearch", "start_worker", "run_workers", "wait_for"})


def _module_starts_processes(module: object) -> bool:
    import multiprocessing
    import subprocess

    for name, value in vars(module).items():
        if value is subprocess or value is multiprocessing:
            return True
        if name in PROCESS_HELPERS and callable(value):
            return True
    return False


def _starts_processes(item: pytest.Item) -> bool:
    module = getattr(item, "module", None)
    if module is not None and _module_starts_processes(module):
        return True
    function = getattr(item, "function", None)
    if function is None:
        return False
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return PROCESS_WORDS.search(source) is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") or _starts_processes(item):
            item.add_marker(pytest.mark.integration)
