"""Transient database errors: recognise them and retry with backoff.

A worker must never die of a dropped connection, a restarted server or a serialization
failure: each unit of work is retried until it succeeds or `deadline` seconds have passed.
Permanent errors (a wrong password or user, a database that does not exist, a host name that
does not resolve) are not retried: they come out at once as one StorageError line.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy.exc

from storage.errors import StorageError

logger = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "57P01",  # admin_shutdown (pg_terminate_backend, server stop)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (server starting)
        "08000",
        "08001",
        "08003",
        "08004",
        "08006",  # connection exceptions
        "53300",  # too_many_connections
    }
)


# Errors no wait will cure. psycopg raises connection failures without a SQLSTATE (the server's
# FATAL message is all it has), so each is also recognised by the words libpq prints.
_PERMANENT_SQLSTATES = frozenset(
    {
        "28000",  # invalid_authorization_specification (unknown role, no pg_hba.conf entry)
        "28P01",  # invalid_password
        "3D000",  # invalid_catalog_name (the database does not exist)
    }
)
_PERMANENT_MESSAGES = (
    "password authentication failed",
    'role "',  # role "x" does not exist
    "no pg_hba.conf entry",
    "does not exist",  # database "x" does not exist
    "failed to resolve host",
    "could not translate host name",
    "name or service not known",
    "nodename nor servname",
)


def _sqlstate(err: BaseException) -> str | None:
    return getattr(err, "sqlstate", None) or getattr(getattr(err, "orig", None), "sqlstate", None)


def is_permanent(e: BaseException) -> bool:
    """Whether `e` (or what it wraps) is a database error that waiting will not cure: bad
    credentials, a missing database, an unknown host."""
    for err in _chain(e):
        if isinstance(err, StorageError):
            return not err.transient
        if _sqlstate(err) in _PERMANENT_SQLSTATES:
            return True
        if type(err).__module__.startswith("psycopg") and type(err).__name__ == "OperationalError":
            text = str(err).lower()
            if any(words in text for words in _PERMANENT_MESSAGES):
                return True
    return False


def first_line(e: BaseException) -> str:
    """The driver's own message, first line only (never a password: libpq does not print it)."""
    for err in reversed(_chain(e)):
        text = str(getattr(err, "orig", None) or err).strip()
        if text:
            return text.splitlines()[0]
    return type(e).__name__


def _chain(e: BaseException) -> list[BaseException]:
    """`e`, what caused it, and the driver error a SQLAlchemy error wraps (`orig`)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [e]
    while todo:
        current = todo.pop(0)
        if current is None or current in seen:
            continue
        seen.append(current)
        orig = getattr(current, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None]
        todo += [current.__cause__ or current.__context__]
    return seen


def is_transient(e: BaseException) -> bool:
    """Whether `e` (or what it wraps, as Optuna wraps driver errors) will likely pass."""
    if is_permanent(e):
        return False
    for err in _chain(e):
        if isinstance(err, StorageError):
            return err.transient
        if isinstance(err, sqlalchemy.exc.DBAPIError) and err.connection_invalidated:
            return True
        if isinstance(
            err,
            sqlalchemy.exc.DisconnectionError
            | sqlalchemy.exc.TimeoutError
            | sqlalchemy.exc.InterfaceError,
        ):
            return True
        if _sqlstate(err) in _TRANSIENT_SQLSTATES:
            return True
        if isinstance(err, sqlite3.OperationalError) and "locked" in str(err):
            return True
        if type(err).__module__.startswith("psycopg") and type(err).__name__ in (
            "OperationalError",
            "InterfaceError",
        ):
            return True
        if isinstance(err, sqlalchemy.exc.OperationalError):
            return True
    return False


def retry_transient(
    fn: Callable[[], T],
    what: str,
    *,
    deadline: float = 900.0,
    first_delay: float = 0.2,
    max_delay: float = 10.0,
) -> T:
    """Call fn until it returns, retrying transient database errors with jittered
    exponential backoff for up to `deadline` seconds. A permanent database error (bad
    credentials, missing database, unknown host) becomes one StorageError line at once;
    other errors pass straight through."""
    start = time.monotonic()
    delay = first_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as e:
            if is_permanent(e) and not isinstance(e, StorageError):
                raise StorageError(f"{what}: {first_line(e)}") from None
            if not is_transient(e):
                raise
            waited = time.monotonic() - start
            if waited + delay > deadline:
                raise StorageError(
                    f"{what}: database unavailable for {waited:.0f}s, giving up: {first_line(e)}"
                ) from None
            logger.warning(
                "%s: transient database error (attempt %d, retry in %.1fs): %s",
                what,
                attempt,
                delay,
                str(e).splitlines()[0][:200] if str(e) else type(e).__name__,
            )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(max_delay, delay * 2)
