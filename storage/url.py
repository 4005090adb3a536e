"""Storage URLs: where they come from, which are accepted, and how they are shown."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from storage.errors import StorageError

ENV_VAR = "HPSEARCH_STORAGE"
DEFAULT_URL = "sqlite:///hpsearch.db"
_POSTGRES_DRIVER = "postgresql+psycopg"


def resolve_url(arg: str | None, environ: Mapping[str, str] | None = None) -> str:
    """--storage, else $HPSEARCH_STORAGE, else the embedded SQLite default."""
    env = os.environ if environ is None else environ
    if arg:
        return arg
    return env.get(ENV_VAR) or DEFAULT_URL


def _parse(url: str) -> URL:
    try:
        return sqlalchemy.make_url(url)
    except (ArgumentError, ValueError):
        raise StorageError(f"cannot read storage URL {redact_url(url)!r}") from None


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***; unparseable text is shown only up to '@'."""
    try:
        parsed = sqlalchemy.make_url(url)
    except (ArgumentError, ValueError):
        if "@" in url:
            scheme, _, rest = url.partition("://")
            return f"{scheme}://***@{rest.rsplit('@', 1)[-1]}" if rest else "***"
        return url
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, None for other databases."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise StorageError(
            "an in-memory SQLite database would be lost when the command ends; "
            "give a file, e.g. sqlite:///hpsearch.db"
        )
    return Path(parsed.database)


def normalize_url(url: str) -> str:
    """Accept sqlite and postgresql URLs; PostgreSQL goes through psycopg (version 3)."""
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        sqlite_path(url)
        return url
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername=_POSTGRES_DRIVER)
        elif parsed.drivername != _POSTGRES_DRIVER:
            raise StorageError(
                f"unsupported PostgreSQL driver {parsed.drivername!r}: use postgresql:// "
                f"or {_POSTGRES_DRIVER}://"
            )
        return parsed.render_as_string(hide_password=False)
    raise StorageError(
        f"unsupported database {backend!r} in {redact_url(url)!r}: use sqlite:///FILE "
        "or postgresql://USER@HOST/DB"
    )
