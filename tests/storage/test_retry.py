import psycopg
import pytest
import sqlalchemy.exc
from optuna.exceptions import StorageInternalError

from storage import StorageError, is_transient, retry_transient


def _wrapped(orig: Exception) -> Exception:
    """As Optuna raises it: StorageInternalError from SQLAlchemy's error from the driver's."""
    try:
        try:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, orig)
        except sqlalchemy.exc.OperationalError as e:
            raise StorageInternalError("commit failed") from e
    except StorageInternalError as outer:
        return outer


def test_transient_errors_are_recognised():
    assert is_transient(_wrapped(psycopg.OperationalError("server closed the connection")))
    assert is_transient(sqlalchemy.exc.TimeoutError("pool"))
    assert not is_transient(ValueError("bad"))
    assert not is_transient(StorageInternalError("no cause"))
    integrity = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert not is_transient(integrity)


def test_retry_until_it_succeeds():
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _wrapped(psycopg.OperationalError("terminating connection"))
        return "ok"

    assert retry_transient(flaky, "test", first_delay=0.01) == "ok"
    assert len(calls) == 3


def test_other_errors_pass_through_at_once():
    calls = []

    def broken() -> None:
        calls.append(1)
        raise KeyError("x")

    with pytest.raises(KeyError):
        retry_transient(broken, "test", first_delay=0.01)
    assert len(calls) == 1


def test_gives_up_after_the_deadline():
    def down() -> None:
        raise sqlalchemy.exc.TimeoutError("pool")

    with pytest.raises(StorageError, match="database unavailable"):
        retry_transient(down, "test", deadline=0.3, first_delay=0.05)
