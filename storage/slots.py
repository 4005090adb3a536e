"""Trial slots: a lock held while a worker counts a study's trials and asks for a new one, so
that many workers together stop at exactly the study's target.

SQLite (one machine): an advisory file lock beside the database file.
PostgreSQL (many machines): a session-level advisory lock keyed by the study name.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator

import optuna
import sqlalchemy
import sqlalchemy.exc

from storage.errors import StorageError
from storage.url import sqlite_path


def _key(study_name: str) -> int:
    digest = hashlib.sha256(f"hpsearch-slot:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def trial_slot(storage: optuna.storages.RDBStorage, study_name: str) -> Iterator[None]:
    """Hold the study's slot lock for the body: count, then ask, atomically across workers."""
    path = sqlite_path(storage.url)
    if path is not None:
        with open(f"{path}.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    key = _key(study_name)
    try:
        connection = storage.engine.connect()
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise StorageError(f"cannot take the trial-slot lock: {e.__class__.__name__}") from None
    try:
        yield
    finally:
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            connection.commit()
        finally:
            connection.close()
