"""Turn a URL into an Optuna RDBStorage with a deliberate connection and heartbeat policy."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc
import sqlalchemy.pool

from storage.errors import StorageError
from storage.retry import first_line, is_transient
from storage.url import normalize_url, redact_url, sqlite_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeartbeatPolicy:
    """A RUNNING trial whose worker has not beaten for `grace` seconds is failed and, up to
    `max_retry` times, queued again with the same parameters."""

    interval: int = 10
    grace: int = 60
    max_retry: int = 3

    def __post_init__(self) -> None:
        if self.interval < 1 or self.grace < 1:
            raise ValueError("heartbeat interval and grace must be positive whole seconds")
        if self.grace <= self.interval:
            raise ValueError(
                f"heartbeat grace ({self.grace}s) must exceed the interval ({self.interval}s)"
            )
        if self.max_retry < 0:
            raise ValueError("max_retry must be >= 0")


def _engine_kwargs(url: str) -> dict[str, Any]:
    if sqlite_path(url) is not None:
        # Several worker processes share one file: wait for the write lock, don't fail.
        return {"connect_args": {"timeout": 60}}
    # PostgreSQL has a connection ceiling (100 by default) that 64 workers must fit under:
    # one pooled connection kept per process, shared by the worker loop and its heartbeat
    # thread, with one more only while both are busy at once; each is checked before use so
    # that a connection the server dropped is replaced instead of failing the next query.
    # The trial-slot lock takes a connection of its own only while it is held (storage.slots).
    return {
        "pool_size": 1,
        "max_overflow": 1,  # Optuna's own set-up nests two connections
        "pool_timeout": 120,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
        "connect_args": {"connect_timeout": 10, "application_name": "hpsearch"},
    }


def _prepare_sqlite(url: str, create: bool) -> None:
    path = sqlite_path(url)
    assert path is not None
    if not path.exists():
        if not create:
            raise StorageError(
                f"no database at {path}: create studies first with 'hpsearch create'"
            )
        if not path.parent.exists():
            raise StorageError(f"cannot create {path}: folder {path.parent} does not exist")
    if not create:
        return  # a read or a worker: the file was prepared when its studies were created
    try:
        with sqlite3.connect(path, timeout=60) as conn:
            # WAL lets readers run while a worker writes; the mode is stored in the file.
            conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as e:
        raise StorageError(f"cannot open SQLite database {path}: {e}") from None


UPGRADE_HINT = "run 'hpsearch db upgrade' (with the same storage) first"


def _check_tables(url: str, shown: str) -> None:
    """A database without Optuna's tables is an error, not something to create silently."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise StorageError(
            f"cannot use storage {shown}: {first_line(e)}", transient=is_transient(e)
        ) from None
    finally:
        engine.dispose()
    if not {"studies", "trials", "version_info"} <= tables:
        raise StorageError(
            f"storage {shown} has no hpsearch tables: {UPGRADE_HINT}, "
            "or create studies with 'hpsearch create'"
        )


def open_storage(
    url: str,
    *,
    create: bool = False,
    heartbeat: HeartbeatPolicy | None = None,
) -> optuna.storages.RDBStorage:
    """An RDBStorage for `url`. With create=False a database without tables (or a missing
    SQLite file) is an error instead of a new empty one, and an old schema asks for
    'hpsearch db upgrade'. Errors come out as StorageError with the password hidden."""
    url = normalize_url(url)
    shown = redact_url(url)
    if sqlite_path(url) is not None:
        _prepare_sqlite(url, create)
    if not create:
        _check_tables(url, shown)
    kwargs: dict[str, Any] = {}
    if heartbeat is not None:
        kwargs = {
            "heartbeat_interval": heartbeat.interval,
            "grace_period": heartbeat.grace,
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=heartbeat.max_retry
            ),
        }
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url), **kwargs)
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise StorageError(
            f"cannot use storage {shown}: {first_line(e)}", transient=is_transient(e)
        ) from None
    except RuntimeError:  # Optuna's schema-version check
        raise StorageError(
            f"the schema of {shown} is older than this version: {UPGRADE_HINT}"
        ) from None


def upgrade_schema(url: str) -> tuple[str, str]:
    """Create Optuna's tables if missing and bring the schema to head.
    Returns (version before, version after)."""
    url = normalize_url(url)
    shown = redact_url(url)
    if sqlite_path(url) is not None:
        _prepare_sqlite(url, create=True)
    try:
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs=_engine_kwargs(url), skip_compatibility_check=True
        )
        before = storage.get_current_version()
        if before != storage.get_head_version():
            storage.upgrade()
        after = storage.get_current_version()
        storage.engine.dispose()
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise StorageError(
            f"cannot upgrade {shown}: {first_line(e)}", transient=is_transient(e)
        ) from None
    return before, after
