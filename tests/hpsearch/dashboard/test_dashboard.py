"""`hpsearch dashboard` through its real server (waitress) in a child process: pages and the
API answer; writes are refused unless --allow-writes; basic auth when a user is set; SIGTERM
stops it at once. Also the objective's name (metric names) in the studies it serves."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from hpsearch.dashboard.app import Login
from tests.testing import ROOT, hpsearch

STUDY = "capacity-rnn-p200"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, method: str = "GET", auth: tuple[str, str] | None = None) -> int:
    """The status code of one request (with an empty JSON body for writes)."""
    data = b"{}" if method in ("POST", "PUT") else None
    req = urllib.request.Request(url, method=method, data=data)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


class Dashboard:
    def __init__(self, url: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"dashboard-{self.port}.log"
        command = [sys.executable, "-m", "hpsearch.cli", "dashboard", "--storage", url]
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port), *extra],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                cwd=ROOT,
                start_new_session=True,
            )

    def wait_ready(self, wait: float = 30) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"dashboard exited with {self.process.returncode}:\n{self.text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"dashboard did not listen in {wait} s:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture(scope="module")
def study_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'hpsearch.db'}"
    created = hpsearch(
        "create", "--storage", url, "--arch", "rnn", "--budget", "200", "--trials", "2",
        "--seed", "0",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    return url


@pytest.fixture
def start(tmp_path) -> Iterator:
    started: list[Dashboard] = []

    def _start(url: str, *extra: str, env: dict[str, str] | None = None) -> Dashboard:
        dashboard = Dashboard(url, tmp_path, *extra, env=env)
        started.append(dashboard)
        dashboard.wait_ready()
        return dashboard

    yield _start
    for dashboard in started:
        dashboard.stop()


def study_id(url: str) -> int:
    return optuna.load_study(study_name=STUDY, storage=url)._study_id


WRITES = [
    ("DELETE", "/api/studies/{id}"),
    ("POST", "/api/studies/{id}/rename"),
    ("PUT", "/api/studies/{id}/note"),
]


@pytest.mark.timeout(120)
def test_read_only_by_default(study_url, start):
    dashboard = start(study_url)
    sid = study_id(study_url)
    assert request(dashboard.base + "/dashboard") == 200
    assert request(dashboard.base + "/api/studies") == 200
    assert request(dashboard.base + f"/api/studies/{sid}") == 200
    assert request(dashboard.base + "/api/studies", "HEAD") == 200
    for method, path in WRITES:
        assert request(dashboard.base + path.format(id=sid), method) == 403, method
    assert request(dashboard.base + "/api/studies", "POST") == 403
    # Nothing changed: the study is still there, under its name.
    assert [s.study_name for s in optuna.get_all_study_summaries(study_url)] == [STUDY]
    assert "read-only" in dashboard.text()


@pytest.mark.timeout(120)
def test_allow_writes_passes_writes_on(study_url, start, tmp_path):
    # A copy of the database: this test deletes the study.
    copy = tmp_path / "copy.db"
    copy.write_bytes(Path(study_url.removeprefix("sqlite:///")).read_bytes())
    url = f"sqlite:///{copy}"
    dashboard = start(url, "--allow-writes")
    sid = study_id(url)
    # PUT and POST reach optuna-dashboard (which answers them itself, not with 403) ...
    assert request(dashboard.base + f"/api/studies/{sid}/note", "PUT") != 403
    assert request(dashboard.base + f"/api/studies/{sid}/rename", "POST") != 403
    # ... and DELETE deletes.
    assert request(dashboard.base + f"/api/studies/{sid}", "DELETE") == 204
    assert optuna.get_all_study_summaries(url) == []


@pytest.mark.timeout(120)
def test_basic_auth(study_url, start, tmp_path):
    password_file = tmp_path / "dashboard_password"
    password_file.write_text("s3cret: pass@word/%\n")
    right = ("alice", "s3cret: pass@word/%")
    for extra, env in [
        (("--password-file", str(password_file)), None),
        ((), {"HPSEARCH_DASHBOARD_PASSWORD_FILE": str(password_file)}),
    ]:
        dashboard = start(study_url, "--auth-user", "alice", *extra, env=env)
        api = dashboard.base + "/api/studies"
        assert request(api) == 401
        assert request(api, auth=("alice", "wrong")) == 401
        assert request(api, auth=("bob", right[1])) == 401
        assert request(api, auth=right) == 200
        assert request(dashboard.base + "/dashboard", auth=right) == 200
        # Logged in, still read-only.
        assert request(api, "POST", auth=right) == 403
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(api, timeout=10)
        assert info.value.headers["WWW-Authenticate"].startswith('Basic realm="hpsearch"')
        assert "s3cret" not in dashboard.text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--auth-user", "alice"), "needs a password file"),
        (("--password-file", "/nonexistent"), "needs --auth-user"),
        (("--auth-user", "alice", "--password-file", "/nonexistent"), "cannot read"),
        (("--auth-user", "alice", "--password", "x"), "unrecognized arguments"),
    ],
)
def test_login_settings_are_checked(study_url, args, message):
    result = hpsearch("dashboard", "--storage", study_url, *args, timeout=60)
    assert result.returncode == 2 and message in result.stderr, result.stderr


@pytest.mark.timeout(120)
def test_sigterm_stops_it_at_once(study_url, start):
    dashboard = start(study_url)
    assert request(dashboard.base + "/api/studies") == 200
    began = time.monotonic()
    dashboard.process.send_signal(signal.SIGTERM)
    try:
        code = dashboard.process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 3 s after SIGTERM:\n{dashboard.text()}")
    assert code == 0, dashboard.text()
    assert time.monotonic() - began < 3
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", dashboard.port), timeout=1).close()


def test_objective_is_named_after_the_task(study_url):
    study = optuna.load_study(study_name=STUDY, storage=study_url)
    assert study.metric_names == ["bits"]


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("Basic " + base64.b64encode(b"alice:pw:x").decode(), True),
        ("basic " + base64.b64encode(b"alice:pw:x").decode(), True),
        ("Basic " + base64.b64encode(b"alice:pw").decode(), False),
        ("Basic " + base64.b64encode(b"alice").decode(), False),
        ("Basic " + base64.b64encode(b"alic:pw:x").decode(), False),
        ("Basic not-base64!", False),
        ("Bearer " + base64.b64encode(b"alice:pw:x").decode(), False),
        ("", False),
        (None, False),
    ],
)
def test_login_accepts_only_the_right_header(header, accepted):
    assert Login("alice", "pw:x").accepts(header) is accepted
