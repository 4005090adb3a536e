"""Benchmark for the capacity search (issue 2). Prints figures; not a pass/fail test.

  speed:  seconds per trial and trials per hour for rnn at budgets 200 and 1000, one worker
          process on this machine (sampler, storage and training included); --batch K trains
          K trials at once, --sampler random gives the same trials whatever K is.
  search: best bits per parameter that the GP search and random search reach for rnn,
          depth 1, budget 1000, after 30 and 100 trials (same study seed, same trial count).
  quality: search quality at equal trials: for each sampler (--samplers) and study seed
          (--seeds), one study of rnn, budget 1000, depth 1, --trials trials, one worker;
          --jobs studies run at once (--wall-hours: all are stopped there and compared at the
          number of trials every one reached). Prints best bits/param after 50, 100, ...
          trials and the mean and spread over seeds. --summarize: only that comparison, of
          the studies a run left in --out (a run stopped early).
  recipes: best bits/param against CPU time for each experiment file of --recipes (a
          recipe), each in a fresh storage searched by --workers processes for --cpu-hours
          of CPU (one figure, or one per recipe: 0.8,0.5), all at once; with Optuna's
          importances and the best trial of each study.
  pruning: best bits/param against CPU time for two studies of rnn, budget 1000, depth 1,
          from fresh: --long-steps steps a trial with --pruner (and --long-patience, default
          the study's 200), against --short-steps without; --arms long,short picks them. Each
          arm runs --workers worker processes (one thread each) and is stopped once they have
          used --cpu-hours of CPU together (read from /proc). The curve puts each trial at
          its share of the arm's CPU time (CPU time is spread over the arm's wall time evenly).

Usage: python benchmarks/capacity_search.py speed|search|quality|pruning|recipes [--trials N]
       [--out DIR] [--batch K|auto] [--sampler gp|gp-batch|random] [--budgets 200,1000]
       [--space NAME=SPEC] [--device cpu|cuda] (the last five: speed only; --space also for
       quality and pruning)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
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


def _create(url: str, sampler: str, seed: int, trials: int, extra: list[str]) -> None:
    _run(
        [
            *("create", "--storage", url, "--arch", "rnn", "--budget", "1000", "--depths", "1"),
            *("--trials", str(trials), "--seed", str(seed), "--sampler", sampler, *extra),
        ]
    )


def _worker(url: str, seed: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*HPSEARCH, "worker", "--storage", url, "--all", "--seed", str(seed), "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
        env=env,
    )


def _best_bpp(trials: list[optuna.trial.FrozenTrial]) -> float:
    return max((float(t.user_attrs["bits_per_param"]) for t in trials), default=0.0)


def quality(
    out: Path,
    trials: int,
    samplers: list[str],
    seeds: list[int],
    space: list[str],
    jobs: int,
    wall_hours: float | None = None,
    summarize: bool = False,
) -> dict[str, object]:
    extra = [arg for spec in space for arg in ("--space", spec)]
    runs = [(sampler, seed) for seed in seeds for sampler in samplers]
    urls = {}
    for sampler, seed in runs:
        db = out / f"quality-{sampler}-s{seed}.db"
        urls[sampler, seed] = f"sqlite:///{db}"
        if not summarize:
            db.unlink(missing_ok=True)
            _create(urls[sampler, seed], sampler, seed, trials, extra)
    start = time.perf_counter()
    pending = [] if summarize else list(runs)
    running: dict[tuple[str, int], subprocess.Popen[bytes]] = {}
    deadline = None if wall_hours is None else start + 3600 * wall_hours
    while pending or running:
        while pending and len(running) < jobs:
            key = pending.pop(0)
            running[key] = _worker(urls[key], key[1], out / f"quality-{key[0]}-s{key[1]}.log")
        time.sleep(1)
        if deadline is not None and time.perf_counter() > deadline:
            # Out of time: stop every study where it is; compare them at the trials all reached.
            pending.clear()
            for proc in running.values():
                proc.send_signal(signal.SIGTERM)
            for proc in running.values():
                proc.wait(timeout=120)
            running.clear()
            print("stopped at the wall-time limit", flush=True)
        for key, proc in list(running.items()):
            if proc.poll() is not None:
                if proc.returncode != 0:
                    raise SystemExit(f"worker {key} failed, see {out}")
                del running[key]
                print(f"done: {key[0]} seed {key[1]} at {time.perf_counter() - start:.0f} s")
    done = {key: _complete(url, "capacity-rnn-p1000") for key, url in urls.items()}
    reached = min(trials, *(len(d) for d in done.values()))  # equal trials for every study
    marks = sorted({*range(50, reached + 1, 50), reached})
    figures: dict[str, object] = {
        "wall_seconds": time.perf_counter() - start,
        "trials": reached,
        "space": space,
    }
    trials = reached
    for sampler in samplers:
        rows = {}
        for seed in seeds:
            rows[seed] = {n: _best_bpp(done[sampler, seed][:n]) for n in marks}
        final = [rows[seed][trials] for seed in seeds]
        figures[sampler] = {
            "by_seed": rows,
            "mean": statistics.mean(final),
            "min": min(final),
            "max": max(final),
        }
        print(
            f"{sampler:<9} best bits/param after {trials} trials: mean {statistics.mean(final):.3f}"
            f" (seeds {', '.join(f'{x:.3f}' for x in final)}); by trials: "
            + "; ".join(
                f"{n}: " + "/".join(f"{rows[seed][n]:.2f}" for seed in seeds) for n in marks
            ),
            flush=True,
        )
    return figures


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _run_for_cpu(
    procs: dict[str, list[subprocess.Popen[bytes]]], cpu_hours: float | dict[str, float]
) -> tuple[dict[str, float], dict[str, float]]:
    """Wait for each arm's worker processes, stopping an arm (SIGTERM: its running trials are
    failed and queued again) once its processes have used `cpu_hours` of CPU together (one
    figure for all arms, or one per arm). Returns the CPU seconds and wall seconds of each arm."""
    start = time.perf_counter()
    used: dict[str, float] = {}
    walls: dict[str, float] = {}
    hours = cpu_hours if isinstance(cpu_hours, dict) else dict.fromkeys(procs, cpu_hours)
    seen: dict[int, float] = {}  # CPU seconds of each worker process, as last read
    while procs:
        time.sleep(2)
        for arm, group in list(procs.items()):
            for proc in group:
                if proc.poll() is None:
                    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                        seen[proc.pid] = _cpu_seconds(proc.pid)
            used[arm] = sum(seen.get(proc.pid, 0.0) for proc in group)
            if all(proc.poll() is not None for proc in group) or used[arm] >= 3600 * hours[arm]:
                for proc in group:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)  # fails and requeues its trial
                for proc in group:
                    proc.wait(timeout=120)
                walls[arm] = time.perf_counter() - start
                del procs[arm]
    return used, walls


def _by_cpu_hour(
    study: optuna.Study, cpu_seconds: float, wall: float, cpu_hours: float
) -> dict[str, object]:
    """A study's best bits/param against CPU time: each ended trial is put at its share of
    the arm's CPU time (spread evenly over the arm's wall time)."""
    ended = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.datetime_complete
    ]
    ended.sort(key=lambda t: t.datetime_complete)  # type: ignore[arg-type, return-value]
    curve, best = [], 0.0
    if ended:
        first = min(t.datetime_start for t in ended if t.datetime_start)
        for t in ended:
            if t.state == TrialState.COMPLETE:
                best = max(best, float(t.user_attrs["bits_per_param"]))
            at = (t.datetime_complete - first).total_seconds()  # type: ignore[operator]
            curve.append((cpu_seconds / 3600 * at / wall, best))
    by_tenth = {
        f"{h:.3g}": max((b for c, b in curve if c <= h), default=0.0)
        for h in (cpu_hours * k / 10 for k in range(1, 11))
    }
    return {
        "cpu_hours_used": cpu_seconds / 3600,
        "wall_seconds": wall,
        "complete": sum(t.state == TrialState.COMPLETE for t in ended),
        "pruned": sum(t.state == TrialState.PRUNED for t in ended),
        "best_bits_per_param": best,
        "best_by_cpu_hours": by_tenth,
    }


def pruning(
    out: Path,
    cpu_hours: float,
    long_steps: int,
    short_steps: int,
    pruner: str,
    space: list[str],
    seed: int,
    long_patience: int | None = None,
    workers: int = 1,
    which: tuple[str, ...] = ("long", "short"),
) -> dict[str, object]:
    patience = [] if long_patience is None else ["--patience", str(long_patience)]
    arms = {
        name: setting
        for name, setting in {
            f"long-{pruner}": (long_steps, pruner, patience),
            "short-none": (short_steps, "none", []),
        }.items()
        if name.split("-")[0] in which
    }
    urls: dict[str, str] = {}
    procs: dict[str, list[subprocess.Popen[bytes]]] = {}
    for arm, (steps, arm_pruner, arm_patience) in arms.items():
        db = out / f"pruning-{arm}.db"
        db.unlink(missing_ok=True)
        urls[arm] = f"sqlite:///{db}"
        extra = [
            *(arg for spec in space for arg in ("--space", spec)),
            *("--space", f"max_steps={steps}", "--pruner", arm_pruner, *arm_patience),
        ]
        _create(urls[arm], "gp", seed, 100_000, extra)
    for arm in arms:
        procs[arm] = [
            _worker(urls[arm], seed + 1000 * i, out / f"pruning-{arm}-{i}.log")
            for i in range(workers)
        ]
    used, walls = _run_for_cpu(procs, cpu_hours)
    figures: dict[str, object] = {
        "cpu_hours": cpu_hours,
        "space": space,
        "seed": seed,
        "workers": workers,
        "long_patience": long_patience,
    }
    for arm in arms:
        study = optuna.load_study(study_name="capacity-rnn-p1000", storage=urls[arm])
        row = _by_cpu_hour(study, used[arm], walls[arm], cpu_hours)
        figures[arm] = row
        print(f"{arm}: {json.dumps(row)}", flush=True)
    return figures


def recipes(
    out: Path, files: list[Path], cpu_hours: list[float], workers: int, seed: int
) -> dict[str, object]:
    """Each experiment file (a recipe: a space and its settings) in a fresh storage of its
    own, searched by `workers` worker processes until they have used its `cpu_hours` of CPU
    together (one figure for all, or one per file), all recipes at once (`seed` seeds the
    workers; the file holds the study's). Per study: best bits/param by CPU-hour, which dimensions
    mattered (Optuna's fANOVA importances over the complete trials) and the best trial."""
    urls: dict[str, str] = {}
    procs: dict[str, list[subprocess.Popen[bytes]]] = {}
    for path in files:
        arm = path.stem
        db = out / f"recipes-{arm}.db"
        db.unlink(missing_ok=True)
        urls[arm] = f"sqlite:///{db}"
        _run(["create", "--storage", urls[arm], "--from", str(path)])  # its own study seed
    for arm in urls:
        procs[arm] = [
            _worker(urls[arm], seed + 1000 * i, out / f"recipes-{arm}-{i}.log")
            for i in range(workers)
        ]
    hours = dict(
        zip(urls, cpu_hours * len(urls) if len(cpu_hours) == 1 else cpu_hours, strict=True)
    )
    used, walls = _run_for_cpu(procs, hours)
    figures: dict[str, object] = {"cpu_hours": hours, "workers": workers, "seed": seed}
    for arm, url in urls.items():
        storage = optuna.storages.RDBStorage(url)
        for summary in storage.get_all_studies():
            study = optuna.load_study(study_name=summary.study_name, storage=url)
            row = _by_cpu_hour(study, used[arm], walls[arm], hours[arm])
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if complete:
                best = max(complete, key=lambda t: (t.value, -t.number))
                row["best_trial"] = {
                    "number": best.number,
                    "params": best.params,
                    "bits_per_param": best.user_attrs.get("bits_per_param"),
                }
            try:
                importances = optuna.importance.get_param_importances(study)
                row["importances"] = {k: round(v, 3) for k, v in importances.items()}
            except (RuntimeError, ValueError) as e:  # too few trials, or nothing varied
                row["importances"] = f"not computed: {e}"
            figures[f"{arm}/{summary.study_name}"] = row
            print(f"{arm}/{summary.study_name}: {json.dumps(row)}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=("speed", "search", "quality", "pruning", "recipes"))
    parser.add_argument("--trials", type=int)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--batch", default="1", help="a number, or auto")
    parser.add_argument("--device", default="cpu", help="speed: cpu, cuda or auto")
    parser.add_argument("--sampler", default="gp")
    parser.add_argument("--budgets", default="200,1000")
    parser.add_argument("--space", action="append", default=[], help="as for create")
    parser.add_argument("--samplers", default="gp,gp-batch,random", help="quality")
    parser.add_argument("--seeds", default="0,1,2", help="quality")
    parser.add_argument("--jobs", type=int, default=2, help="quality: studies at once")
    parser.add_argument(
        "--wall-hours", type=float, help="quality: stop all there, compare at equal trials"
    )
    parser.add_argument(
        "--summarize", action="store_true", help="quality: only compare the studies in --out"
    )
    parser.add_argument(
        "--cpu-hours", default="1", help="pruning: per arm; recipes: one, or one per recipe"
    )
    parser.add_argument("--long-steps", type=int, default=20_000, help="pruning")
    parser.add_argument("--short-steps", type=int, default=2_000, help="pruning")
    parser.add_argument("--pruner", default="median", help="pruning: the long arm's")
    parser.add_argument("--seed", type=int, default=0, help="pruning: study seed")
    parser.add_argument("--long-patience", type=int, help="pruning: the long arm's patience")
    parser.add_argument("--workers", type=int, default=1, help="pruning: processes per arm")
    parser.add_argument("--arms", default="long,short", help="pruning: long, short or both")
    parser.add_argument(
        "--recipes", default="", help="recipes: experiment files, comma-separated, run at once"
    )
    args = parser.parse_args()
    if not set(args.arms.split(",")) <= {"long", "short"}:
        parser.error(f"--arms: long, short or long,short, got {args.arms!r}")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.long_patience is not None and args.long_patience < 1:
        parser.error(f"--long-patience must be at least 1, got {args.long_patience}")
    args.out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.part == "speed":
        budgets = [int(x) for x in args.budgets.split(",")]
        figures = speed(
            args.out, args.trials or 20, args.batch, args.sampler, budgets, args.space, args.device
        )
    elif args.part == "quality":
        figures = quality(
            args.out,
            args.trials or 200,
            args.samplers.split(","),
            [int(x) for x in args.seeds.split(",")],
            args.space,
            args.jobs,
            args.wall_hours,
            args.summarize,
        )
    elif args.part == "pruning":
        figures = pruning(
            args.out,
            float(args.cpu_hours),
            args.long_steps,
            args.short_steps,
            args.pruner,
            args.space,
            args.seed,
            args.long_patience,
            args.workers,
            tuple(args.arms.split(",")),
        )
    elif args.part == "recipes":
        files = [Path(f) for f in args.recipes.split(",") if f]
        if not files:
            parser.error("recipes: give --recipes FILE.toml[,FILE.toml ...]")
        hours = [float(h) for h in args.cpu_hours.split(",")]
        if len(hours) not in (1, len(files)):
            parser.error(f"--cpu-hours: one figure or one per recipe ({len(files)}), got {hours}")
        figures = recipes(args.out, files, hours, args.workers, args.seed)
    else:
        figures = search(args.out, args.trials or 100)
    (args.out / f"{args.part}.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
