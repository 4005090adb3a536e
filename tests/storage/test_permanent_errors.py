"""Errors no wait will cure (a wrong password, a missing database, an unknown host) fail at
once with one line and exit code 2; errors that pass (a refused or dropped connection, a server
starting) are still retried."""

from __future__ import annotations

import time

import psycopg
import pytest
import sqlalchemy

from storage import StorageError, is_transient, retry_transient
from storage.retry import is_permanent
from tests.testing import hpsearch


def _error(message: str) -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("connect", {}, psycopg.OperationalError(message))


@pytest.mark.parametrize(
    "message",
    [
        'connection failed: connection to server at "h", port 5432 failed: FATAL:  password '
        'authentication failed for user "bob"',
        'connection failed: connection to server at "h", port 5432 failed: FATAL:  database '
        '"nope" does not exist',
        'connection failed: connection to server at "h", port 5432 failed: FATAL:  role "x" does '
        "not exist",
        "failed to resolve host 'db.invalid': [Errno -2] Name or service not known",
    ],
)
def test_permanent_errors_are_not_retried(message):
    error = _error(message)
    assert is_permanent(error) and not is_transient(error)
    calls = []

    def connect() -> None:
        calls.append(1)
        raise error

    with pytest.raises(StorageError) as info:
        retry_transient(connect, "connecting", first_delay=0.01)
    assert len(calls) == 1
    assert "\n" not in str(info.value) and str(info.value).startswith("connecting: ")


@pytest.mark.parametrize(
    "message",
    [
        'connection failed: connection to server at "h", port 5432 failed: Connection refused',
        "server closed the connection unexpectedly",
        "consuming input failed: terminating connection due to administrator command",
    ],
)
def test_passing_errors_are_still_transient(message):
    error = _error(message)
    assert is_transient(error) and not is_permanent(error)


def _worker(url: str) -> tuple[int, str, float]:
    start = time.monotonic()
    result = hpsearch("worker", "--storage", url, "--all", "--device", "cpu", timeout=60)
    return result.returncode, result.stderr, time.monotonic() - start


@pytest.mark.postgres
def test_missing_database_fails_fast(postgres_url):
    url = sqlalchemy.make_url(postgres_url).set(database="hpsearch_no_such_db")
    code, err, seconds = _worker(url.render_as_string(hide_password=False))
    assert code == 2, err
    assert err.count("\n") == 1 and 'database "hpsearch_no_such_db" does not exist' in err
    assert seconds < 5


@pytest.mark.postgres
def test_wrong_password_fails_fast(postgres_url, password_role):
    role, password, database = password_role
    base = sqlalchemy.make_url(postgres_url).set(username=role, database=database)
    # The right password gets in (and finds no tables yet: a one-line hint, no retry)...
    code, err, _ = _worker(base.set(password=password).render_as_string(hide_password=False))
    assert code == 2 and "hpsearch db upgrade" in err, err
    # ...a wrong one is refused at once, in one line that does not show it.
    wrong = base.set(password="not-" + password).render_as_string(hide_password=False)
    code, err, seconds = _worker(wrong)
    assert code == 2, err
    assert err.count("\n") == 1 and "password authentication failed" in err
    assert "not-" + password not in err
    assert seconds < 5
