import pytest

from storage import DEFAULT_URL, ENV_VAR, StorageError, normalize_url, redact_url, resolve_url


def test_resolve_order():
    assert resolve_url("sqlite:///a.db", {ENV_VAR: "sqlite:///b.db"}) == "sqlite:///a.db"
    assert resolve_url(None, {ENV_VAR: "sqlite:///b.db"}) == "sqlite:///b.db"
    assert resolve_url(None, {}) == DEFAULT_URL == "sqlite:///hpsearch.db"


def test_redact_hides_password():
    shown = redact_url("postgresql://alice:s3cret@db.example/hp")
    assert "s3cret" not in shown and "alice" in shown and "db.example/hp" in shown
    assert "s3cret" not in redact_url("postgresql://alice:s3cret@db/hp?x=[")


def test_postgres_uses_psycopg3():
    assert normalize_url("postgresql://u@h/d").startswith("postgresql+psycopg://")
    assert normalize_url("postgresql+psycopg://u@h/d").startswith("postgresql+psycopg://")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "cannot read storage URL"),
        ("mysql://u@h/d", "unsupported database 'mysql'"),
        ("postgresql+psycopg2://u@h/d", "unsupported PostgreSQL driver"),
        ("sqlite://", "in-memory SQLite database would be lost"),
        ("sqlite:///:memory:", "in-memory SQLite database would be lost"),
    ],
)
def test_bad_urls(url, message):
    with pytest.raises(StorageError, match=message):
        normalize_url(url)


def test_error_never_shows_password():
    with pytest.raises(StorageError) as info:
        normalize_url("oracle://bob:hunter2@h/d")
    assert "hunter2" not in str(info.value)
