"""Float32 matmuls at lower precision (TF32 on NVIDIA GPUs: 10 mantissa bits in, float32
sums), used only where a probe shows that a task's results stay within tolerance.

`objectives.training.matmul.matmul_precision` sets the precision while a block runs. `probe` trains
the same trials twice from the same start, at full precision and at the lower one, and
compares what the score is made of: the task's measure (capacity: the error count, as a
fraction of b; per-unit: the fraction reconstructed) and the loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from objectives.training.batched import BatchedTrainer, shape_key
from objectives.training.interface import Objective
from objectives.training.matmul import FULL, PRECISIONS, matmul_precision

__all__ = [
    "FULL",
    "PRECISIONS",
    "ProbeResult",
    "matmul_precision",
    "probe",
    "probe_trials",
]

PROBE_STEPS = 50
PROBE_TRIALS = 4
TOLERANCE = 0.01


@dataclass(frozen=True)
class ProbeResult:
    precision: str
    # largest gap of the task's measure (its objective's `gap`: capacity |errors - errors at
    # full precision| / b; per-unit, of the fractions reconstructed)
    worst_error_gap: float
    worst_loss_gap: float  # largest relative gap of the final losses
    tolerance: float

    @property
    def within_tolerance(self) -> bool:
        return self.worst_error_gap <= self.tolerance and self.worst_loss_gap <= self.tolerance

    def describe(self) -> str:
        verdict = "within" if self.within_tolerance else "outside"
        return (
            f"{self.precision} matmuls {verdict} tolerance {self.tolerance:g} "
            f"(score gap {self.worst_error_gap:.4f}, loss gap {self.worst_loss_gap:.2e})"
        )


def probe_trials(config: Any, count: int = PROBE_TRIALS) -> list[Any]:
    """Trials like `config` on other data sets, for a probe: early stopping off."""
    return [
        replace(config, seed=config.seed + 7919 * (i + 1), max_steps=PROBE_STEPS, patience=10**7)
        for i in range(count)
    ]


def probe(
    configs: Sequence[Any],
    objective: Objective,
    device: str,
    precision: str,
    *,
    tolerance: float = TOLERANCE,
) -> ProbeResult:
    """Train `configs` (one shape, of `objective`'s task) twice from the same start, at full
    float32 matmul precision and at `precision`, and compare every trial's score and final
    loss."""
    score_gap = objective.gap
    runs = []
    for p in (FULL, precision):
        trainer = BatchedTrainer(
            shape_key(configs[0], objective), len(configs), device, precision=p, cuda_graph=False
        )
        slots = {trainer.add(c): c for c in configs}
        ended = {id(c): r for c, r in trainer.run(10**9)}
        runs.append([ended[id(slots[i])] for i in sorted(slots)])
    error_gap = loss_gap = 0.0
    for full, low in zip(*runs, strict=True):
        error_gap = max(error_gap, score_gap(full, low))
        if math.isfinite(full.final_loss) and math.isfinite(low.final_loss):
            gap = abs(full.final_loss - low.final_loss) / max(abs(full.final_loss), 1e-12)
        else:
            gap = 0.0 if full.diverged == low.diverged else math.inf
        loss_gap = max(loss_gap, gap)
    return ProbeResult(precision, error_gap, loss_gap, tolerance)
