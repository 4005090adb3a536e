"""Schema checks: an old schema asks for `hpsearch db upgrade`, which brings it to head."""

from __future__ import annotations

import optuna
import pytest
from alembic import command

from hpsearch.cli import main
from storage import StorageError, open_storage, upgrade_schema


def _downgrade(url: str) -> str:
    """Mark the schema as one Optuna migration older, as an older Optuna would have left it.
    (Stamped rather than migrated down: Optuna's newest downgrade step drops an index that
    tables created at head do not have; its upgrade step only adds an index, so the tables
    are otherwise the same.)"""
    storage = optuna.storages.RDBStorage(url)
    config = storage._version_manager._create_alembic_config()
    head = storage.get_current_version()
    previous = next(
        r.down_revision
        for r in storage._version_manager._create_alembic_script().walk_revisions()
        if r.revision == head
    )
    command.stamp(config, previous, purge=True)
    old = storage.get_current_version()
    assert old == previous != head
    storage.engine.dispose()
    return old


def _check_upgrade(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["create", "--storage", url, "--arch", "rnn", "--budget", "300", "--trials", "1"]) == 0
    )
    capsys.readouterr()
    old = _downgrade(url)
    with pytest.raises(StorageError, match="run 'hpsearch db upgrade'"):
        open_storage(url)
    assert main(["status", "--storage", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hpsearch db upgrade" in err[0]
    assert main(["db", "upgrade", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"schema upgraded from {old} to ")
    assert main(["status", "--storage", url]) == 0
    assert "capacity-rnn-p300" in capsys.readouterr().out
    assert main(["db", "upgrade", "--storage", url]) == 0
    assert capsys.readouterr().out.startswith("schema is current")


def test_upgrade_sqlite(sqlite_url, capsys):
    _check_upgrade(sqlite_url, capsys)


@pytest.mark.postgres
def test_upgrade_postgres(postgres_url, capsys):
    _check_upgrade(postgres_url, capsys)


@pytest.mark.postgres
def test_empty_database_asks_for_tables(postgres_url, capsys):
    assert main(["worker", "--storage", postgres_url, "--all"]) == 2
    err = capsys.readouterr().err
    assert "has no hpsearch tables" in err and len(err.strip().splitlines()) == 1
    before, after = upgrade_schema(postgres_url)
    assert before == after  # created at head
    assert main(["status", "--storage", postgres_url]) == 0
    assert "no hpsearch studies" in capsys.readouterr().out


@pytest.mark.postgres
def test_password_never_shown(postgres_url):
    """Trust authentication ignores the password, so the URL works and its logs can be read."""
    import sqlalchemy

    from tests.testing import create_args, hpsearch

    secret = "s3cr3t-pw"
    url = (
        sqlalchemy.make_url(postgres_url).set(password=secret).render_as_string(hide_password=False)
    )
    created = hpsearch(*create_args(url, 1, "--space", "max_steps=5"))
    worker = hpsearch("worker", "--storage", url, "--all", "--device", "cpu")
    missing = hpsearch("worker", "--storage", url, "--study", "nope")
    bad_host = url.replace("127.0.0.1", "127.0.0.1:1").replace(":5432", "")
    unreachable = hpsearch("status", "--storage", bad_host)
    assert created.returncode == worker.returncode == 0, worker.stderr
    assert missing.returncode == unreachable.returncode == 2
    assert "***" in worker.stderr  # the URL is logged, redacted
    for result in (created, worker, missing, unreachable):
        assert secret not in result.stdout + result.stderr
