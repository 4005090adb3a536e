"""The calibration task: a known function in place of training, for measuring the service
itself (storage and sampler overhead, many-worker correctness, fault handling).

Value: -sum((x_i - 1)^2) over `dims` dimensions in [-5, 5], at most 0 at x = 1. Each trial
takes `seconds` of wall time (a stand-in for training) and needs no torch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

TASK = "calibration"
LOW, HIGH = -5.0, 5.0


@dataclass(frozen=True)
class CalibrationStudy:
    label: str
    dims: int = 2
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if not self.label or not self.label.replace("-", "").isalnum():
            raise ValueError(f"label must be letters, digits and '-', got {self.label!r}")
        if not 1 <= self.dims <= 64:
            raise ValueError(f"dims must be in [1, 64], got {self.dims}")
        if not 0.0 <= self.seconds <= 3600.0:
            raise ValueError(f"seconds must be in [0, 3600], got {self.seconds}")

    @property
    def name(self) -> str:
        return f"{TASK}-{self.label}"

    def to_attrs(self) -> dict[str, Any]:
        return {"task": TASK, **asdict(self)}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> CalibrationStudy:
        return cls(label=attrs["label"], dims=int(attrs["dims"]), seconds=float(attrs["seconds"]))


@dataclass(frozen=True)
class CalibrationConfig:
    x: tuple[float, ...]
    seconds: float
    seed: int

    def to_attrs(self) -> dict[str, Any]:
        return {"x": list(self.x), "seconds": self.seconds, "seed": self.seed}


@dataclass(frozen=True)
class CalibrationResult:
    value: float
    seconds: float
    diverged: bool = False

    def to_attrs(self) -> dict[str, Any]:
        return {"value": self.value, "seconds": self.seconds}


def suggest_config(
    trial: optuna.trial.BaseTrial, study: CalibrationStudy, seed: int
) -> CalibrationConfig:
    x = tuple(trial.suggest_float(f"x{i}", LOW, HIGH) for i in range(study.dims))
    return CalibrationConfig(x=x, seconds=study.seconds, seed=seed)


def run(config: CalibrationConfig) -> CalibrationResult:
    start = time.perf_counter()
    if config.seconds > 0:
        time.sleep(config.seconds)
    value = -sum((xi - 1.0) ** 2 for xi in config.x)
    return CalibrationResult(value=value, seconds=time.perf_counter() - start)
