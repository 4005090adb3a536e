"""The capacity score: mutual information between true and predicted labels, in bits."""

from __future__ import annotations

import math


def binary_entropy(p: float) -> float:
    """H2(p) in bits, with H2(0) = H2(1) = 0."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    if p in (0.0, 1.0):
        return 0.0
    return -(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p))


def mutual_information_bits(b: int, errors: int) -> float:
    """I(Y; Yhat) = b * (1 - H2(p)) for a binary symmetric channel with error rate p = errors/b."""
    if b < 1:
        raise ValueError(f"b must be positive, got {b}")
    if not 0 <= errors <= b:
        raise ValueError(f"errors must lie in [0, b={b}], got {errors}")
    return b * (1.0 - binary_entropy(errors / b))


def bits_per_param(bits: float, num_params: int) -> float:
    if num_params < 1:
        raise ValueError(f"num_params must be positive, got {num_params}")
    return bits / num_params
