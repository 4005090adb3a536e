"""The worker loop: claim a trial slot, train, tell, repeat, until the worker's own count or
every study's target is reached. Many workers (processes, machines) share the studies.

Trials go through ask-and-tell. A slot lock makes "count, then ask" atomic across workers, so
together they stop at exactly the target; heartbeats (recorded by this worker for every trial
it holds) let a dead worker's trial go stale, be failed and be retried with the same
parameters by whoever claims next. Every database step is retried on transient errors, and
written so that a retry neither loses nor double-counts a trial.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch.errors import HpsearchError
from hpsearch.progress import Progress
from hpsearch.samplers import make_sampler
from hpsearch.studies import StudyRecord
from objectives.registry import Task, TrialResult, get_task
from storage import (
    Heartbeat,
    HeartbeatPolicy,
    fail_orphaned_trials,
    retry_transient,
    trial_slot,
)

logger = logging.getLogger(__name__)

COUNTED = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
MAX_FAILURES_IN_A_ROW = 3
# How often a worker with nothing left to claim looks again while others still run trials
# (one of them may die, and its trial come back as a retry).
WAIT_POLL_SECONDS = 1.0
# Least time between two refreshes of the dashboard notes by one worker.
NOTE_SECONDS = 60.0


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

    @property
    def study_id(self) -> int:
        return self.study._study_id


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
        heartbeat: HeartbeatPolicy | None = None,
    ) -> None:
        if not records:
            raise HpsearchError("no studies to work on: create some with 'hpsearch create'")
        self.storage = storage
        self.device = device
        self.policy = heartbeat or HeartbeatPolicy()
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
        self._best_seen: dict[str, float] = {}
        self._noted = -NOTE_SECONDS
        self._stale_notes = False

    def run(self, n_trials: int | None = None, batch: int = 1, tf32: str = "auto") -> WorkerReport:
        """Run trials until `n_trials` of its own or every target; with batch > 1, train up
        to `batch` trials at once (tasks that support it; see hpsearch.batching), with TF32
        matmuls on a GPU per `tf32` (auto, on or off)."""
        report = WorkerReport()
        failures_in_a_row = 0
        with (
            Heartbeat(self.storage, self.policy.interval, self._sweep_all) as heartbeat,
            Progress(self.storage, [e.record for e in self.studies]) as progress,
        ):
            if batch > 1:
                from hpsearch.batching import run_batched

                run_batched(self, n_trials, batch, heartbeat, progress, report, tf32)
                self._refresh_note(None)
                return report
            while n_trials is None or report.complete + report.failed < n_trials:
                claimed = self._claim_any(heartbeat)
                if claimed is None:
                    if retry_transient(self._others_running, "checking other workers"):
                        time.sleep(WAIT_POLL_SECONDS)
                        continue
                    break
                entry, trial, config = claimed
                ok = self._run_trial(entry, trial, config, heartbeat)
                progress.update()
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
        self._refresh_note(None)
        return report

    # -- claiming --------------------------------------------------------------------------

    def _claim_any(self, heartbeat: Heartbeat) -> tuple[_Study, optuna.trial.Trial, Any] | None:
        """A new trial from the next study (in rotation) that still has room."""
        count = len(self.studies)
        for offset in range(count):
            index = (self._next + offset) % count
            entry = self.studies[index]
            claimed: tuple[optuna.trial.Trial, Any] | _Lost | None = _LOST
            while claimed is _LOST:
                claimed = retry_transient(
                    functools.partial(self._claim, entry, heartbeat),
                    f"claiming a trial of {entry.record.name}",
                )
            if claimed is not None:
                assert not isinstance(claimed, _Lost)
                self._next = (index + 1) % count
                return entry, claimed[0], claimed[1]
        return None

    def _claim(
        self, entry: _Study, heartbeat: Heartbeat
    ) -> tuple[optuna.trial.Trial, Any] | _Lost | None:
        """Count and ask under the study's slot lock. None: the study is full. _LOST: the
        trial just asked was failed by another worker's sweep before it was ours (possible
        only when the lock's connection was killed, which releases the lock); ask again."""
        study = entry.study
        with trial_slot(self.storage, entry.record.name):
            self._sweep(entry)
            trials = study.get_trials(deepcopy=False, states=COUNTED)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            if not waiting and len(trials) >= entry.record.target:
                return None
            # ask() takes a WAITING trial (a retry of a stale one) before making a new one;
            # the sampler sees the RUNNING trials of every other worker.
            trial = study.ask()
            try:
                heartbeat.hold(trial._trial_id)
                # Who runs it: for the dashboard, and for finding a dead worker's trial.
                self.storage.set_trial_user_attr(trial._trial_id, "worker", self.name)
                config = entry.task.suggest(
                    trial, entry.settings, trial_seed(entry.record.seed, trial.number)
                )
                # Safety net: should the lock ever have been lost (its connection killed),
                # a trial beyond the target is given back rather than run.
                counted = len(study.get_trials(deepcopy=False, states=COUNTED))
                if counted > entry.record.target:
                    raise _OverTarget
            except optuna.exceptions.UpdateFinishedTrialError:
                heartbeat.release(trial._trial_id)
                logger.warning(
                    "%s #%d was failed by another worker's sweep while being "
                    "claimed (lock lost with its connection); asking again",
                    entry.record.name,
                    trial.number,
                )
                return _LOST
            except BaseException as e:
                heartbeat.release(trial._trial_id)
                self._give_back(trial, "over_target" if isinstance(e, _OverTarget) else None)
                if isinstance(e, _OverTarget):
                    return None
                raise
        return trial, config

    def _give_back(self, trial: optuna.trial.Trial, reason: str | None) -> None:
        """Fail a trial this worker asked for but will not run (best effort: if even this
        fails, the orphan/stale sweeps fail it later)."""
        try:
            if reason:
                self.storage.set_trial_system_attr(trial._trial_id, f"hpsearch:{reason}", True)
            self.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except Exception as e:
            logger.warning("could not give back trial #%d: %s", trial.number, e)

    # -- sweeps ----------------------------------------------------------------------------
    # Sweeps run only while holding the study's slot lock: Optuna's stale check reads and then
    # fails a trial without a row lock, so two workers sweeping at once would each queue a
    # retry of the same dead trial.

    def _sweep(self, entry: _Study) -> None:
        """Fail (and queue retries of) trials whose workers stopped beating or never beat.
        Call with the slot lock held."""
        optuna.storages.fail_stale_trials(entry.study)
        fail_orphaned_trials(self.storage, entry.study_id)

    def _sweep_all(self) -> None:
        for entry in self.studies:
            with trial_slot(self.storage, entry.record.name):
                self._sweep(entry)

    def _others_running(self) -> bool:
        """Whether another worker still holds a trial that may yet fail and need a retry."""
        self._sweep_all()
        states = (TrialState.RUNNING, TrialState.WAITING)
        return any(entry.study.get_trials(deepcopy=False, states=states) for entry in self.studies)

    # -- running and telling ---------------------------------------------------------------

    def _run_trial(
        self, entry: _Study, trial: optuna.trial.Trial, config: Any, heartbeat: Heartbeat
    ) -> bool:
        name = entry.record.name
        try:
            result = entry.task.run(config, self.device)
        except KeyboardInterrupt:
            # Stopped (Ctrl-C, SIGTERM from `docker compose stop`): fail the trial and queue
            # its parameters again, as for a crashed worker, with further signals held off.
            previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                self._finish(trial, heartbeat, None, {"interrupted": True}, f"stopping {name}")
                retry_transient(
                    functools.partial(self._requeue, entry, trial),
                    f"requeueing {name} #{trial.number}",
                    deadline=30,
                )
            finally:
                signal.signal(signal.SIGTERM, previous)
            logger.warning("%s #%d: interrupted; failed and queued again", name, trial.number)
            raise
        except Exception as e:
            error = f"{type(e).__name__}: {e}"[:1000]
            self._finish(trial, heartbeat, None, {"error": error}, f"failing {name}")
            logger.error("%s #%d failed: %s", name, trial.number, error)
            return False
        self._report(entry, trial, config, result, heartbeat)
        return True

    def _report(
        self,
        entry: _Study,
        trial: optuna.trial.Trial,
        config: Any,
        result: TrialResult,
        heartbeat: Heartbeat,
    ) -> None:
        """Store a finished trial's result and tell its value."""
        name = entry.record.name
        attrs = {**result.to_attrs(), "config": config.to_attrs(), "worker": self.name}
        self._finish(trial, heartbeat, result, attrs, f"reporting {name} #{trial.number}")
        self._log(name, trial.number, result)
        self._refresh_note(entry, result.value)

    def _stop_trial(
        self, entry: _Study, trial: optuna.trial.Trial, heartbeat: Heartbeat, attrs: dict[str, Any]
    ) -> None:
        """Fail a trial this worker holds and queue its parameters again."""
        name = entry.record.name
        if self._finish(trial, heartbeat, None, attrs, f"stop {name}"):
            retry_transient(
                functools.partial(self._requeue, entry, trial),
                f"requeueing {name} #{trial.number}",
                deadline=30,
            )

    def _refresh_note(self, entry: _Study | None, value: float = 0.0) -> None:
        """Keep the dashboard's notes and figure current for this worker's studies: on a new
        best, at most once a minute per worker (the figure reads every study's trials), and
        once more when the worker finishes (entry None). Never fails a trial."""
        names = [e.record.name for e in self.studies if e.record.task == "capacity"]
        if not names:
            return
        if entry is not None:
            name = entry.record.name
            improved = value > self._best_seen.get(name, float("-inf"))
            self._best_seen[name] = max(value, self._best_seen.get(name, float("-inf")))
            now = time.monotonic()
            if not improved or now - self._noted < NOTE_SECONDS:
                self._stale_notes = self._stale_notes or improved
                return
            self._noted = now
        elif not self._stale_notes and self._noted >= 0:
            return
        self._stale_notes = False
        try:
            from hpsearch.notes import publish

            retry_transient(
                lambda: publish(self.storage, names), "updating the dashboard notes", deadline=60
            )
        except Exception as e:
            logger.warning("could not update the dashboard notes: %s", e)

    def _requeue(self, entry: _Study, trial: optuna.trial.Trial) -> None:
        """Queue a failed trial's parameters again (Optuna's retry callback, which records
        `failed_trial` and `retry_history` and honours the retry limit)."""
        frozen = self.storage.get_trial(trial._trial_id)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=self.policy.max_retry)(
            entry.study, frozen
        )

    def _finish(
        self,
        trial: optuna.trial.Trial,
        heartbeat: Heartbeat,
        result: TrialResult | None,
        attrs: dict[str, Any],
        what: str,
    ) -> bool:
        """Write attrs, then the final state: COMPLETE with the value, or FAIL. Retried as a
        whole; a state already written by an earlier attempt is not written twice. True if
        this worker wrote the final state (False: a stale-trial sweep failed it first)."""
        trial_id = trial._trial_id
        written: list[bool] = []

        def write() -> TrialState:
            try:
                for key, value in attrs.items():
                    self.storage.set_trial_user_attr(trial_id, key, value)
                state = self.storage.get_trial(trial_id).state
                if state.is_finished():
                    return state  # an earlier attempt got through, or a sweep failed it
                final = TrialState.FAIL if result is None else TrialState.COMPLETE
                values = None if result is None else [result.value]
                self.storage.set_trial_state_values(trial_id, state=final, values=values)
                written.append(True)
                return final
            except optuna.exceptions.UpdateFinishedTrialError:
                return self.storage.get_trial(trial_id).state

        try:
            final = retry_transient(write, what)
        finally:
            heartbeat.release(trial_id)
        if result is not None and final != TrialState.COMPLETE:
            logger.warning(
                "trial #%d was marked %s by a stale-trial sweep before its result (%g) "
                "could be written (heartbeats late?); its retry runs the same parameters",
                trial.number,
                final.name,
                result.value,
            )
        return bool(written)

    @staticmethod
    def _log(name: str, number: int, result: TrialResult) -> None:
        attrs = result.to_attrs()
        if "bits" not in attrs:
            logger.info(
                "%s #%d: value %.6g in %.2fs",
                name,
                number,
                result.value,
                attrs.get("seconds", float("nan")),
            )
            return
        logger.info(
            "%s #%d: %.1f bits (%.2f bits/param) depth=%s b=%s%s in %.1fs",
            name,
            number,
            result.value,
            attrs.get("bits_per_param", float("nan")),
            attrs.get("depth"),
            attrs.get("b"),
            " DIVERGED" if result.diverged else "",
            attrs.get("seconds", float("nan")),
        )


class _OverTarget(Exception):
    pass


class _Lost:
    """The marker for a claim to be made again."""


_LOST = _Lost()
