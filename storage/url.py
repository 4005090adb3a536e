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
PASSWORD_FILE_VAR = "HPSEARCH_DB_PASSWORD_FILE"
DEFAULT_URL = "sqlite:///hpsearch.db"
_POSTGRES_DRIVER = "postgresql+psycopg"


def resolve_url(arg: str | None, environ: Mapping[str, str] | None = None) -> str:
    """--storage, else $HPSEARCH_STORAGE, else the embedded SQLite default.

    With $HPSEARCH_DB_PASSWORD_FILE set (a Docker secret, say), the password is read from that
    file and put into the URL, escaped, so that any character survives; the URL itself must
    then carry none."""
    env = os.environ if environ is None else environ
    url = arg or env.get(ENV_VAR) or DEFAULT_URL
    password_file = env.get(PASSWORD_FILE_VAR)
    if password_file:
        url = with_password(
            url,
            read_secret(Path(password_file), f"the database password file (${PASSWORD_FILE_VAR})"),
        )
    return url


def read_secret(path: Path, what: str) -> str:
    """The first line of a secret file, without its line ending (secret files often end in a
    newline that is not part of the secret). `what` names the file in errors; the secret
    itself is never shown."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or type(e).__name__
        raise StorageError(f"cannot read {what} {path}: {reason}") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise StorageError(f"{what} {path} is empty")
    return lines[0]


def with_password(url: str, password: str) -> str:
    """The PostgreSQL `url` with `password` put in; @ : / % and the like are escaped."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "postgresql":
        raise StorageError(
            f"{PASSWORD_FILE_VAR} is set, but {redact_url(url)!r} is not a PostgreSQL URL"
        )
    if parsed.password is not None:
        raise StorageError(
            f"{PASSWORD_FILE_VAR} is set, but {redact_url(url)!r} has a password already: "
            "give it in one place"
        )
    if not parsed.username:
        raise StorageError(f"{PASSWORD_FILE_VAR} is set, but {redact_url(url)!r} names no user")
    return parsed.set(password=password).render_as_string(hide_password=False)


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
