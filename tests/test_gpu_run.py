"""benchmarks/gpu_run.sh, the one prepared GPU run (issue 20, part 5): its --dry-run on the CPU
writes every file a GPU run writes, holding figures; its Python steps (create-args, the
busy-fraction and trials summaries) on files made here."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

from tests.testing import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_run.sh"
STAGES = [
    "env",
    "pytest_gpu",
    "throughput_full",
    "search_create",
    "search_worker",
    "search_report",
    "search_export",
    "search_archive",
]


def _steps() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gpu_run_steps", ROOT / "benchmarks" / "gpu_run_steps.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dry_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("gpu_run")
    done = subprocess.run(
        ["bash", str(SCRIPT), str(out), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHON": sys.executable},
    )
    return out, done


@pytest.mark.integration
def test_dry_run_passes_every_stage(dry_run):
    out, done = dry_run
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split("\t") for line in (out / "stages.tsv").read_text().splitlines()]
    rc = {name: int(code) for name, code, _, _ in rows}
    assert set(STAGES) <= set(rc), rc
    # The worker is stopped at its time (124), or ends by itself; every other stage passes.
    assert rc.pop("search_worker") in (0, 124)
    assert all(code == 0 for code in rc.values()), rc


@pytest.mark.integration
def test_dry_run_writes_the_machine_and_the_gpu_tests(dry_run):
    out, _ = dry_run
    env = json.loads((out / "env.json").read_text())
    assert env["nvidia_smi"] == "absent"
    assert (out / "nvidia_smi.csv").read_text().strip() == "absent"
    assert env["python"].count(".") == 2 and env["optuna"] and env["torch_device"]["torch"]
    suites = ET.parse(out / "pytest_gpu.xml").getroot()
    assert int(suites.find("testsuite").get("tests")) > 0  # type: ignore[union-attr]


@pytest.mark.integration
def test_dry_run_writes_throughput_rows(dry_run):
    out, _ = dry_run
    rows = [json.loads(line) for line in (out / "throughput_full.jsonl").read_text().splitlines()]
    measured = [r for r in rows if "K" in r]
    assert {r["K"] for r in measured} == {1, 4}
    assert all(r["share_of_measured_matmul"] > 0 for r in measured)
    assert rows[0]["measured_matmul_gflops"] > 0
    # Minibatch rows where batched_throughput.py has --batch-size, each given its share here.
    if (out / "throughput_minibatch.jsonl").exists():
        summary = json.loads((out / "summary.json").read_text())
        minibatch = [r for r in summary["throughput"] if r["mode"] == "minibatch"]
        assert {r["K"] for r in minibatch} == {1, 4}
        assert all(r["share_of_measured_matmul"] > 0 for r in minibatch)


@pytest.mark.integration
def test_dry_run_exports_the_search_and_summarises_it(dry_run):
    out, _ = dry_run
    with (out / "trials.csv").open() as f:
        trials = list(csv.DictReader(f))
    assert trials and {t["study"] for t in trials} == {"capacity-rnn-p300"}
    assert "PRUNED" in {t["state"] for t in trials} or "COMPLETE" in {t["state"] for t in trials}
    assert "bits" in (out / "report" / "report.md").read_text()
    snapshots = sorted((out / "status").glob("*.json"))
    assert snapshots, "no status snapshot during the search"
    assert json.loads(snapshots[-1].read_text())[0]["study"] == "capacity-rnn-p300"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True
    assert summary["trials_exported"] == len(trials)
    assert summary["trials_finished"] > 0 and summary["trials_per_hour"] > 0
    assert summary["gpu_busy_mean"] is None and summary["nvidia_smi"] == "absent"
    assert summary["best_bits_per_param"] > 0 and summary["report_written"] is True
    assert [s["stage"] for s in summary["stages"]] == [
        line.split("\t")[0] for line in (out / "stages.tsv").read_text().splitlines()
    ]
    assert "trials/h" in (out / "summary.md").read_text()
    assert (out / "trials.jsonl.gz").stat().st_size > 0


def test_bad_arguments_exit_2(tmp_path):
    for args in ([], [str(tmp_path), "--fast"], ["--dry-run"]):
        done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True)
        assert done.returncode == 2, args
        assert done.stderr.startswith("usage:")
    assert not list(tmp_path.iterdir())


def test_create_args_are_the_paper_protocol_and_shrink_for_the_dry_run():
    steps = _steps()
    space = tomllib.loads((ROOT / "experiments" / "paper-protocol.toml").read_text())["space"]
    full = steps.create_args(dry_run=False)
    assert "--budget=10000" in full and "--sampler=gp-batch" in full
    assert "--pruner=median" in full and "--arch=rnn" in full
    searched = {a.split("=")[1] for a in full if a.startswith("--space=")}
    assert searched == set(space)
    dry = steps.create_args(dry_run=True)
    assert "--budget=300" in dry and "--space=max_steps=200" in dry
    assert {a.split("=")[1] for a in dry if a.startswith("--space=")} == set(space) | {"b"}
    # Each dimension once: `hpsearch create` refuses a --space given twice.
    names = [a.split("=")[1] for a in dry if a.startswith("--space=")]
    assert len(names) == len(set(names))


def test_gpu_busy_is_the_mean_of_the_samples(tmp_path):
    steps = _steps()
    assert steps.gpu_busy(tmp_path)["gpu_busy_mean"] is None
    (tmp_path / "gpu_util.csv").write_text(
        "timestamp, utilization.gpu [%], memory.used [MiB]\n"
        "2026/12/04 10:00:00.000, 40, 1000\n"
        "2026/12/04 10:00:01.000, 90, 1200\n"
        "2026/12/04 10:00:02.0"  # a line cut off when the sampler was stopped
    )
    busy = steps.gpu_busy(tmp_path)
    assert busy["gpu_busy_samples"] == 2 and busy["gpu_busy_mean"] == pytest.approx(0.65)


def test_trials_per_hour_counts_complete_and_pruned(tmp_path):
    steps = _steps()
    (tmp_path / "trials.csv").write_text(
        "study,state,user_attrs_bits_per_param\n"
        "s,COMPLETE,2.5\ns,PRUNED,3.9\ns,COMPLETE,3.1\ns,WAITING,\ns,FAIL,\n"
    )
    got = steps.trials_summary(tmp_path, worker_seconds=60)
    assert got["trials_exported"] == 5 and got["trials_finished"] == 3
    assert got["trials_per_hour"] == pytest.approx(180)
    assert got["best_bits_per_param_exported"] == pytest.approx(3.1)  # pruned left out


def test_minibatch_rows_get_their_share_of_the_matmul_rate(tmp_path):
    steps = _steps()
    (tmp_path / "throughput_full.jsonl").write_text(
        json.dumps({"device": "cuda", "measured_matmul_gflops": 1000.0}) + "\n"
    )
    row = {"arch": "rnn", "budget": 1000, "K": 8, "num_params": 955, "batch_size": 256}
    row["batched_trial_steps_per_s"] = 2000.0
    (tmp_path / "throughput_minibatch.jsonl").write_text(json.dumps(row) + "\nnot json\n")
    (got,) = steps.throughput(tmp_path)
    flops = 6 * 955 * steps.THROUGHPUT_UNROLL * 256 * 2000.0
    assert got["mode"] == "minibatch"
    assert got["achieved_gflops"] == pytest.approx(flops / 1e9)
    assert got["share_of_measured_matmul"] == pytest.approx(flops / 1e12)
