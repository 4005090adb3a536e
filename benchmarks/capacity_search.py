"""Benchmark for the capacity search (issue 2). Prints figures; not a pass/fail test.

  speed:  seconds per trial and trials per hour for rnn at budgets 200 and 1000, one worker
          process on this machine (sampler, storage and training included); --batch K trains
          K trials at once, --sampler random gives the same trials whatever K is.
  search: best bits per parameter that the GP search and random search reach for rnn,
          depth 1, budget 1000, after 30 and 100 trials (same study seed, same trial count).

Usage: python benchmarks/capacity_search.py speed|search [--trials N] [--out DIR]
       [--batch K|auto] [--sampler gp|gp-batch|random] [--budgets 200,1000]
       [--space NAME=SPEC] [--device cpu|cuda] (the last five: speed only)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

HPSEARCH = [sys.executable, "-m", "hpsearch.cli"]


def _run(args: list[str]) -> None:
    subprocess.run(HPSEARCH + args, check=True, stdout=subprocess.DEVNULL)


def _complete(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(trials, key=lambda t: t.number)


def speed(
    out: Path,
    trials: int,
    batch: str,
    sampler: str,
    budgets: list[int],
    space: list[str],
    device: str = "cpu",
) -> dict[str, object]:
    figures: dict[str, object] = {
        "batch": batch,
        "sampler": sampler,
        "space": space,
        "device": device,
    }
    for budget in budgets:
        db = out / f"speed-p{budget}.db"
        db.unlink(missing_ok=True)
        url = f"sqlite:///{db}"
        _run(
            [
                "create",
                "--storage",
                url,
                "--arch",
                "rnn",
                "--budget",
                str(budget),
                "--trials",
                str(trials),
                "--seed",
                "0",
                "--sampler",
                sampler,
                *(arg for spec in space for arg in ("--space", spec)),
            ]
        )
        start = time.perf_counter()
        _run(
            [
                *("worker", "--storage", url, "--all", "--seed", "0", "--device", device),
                *("--batch", batch),
            ]
        )
        wall = time.perf_counter() - start
        done = _complete(url, f"capacity-rnn-p{budget}")
        train = sum(float(t.user_attrs["seconds"]) for t in done)
        row = {
            "trials": len(done),
            "seconds_per_trial": wall / len(done),
            "training_seconds_per_trial": train / len(done),
            "trials_per_hour": 3600 * len(done) / wall,
            "mean_steps": sum(int(t.user_attrs["steps"]) for t in done) / len(done),
        }
        figures[f"rnn-p{budget}"] = row
        print(f"rnn budget {budget}, batch {batch}, {sampler}, {device}: {row}", flush=True)
    return figures


def search(out: Path, trials: int) -> dict[str, object]:
    procs = {}
    urls = {}
    for sampler in ("gp", "random"):
        db = out / f"search-{sampler}.db"
        db.unlink(missing_ok=True)
        url = f"sqlite:///{db}"
        urls[sampler] = url
        _run(
            [
                "create",
                "--storage",
                url,
                "--arch",
                "rnn",
                "--budget",
                "1000",
                "--depths",
                "1",
                "--trials",
                str(trials),
                "--seed",
                "0",
                "--sampler",
                sampler,
            ]
        )
        procs[sampler] = subprocess.Popen(
            [*HPSEARCH, "worker", "--storage", url, "--all", "--seed", "0", "--device", "cpu"],
            stderr=open(out / f"search-{sampler}.log", "w"),
        )
    start = time.perf_counter()
    for proc in procs.values():
        if proc.wait() != 0:
            raise SystemExit(f"worker failed, see {out}")
    figures: dict[str, object] = {"wall_seconds": time.perf_counter() - start}
    for sampler, url in urls.items():
        done = _complete(url, "capacity-rnn-p1000")
        row = {}
        for n in (30, trials):
            best = max(done[:n], key=lambda t: t.value or 0.0)
            row[f"after_{n}"] = {
                "bits": best.value,
                "bits_per_param": best.user_attrs["bits_per_param"],
                "trial": best.number,
                "b": best.user_attrs["b"],
                "error_fraction": best.user_attrs["error_fraction"],
                "learning_rate": best.user_attrs["config"]["learning_rate"],
                "init_scale": best.user_attrs["config"]["init_scale"],
            }
        figures[sampler] = row
        print(f"{sampler}: {json.dumps(row)}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=("speed", "search"))
    parser.add_argument("--trials", type=int)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--batch", default="1", help="a number, or auto")
    parser.add_argument("--device", default="cpu", help="speed: cpu, cuda or auto")
    parser.add_argument("--sampler", default="gp")
    parser.add_argument("--budgets", default="200,1000")
    parser.add_argument("--space", action="append", default=[], help="as for create")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.part == "speed":
        budgets = [int(x) for x in args.budgets.split(",")]
        figures = speed(
            args.out, args.trials or 20, args.batch, args.sampler, budgets, args.space, args.device
        )
    else:
        figures = search(args.out, args.trials or 100)
    (args.out / f"{args.part}.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
