"""Small capacity configs for tests: a tiny network that trains in milliseconds."""

from typing import Any

from objectives.tasks.capacity.study import CapacityConfig

SMALL = dict(
    arch="rnn",
    n_in=16,
    hidden_size=8,
    depth=1,
    unroll=3,
    b=60,
    learning_rate=0.01,
    init_scale=1.0,
)


def capacity_config(**overrides: Any) -> CapacityConfig:
    return CapacityConfig(**{**SMALL, **overrides})
