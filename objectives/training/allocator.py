"""Keep freed memory in the process, so that a batched training step does not page-fault.

A batched step allocates its activations anew every step, tensors of hundreds of kilobytes
to megabytes. glibc's malloc gives such blocks back to the kernel when they are freed (blocks
above the mmap threshold are unmapped, and the top of the heap is trimmed), so the next step
faults in every page again. Kept, they are reused, and a batched worker trains more trials an
hour (the figures: docs/benchmarks.md, "Freed memory kept in the process"; the training of
one trial at a time hardly faults). The cost: a worker keeps the memory of its largest step
until it exits.
"""

from __future__ import annotations

import ctypes
import logging
import sys

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's largest on 64-bit machines
_NEVER_TRIM = 2**31 - 1


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to serve blocks below 32 MiB from the heap and never trim it.
    Returns whether it took effect (False off Linux or without glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        done = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) == 1
        done = libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1 and done
    except (OSError, AttributeError):
        return False
    if not done:
        logger.debug("malloc settings not taken")
    return done
