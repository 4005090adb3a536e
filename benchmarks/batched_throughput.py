"""Benchmark for batched trials (issue 5). Prints figures; not a test.

Trials per hour, batched (K trials of one shape in one BatchedTrainer) against one at a time
(objectives.training.trainer.train_capacity), for rnn and lstm at budgets 1k and 10k, K = 1, 8, 32,
128; and the achieved FLOP/s by the 6*P*T*b estimate, against the float32 rate of one large
matmul measured on the same device (and against a nominal peak, if given). Every trial runs
the same fixed number of steps (early stopping off) on b samples, so the work per trial is
equal. Both ways are timed after a short untimed warm-up (one-off set-up of the math
libraries, which a worker pays once, not once a trial).

With --k1, it instead asks whether one trial at a time can be the batched trainer with K = 1:
for each arch, budget and b (--bs), the same trial is trained by `train_capacity` and by a
BatchedTrainer of capacity 1, alternately in one process (the order swapped every repeat),
--repeats times; each way is timed whole (data set, initialisation, training), and the
medians are printed as ms per step and trials per hour.

With --batch-size N, the trials are minibatch trials (batch_size N, scored on all b at their
first and last step): the figures are trial-steps per second, wall-clock and by this
process's CPU time (which leaves out time spent waiting for a core on a loaded machine),
batched against one at a time. With --executor too, the K trials are trained as a worker
trains them, by its batched executor (`hpsearch.worker.executors.BatchedExecutor`, K slots,
in chunks; on a CPU a group's first trial trains alone there), not by one BatchedTrainer.
With --batch-sizes LO:HI, K minibatch trials of sizes spread evenly on a log scale over
[LO, HI] are trained three ways: in one program masked to the largest size, grouped by size
class (`objectives.training.batched.size_class`, one program a class, one after another) and
one at a time: the measurement behind the size classes.

Usage: python benchmarks/batched_throughput.py [--device cpu|cuda] [--b 1000] [--steps 100]
       [--threads N] [--ks 1,8,32,128] [--archs rnn,lstm] [--budgets 1000,10000]
       [--peak-tflops X] [--precision ieee|tf32] [--no-graph] [--matmul-n 4096]
       [--batch-size 256 [--executor] | --batch-sizes 64:1000]
       python benchmarks/batched_throughput.py --k1 [--bs 1000,4000] [--repeats 9] ...
       python benchmarks/batched_throughput.py --verdicts --device cuda [--archs] [--budgets]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from objectives.networks.architectures import solve_hidden_size  # noqa: E402
from objectives.tasks.capacity.objective import train_capacity  # noqa: E402
from objectives.tasks.capacity.study import CapacityConfig  # noqa: E402
from objectives.tasks.objective import shape_key  # noqa: E402
from objectives.training import batched as batched_module  # noqa: E402
from objectives.training.allocator import keep_freed_memory  # noqa: E402
from objectives.training.batched import BatchedTrainer  # noqa: E402
from objectives.training.interface import FULL_BATCH  # noqa: E402


def _configs(
    arch: str, budget: int, k: int, b: int, steps: int, batch_size: int | str = FULL_BATCH
) -> list[CapacityConfig]:
    hidden = solve_hidden_size(arch, 32, 1, budget)
    return [
        CapacityConfig(
            arch=arch,
            n_in=32,
            hidden_size=hidden,
            depth=1,
            unroll=5,
            b=b,
            learning_rate=1e-3 * (1 + i % 7),
            init_scale=1.0,
            max_steps=steps,
            patience=10**7,
            seed=i,
            batch_size=batch_size,
        )
        for i in range(k)
    ]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def one_at_a_time(
    arch: str,
    budget: int,
    b: int,
    steps: int,
    device: str,
    batch_size: int | str = FULL_BATCH,
) -> tuple[float, float]:
    """Seconds per trial trained alone, wall-clock and CPU time (medians of 3, after one
    untimed warm-up trial)."""
    warm_up, *timed = _configs(arch, budget, 4, b, steps, batch_size)
    train_capacity(CapacityConfig(**{**warm_up.__dict__, "max_steps": 5}), device)
    times = []
    for config in timed:
        _sync(device)
        start, cpu = time.perf_counter(), time.process_time()
        train_capacity(config, device)
        _sync(device)
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    return statistics.median(w for w, _ in times), statistics.median(c for _, c in times)


def batched(
    arch: str,
    budget: int,
    k: int,
    b: int,
    steps: int,
    device: str,
    batch_size: int | str = FULL_BATCH,
    **options: Any,
) -> tuple[float, float]:
    """Seconds for K trials trained together, wall-clock and CPU time (after 5 untimed
    warm-up steps of the same batch on other trials)."""
    return train_together(_configs(arch, budget, k, b, steps, batch_size), device, **options)


def train_together(
    configs: list[CapacityConfig], device: str, **options: Any
) -> tuple[float, float]:
    """Seconds for `configs` (of one batch) trained in one BatchedTrainer, wall-clock and
    CPU time, after 5 untimed warm-up steps of the same batch on other trials."""
    k = len(configs)
    warm_up = BatchedTrainer(shape_key(configs[0]), k, device, **options)
    for c in configs:
        warm_up.add(CapacityConfig(**{**c.__dict__, "max_steps": 5, "seed": c.seed + 10**6}))
    warm_up.run(10**7)
    del warm_up
    trainer = BatchedTrainer(shape_key(configs[0]), k, device, **options)
    for c in configs:
        trainer.add(c)
    _sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    done = trainer.run(10**7)
    _sync(device)
    assert len(done) == k
    return time.perf_counter() - start, time.process_time() - cpu


def through_executor(configs: list[CapacityConfig], device: str) -> tuple[float, float]:
    """Seconds for `configs` trained by a worker's batched executor of len(configs) slots
    (`hpsearch.worker.executors.BatchedExecutor`, in its chunks, as a worker trains them),
    wall-clock and CPU time, after the same untimed warm-up on 5-step trials."""
    from hpsearch.worker.executors import BatchedExecutor, Held
    from objectives.tasks.registry import get_task

    task = get_task("capacity")

    def trained(trials: list[CapacityConfig]) -> None:
        executor = BatchedExecutor(len(trials), device, "off", [task])
        for c in trials:
            executor.submit(Held("bench", task, c, None))
        ended = 0
        while executor.held():
            ended += len(executor.advance(lambda held, steps, value: True))
        assert ended == len(trials)

    trained(
        [CapacityConfig(**{**c.__dict__, "max_steps": 5, "seed": c.seed + 10**6}) for c in configs]
    )
    _sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    trained(configs)
    _sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def mixed_sizes(
    arch: str, budget: int, k: int, b: int, steps: int, sizes: tuple[int, int], device: str
) -> dict:
    """K minibatch trials of batch sizes spread on a log scale over `sizes`, trained in one
    program masked to the largest size, grouped by size class, and one at a time: trial-steps
    per second of each, wall-clock and CPU time."""
    lo, hi = sizes
    configs = [
        CapacityConfig(**{**c.__dict__, "batch_size": round(lo * (hi / lo) ** (i / max(k - 1, 1)))})
        for i, c in enumerate(_configs(arch, budget, k, b, steps))
    ]
    largest = batched_module.size_class(hi)
    real = batched_module.size_class
    batched_module.size_class = lambda size: largest  # type: ignore[assignment]
    try:
        masked = train_together(configs, device)
    finally:
        batched_module.size_class = real  # type: ignore[assignment]
    classes: dict[int, list[CapacityConfig]] = {}
    for c in configs:
        classes.setdefault(real(int(c.batch_size)), []).append(c)
    grouped = [0.0, 0.0]
    for group in classes.values():
        for i, seconds in enumerate(train_together(group, device)):
            grouped[i] += seconds
    alone = [0.0, 0.0]
    train_capacity(CapacityConfig(**{**configs[0].__dict__, "max_steps": 5}), device)
    for c in configs:
        start, cpu = time.perf_counter(), time.process_time()
        train_capacity(c, device)
        alone[0] += time.perf_counter() - start
        alone[1] += time.process_time() - cpu
    row: dict[str, Any] = {
        "arch": arch,
        "budget": budget,
        "K": k,
        "b": b,
        "steps": steps,
        "batch_sizes": [c.batch_size for c in configs],
        "size_classes": {str(n): len(g) for n, g in classes.items()},
        "device": device,
    }
    for name, (wall, cpu) in (("masked", masked), ("grouped", grouped), ("alone", alone)):
        row[f"{name}_trial_steps_per_s"] = k * steps / wall
        row[f"{name}_cpu_trial_steps_per_s"] = k * steps / cpu
    return row


def alone_or_k1(config: CapacityConfig, device: str, k1: bool) -> tuple[float, float]:
    """Seconds for one whole trial, wall-clock and this process's CPU time: `train_capacity`,
    or a BatchedTrainer of capacity 1. (On a machine shared with other processes, the CPU
    time leaves out the time spent waiting for a core.)"""
    _sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    if k1:
        trainer = BatchedTrainer(shape_key(config), 1, device)
        trainer.add(config)
        (_, result), *_ = trainer.run(10**9)
    else:
        result = train_capacity(config, device)
    _sync(device)
    assert result.steps == config.max_steps
    return time.perf_counter() - start, time.process_time() - cpu


def compare_k1(arch: str, budget: int, b: int, steps: int, repeats: int, device: str) -> dict:
    """Median seconds a trial, alone and as K = 1, the two interleaved (order swapped every
    repeat, so that load from other processes falls on both alike)."""
    # One slow learning rate, so that no trial memorises its set before `steps`.
    configs = [
        CapacityConfig(**{**c.__dict__, "learning_rate": 1e-3})
        for c in _configs(arch, budget, repeats + 1, b, steps)
    ]
    warm = CapacityConfig(**{**configs[0].__dict__, "max_steps": 5})
    alone_or_k1(warm, device, False)
    alone_or_k1(warm, device, True)
    times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for i, config in enumerate(configs[1:]):
        for way in (False, True) if i % 2 == 0 else (True, False):
            times[way].append(alone_or_k1(config, device, way))
    alone, k1 = (statistics.median(wall for wall, _ in times[w]) for w in (False, True))
    alone_cpu, k1_cpu = (statistics.median(c for _, c in times[w]) for w in (False, True))
    return {
        "arch": arch,
        "budget": budget,
        "hidden_size": configs[0].hidden_size,
        "num_params": configs[0].num_params,
        "b": b,
        "steps": steps,
        "repeats": repeats,
        "device": device,
        "alone_ms_per_step": 1000 * alone / steps,
        "k1_ms_per_step": 1000 * k1 / steps,
        "alone_trials_per_hour": 3600 / alone,
        "k1_trials_per_hour": 3600 / k1,
        "k1_over_alone_time": k1 / alone,
        "alone_cpu_ms_per_step": 1000 * alone_cpu / steps,
        "k1_cpu_ms_per_step": 1000 * k1_cpu / steps,
        "k1_over_alone_cpu_time": k1_cpu / alone_cpu,
        "alone_s": [round(wall, 4) for wall, _ in times[False]],
        "k1_s": [round(wall, 4) for wall, _ in times[True]],
    }


def measured_peak_gflops(device: str, n: int = 4096) -> float:
    """float32 GFLOP/s of one large square matmul (best of 5): what dense matmul reaches
    on this device, the yardstick beside any nominal peak."""
    a = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(6):
        _sync(device)
        start = time.perf_counter()
        a @ a
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--b", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the device's nominal dense float32 peak, for the share of peak",
    )
    parser.add_argument("--ks", default="1,8,32,128")
    parser.add_argument("--archs", default="rnn,lstm")
    parser.add_argument("--budgets", default="1000,10000")
    parser.add_argument("--precision", default="ieee", help="batched matmuls: ieee or tf32")
    parser.add_argument(
        "--no-graph", action="store_true", help="on CUDA, do not capture the step as a graph"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="minibatch trials of this batch_size"
    )
    parser.add_argument(
        "--batch-sizes",
        default=None,
        help="LO:HI: minibatch trials of mixed sizes, masked against grouped (K: --ks)",
    )
    parser.add_argument(
        "--matmul-n",
        type=int,
        default=4096,
        help="the yardstick's square matmul size (a dry run on a CPU: small)",
    )
    parser.add_argument("--k1", action="store_true", help="train_capacity against K = 1")
    parser.add_argument(
        "--executor",
        action="store_true",
        help="with --batch-size: the K trials through a worker's batched executor",
    )
    parser.add_argument("--bs", default="1000,4000", help="with --k1: the values of b")
    parser.add_argument("--repeats", type=int, default=9, help="with --k1")
    parser.add_argument(
        "--verdicts",
        action="store_true",
        help="print the TF32 probe's verdict (as --tf32 auto decides it) per arch and budget",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as a batched worker does (one trial at a time is not affected)
    if args.verdicts:
        from objectives.tasks.objective import probe
        from objectives.training.precision import probe_trials

        for arch in args.archs.split(","):
            for budget in (int(x) for x in args.budgets.split(",")):
                config = _configs(arch, budget, 1, args.b, args.steps)[0]
                verdict = probe(probe_trials(config), args.device, "tf32")
                print(
                    json.dumps(
                        {"arch": arch, "budget": budget, "b": args.b, "verdict": verdict.describe()}
                    ),
                    flush=True,
                )
        return
    if args.k1:
        for arch in args.archs.split(","):
            for budget in (int(x) for x in args.budgets.split(",")):
                for b in (int(x) for x in args.bs.split(",")):
                    row = compare_k1(arch, budget, b, args.steps, args.repeats, args.device)
                    print(json.dumps(row), flush=True)
        return
    if args.batch_sizes:
        lo, hi = (int(x) for x in args.batch_sizes.split(":"))
        for arch in args.archs.split(","):
            for budget in (int(x) for x in args.budgets.split(",")):
                for k in (int(x) for x in args.ks.split(",")):
                    row = mixed_sizes(arch, budget, k, args.b, args.steps, (lo, hi), args.device)
                    print(json.dumps(row), flush=True)
        return
    if args.batch_size is not None:
        minibatch_rows(args)
        return
    options = {"precision": args.precision}
    if args.device == "cuda":
        options["cuda_graph"] = not args.no_graph
    peak = measured_peak_gflops(args.device, args.matmul_n)
    print(json.dumps({"device": args.device, "measured_matmul_gflops": peak}), flush=True)
    rows = []
    for arch in args.archs.split(","):
        for budget in (int(x) for x in args.budgets.split(",")):
            single, _ = one_at_a_time(arch, budget, args.b, args.steps, args.device)
            config = _configs(arch, budget, 1, args.b, args.steps)[0]
            flops_per_trial = 6 * config.num_params * config.unroll * args.b * args.steps
            for k in (int(x) for x in args.ks.split(",")):
                seconds, _ = batched(arch, budget, k, args.b, args.steps, args.device, **options)
                row = {
                    "arch": arch,
                    "budget": budget,
                    "num_params": config.num_params,
                    "hidden_size": config.hidden_size,
                    "K": k,
                    "b": args.b,
                    "steps": args.steps,
                    "device": args.device,
                    "threads": args.threads,
                    **options,
                    "one_at_a_time_trials_per_hour": 3600 / single,
                    "batched_trials_per_hour": 3600 * k / seconds,
                    "speedup": (3600 * k / seconds) / (3600 / single),
                    "achieved_gflops": k * flops_per_trial / seconds / 1e9,
                }
                row["share_of_measured_matmul"] = row["achieved_gflops"] / peak
                if args.peak_tflops:
                    row["share_of_peak"] = row["achieved_gflops"] / (1000 * args.peak_tflops)
                print(json.dumps(row), flush=True)
                rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"batched_{args.device}_threads{args.threads}_{os.getpid()}.json"
    (args.out / name).write_text(json.dumps(rows, indent=2))


def minibatch_rows(args: argparse.Namespace) -> None:
    """Trial-steps per second of minibatch trials, K together against one at a time,
    wall-clock and CPU time."""
    size = args.batch_size
    options: dict[str, Any] = {"precision": args.precision}
    if args.device == "cuda":
        options["cuda_graph"] = not args.no_graph
    rows = []
    for arch in args.archs.split(","):
        for budget in (int(x) for x in args.budgets.split(",")):
            wall, cpu = one_at_a_time(arch, budget, args.b, args.steps, args.device, size)
            config = _configs(arch, budget, 1, args.b, args.steps, size)[0]
            for k in (int(x) for x in args.ks.split(",")):
                if args.executor:
                    k_wall, k_cpu = through_executor(
                        _configs(arch, budget, k, args.b, args.steps, size), args.device
                    )
                else:
                    k_wall, k_cpu = batched(
                        arch, budget, k, args.b, args.steps, args.device, size, **options
                    )
                row = {
                    "arch": arch,
                    "budget": budget,
                    "num_params": config.num_params,
                    "hidden_size": config.hidden_size,
                    "K": k,
                    "b": args.b,
                    "batch_size": size,
                    "steps": args.steps,
                    "device": args.device,
                    "threads": args.threads,
                    **options,
                    "executor": args.executor,
                    "one_at_a_time_trial_steps_per_s": args.steps / wall,
                    "batched_trial_steps_per_s": k * args.steps / k_wall,
                    "speedup": k * wall / k_wall,
                    "one_at_a_time_cpu_trial_steps_per_s": args.steps / cpu,
                    "batched_cpu_trial_steps_per_s": k * args.steps / k_cpu,
                    "speedup_cpu": k * cpu / k_cpu,
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"batched_minibatch_{args.device}_threads{args.threads}_{os.getpid()}.json"
    (args.out / name).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
