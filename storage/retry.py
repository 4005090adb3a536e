"""Transient database errors: recognise them and retry with backoff.

A worker must never die of a dropped connection, a restarted server or a serialization
failure: each unit of work is retried until it succeeds or `deadline` seconds have passed.
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


def _chain(e: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = e
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_transient(e: BaseException) -> bool:
    """Whether `e` (or what it wraps, as Optuna wraps driver errors) will likely pass."""
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
        sqlstate = getattr(err, "sqlstate", None) or getattr(
            getattr(err, "orig", None), "sqlstate", None
        )
        if sqlstate in _TRANSIENT_SQLSTATES:
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
    exponential backoff for up to `deadline` seconds; other errors pass straight through."""
    start = time.monotonic()
    delay = first_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as e:
            if not is_transient(e):
                raise
            waited = time.monotonic() - start
            if waited + delay > deadline:
                raise StorageError(
                    f"{what}: database unavailable for {waited:.0f}s, giving up: {type(e).__name__}"
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
