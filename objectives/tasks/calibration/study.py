"""The calibration task: a known function in place of training, for measuring the service
itself (storage and sampler overhead, many-worker correctness, fault handling).

Value: -sum((x_i - 1)^2) over `dims` dimensions in [-5, 5], at most 0 at x = 1. Each trial
takes `seconds` of wall time (a stand-in for training) and needs no torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

TASK = "calibration"
LOW, HIGH = -5.0, 5.0
# A calibration trial's "step": this much waiting (for checkpoints, and for how often a
# calibration batch looks for ended trials).
STEP_SECONDS = 0.005


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
    pruned: bool = False

    def to_attrs(self) -> dict[str, Any]:
        return {"value": self.value, "seconds": self.seconds, "pruned": self.pruned}


def suggest_config(
    trial: optuna.trial.BaseTrial, study: CalibrationStudy, seed: int
) -> CalibrationConfig:
    x = tuple(trial.suggest_float(f"x{i}", LOW, HIGH) for i in range(study.dims))
    return CalibrationConfig(x=x, seconds=study.seconds, seed=seed)


def run(
    config: CalibrationConfig,
    checkpoint: Callable[[int, float], bool] | None = None,
    every: int = 10,
) -> CalibrationResult:
    """Wait `seconds`, then score. With `checkpoint`, every `every` steps (of STEP_SECONDS)
    the value (known from the start: a flat learning curve) is shown to it; False stops the
    trial there, pruned."""
    start = time.perf_counter()
    if checkpoint is None:
        time.sleep(config.seconds)
        return CalibrationResult(value=value(config), seconds=time.perf_counter() - start)
    steps = round(config.seconds / STEP_SECONDS)
    for done in range(every, steps + 1, every):
        time.sleep(max(0.0, start + done * STEP_SECONDS - time.perf_counter()))
        if not checkpoint(done, value(config)):
            return CalibrationResult(value(config), time.perf_counter() - start, pruned=True)
    time.sleep(max(0.0, start + config.seconds - time.perf_counter()))
    return CalibrationResult(value=value(config), seconds=time.perf_counter() - start)


def value(config: CalibrationConfig) -> float:
    """The known function: -sum((x_i - 1)^2)."""
    return -sum((xi - 1.0) ** 2 for xi in config.x)


class NoMatmuls:
    """The precision verdict for calibration trials: they do no matmuls, so any precision
    gives the same values."""

    within_tolerance = True

    def describe(self) -> str:
        return "calibration trials do no matmuls"


class CalibrationBatch:
    """Calibration trials held together, as a batched trainer holds trials of one shape: a
    trial takes round(seconds / STEP_SECONDS) steps, and `run(steps)` takes that many steps
    of every trial at once (waiting STEP_SECONDS a step, side by side, as batched trials
    train side by side). So the batched worker loop can be measured and fault-tested without
    training."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        # config, steps taken, when it joined
        self._slots: list[list[Any] | None] = [None] * capacity

    @property
    def free(self) -> int:
        return self._slots.count(None)

    @property
    def occupied(self) -> int:
        return self.capacity - self.free

    def add(self, config: CalibrationConfig) -> int:
        if None not in self._slots:
            raise ValueError("no free slot")
        index = self._slots.index(None)
        self._slots[index] = [config, 0, time.perf_counter()]
        return index

    def resize(self, capacity: int) -> None:
        held = [s for s in self._slots if s is not None]
        if capacity < len(held):
            raise ValueError(f"cannot hold {len(held)} trials in {capacity} slots")
        self.capacity = capacity
        self._slots = [*held, *[None] * (capacity - len(held))]

    @staticmethod
    def _total(config: CalibrationConfig) -> int:
        return max(1, round(config.seconds / STEP_SECONDS))

    def run(self, steps: int) -> list[tuple[CalibrationConfig, CalibrationResult]]:
        """Up to `steps` steps of every trial (fewer if all of them end sooner); the ended."""
        held = [s for s in self._slots if s is not None]
        if not held:
            return []
        taken = min(steps, max(self._total(c) - done for c, done, _ in held))
        time.sleep(taken * STEP_SECONDS)
        now = time.perf_counter()
        ended = []
        for index, slot in enumerate(self._slots):
            if slot is None:
                continue
            config, done, joined = slot
            slot[1] = min(self._total(config), done + taken)
            if slot[1] == self._total(config):
                ended.append((config, CalibrationResult(value(config), now - joined)))
                self._slots[index] = None
        return ended

    def progress(self) -> list[tuple[CalibrationConfig, int, float]]:
        """(trial, steps taken, its value) for every trial held."""
        return [(s[0], s[1], value(s[0])) for s in self._slots if s is not None]

    def stop(self, config: CalibrationConfig) -> CalibrationResult:
        """End a trial now, pruned."""
        for index, slot in enumerate(self._slots):
            if slot is not None and slot[0] is config:
                self._slots[index] = None
                return CalibrationResult(value(config), time.perf_counter() - slot[2], pruned=True)
        raise ValueError("no such trial in this batch")
