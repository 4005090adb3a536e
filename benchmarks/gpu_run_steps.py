"""The Python steps of benchmarks/gpu_run.sh (issue 20, part 5): what the shell does not do
well. Three subcommands, each reading and writing plain files in the run's folder, so that a
failed stage leaves the others' files readable:

- `env OUTDIR`: env.json, the machine and the versions behind the figures (python, torch,
  optuna, hpsearch, git commit; the GPU as torch sees it; nvidia-smi's line, or "absent").
- `create-args [--dry-run]`: the `hpsearch create` flags of the run's search, one a line: the
  paper's protocol (the [space] of experiments/paper-protocol.toml, read here so that the
  space is written once) for rnn at budget 10,000 with gp-batch and the median pruner; with
  `--dry-run` the same space shrunk to a CPU's seconds (budget 300, 200 steps: 32 trials at
  once, --batch auto on a CPU, finish within the worker's seconds even on a loaded machine;
  the pruner, which looks every 500 steps, is not reached).
- `summary OUTDIR`: summary.json and summary.md, the headline figures (trials per hour, the
  GPU's busy fraction, best bits per parameter, the throughput rows) and every stage's rc.

Only the standard library: it must run where a stage before it failed to import anything.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "experiments" / "paper-protocol.toml"

# The search: the paper's protocol on one network. The target is never reached: the worker
# stops at its time. Dry-run overrides shrink every cost (b at most 1,000 samples, batches of
# at most 64, 600 steps) and keep every searched dimension.
SEARCH: dict[str, Any] = {
    "arch": "rnn",
    "budget": 10000,
    "depths": "1",
    "trials": 100000,
    "sampler": "gp-batch",
    "pruner": "median",
    "seed": 0,
}
DRY_RUN: dict[str, Any] = {"budget": 300, "patience": 600}
DRY_RUN_SPACE: dict[str, Any] = {"b": "300:1000", "batch_size": "16:64", "max_steps": 200}


def _spec(value: Any) -> str:
    """A [space] value as the flag's text: a list is a choice, anything else as written."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def create_args(dry_run: bool) -> list[str]:
    """The flags after `hpsearch create` (storage excluded) for the run's one study."""
    protocol = tomllib.loads(PROTOCOL.read_text())
    settings = {**SEARCH, "patience": protocol["patience"], **(DRY_RUN if dry_run else {})}
    space = {**protocol["space"], **(DRY_RUN_SPACE if dry_run else {})}
    args = [f"--{key}={value}" for key, value in settings.items()]
    return args + [f"--space={name}={_spec(value)}" for name, value in space.items()]


def _version(module: str) -> str | None:
    try:
        return str(__import__(module).__version__)
    except Exception:
        return None


def _git_commit() -> str | None:
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _torch_device() -> dict[str, Any]:
    """The GPU as torch reports it (name, memory, multiprocessors), or why there is none."""
    try:
        import torch
    except Exception as e:
        return {"torch": None, "error": f"{type(e).__name__}: {e}"}
    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda}
    info["cuda_available"] = torch.cuda.is_available()
    if info["cuda_available"]:
        p = torch.cuda.get_device_properties(0)
        info["devices"] = torch.cuda.device_count()
        info["name"] = p.name
        info["total_memory_gib"] = round(p.total_memory / 2**30, 2)
        info["multi_processor_count"] = p.multi_processor_count
        info["capability"] = f"{p.major}.{p.minor}"
    return info


def write_env(outdir: Path) -> dict[str, Any]:
    """env.json: what the figures were measured on. nvidia_smi.csv is the shell's query (or
    the word absent); it is copied in as text."""
    smi = outdir / "nvidia_smi.csv"
    env = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "optuna": _version("optuna"),
        "hpsearch": _version("hpsearch"),
        "git_commit": _git_commit(),
        "nvidia_smi": smi.read_text().strip() if smi.exists() else "absent",
        "torch_device": _torch_device(),
    }
    (outdir / "env.json").write_text(json.dumps(env, indent=2) + "\n")
    return env


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _stages(outdir: Path) -> list[dict[str, Any]]:
    """stages.tsv (name, rc, seconds, limit), as the shell wrote it, one row per stage."""
    path = outdir / "stages.tsv"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        name, rc, seconds, limit = line.split("\t")
        rows.append({"stage": name, "rc": int(rc), "seconds": int(seconds), "limit": int(limit)})
    return rows


def gpu_busy(outdir: Path) -> dict[str, Any]:
    """The mean and the samples of utilization.gpu (percent, one a second during the
    search), or absent where nvidia-smi was not run."""
    path = outdir / "gpu_util.csv"
    if not path.exists() or path.read_text().strip() in ("", "absent"):
        return {"gpu_busy_mean": None, "gpu_busy_samples": 0, "nvidia_smi": "absent"}
    values = []
    with path.open() as f:
        for row in csv.reader(f):
            try:
                values.append(float(row[1]))
            except (IndexError, ValueError):
                continue  # the header, or a partial last line
    mean = sum(values) / len(values) / 100 if values else None
    return {"gpu_busy_mean": mean, "gpu_busy_samples": len(values), "nvidia_smi": "present"}


def trials_summary(outdir: Path, worker_seconds: int | None) -> dict[str, Any]:
    """From the exported trials: how many by state, and finished trials (complete or
    pruned: both count towards a target) per hour of the worker's wall time."""
    path = outdir / "trials.csv"
    states: dict[str, int] = {}
    best: float | None = None
    if path.exists():
        with path.open() as f:
            for row in csv.DictReader(f):
                states[row["state"]] = states.get(row["state"], 0) + 1
                value = row.get("user_attrs_bits_per_param") or ""
                if row["state"] == "COMPLETE" and value:
                    best = max(best or float("-inf"), float(value))
    finished = states.get("COMPLETE", 0) + states.get("PRUNED", 0)
    per_hour = 3600 * finished / worker_seconds if worker_seconds else None
    return {
        "trials_exported": sum(states.values()),
        "trials_by_state": states,
        "trials_finished": finished,
        "worker_seconds": worker_seconds,
        "trials_per_hour": per_hour,
        "best_bits_per_param_exported": best,
    }


# The time steps of batched_throughput.py's trials (its `_configs`), for the FLOPs of a step.
THROUGHPUT_UNROLL = 5


def throughput(outdir: Path) -> list[dict[str, Any]]:
    """The rows of batched_throughput.py (one JSON object a line) of both modes. A full-batch
    row has its share of the measured matmul rate; a minibatch row (trial-steps per second) is
    given one here, by the same 6*P*T*samples FLOPs a step, against the full-batch stage's
    matmul rate."""
    rows: list[dict[str, Any]] = []
    matmul_gflops = None
    for mode in ("full", "minibatch"):
        path = outdir / f"throughput_{mode}.jsonl"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if "measured_matmul_gflops" in row:
                matmul_gflops = row["measured_matmul_gflops"]
            if "K" not in row:
                continue
            if "batched_trial_steps_per_s" in row and "achieved_gflops" not in row:
                flops = 6 * row["num_params"] * THROUGHPUT_UNROLL * row["batch_size"]
                row["achieved_gflops"] = row["batched_trial_steps_per_s"] * flops / 1e9
                if matmul_gflops:
                    row["share_of_measured_matmul"] = row["achieved_gflops"] / matmul_gflops
            rows.append({"mode": mode, **row})
    return rows


def write_summary(outdir: Path) -> dict[str, Any]:
    stages = _stages(outdir)
    worker = next((s for s in stages if s["stage"] == "search_worker"), None)
    status = _read_json(outdir / "status_final.json") or []
    env = _read_json(outdir / "env.json") or {}
    summary: dict[str, Any] = {
        "dry_run": (outdir / "DRY_RUN").exists(),
        "device": env.get("torch_device", {}).get("name") or "cpu",
        "git_commit": env.get("git_commit"),
        **trials_summary(outdir, worker["seconds"] if worker else None),
        **gpu_busy(outdir),
        "best_bits_per_param": max(
            (r["best_bits_per_param"] for r in status if r.get("best_bits_per_param")),
            default=None,
        ),
        # What the worker waited for (issue 20, part 4), where `hpsearch status` reports it:
        # the share of its time the executor had empty slots while the study had room.
        "empty_slot_fraction": max(
            (r["empty_slot_fraction"] for r in status if r.get("empty_slot_fraction") is not None),
            default=None,
        ),
        "claim_wait_seconds": sum(r.get("claim_wait_seconds") or 0.0 for r in status),
        "report_written": (outdir / "report" / "report.md").exists(),
        "stages": stages,
        "throughput": throughput(outdir),
    }
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (outdir / "summary.md").write_text(render(summary))
    return summary


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _throughput_line(r: dict[str, Any]) -> str:
    if "batched_trials_per_hour" in r:
        rate, unit = r["batched_trials_per_hour"], "trials/h"
    else:
        rate, unit = r.get("batched_trial_steps_per_s"), "trial-steps/s"
    return (
        f"| {r['mode']} | {r['arch']} | {r['budget']} | {r['K']} | {_fmt(rate)} | {unit} | "
        f"{_fmt(r.get('speedup'))} | {_fmt(r.get('achieved_gflops'))} | "
        f"{_fmt(r.get('share_of_measured_matmul'))} |"
    )


def render(s: dict[str, Any]) -> str:
    busy = s["gpu_busy_mean"]
    lines = [
        f"# GPU run{' (dry run, CPU)' if s['dry_run'] else ''}: {s['device']}",
        "",
        f"commit {s['git_commit'] or '-'}; see env.json for the versions.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| trials finished (complete + pruned) | {s['trials_finished']} |",
        f"| worker wall time (s) | {_fmt(s['worker_seconds'])} |",
        f"| trials/h | {_fmt(s['trials_per_hour'])} |",
        f"| GPU busy, mean | {'absent' if busy is None else _pct(busy)} |",
        f"| best bits/param | {_fmt(s['best_bits_per_param'])} |",
        f"| executor slots empty while the study had room | {_pct(s['empty_slot_fraction'])} |",
        f"| claims' wait for proposals (s) | {_fmt(s['claim_wait_seconds'])} |",
        "",
        "| stage | rc | seconds | limit |",
        "|---|---|---|---|",
        *(f"| {r['stage']} | {r['rc']} | {r['seconds']} | {r['limit']} |" for r in s["stages"]),
        "",
        "| mode | arch | budget | K | batched | unit | speedup | GFLOP/s | share of matmul |",
        "|---|---|---|---|---|---|---|---|---|",
        *(_throughput_line(r) for r in s["throughput"]),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("env").add_argument("outdir", type=Path)
    sub.add_parser("create-args").add_argument("--dry-run", action="store_true")
    sub.add_parser("summary").add_argument("outdir", type=Path)
    args = parser.parse_args()
    if args.step == "env":
        print(json.dumps(write_env(args.outdir), indent=2))
    elif args.step == "create-args":
        print("\n".join(create_args(args.dry_run)))
    else:
        print(render(write_summary(args.outdir)))


if __name__ == "__main__":
    main()
