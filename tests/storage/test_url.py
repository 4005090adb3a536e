import pytest

from storage import (
    DEFAULT_URL,
    ENV_VAR,
    PASSWORD_FILE_VAR,
    StorageError,
    normalize_url,
    read_secret,
    redact_url,
    resolve_url,
)


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


TRICKY = ["p@ss:w/rd%", "a%40b", "x y#z?w=1&v", "ü'\"\\;", "::@@//%%"]


@pytest.mark.parametrize("password", TRICKY)
def test_password_file_goes_into_the_url_escaped(tmp_path, password):
    import sqlalchemy

    secret = tmp_path / "db_password"
    secret.write_text(password + "\n")
    env = {ENV_VAR: "postgresql://hp@db.example:5432/hp", PASSWORD_FILE_VAR: str(secret)}
    url = resolve_url(None, env)
    parsed = sqlalchemy.make_url(url)
    assert parsed.password == password
    assert (parsed.username, parsed.host, parsed.port, parsed.database) == (
        "hp",
        "db.example",
        5432,
        "hp",
    )
    assert sqlalchemy.make_url(normalize_url(url)).password == password
    assert password not in redact_url(url)
    # --storage gets the password too.
    assert sqlalchemy.make_url(resolve_url("postgresql://hp@h/d", env)).password == password


@pytest.mark.parametrize(
    ("url", "content", "message"),
    [
        ("postgresql://hp:other@h/d", "pw\n", "has a password already"),
        ("postgresql://h/d", "pw\n", "names no user"),
        ("sqlite:///x.db", "pw\n", "not a PostgreSQL URL"),
        ("postgresql://hp@h/d", "", "is empty"),
        ("postgresql://hp@h/d", "\nsecret\n", "is empty"),
    ],
)
def test_password_file_errors(tmp_path, url, content, message):
    secret = tmp_path / "db_password"
    secret.write_text(content)
    with pytest.raises(StorageError, match=message) as info:
        resolve_url(url, {PASSWORD_FILE_VAR: str(secret)})
    assert "other" not in str(info.value) and "secret" not in str(info.value).split()


def test_missing_password_file(tmp_path):
    with pytest.raises(StorageError, match="cannot read the database password file"):
        resolve_url("postgresql://hp@h/d", {PASSWORD_FILE_VAR: str(tmp_path / "none")})


def test_read_secret_takes_the_first_line(tmp_path):
    secret = tmp_path / "s"
    secret.write_text(" spaces kept \r\nsecond line\n")
    assert read_secret(secret, "the file") == " spaces kept "
