"""Float32 matmul precision for one backend while a block runs ("ieee": full float32; "tf32"
on CUDA; "bf16" on a CPU with bfloat16 matmuls). Whether a lower precision is good enough for
a network shape is decided by `objectives.training.precision.probe`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

FULL = "ieee"
PRECISIONS = {"cuda": ("ieee", "tf32"), "cpu": ("ieee", "bf16")}


def _backend(device: torch.device) -> object:
    if device.type == "cuda":
        return torch.backends.cuda.matmul
    if device.type == "cpu":
        return torch.backends.mkldnn.matmul  # type: ignore[attr-defined]
    raise ValueError(f"no matmul precision setting for device {device}")


@contextmanager
def matmul_precision(device: torch.device, precision: str) -> Iterator[None]:
    """Float32 matmuls on `device` at `precision` while the block runs."""
    if precision not in PRECISIONS.get(device.type, ()):
        raise ValueError(f"matmul precision {precision!r} is not available on {device.type}")
    backend = _backend(device)
    before = backend.fp32_precision  # type: ignore[attr-defined]
    backend.fp32_precision = precision  # type: ignore[attr-defined]
    try:
        yield
    finally:
        backend.fp32_precision = before  # type: ignore[attr-defined]
