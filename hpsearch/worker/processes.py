"""Several worker processes on one machine: `hpsearch worker --processes N|gpus`.

Each child is a plain `hpsearch worker` with the same arguments; with GPUs, child i sees only
GPU i (CUDA_VISIBLE_DEVICES), so every GPU of the host is kept busy. SIGTERM and Ctrl-C are
passed on to the children, which mark their running trials failed (to be retried) and exit.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from types import FrameType

logger = logging.getLogger(__name__)


def _child_argv(argv: list[str], seed: int | None, index: int) -> list[str]:
    out: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in ("--processes", "--seed"):
            skip = i + 1 < len(argv)
            continue
        if arg.startswith(("--processes=", "--seed=")):
            continue
        out.append(arg)
    if seed is not None:
        out += ["--seed", str((seed + index) % 2**31)]
    return out


def run_processes(
    argv: list[str], count: int, *, pin_gpus: bool, gpus: int, seed: int | None
) -> int:
    """Start `count` workers and wait for all; the exit code is the worst of theirs."""
    children: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(count):
            env = {**os.environ, "HPSEARCH_WORKER_CHILD": "1"}
            if pin_gpus and gpus > 0:
                visible = os.environ.get("CUDA_VISIBLE_DEVICES")
                ids = visible.split(",") if visible else [str(i) for i in range(gpus)]
                env["CUDA_VISIBLE_DEVICES"] = ids[index % len(ids)]
            cmd = [sys.executable, "-m", "hpsearch.cli", *_child_argv(argv, seed, index)]
            children.append(subprocess.Popen(cmd, env=env))
        logger.info(
            "started %d worker processes: pids %s", count, ", ".join(str(c.pid) for c in children)
        )
        codes = [child.wait() for child in children]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for child in children:
            if child.poll() is None:
                child.kill()
    worst = next((code for code in codes if code != 0), 0)
    return 128 - worst if worst < 0 else worst  # a child killed by signal N: 128 + N
