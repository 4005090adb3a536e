"""hpsearch against PostgreSQL through a TCP proxy that the test controls:

- a database that comes up late: the proxy closes every connection for the first 5 s, and
  `hpsearch db upgrade` waits for it instead of failing;
- a password with @ : / % from a password file, end to end. The test server trusts local
  connections (pg_hba.conf: trust for 127.0.0.1), so it would take any password; the proxy
  therefore asks the client for its password itself (PostgreSQL's cleartext password
  exchange), refuses a wrong one as PostgreSQL would (SQLSTATE 28P01), and forwards the
  session to the server only after the right one.
"""

from __future__ import annotations

import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy

from tests.hpsearch.helpers import hpsearch

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


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
    (time.monotonic()) it closes each connection it accepts. With `password` set it first
    asks the client for a cleartext password and checks it."""

    def __init__(self, target: tuple[str, int], open_at: float = 0.0, password: str | None = None):
        self.target = target
        self.open_at = open_at
        self.password = password
        self.refused = 0
        self.forwarded = 0
        self.passwords: list[str] = []
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
                startup = b""
                if self.password is not None:
                    startup = self._authenticate(client)
                    if not startup:
                        return
                with socket.create_connection(self.target, timeout=10) as upstream:
                    upstream.settimeout(None)
                    upstream.sendall(startup)
                    self.forwarded += 1
                    _pipe(client, upstream)
        except OSError:
            pass

    def _authenticate(self, client: socket.socket) -> bytes:
        """The client's startup message once its password is right; b"" after a refusal."""
        while True:
            length = int.from_bytes(_recv_exact(client, 4), "big")
            body = _recv_exact(client, length - 4)
            if int.from_bytes(body[:4], "big") in (SSL_REQUEST, GSSENC_REQUEST):
                client.sendall(b"N")  # no TLS, no GSS: go on in plain text
                continue
            startup = length.to_bytes(4, "big") + body
            break
        client.sendall(b"R" + (8).to_bytes(4, "big") + (3).to_bytes(4, "big"))  # cleartext
        tag = _recv_exact(client, 1)
        length = int.from_bytes(_recv_exact(client, 4), "big")
        message = _recv_exact(client, length - 4)
        assert tag == b"p", tag
        given = message.rstrip(b"\0").decode()
        self.passwords.append(given)
        if given == self.password:
            return startup
        fields = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed\0\0"
        client.sendall(b"E" + (len(fields) + 4).to_bytes(4, "big") + fields)
        return b""

    def close(self) -> None:
        self.stopped = True
        self.listener.close()


def _server(postgres_url: str) -> tuple[str, int]:
    parsed = sqlalchemy.make_url(postgres_url)
    return parsed.host or "127.0.0.1", parsed.port or 5432


@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_db_upgrade_waits_for_a_database_that_starts_late(postgres_url):
    delay = 5.0
    began = time.monotonic()
    proxy = Proxy(_server(postgres_url), open_at=began + delay)
    try:
        url = sqlalchemy.make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
        result = hpsearch(
            "db", "upgrade", "--storage", url.render_as_string(hide_password=False), timeout=150
        )
        took = time.monotonic() - began
    finally:
        proxy.close()
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
    assert took >= delay
    assert proxy.refused >= 1 and proxy.forwarded >= 1
    assert "transient database error" in result.stderr


@pytest.fixture
def role_with_password(postgres_url) -> Iterator[tuple[str, str, str]]:
    """A login role whose password has @ : / % in it, and a database it owns; both dropped
    afterwards. Yields (role, password, database)."""
    import psycopg
    from psycopg import sql

    role = f"hpsearch_pw_{uuid.uuid4().hex[:8]}"
    database = f"{role}_db"
    password = "p@ss:w/rd%41 #?&='\"x"
    admin = sqlalchemy.make_url(postgres_url).set(drivername="postgresql")
    admin_url = admin.render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )
    try:
        yield role, password, database
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_password_from_a_file_end_to_end(postgres_url, role_with_password, tmp_path):
    role, password, database = role_with_password
    proxy = Proxy(_server(postgres_url), password=password)
    storage = f"postgresql://{role}@127.0.0.1:{proxy.port}/{database}"
    right = tmp_path / "db_password"
    right.write_text(password + "\n")
    wrong = tmp_path / "wrong_password"
    wrong.write_text(password[:-1] + "\n")
    env = {"HPSEARCH_STORAGE": storage, "HPSEARCH_DB_PASSWORD_FILE": str(right)}
    try:
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
        assert proxy.forwarded >= 3
        assert set(proxy.passwords) == {password}, "the exact password reached the server"

        # A wrong password is refused, and said so without showing either password.
        refused = hpsearch("status", env={**env, "HPSEARCH_DB_PASSWORD_FILE": str(wrong)})
        assert refused.returncode == 2, refused.stderr
        assert "password authentication failed" in refused.stderr
        assert password[:-1] not in refused.stderr
        assert proxy.passwords[-1] == password[:-1]
    finally:
        proxy.close()
