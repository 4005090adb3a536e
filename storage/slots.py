"""Trial slots: a lock held while a worker counts a study's trials and asks for a new one, so
that many workers together stop at exactly the study's target.

SQLite (one machine): an advisory file lock beside the database file.
PostgreSQL (many machines): a session-level advisory lock keyed by the study name, taken with
pg_try_advisory_lock on a connection of its own that exists only while the lock is held, so
a waiting worker holds no connection (64 workers must fit under the server's ceiling).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import random
import time
from collections.abc import Iterator

import optuna
import sqlalchemy
import sqlalchemy.pool

from storage.url import sqlite_path

_engines: dict[str, sqlalchemy.Engine] = {}


def _key(study_name: str) -> int:
    digest = hashlib.sha256(f"hpsearch-slot:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_engine(url: str) -> sqlalchemy.Engine:
    if url not in _engines:
        _engines[url] = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    return _engines[url]


@contextlib.contextmanager
def trial_slot(storage: optuna.storages.RDBStorage, study_name: str) -> Iterator[None]:
    """Hold the study's slot lock for the body: count, then ask, atomically across workers.

    Database errors propagate (the caller retries the whole claim); a lock whose connection
    dies is released by the server.
    """
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
    engine = _lock_engine(storage.url)
    delay = 0.01
    while True:
        connection = engine.connect()
        try:
            held = connection.execute(
                sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}
            ).scalar()
        except BaseException:
            connection.close()
            raise
        if held:
            break
        connection.close()
        time.sleep(delay * (0.5 + random.random()))
        delay = min(0.5, delay * 2)
    try:
        yield
    finally:
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            connection.commit()
        except sqlalchemy.exc.SQLAlchemyError:
            pass  # the connection is gone, and with it the lock
        finally:
            connection.close()
