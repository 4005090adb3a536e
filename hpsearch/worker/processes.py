"""Several worker processes on one machine: `hpsearch worker --processes N|gpus`.

Each child is a plain `hpsearch worker` with the same arguments; with GPUs, child i sees only
GPU i (CUDA_VISIBLE_DEVICES), so every GPU of the host is kept busy. SIGTERM and Ctrl-C are
passed on to the children, which mark their running trials failed (to be retried) and exit.
On a terminal the parent draws the one progress bar, fed by the children
(`hpsearch.worker.progress`), and writes their log lines above it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import IO

from hpsearch.worker.progress import FEED_ENV, ProgressBar

logger = logging.getLogger(__name__)
# Set in the environment of a worker started by --processes (it starts no more).
CHILD_ENV = "HPSEARCH_WORKER_CHILD"


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
    argv: list[str],
    count: int,
    *,
    pin_gpus: bool,
    gpus: int,
    seed: int | None,
    bar: ProgressBar | None = None,
) -> int:
    """Start `count` workers and wait for all; the exit code is the worst of theirs. With a
    `bar` that is enabled, the children feed it and their stderr is written above it."""
    children: list[subprocess.Popen[str]] = []
    readers: list[threading.Thread] = []
    drawing = bar is not None and bar.enabled
    feed_read, feed_write = os.pipe() if drawing else (-1, -1)

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    def start_reader(target: Callable[..., object], *args: object) -> None:
        reader = threading.Thread(target=target, args=args, daemon=True)
        reader.start()
        readers.append(reader)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    codes: list[int] = []
    try:
        for index in range(count):
            env = {**os.environ, CHILD_ENV: "1"}
            if pin_gpus and gpus > 0:
                visible = os.environ.get("CUDA_VISIBLE_DEVICES")
                ids = visible.split(",") if visible else [str(i) for i in range(gpus)]
                env["CUDA_VISIBLE_DEVICES"] = ids[index % len(ids)]
            cmd = [sys.executable, "-m", "hpsearch.cli", *_child_argv(argv, seed, index)]
            if drawing:
                env[FEED_ENV] = str(feed_write)
                child = subprocess.Popen(
                    cmd, env=env, pass_fds=(feed_write,), stderr=subprocess.PIPE, text=True
                )
                assert child.stderr is not None and bar is not None
                start_reader(_copy_lines, child.stderr, bar)
            else:
                child = subprocess.Popen(cmd, env=env, text=True)
            children.append(child)
        if drawing:
            assert bar is not None
            os.close(feed_write)  # the children hold it; at their exit the feed ends
            feed_write = -1
            start_reader(bar.follow, os.fdopen(feed_read, "rb"))
            feed_read = -1
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
        for fd in (feed_write, feed_read):
            if fd >= 0:
                os.close(fd)
        for reader in readers:
            reader.join(timeout=10)
    worst = next((code for code in codes if code != 0), 0)
    return 128 - worst if worst < 0 else worst  # a child killed by signal N: 128 + N


def _copy_lines(stream: IO[str], bar: ProgressBar) -> None:
    """A child's stderr, line by line, above the bar (until the child exits)."""
    for line in stream:
        bar.write(line)
