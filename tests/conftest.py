from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_ENV = "HPSEARCH_TEST_POSTGRES_URL"

# What every capacity trial must record (issue 2).
TRIAL_ATTRS = (
    "bits",
    "bits_per_param",
    "num_params",
    "hidden_size",
    "depth",
    "error_fraction",
    "steps",
    "seconds",
    "device",
)


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
    import psycopg
    import sqlalchemy

    url = sqlalchemy.make_url(base)
    name = f"hpsearch_test_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
