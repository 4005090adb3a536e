"""hpsearch against PostgreSQL as a deployment meets it:

- a database that comes up late: a TCP proxy the test controls closes every connection for
  the first 5 s, and `hpsearch db upgrade` and `create` wait for it instead of failing;
- a password with @ : / % from a password file, end to end, against the real server with a
  role that must give its password (tests/conftest.py: password_role).
"""

from __future__ import annotations

import select
import socket
import subprocess
import threading
import time

import pytest
import sqlalchemy

from tests.testing import hpsearch


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    sockets = [a, b]
    while True:
        ready, _, _ = select.select(sockets, [], [], 30)
        for sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)


class Proxy:
    """Listens on a free port of 127.0.0.1 and forwards to `target`. Until `open_at`
    (time.monotonic()) it closes each connection it accepts."""

    def __init__(self, target: tuple[str, int], open_at: float = 0.0):
        self.target = target
        self.open_at = open_at
        self.refused = 0
        self.forwarded = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.open_at:
                self.refused += 1
                client.close()
                continue
            threading.Thread(target=self._session, args=(client,), daemon=True).start()

    def _session(self, client: socket.socket) -> None:
        try:
            with client:
                with socket.create_connection(self.target, timeout=10) as upstream:
                    upstream.settimeout(None)
                    self.forwarded += 1
                    _pipe(client, upstream)
        except OSError:
            pass

    def close(self) -> None:
        self.stopped = True
        self.listener.close()


def _server(postgres_url: str) -> tuple[str, int]:
    parsed = sqlalchemy.make_url(postgres_url)
    return parsed.host or "127.0.0.1", parsed.port or 5432


DELAY = 5.0


def _late(postgres_url: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float, Proxy]:
    """Run `hpsearch ARGS --storage URL` through a proxy that refuses every connection for
    DELAY seconds; the result, how long it took from the proxy's start, and the proxy."""
    began = time.monotonic()
    proxy = Proxy(_server(postgres_url), open_at=began + DELAY)
    try:
        url = sqlalchemy.make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
        storage = url.render_as_string(hide_password=False)
        result = hpsearch(*args, "--storage", storage, timeout=150)
        return result, time.monotonic() - began, proxy
    finally:
        proxy.close()


@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_db_upgrade_waits_for_a_database_that_starts_late(postgres_url):
    result, took, proxy = _late(postgres_url, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("schema "), result.stdout
    engine = sqlalchemy.create_engine(
        postgres_url.replace("postgresql://", "postgresql+psycopg://")
    )
    try:
        assert {"studies", "trials", "version_info"} <= set(
            sqlalchemy.inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()
    assert took >= DELAY
    assert proxy.refused >= 1 and proxy.forwarded >= 1
    assert "transient database error" in result.stderr


@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_create_waits_for_a_database_that_starts_late(postgres_url):
    assert hpsearch("db", "upgrade", "--storage", postgres_url).returncode == 0
    result, took, proxy = _late(
        postgres_url, "create", *("--arch", "rnn", "--budget", "200", "--trials", "2")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "capacity-rnn-p200"
    assert took >= DELAY and proxy.refused >= 1
    assert "transient database error" in result.stderr


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_password_from_a_file_end_to_end(postgres_url, password_role, tmp_path):
    """The server asks this role for its password (scram-sha-256): only the exact password,
    @ : / % and all, gets in."""
    role, password, database = password_role
    host, port = _server(postgres_url)
    storage = f"postgresql://{role}@{host}:{port}/{database}"
    right = tmp_path / "db_password"
    right.write_text(password + "\n")
    wrong = tmp_path / "wrong_password"
    wrong.write_text(password[:-1] + "\n")
    env = {"HPSEARCH_STORAGE": storage, "HPSEARCH_DB_PASSWORD_FILE": str(right)}
    steps = [
        ("db", "upgrade"),
        ("create", "--arch", "rnn", "--budget", "200", "--trials", "2", "--seed", "0"),
        ("status",),
    ]
    for args in steps:
        result = hpsearch(*args, env=env, timeout=120)
        assert result.returncode == 0, (args, result.stderr)
        assert password not in result.stdout + result.stderr
    assert "capacity-rnn-p200" in result.stdout

    # A wrong password is refused, and said so without showing either password.
    refused = hpsearch("status", env={**env, "HPSEARCH_DB_PASSWORD_FILE": str(wrong)})
    assert refused.returncode == 2, refused.stderr
    assert "password authentication failed" in refused.stderr
    assert password[:-1] not in refused.stderr
