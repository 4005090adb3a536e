"""The worker loop: claim a trial slot, train, tell, repeat, until the worker's own count or
every study's target is reached. Many workers (processes, machines) share the studies.

Trials go through ask-and-tell. A slot lock makes "count, then ask" atomic across workers, so
together they stop at exactly the target; heartbeats (recorded by this worker for every trial
it holds) let a dead worker's trial go stale, be failed and be retried with the same
parameters by whoever claims next.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch.errors import HpsearchError
from hpsearch.samplers import make_sampler
from hpsearch.studies import StudyRecord
from objectives.registry import Task, get_task
from storage import Heartbeat, trial_slot

logger = logging.getLogger(__name__)

COUNTED = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
MAX_FAILURES_IN_A_ROW = 3
# How often a worker with nothing left to claim looks again while others still run trials
# (one of them may die, and its trial come back as a retry).
WAIT_POLL_SECONDS = 1.0


def resolve_device(name: str) -> str:
    """auto: cuda when present, else cpu. Asking for cuda where there is none is an error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise HpsearchError("--device cuda: no CUDA device is available here")
    if name not in ("cpu", "cuda"):
        raise HpsearchError(f"--device {name!r}: choose auto, cpu or cuda")
    return name


def trial_seed(study_seed: int, trial_number: int) -> int:
    """The seed of a trial's data set and initial weights: fixed by study seed and number."""
    return (study_seed * 1_000_003 + trial_number * 7_919) % (2**31 - 1)


@dataclass
class _Study:
    record: StudyRecord
    study: optuna.Study
    settings: Any
    task: Task


@dataclass
class WorkerReport:
    complete: int = 0
    failed: int = 0
    per_study: dict[str, int] = field(default_factory=dict)


class Worker:
    def __init__(
        self,
        storage: optuna.storages.RDBStorage,
        records: list[StudyRecord],
        *,
        device: str,
        seed: int | None = None,
        heartbeat_interval: float = 10.0,
    ) -> None:
        if not records:
            raise HpsearchError("no studies to work on: create some with 'hpsearch create'")
        self.storage = storage
        self.device = device
        self.heartbeat_interval = heartbeat_interval
        # Workers must not share a sampler seed unless told to (--seed).
        self.seed = seed if seed is not None else secrets.randbelow(2**31)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.studies = []
        for index, record in enumerate(records):
            task = get_task(record.task)
            sampler = make_sampler(record.sampler, (self.seed + index) % 2**31)
            study = optuna.load_study(study_name=record.name, storage=storage, sampler=sampler)
            self.studies.append(_Study(record, study, task.study_from_attrs(record.attrs), task))
        self._next = 0

    def run(self, n_trials: int | None = None) -> WorkerReport:
        report = WorkerReport()
        failures_in_a_row = 0
        with Heartbeat(self.storage, self.heartbeat_interval, self._fail_stale) as heartbeat:
            while n_trials is None or report.complete + report.failed < n_trials:
                claimed = self._claim_any(heartbeat)
                if claimed is None:
                    if self._others_running():
                        time.sleep(WAIT_POLL_SECONDS)
                        continue
                    break
                entry, trial, config = claimed
                ok = self._run_trial(entry, trial, config, heartbeat)
                name = entry.record.name
                report.per_study[name] = report.per_study.get(name, 0) + 1
                if ok:
                    report.complete += 1
                    failures_in_a_row = 0
                else:
                    report.failed += 1
                    failures_in_a_row += 1
                    if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                        raise HpsearchError(
                            f"{failures_in_a_row} trials in a row failed; see the log above"
                        )
        return report

    def _claim_any(self, heartbeat: Heartbeat) -> tuple[_Study, optuna.trial.Trial, Any] | None:
        """A new trial from the next study (in rotation) that still has room."""
        count = len(self.studies)
        for offset in range(count):
            index = (self._next + offset) % count
            claimed = self._claim(self.studies[index], heartbeat)
            if claimed is not None:
                self._next = (index + 1) % count
                return self.studies[index], claimed[0], claimed[1]
        return None

    def _claim(self, entry: _Study, heartbeat: Heartbeat) -> tuple[optuna.trial.Trial, Any] | None:
        study = entry.study
        with trial_slot(self.storage, entry.record.name):
            optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False, states=COUNTED)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            if not waiting and len(trials) >= entry.record.target:
                return None
            # ask() takes a WAITING trial (a retry of a stale one) before making a new one;
            # the sampler sees the RUNNING trials of every other worker.
            trial = study.ask()
            heartbeat.hold(trial._trial_id)
            try:
                config = entry.task.suggest(
                    trial, entry.settings, trial_seed(entry.record.seed, trial.number)
                )
            except Exception:
                heartbeat.release(trial._trial_id)
                study.tell(trial, state=TrialState.FAIL)
                raise
        return trial, config

    def _fail_stale(self) -> None:
        """Fail (and queue retries of) trials whose workers stopped beating."""
        for entry in self.studies:
            optuna.storages.fail_stale_trials(entry.study)

    def _others_running(self) -> bool:
        """Whether another worker still holds a trial that may yet fail and need a retry."""
        self._fail_stale()
        for entry in self.studies:
            states = (TrialState.RUNNING, TrialState.WAITING)
            if entry.study.get_trials(deepcopy=False, states=states):
                return True
        return False

    def _run_trial(
        self, entry: _Study, trial: optuna.trial.Trial, config: Any, heartbeat: Heartbeat
    ) -> bool:
        study = entry.study
        try:
            result = entry.task.run(config, self.device)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            study.tell(trial, state=TrialState.FAIL)
            heartbeat.release(trial._trial_id)
            logger.warning("%s #%d: interrupted, marked failed", entry.record.name, trial.number)
            raise
        except Exception as e:
            trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:1000])
            study.tell(trial, state=TrialState.FAIL)
            heartbeat.release(trial._trial_id)
            logger.error(
                "%s #%d failed: %s: %s", entry.record.name, trial.number, type(e).__name__, e
            )
            return False
        for key, value in result.to_attrs().items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("config", config.to_attrs())
        trial.set_user_attr("worker", self.name)
        study.tell(trial, result.bits)
        heartbeat.release(trial._trial_id)
        attrs = result.to_attrs()
        logger.info(
            "%s #%d: %.1f bits (%.2f bits/param) depth=%s b=%s%s in %.1fs",
            entry.record.name,
            trial.number,
            result.bits,
            attrs.get("bits_per_param", float("nan")),
            attrs.get("depth"),
            attrs.get("b"),
            " DIVERGED" if result.diverged else "",
            attrs.get("seconds", float("nan")),
        )
        return True
