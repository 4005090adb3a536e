"""Which samples a minibatch step trains on, the same in both trainers and on every device.

Step s of a trial of seed `seed` trains on `size` samples drawn uniformly, with replacement,
from its b samples: sample j of the step is hash(seed, s, j) mod b. The hash is integer
arithmetic on int64 tensors (a 32-bit mixing function; products wrap and are masked back to
32 bits), so one trial trained alone (`objectives.training.trainer`) and the same trial in a
batch of K (`objectives.training.batched`) draw exactly the same samples, on a CPU as on a
GPU, with no random generator to keep in step and nothing computed on the host: a captured
CUDA graph replays it as it is. (A 32-bit hash mod b is uniform to within b / 2^32.)
"""

from __future__ import annotations

import torch
from torch import Tensor

_MASK = 0xFFFFFFFF
_SALT = 0x5BD1E995  # keeps a trial's draws apart from its data (seed) and weights (seed + 1)


def _mix(x: Tensor) -> Tensor:
    """A 32-bit integer hash (two multiply-xorshift rounds), on int64 values in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


def indices(seed: Tensor, step: Tensor, b: Tensor, size: int) -> Tensor:
    """The samples (K, size) of step `step` of K trials, each (K,) int64: seeds, steps and
    training-set sizes; every index in [0, b) of its trial (an empty slot of a batch, b 0,
    draws sample 0: an integer remainder by zero would raise)."""
    j = torch.arange(size, device=seed.device, dtype=torch.long)
    x = _mix((seed.long() ^ _SALT) & _MASK)
    x = _mix(x ^ (step.long() & _MASK))
    x = _mix(x[:, None] ^ j)
    return x % b.long().clamp(min=1)[:, None]
