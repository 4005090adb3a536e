"""`hpsearch dashboard`: optuna-dashboard behind a door of hpsearch's own.

optuna-dashboard answers anonymous requests that delete and rename studies, tell trial values
and write user attrs. Here it is read-only unless the operator allows writes (GET and HEAD pass,
every other method gets 403), may ask for an HTTP basic-auth login (the password read from a
file, never from a command line), and is served by waitress instead of wsgiref; SIGTERM stops
it at once.

    request -> basic auth (if a user is set) -> read-only gate (unless --allow-writes)
            -> optuna_dashboard.wsgi(storage)
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from storage import read_secret

logger = logging.getLogger(__name__)

PASSWORD_FILE_VAR = "HPSEARCH_DASHBOARD_PASSWORD_FILE"
SAFE_METHODS = frozenset({"GET", "HEAD"})
REALM = "hpsearch"
THREADS = 4  # waitress's request threads; plots of large studies take a while each

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class Login:
    """The one user allowed in, and the password, both compared in constant time."""

    user: str
    password: str

    def __post_init__(self) -> None:
        if not self.user or ":" in self.user:
            raise ValueError(f"dashboard user {self.user!r}: give a name without ':'")
        if not self.password:
            raise ValueError("the dashboard password is empty")

    def accepts(self, header: str | None) -> bool:
        """Whether an Authorization header carries this user and password."""
        if not header:
            return False
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        # Both comparisons always run, so the time taken tells nothing about which failed.
        user_ok = hmac.compare_digest(user, self.user.encode())
        password_ok = hmac.compare_digest(password, self.password.encode())
        return bool(sep) and user_ok and password_ok


def _refuse(
    start_response: StartResponse, status: str, text: str, headers: list[tuple[str, str]]
) -> list[bytes]:
    body = (text + "\n").encode()
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *headers,
        ],
    )
    return [body]


def read_only(app: WSGIApp) -> WSGIApp:
    """Pass GET and HEAD to `app`; answer every other method with 403."""

    def gate(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method not in SAFE_METHODS:
            return _refuse(
                start_response,
                "403 Forbidden",
                f"{method} refused: this dashboard is read-only "
                "(start it with 'hpsearch dashboard --allow-writes' to change studies)",
                [("Allow", "GET, HEAD")],
            )
        return app(environ, start_response)

    return gate


def basic_auth(app: WSGIApp, login: Login) -> WSGIApp:
    """Pass requests that log in as `login` to `app`; answer the rest with 401."""

    def gate(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if login.accepts(environ.get("HTTP_AUTHORIZATION")):
            return app(environ, start_response)
        return _refuse(
            start_response,
            "401 Unauthorized",
            "log in to see this dashboard",
            [("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')],
        )

    return gate


def build_app(
    storage: optuna.storages.BaseStorage, *, allow_writes: bool, login: Login | None
) -> WSGIApp:
    """optuna-dashboard over `storage`, behind the read-only gate and the login."""
    from optuna_dashboard import wsgi

    app: WSGIApp = wsgi(storage)
    if not allow_writes:
        app = read_only(app)
    if login is not None:
        app = basic_auth(app, login)
    return app


def load_login(user: str | None, password_file: Path | None) -> Login | None:
    """The login from --auth-user and the password file (--password-file, else
    $HPSEARCH_DASHBOARD_PASSWORD_FILE); None when neither is given."""
    from hpsearch.errors import HpsearchError

    if user is None and password_file is None:
        return None
    if user is None:
        raise HpsearchError(
            f"a dashboard password file ({password_file}) needs --auth-user NAME as well"
        )
    if password_file is None:
        raise HpsearchError(
            f"--auth-user needs a password file: --password-file PATH or ${PASSWORD_FILE_VAR}"
        )
    try:
        return Login(user, read_secret(password_file, "the dashboard password file"))
    except ValueError as e:
        raise HpsearchError(str(e)) from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(app: WSGIApp, host: str, port: int) -> None:
    """Serve `app` with waitress until SIGTERM or Ctrl-C.

    The CLI turns SIGTERM into KeyboardInterrupt; waitress's loop takes it as the end, stops
    its request threads (daemon threads, so a slow request does not hold the exit) and
    returns."""
    import waitress

    from hpsearch.errors import HpsearchError

    try:
        server = waitress.create_server(app, host=host, port=port, threads=THREADS, ident=None)
    except OSError as e:
        raise HpsearchError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
    try:
        server.run()
    finally:
        server.close()
