"""The docker compose deployment: docker-compose.yml parses with a real compose implementation,
and each hpsearch service's command, exactly as written there, does its job when run natively
against PostgreSQL. No Docker engine is needed."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOTENV = ROOT / ".env.example"  # the operator copies it to .env, which git ignores
DOCKERFILE = ROOT / "Dockerfile"
SERVICES = {"postgres", "init", "worker", "dashboard"}
HPSEARCH_SERVICES = ("init", "worker", "dashboard")
SECRET_PATH = "/run/secrets/db_password"
SMOKE = {"EXPERIMENT": "smoke.toml", "WORKER_DEVICE": "cpu", "WORKER_PROCESSES": "1"}
SMOKE_STUDY = "capacity-rnn-p300"
SMOKE_TRIALS = 4


# --- reading the files as compose does ------------------------------------------------------


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and lines starting with # are ignored."""
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise ValueError(f"{path}:{number}: not KEY=VALUE: {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


_DOLLAR = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::([-?])([^}]*))?\})?")


def interpolate(value: Any, variables: Mapping[str, str]) -> Any:
    """Compose's interpolation of every string in a loaded compose file: ${VAR},
    ${VAR:-default} (used when VAR is unset or empty), ${VAR:?message} (an error when VAR is
    unset or empty) and $$ (a literal $). Any other use of $ is an error here, so that this
    helper never silently differs from compose."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        whole, name, kind, text = match.groups()
        if whole == "$":
            return "$"
        if name is None:
            raise ValueError(f"unsupported use of $ in {value!r}")
        if variables.get(name):
            return variables[name]
        if kind == "-":
            return text
        raise ValueError(f"{name} is not set (in {value!r}){': ' + text if kind == '?' else ''}")

    return _DOLLAR.sub(substitute, value)


def load_compose(overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
    variables = {**read_dotenv(DOTENV), **(overrides or {})}
    return interpolate(yaml.safe_load(COMPOSE.read_text()), variables)


def image_entrypoint() -> list[str]:
    """The Dockerfile's ENTRYPOINT (exec form)."""
    found = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert len(found) == 1, "the Dockerfile needs one ENTRYPOINT in exec form"
    return json.loads(found[0])


def _words(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else list(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "1"),
        ("x${A}y${B}", "x1y2"),
        ("${EMPTY:-d}", "d"),
        ("${UNSET:-d}", "d"),
        ("${A:-d}", "1"),
        ("${UNSET:-}", ""),
        ("${A:?message}", "1"),
        ("$$A", "$A"),
        ("plain", "plain"),
    ],
)
def test_interpolate(text, expected):
    assert interpolate({"k": [text]}, {"A": "1", "B": "2", "EMPTY": ""}) == {"k": [expected]}


@pytest.mark.parametrize("text", ["$A", "${UNSET}", "${A-d}", "${UNSET:?e}", "${EMPTY:?e}", "$"])
def test_interpolate_refuses_what_it_does_not_support(text):
    with pytest.raises(ValueError):
        interpolate(text, {"A": "1", "EMPTY": ""})


# --- the compose file, parsed by docker-compose ------------------------------------------------


def docker_compose_config(
    use_example: bool = True, **overrides: str
) -> tuple[dict[str, Any], str, subprocess.CompletedProcess[str]]:
    """`docker-compose config` on the repo's compose file, with the settings of .env.example
    (as an operator's .env would give them) and then `overrides` in the environment, and no
    .env read: the parsed config (None when it fails), its text and the process."""
    exe = shutil.which("docker-compose")
    if exe is None:
        message = "docker-compose is not installed (apt-get install docker-compose)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must validate the compose file")
        pytest.skip(message)
    example = read_dotenv(DOTENV)
    env = {k: v for k, v in os.environ.items() if k not in example and not k.startswith("COMPOSE_")}
    if use_example:
        env.update(example)
    env.update(overrides)
    with tempfile.TemporaryDirectory() as folder:
        # An empty --env-file: an operator's own .env in the checkout is not read.
        empty = Path(folder) / "env"
        empty.write_text("")
        command = [exe, "--project-directory", str(ROOT), "--env-file", str(empty)]
        result = subprocess.run(
            [*command, "-f", str(COMPOSE), "config"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=ROOT,
        )
    config = yaml.safe_load(result.stdout) if result.returncode == 0 else None
    return config, result.stdout, result


# docker-compose 1.29 prints a volume as "source:target:mode" and a device count of all as
# "all"; Compose v2 prints a volume as a mapping and the count as -1.
ALL_DEVICES = ("all", -1)


def _mount(volume: str | Mapping[str, Any]) -> tuple[str, str, bool]:
    """(source, target, read only) of a volume as `docker-compose config` prints it."""
    if isinstance(volume, str):
        source, target, *mode = volume.split(":")
        return source, target, mode == ["ro"]
    return volume["source"], volume["target"], bool(volume.get("read_only"))


def _conditions(service: Mapping[str, Any]) -> dict[str, str]:
    return {name: dep["condition"] for name, dep in service["depends_on"].items()}


def test_compose_file_is_valid():
    config, _, result = docker_compose_config()
    assert config is not None, result.stderr
    dotenv = read_dotenv(DOTENV)
    services = config["services"]
    assert set(services) == SERVICES

    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    # Over TCP: the first start's temporary server listens on the Unix socket only.
    health = _words(postgres["healthcheck"]["test"])
    assert health[0] == "CMD-SHELL"
    probe = shlex.split(health[1])
    assert probe[0] == "pg_isready" and probe[probe.index("-h") + 1] == "127.0.0.1", probe
    assert postgres["healthcheck"]["start_period"] in ("60s", "1m")
    (data,) = [_mount(v) for v in postgres["volumes"]]
    assert data[1] == "/var/lib/postgresql/data" and data[0] in config["volumes"]
    assert "ports" not in postgres, "the database must not be published by default"

    images = set()
    for name in HPSEARCH_SERVICES:
        service = services[name]
        assert service["build"]["context"] == str(ROOT)
        images.add(service["image"])
        assert service["environment"] == {
            "HPSEARCH_STORAGE": f"postgresql://{dotenv['POSTGRES_USER']}@postgres:5432/"
            f"{dotenv['POSTGRES_DB']}",
            "HPSEARCH_DB_PASSWORD_FILE": SECRET_PATH,
        }
    assert len(images) == 1, "init, worker and dashboard run one image"

    init = services["init"]
    assert _conditions(init) == {"postgres": "service_healthy"}
    assert init["restart"] == "no"
    assert [_mount(v) for v in init["volumes"]] == [
        (str(ROOT / "experiments"), "/app/experiments", True)
    ]
    init_script = init["entrypoint"] + init["command"]
    assert init_script[:2] == ["sh", "-c"] and len(init_script) == 3
    steps = [shlex.split(step) for step in init_script[2].split("&&")]
    assert steps == [
        ["hpsearch", "db", "upgrade"],
        ["exec", "hpsearch", "create", "--from", f"/app/experiments/{dotenv['EXPERIMENT']}"],
    ]

    worker = services["worker"]
    assert _conditions(worker) == {"init": "service_completed_successfully"}
    assert worker["command"] == [
        "worker",
        "--all",
        "--device",
        "cuda",
        "--processes",
        "gpus",
        "--batch",
        "auto",
    ]
    # Bounded: a worker that exits 2 on a bad setting is not restarted for ever.
    assert worker["restart"] == "on-failure:5"
    assert worker["deploy"]["replicas"] == 1
    (gpus,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert gpus["driver"] == "nvidia" and gpus["capabilities"] == ["gpu"]
    assert gpus["count"] in ALL_DEVICES

    dashboard = services["dashboard"]
    assert _conditions(dashboard) == {"init": "service_completed_successfully"}
    assert dashboard["command"] == ["dashboard", "--host", "0.0.0.0", "--port", "8080"]
    assert "--allow-writes" not in dashboard["command"]
    assert dashboard["init"] is True, "tini as PID 1 passes SIGTERM on"
    assert _ports(dashboard) == [("127.0.0.1", "8080", 8080)]


def _ports(service: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(host address, host port, container port) of each published port: docker-compose 1.29
    prints "ADDRESS:PORT:TARGET/tcp", Compose v2 a mapping."""
    out = []
    for port in service["ports"]:
        if isinstance(port, str):
            address, published, target = port.split("/")[0].rsplit(":", 2)
            out.append((address, published, int(target)))
        else:
            out.append((port.get("host_ip", ""), str(port["published"]), int(port["target"])))
    return out


def test_dashboard_address_is_the_operators_choice():
    config, _, result = docker_compose_config(DASHBOARD_HOST="10.0.0.5", DASHBOARD_PORT="9000")
    assert config is not None, result.stderr
    assert _ports(config["services"]["dashboard"]) == [("10.0.0.5", "9000", 8080)]
    config, _, result = docker_compose_config(use_example=False, **_required())
    assert config is not None, result.stderr
    assert _ports(config["services"]["dashboard"]) == [("127.0.0.1", "8080", 8080)]


def _required() -> dict[str, str]:
    keys = ("POSTGRES_USER", "POSTGRES_DB", "DB_PASSWORD_FILE", "EXPERIMENT")
    example = read_dotenv(DOTENV)
    return {key: example[key] for key in keys}


@pytest.mark.parametrize(
    "missing", ["POSTGRES_USER", "POSTGRES_DB", "DB_PASSWORD_FILE", "EXPERIMENT"]
)
def test_required_settings_are_guarded(missing):
    """Without .env (or with a setting left out) compose refuses to start, naming the
    setting, instead of running with an empty user or password file."""
    settings = {k: v for k, v in _required().items() if k != missing}
    config, _, result = docker_compose_config(use_example=False, **settings)
    assert result.returncode != 0 and config is None
    assert missing in result.stderr, result.stderr
    config, _, result = docker_compose_config(use_example=False, **_required())
    assert config is not None, result.stderr


def test_no_password_in_the_files_or_the_environment():
    """The password reaches PostgreSQL and hpsearch only as the secret db_password, a file:
    no password variable, no password in a URL, no .env in git or in the image."""
    raw = yaml.safe_load(COMPOSE.read_text())
    text = COMPOSE.read_text() + DOTENV.read_text() + DOCKERFILE.read_text()
    assert "POSTGRES_PASSWORD:" not in text and "POSTGRES_PASSWORD=" not in text
    assert "change-me" not in text
    config, _, result = docker_compose_config(DB_PASSWORD_FILE="/srv/hp/db_password")
    assert config is not None, result.stderr
    assert config["secrets"] == {"db_password": {"file": "/srv/hp/db_password"}}
    services = config["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == SECRET_PATH
    assert "POSTGRES_PASSWORD" not in services["postgres"]["environment"]
    import sqlalchemy

    for name in SERVICES:
        service = services[name]
        assert [s["source"] if isinstance(s, dict) else s for s in service["secrets"]] == [
            "db_password"
        ], name
    for name in HPSEARCH_SERVICES:
        environment = services[name]["environment"]
        assert sqlalchemy.make_url(environment["HPSEARCH_STORAGE"]).password is None
        assert environment["HPSEARCH_DB_PASSWORD_FILE"] == SECRET_PATH
    assert raw["secrets"]["db_password"]["file"].startswith("${DB_PASSWORD_FILE:?")

    tracked = subprocess.run(
        ["git", "ls-files", ".env", "secrets"], capture_output=True, text=True, cwd=ROOT
    )
    assert tracked.returncode == 0 and tracked.stdout == "", "never track .env or secrets/"
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored and "secrets/" in ignored
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in dockerignore and "secrets" in dockerignore, "keep them out of the image"
    dockerfile = DOCKERFILE.read_text()
    assert not re.search(r"^(ENV|ARG)\b.*(HPSEARCH_STORAGE|PASSWORD)", dockerfile, re.MULTILINE)
    assert "postgresql://" not in dockerfile


def test_dockerfile_installs_dependencies_before_the_code():
    """A code change rebuilds only the last layers: the dependencies are installed from
    pyproject.toml alone, the code after them with --no-deps."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if line.strip()]
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY ")]
    code = [i for i in copies if re.match(r"COPY (hpsearch|objectives|storage) ", lines[i])]
    (deps,) = [i for i, line in enumerate(lines) if "-r /tmp/requirements.txt" in line]
    assert code and deps < min(code)
    assert all("pyproject.toml" in lines[i] for i in copies if i < deps)
    assert "pip install --no-deps /src" in "\n".join(lines[max(code) :])


def test_dockerfile_matches_pyproject():
    """The image pins the same torch as pyproject.toml, runs hpsearch, and not as root."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in dependencies if re.match(r"torch\s*==", d)]
    text = DOCKERFILE.read_text()
    assert re.findall(r"torch==[\w.+]+", text) == [pin.replace(" ", "")]
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    assert image_entrypoint() == ["hpsearch"]
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")


def test_experiment_files_are_valid():
    from hpsearch.studies.loader import load_experiments

    counts = {
        path.name: sum(len(e.studies()) for e in load_experiments(path))
        for path in sorted((ROOT / "experiments").glob("*.toml"))
    }
    # The presets (tests/hpsearch/studies/test_presets.py checks their studies by name).
    assert all(counts.values()), counts
    assert (counts["capacity.toml"], counts["smoke.toml"]) == (18, 1)
    assert read_dotenv(DOTENV)["EXPERIMENT"] in counts


# --- the services' commands, run natively ------------------------------------------------------


def service_argv(service: Mapping[str, Any], hpsearch: list[str]) -> list[str]:
    """The process a container of this service would start: entrypoint (the service's, else
    the image's) plus command, with the `hpsearch` executable replaced and container paths of
    bind-mounted folders mapped to the folders on this machine."""
    entrypoint = _words(service["entrypoint"]) if "entrypoint" in service else image_entrypoint()
    argv = entrypoint + _words(service.get("command", []))
    if argv[0] == "hpsearch":
        argv = hpsearch + argv[1:]
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        assert source.startswith("./"), f"bind mounts are relative to the repo: {volume}"
        argv = [arg.replace(target, str(ROOT / source[2:])) for arg in argv]
    return argv


class Services:
    """Starts service commands, each in its own process group, and kills every group."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.started: list[subprocess.Popen[str]] = []

    def start(self, argv: list[str], log: Path) -> subprocess.Popen[str]:
        with log.open("w") as out:
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        self.started.append(process)
        return process

    def run(self, argv: list[str], log: Path, timeout: float) -> tuple[int, str]:
        process = self.start(argv, log)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{argv} ran past {timeout}s:\n{log.read_text()}")
        return code, log.read_text()

    def group_is_empty(self, process: subprocess.Popen[str], wait: float = 5) -> bool:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    def kill_all(self) -> None:
        for process in self.started:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, deadline: float, process: subprocess.Popen[str], log: Path) -> str:
    """The body of the first 200 answer before `deadline`; fails if the server exits."""
    while True:
        if process.poll() is not None:
            pytest.fail(f"dashboard exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return response.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"no 200 from {url} in time:\n{log.read_text()}")
        time.sleep(0.5)


def trials_by_state(url: str) -> dict[str, dict[str, int]]:
    import optuna

    storage = optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        out = {}
        for study in storage.get_all_studies():
            states: dict[str, int] = {}
            for trial in storage.get_all_trials(study._study_id, deepcopy=False):
                states[trial.state.name] = states.get(trial.state.name, 0) + 1
            out[study.study_name] = states
        return out
    finally:
        storage.remove_session()
        storage.engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_service_commands_run_natively(postgres_url, tmp_path):
    services = load_compose(SMOKE)["services"]
    hpsearch = [sys.executable, "-m", "hpsearch.cli"]
    # `hpsearch` inside a shell command (init's `sh -c`) finds this one first on PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "hpsearch"
    shim.write_text(f'#!/bin/sh\nexec {shlex.join(hpsearch)} "$@"\n')
    shim.chmod(0o755)
    # The services' environment, pointed at the test database: the URL without a password,
    # and the password in a file as the secret gives it (the test server trusts local
    # connections, so any password passes here; tests/hpsearch/cli/test_db_startup.py checks it).
    password_file = tmp_path / "db_password"
    password_file.write_text("p@ss:w/rd%\n")
    service_env = {
        "HPSEARCH_STORAGE": postgres_url,
        "HPSEARCH_DB_PASSWORD_FILE": str(password_file),
    }
    for name in HPSEARCH_SERVICES:
        assert set(services[name]["environment"]) == set(service_env)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSEARCH_")}
    env |= service_env | {
        "PYTHONPATH": str(ROOT),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    workdir = tmp_path / "app"  # the image's WORKDIR: nothing of the repo in it
    workdir.mkdir()
    running = Services(env, workdir)
    try:
        code, log = running.run(service_argv(services["init"], hpsearch), tmp_path / "init", 120)
        assert code == 0, log
        assert trials_by_state(postgres_url) == {SMOKE_STUDY: {}}

        worker = service_argv(services["worker"], hpsearch)
        code, log = running.run(worker, tmp_path / "worker", 150)
        assert code == 0, log
        assert trials_by_state(postgres_url) == {SMOKE_STUDY: {"COMPLETE": SMOKE_TRIALS}}
        assert running.group_is_empty(running.started[-1]), "worker left processes behind"

        # Resume: a second init (every `docker compose up`) leaves studies and trials alone.
        code, log = running.run(service_argv(services["init"], hpsearch), tmp_path / "init2", 120)
        assert code == 0, log
        assert f"{SMOKE_STUDY} (exists, unchanged)" in log
        assert trials_by_state(postgres_url) == {SMOKE_STUDY: {"COMPLETE": SMOKE_TRIALS}}

        dashboard = service_argv(services["dashboard"], hpsearch)
        port = free_port()
        dashboard[dashboard.index("--port") + 1] = str(port)
        log_path = tmp_path / "dashboard"
        process = running.start(dashboard, log_path)
        deadline = time.monotonic() + 30
        http_get(f"http://127.0.0.1:{port}/", deadline, process, log_path)
        assert SMOKE_STUDY in http_get(
            f"http://127.0.0.1:{port}/api/studies", deadline, process, log_path
        )
        # `docker compose stop` sends SIGTERM, then SIGKILL after 10 s; it stops at once.
        process.terminate()
        try:
            assert process.wait(timeout=3) == 0, log_path.read_text()
        except subprocess.TimeoutExpired:
            pytest.fail(f"dashboard still running 3 s after SIGTERM:\n{log_path.read_text()}")
    finally:
        running.kill_all()
