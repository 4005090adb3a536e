"""Proposals per second for one study holding many finished trials: gp against gp-batch.

The study lives in SQLite and holds `--trials` (default 1000) COMPLETE trials in the capacity
task's four searched dimensions (depth {1,2,4}, b int log [500, 16000], learning_rate log
[1e-4, 1e-1], init_scale log [0.1, 3]) with a smooth synthetic value. Each configuration starts
from a copy of it. `--workers` processes then propose for `--seconds`, as the real claim does:

- gp: under the study's slot lock (storage.trial_slot), ask + suggest: the GP fit happens
  under the lock, so proposals are serialised across workers (today's figure);
- gp-batch:Q: as the worker claims (`hpsearch.search.proposals.claim`): one worker at a
  time (the study's fit lease) fits and proposes Q points outside the lock when the study's
  queue runs short, its claim queues them, and every worker's ask + suggest under the lock
  pops one.

Each proposal is told at once (value of the synthetic function), so results come in while
other workers' proposals wait in the queue, as they would with short trials. Printed per
configuration:
proposals/s over the window (a proposal counts if its ask ended in the window; the window
starts once every worker has loaded the study), GP fits, and the mean time the lock was held
per proposal (1 / that is the rate the lock allows, whatever the number of cores).

    .venv/bin/python benchmarks/proposals.py --workers 1,4 --seconds 30

`--split Q`: instead, one gp-batch fit of Q proposals on that study, in this process: the
seconds of the fit, of proposal 1's acquisition search (as gp's) and of each later one, with
the settings of the first gp-batch of `--samplers`. A gp-batch may carry the sampler's
settings: `gp-batch:8+fit_cap=800+refit_every=1+later=qlogei` (GPBatchSampler's arguments).

Each row also gives the workers' CPU seconds per proposal (every thread, over the window):
the figure to quote on a loaded machine, where the wall clock depends on the other load.

`--related N`: the study warms from N more finished trials (`hpsearch.search.warm`), in two
related studies of the same task and arch at budgets 200 and 500 (N/2 each, the same space;
the study's own budget is 1000), which every proposal's fit includes (within the fit cap).
The sampler `hpsearch-gp` is hpsearch's gp (`hpsearch.search.gp.GPSampler`, which warm-starts;
`gp` is Optuna's own, which does not).

Figures are CPU-bound on a small machine: note its cores with them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hpsearch.search.proposals as protocol  # noqa: E402
import storage.lifecycle as lifecycle  # noqa: E402
from hpsearch.search.gp_batch import GPBatchSampler  # noqa: E402
from hpsearch.search.samplers import STARTUP_TRIALS  # noqa: E402
from storage import Heartbeat, HeartbeatPolicy, open_storage  # noqa: E402
from storage.lifecycle import StudyTrials  # noqa: E402
from tests.testing import SEARCH_SPACE, random_point, smooth_value, suggest_point  # noqa: E402

STUDY = "proposals"


def fill(url: str, trials: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    study = optuna.create_study(study_name=STUDY, storage=url, direction="maximize")
    frozen = []
    for _ in range(trials):
        p = random_point(rng)
        frozen.append(
            optuna.trial.create_trial(
                params=p, distributions=SEARCH_SPACE, value=smooth_value(p, rng.normal(0, 0.05))
            )
        )
    study.add_trials(frozen)


# The budgets of the related studies of --related, and the study's own.
RELATED_BUDGETS = (200, 500)
OWN_BUDGET = 1000


def fill_related(url: str, trials: int, seed: int = 1) -> None:
    """`trials` finished trials in RELATED_BUDGETS' studies, and the study set to warm from
    them (the user attrs hpsearch's warm start reads)."""
    rng = np.random.default_rng(seed)
    attrs = {"task": "capacity", "arch": "rnn"}
    for budget in RELATED_BUDGETS:
        study = optuna.create_study(
            study_name=f"related-p{budget}", storage=url, direction="maximize"
        )
        for key, value in {**attrs, "budget": budget}.items():
            study.set_user_attr(key, value)
        frozen = []
        for _ in range(trials // len(RELATED_BUDGETS)):
            p = random_point(rng)
            value = budget * smooth_value(p, rng.normal(0, 0.05))
            frozen.append(
                optuna.trial.create_trial(params=p, distributions=SEARCH_SPACE, value=value)
            )
        study.add_trials(frozen)
    own = optuna.load_study(study_name=STUDY, storage=url)
    for key, value in {**attrs, "budget": OWN_BUDGET, "warm_from": ["auto"]}.items():
        own.set_user_attr(key, value)


def make(sampler: str, seed: int) -> optuna.samplers.BaseSampler:
    if sampler == "gp":
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=STARTUP_TRIALS, warn_independent_sampling=False
        )
    if sampler == "hpsearch-gp":
        from hpsearch.search.gp import GPSampler

        return GPSampler(
            seed=seed, n_startup_trials=STARTUP_TRIALS, warn_independent_sampling=False
        )
    # gp-batch:Q, optionally with settings: gp-batch:8+fit_cap=800+refit_every=1+later=qlogei
    name, _, rest = sampler.partition(":")
    assert name == "gp-batch", sampler
    q, *settings = rest.split("+")
    options: dict[str, Any] = {}
    for setting in settings:
        key, _, value = setting.partition("=")
        options[key] = value if key == "later" else int(value)
    return GPBatchSampler(
        q=int(q),
        seed=seed,
        n_startup_trials=STARTUP_TRIALS,
        warn_independent_sampling=False,
        **options,
    )


def warm_up(sampler_name: str, seed: int) -> None:
    """One untimed proposal on a small study: imports and first calls (seconds in a fresh
    process) stay out of the window, as they are out of a running worker's claims."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(direction="maximize", sampler=make(sampler_name, seed))
    for _ in range(STARTUP_TRIALS + 2):
        trial = study.ask(SEARCH_SPACE)
        study.tell(trial, smooth_value(trial.params, rng.normal(0, 0.05)))
    study.tell(trial := study.ask(), smooth_value(suggest_point(trial)))


def work(url: str, sampler_name: str, seed: int, seconds: float, ready: Any, out: Any) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warm_up(sampler_name, seed)
    policy = HeartbeatPolicy(interval=60, grace=600, max_retry=3)
    storage = open_storage(url, heartbeat=policy)
    sampler = make(sampler_name, seed)
    study = optuna.load_study(study_name=STUDY, storage=storage, sampler=sampler)
    trials = StudyTrials(storage, study, target=10**9, max_retry=policy.max_retry)
    queue = protocol.ProposalQueue(trials)
    locked = [0.0]
    slot = lifecycle.trial_slot

    @contextlib.contextmanager
    def timed_slot(*args: Any, **kwargs: Any) -> Iterator[None]:
        with slot(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                yield
            finally:
                locked[0] += time.perf_counter() - t0

    # The claim's lock and the fit lease's (taken, renewed and ended under the same lock).
    lifecycle.trial_slot = timed_slot  # type: ignore[assignment]
    protocol.trial_slot = timed_slot  # type: ignore[assignment]
    ready.wait()  # every worker (and the parent) has warmed up and loaded the study
    cpu0 = time.process_time()
    deadline = time.time() + seconds
    proposals = 0
    with Heartbeat(storage, policy.interval) as heartbeat:
        while time.time() < deadline:
            claims = protocol.claim(queue, heartbeat, f"bench-{seed}", suggest_point, 1) or []
            asked = time.time()
            for claim in claims:
                trials.complete(claim, heartbeat, smooth_value(claim.prepared), {})
            if asked < deadline:
                proposals += len(claims)
    cpu = time.process_time() - cpu0
    fits = getattr(sampler, "fits", proposals)
    out.put({"proposals": proposals, "locked": locked[0], "fits": fits, "cpu": cpu})


def run(base: Path, sampler: str, workers: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "study.db"
        shutil.copy(base, db)
        url = f"sqlite:///{db}"
        ctx = mp.get_context("spawn")
        ready = ctx.Barrier(workers + 1)
        out = ctx.Queue()
        procs = [
            ctx.Process(target=work, args=(url, sampler, i, seconds, ready, out))
            for i in range(workers)
        ]
        for p in procs:
            p.start()
        ready.wait()
        rows = [out.get(timeout=seconds + 900) for _ in procs]
        for p in procs:
            p.join()
    proposals = sum(r["proposals"] for r in rows)
    locked = sum(r["locked"] for r in rows)
    asks = max(1, sum(r["proposals"] for r in rows))
    return {
        "sampler": sampler,
        "workers": workers,
        "seconds": seconds,
        "proposals": proposals,
        "proposals_per_s": proposals / seconds,
        "fits": sum(r["fits"] for r in rows),
        "lock_ms_per_proposal": 1000 * locked / asks,
        # CPU seconds of the workers (every thread) over the window, per proposal: the figure
        # that holds on a loaded machine, where the wall clock depends on the other load.
        "cpu_s_per_proposal": sum(r["cpu"] for r in rows) / asks,
    }


def _timed(fn: Any, into: list[float]) -> Any:
    """`fn`, appending the seconds of each call to `into`."""

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - t0)

    return timed


def split(base: Path, q: int, settings: str = "") -> dict[str, Any]:
    """Where one gp-batch fit of q proposals spends its time, with `settings` ("+key=value"
    ...) as in --samplers. The study is fresh, so the fit includes the kernel's."""
    import optuna._gp.optim_mixed as optim_mixed

    sampler = make(f"gp-batch:{q}{settings}", 0)
    assert isinstance(sampler, GPBatchSampler)
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{base}", sampler=sampler)
    fits: list[float] = []
    searches: list[float] = []
    fit, search = sampler.fit_gp, optim_mixed.optimize_acqf_mixed

    timed_fit, timed_search = _timed(fit, fits), _timed(search, searches)
    sampler.fit_gp = timed_fit  # type: ignore[method-assign]
    # GPSampler reaches it through a lazy import that holds its own copy of the names.
    import optuna.samplers._gp.sampler as gp_sampler

    optim_mixed.optimize_acqf_mixed = timed_search  # type: ignore[assignment]
    gp_sampler.optim_mixed.optimize_acqf_mixed = timed_search  # type: ignore[attr-defined]
    try:
        start, cpu = time.perf_counter(), time.process_time()
        sampler.propose(study, q)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        optim_mixed.optimize_acqf_mixed = search  # type: ignore[assignment]
        gp_sampler.optim_mixed.optimize_acqf_mixed = search  # type: ignore[attr-defined]
    return {
        "q": q,
        "total_s": total,
        "total_cpu_s": cpu,
        "fit_s": sum(fits),
        "first_search_s": searches[0],
        "later_search_mean_s": float(np.mean(searches[1:])) if len(searches) > 1 else None,
    }


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=1000, help="finished trials in the study")
    parser.add_argument("--workers", default="1,4,16", help="worker counts, comma-separated")
    parser.add_argument("--samplers", default="gp,gp-batch:8,gp-batch:32")
    parser.add_argument("--seconds", type=float, default=30.0, help="window per configuration")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/proposals.json"))
    parser.add_argument("--split", type=int, metavar="Q", help="time one fit's parts instead")
    parser.add_argument(
        "--related", type=int, default=0, metavar="N", help="related trials to warm from"
    )
    args = parser.parse_args()
    if args.split is not None and args.split < 1:
        parser.error(f"--split must be at least 1, got {args.split}")
    counts = [int(w) for w in args.workers.split(",")]
    samplers = args.samplers.split(",")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    machine = {
        "cpus": os.cpu_count(),
        "trials": args.trials,
        "related": args.related,
        "storage": "sqlite",
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.db"
        fill(f"sqlite:///{base}", args.trials)
        if args.related:
            fill_related(f"sqlite:///{base}", args.related)
        if args.split:
            # The settings of the first gp-batch in --samplers, at Q proposals.
            batch = next((s for s in samplers if s.startswith("gp-batch")), "gp-batch:8")
            settings = batch[len(batch.split("+")[0]) :]
            row = split(base, args.split, settings)
            print(f"{args.trials} finished trials: " + json.dumps(row))
            return
        results = []
        print(
            f"{args.trials} finished trials, {args.related} related, {os.cpu_count()} CPUs, "
            f"{args.seconds:g} s each"
        )
        print(
            f"{'sampler':<12} {'workers':>7} {'proposals/s':>11} {'fits':>5} {'lock ms':>8} "
            f"{'CPU s/proposal':>14}"
        )
        for workers in counts:
            for sampler in samplers:
                row = run(base, sampler, workers, args.seconds)
                results.append(row)
                print(
                    f"{sampler:<12} {workers:>7} {row['proposals_per_s']:>11.2f} "
                    f"{row['fits']:>5} {row['lock_ms_per_proposal']:>8.1f} "
                    f"{row['cpu_s_per_proposal']:>14.3f}",
                    flush=True,
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
