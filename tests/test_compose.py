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
DOTENV = ROOT / ".env"
DOCKERFILE = ROOT / "Dockerfile"
SERVICES = {"postgres", "init", "worker", "dashboard"}
HPSEARCH_SERVICES = ("init", "worker", "dashboard")
STORAGE_URL = "postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres:5432/${POSTGRES_DB}"
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


_DOLLAR = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})?")


def interpolate(value: Any, variables: Mapping[str, str]) -> Any:
    """Compose's interpolation of every string in a loaded compose file: ${VAR},
    ${VAR:-default} (used when VAR is unset or empty) and $$ (a literal $). Any other use of $
    is an error here, so that this helper never silently differs from compose."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        whole, name, default = match.group(1), match.group(2), match.group(3)
        if whole == "$":
            return "$"
        if name is None:
            raise ValueError(f"unsupported use of $ in {value!r}")
        if variables.get(name):
            return variables[name]
        if default is not None:
            return default
        raise ValueError(f"{name} is not set (in {value!r})")

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
        ("$$A", "$A"),
        ("plain", "plain"),
    ],
)
def test_interpolate(text, expected):
    assert interpolate({"k": [text]}, {"A": "1", "B": "2", "EMPTY": ""}) == {"k": [expected]}


@pytest.mark.parametrize("text", ["$A", "${UNSET}", "${A-d}", "${A:?e}", "$"])
def test_interpolate_refuses_what_it_does_not_support(text):
    with pytest.raises(ValueError):
        interpolate(text, {"A": "1"})


# --- the compose file, parsed by docker-compose ------------------------------------------------


def docker_compose_config(**overrides: str) -> tuple[dict[str, Any], str]:
    """`docker-compose config` on the repo's compose file and .env: the parsed config and its
    text. Variables from .env are removed from the environment (a shell variable would win over
    .env), then `overrides` are set."""
    exe = shutil.which("docker-compose")
    if exe is None:
        message = "docker-compose is not installed (apt-get install docker-compose)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must validate the compose file")
        pytest.skip(message)
    dotenv = read_dotenv(DOTENV)
    env = {k: v for k, v in os.environ.items() if k not in dotenv and not k.startswith("COMPOSE_")}
    env.update(overrides)
    result = subprocess.run(
        [exe, "--project-directory", str(ROOT), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout), result.stdout


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
    config, _ = docker_compose_config()
    dotenv = read_dotenv(DOTENV)
    services = config["services"]
    assert set(services) == SERVICES

    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(_words(postgres["healthcheck"]["test"]))
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(postgres["environment"])
    (data,) = [_mount(v) for v in postgres["volumes"]]
    assert data[1] == "/var/lib/postgresql/data" and data[0] in config["volumes"]
    assert "ports" not in postgres, "the database must not be published by default"

    storage = interpolate(STORAGE_URL, dotenv)
    images = set()
    for name in HPSEARCH_SERVICES:
        service = services[name]
        assert service["build"]["context"] == str(ROOT)
        images.add(service["image"])
        assert service["environment"] == {"HPSEARCH_STORAGE": storage}
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
    assert worker["restart"] == "on-failure"
    assert worker["deploy"]["replicas"] == 1
    (gpus,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert gpus["driver"] == "nvidia" and gpus["capabilities"] == ["gpu"]
    assert gpus["count"] in ALL_DEVICES

    dashboard = services["dashboard"]
    assert _conditions(dashboard) == {"init": "service_completed_successfully"}
    assert dashboard["command"] == ["dashboard", "--host", "0.0.0.0", "--port", "8080"]
    assert [(str(p["published"]), p["target"]) for p in dashboard["ports"]] == [("8080", 8080)]


def test_password_comes_only_from_the_environment():
    """The .env password appears in no file but .env; with another one in the environment,
    compose puts that one everywhere and the .env one nowhere."""
    password = read_dotenv(DOTENV)["POSTGRES_PASSWORD"]
    for path in (COMPOSE, DOCKERFILE, ROOT / ".dockerignore"):
        assert password not in path.read_text(), path
    raw = yaml.safe_load(COMPOSE.read_text())["services"]
    assert raw["postgres"]["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD}"
    for name in HPSEARCH_SERVICES:
        assert raw[name]["environment"] == {"HPSEARCH_STORAGE": STORAGE_URL}
    assert ".env" in (ROOT / ".dockerignore").read_text().split(), "keep .env out of the image"
    dockerfile = DOCKERFILE.read_text()
    assert not re.search(r"^(ENV|ARG)\b.*HPSEARCH_STORAGE", dockerfile, re.MULTILINE)
    assert "postgresql://" not in dockerfile

    sentinel = "sentinel-0b6f3c2e"
    config, text = docker_compose_config(POSTGRES_PASSWORD=sentinel)
    assert password not in text
    services = config["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == sentinel
    for name in HPSEARCH_SERVICES:
        assert f":{sentinel}@postgres:5432/" in services[name]["environment"]["HPSEARCH_STORAGE"]


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
    from hpsearch.experiment import load_experiment

    counts = {
        path.name: len(load_experiment(path).studies())
        for path in sorted((ROOT / "experiments").glob("*.toml"))
    }
    assert counts == {"capacity.toml": 18, "smoke.toml": 1}
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
    env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    env |= {
        "HPSEARCH_STORAGE": postgres_url,
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
        # `docker compose stop` sends SIGTERM, then SIGKILL after 10 s.
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"dashboard still running 10 s after SIGTERM:\n{log_path.read_text()}")
    finally:
        running.kill_all()
