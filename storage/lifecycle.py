"""The trial lifecycle, the same for every task, sampler and worker loop: claim a trial under
the study's slot lock, complete it, prune it, fail it, stop it and queue it again exactly once,
and tell whether other workers still hold trials.

Every step is retried on transient database errors and written so that a retry neither loses
nor double-counts a trial. Sweeps of stale and orphaned trials run only under the slot lock:
Optuna's stale check reads and then fails a trial without a row lock, so two workers sweeping
at once would each queue a retry of the same dead trial.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import optuna
from optuna.trial import TrialState

from storage.heartbeat import Heartbeat, fail_orphaned_trials
from storage.optuna_compat import study_id, trial_id
from storage.retry import retry_transient
from storage.slots import trial_slot

logger = logging.getLogger(__name__)
T = TypeVar("T")

# The trials that take a place of a study's target: run (to the end, or until pruned), running,
# or queued.
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
# Seconds a stop may spend writing (a stopping worker should not hang on a dead database).
STOP_DEADLINE = 30.0


@dataclass(frozen=True)
class Claim(Generic[T]):
    """A trial this worker holds (its heartbeat is recorded), and what `prepare` made of it."""

    trial: optuna.trial.Trial
    prepared: T

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def trial_id(self) -> int:
        return trial_id(self.trial)


class _OverTarget(Exception):
    pass


class _Lost:
    """The trial just asked was failed by another worker's sweep before it was ours."""


class StudyTrials:
    """One study's trials as a worker handles them. `target` counts COMPLETE, RUNNING and
    WAITING trials: workers together stop at exactly that many."""

    def __init__(
        self,
        storage: optuna.storages.RDBStorage,
        study: optuna.Study,
        target: int,
        max_retry: int,
    ) -> None:
        self.study = study
        self.storage = storage
        self.name = study.study_name
        self.target = target
        self.max_retry = max_retry

    @property
    def study_id(self) -> int:
        return study_id(self.study)

    # -- claiming --------------------------------------------------------------------------

    def claim(
        self,
        heartbeat: Heartbeat,
        worker: str,
        prepare: Callable[[optuna.trial.Trial], T],
        n: int = 1,
        *,
        queued_only: bool = False,
        under_lock: Callable[[], None] | None = None,
    ) -> list[Claim[T]]:
        """Up to `n` new trials (queued ones first, oldest first) while the study has room, in
        one hold of the slot lock; none if it is full. `prepare` runs under the lock with each
        trial asked (the task's suggest: trial -> config). `queued_only`: take only queued
        (WAITING) trials, fewer (or none) if other workers took them first, so that no ask
        samples under the lock. `under_lock` runs in the same hold, after the sweep and before
        the asks (a sampler's queue adds its proposals there: `hpsearch.search.proposals`);
        like the whole claim it is retried on a transient error, so it must be idempotent."""
        return retry_transient(
            functools.partial(
                self._claim_once, heartbeat, worker, prepare, n, queued_only, under_lock
            ),
            f"claiming trials of {self.name}",
        )

    def _claim_once(
        self,
        heartbeat: Heartbeat,
        worker: str,
        prepare: Callable[[optuna.trial.Trial], T],
        n: int,
        queued_only: bool,
        under_lock: Callable[[], None] | None,
    ) -> list[Claim[T]]:
        claims: list[Claim[T]] = []
        with trial_slot(self.storage, self.name):
            self._sweep()
            if under_lock is not None:
                under_lock()
            try:
                while len(claims) < n:
                    trials = self.study.get_trials(deepcopy=False, states=COUNTED)
                    waiting = any(t.state == TrialState.WAITING for t in trials)
                    if not waiting and (queued_only or len(trials) >= self.target):
                        break
                    claim = self._ask(heartbeat, worker, prepare)
                    if claim is None:
                        break
                    if not isinstance(claim, _Lost):
                        claims.append(claim)
            except BaseException:
                # Retried as a whole (or the worker stops): what was asked is given back.
                for claim in claims:
                    heartbeat.release(claim.trial_id)
                    self._give_back(claim.trial, None)
                raise
        return claims

    def _ask(
        self, heartbeat: Heartbeat, worker: str, prepare: Callable[[optuna.trial.Trial], T]
    ) -> Claim[T] | _Lost | None:
        """One trial, asked under the lock: ask() takes a WAITING trial (a retry) before making
        a new one, and the sampler sees the RUNNING trials of every other worker. None: it
        would exceed the target (given back); _Lost: a sweep failed it first (ask again)."""
        trial = self.study.ask()
        try:
            heartbeat.hold(trial_id(trial))
            # Who runs it: for the dashboard, and for finding a dead worker's trial.
            self.storage.set_trial_user_attr(trial_id(trial), "worker", worker)
            prepared = prepare(trial)
            # Safety net: should the lock ever have been lost (its connection killed), a trial
            # beyond the target is given back rather than run.
            if len(self.study.get_trials(deepcopy=False, states=COUNTED)) > self.target:
                raise _OverTarget
        except optuna.exceptions.UpdateFinishedTrialError:
            # Possible only when the lock's connection was killed, which releases the lock.
            heartbeat.release(trial_id(trial))
            logger.warning(
                "%s #%d was failed by another worker's sweep while being claimed (lock lost "
                "with its connection); asking again",
                self.name,
                trial.number,
            )
            return _Lost()
        except BaseException as e:
            heartbeat.release(trial_id(trial))
            over = isinstance(e, _OverTarget)
            self._give_back(trial, "over_target" if over else None)
            if over:
                return None
            raise
        return Claim(trial, prepared)

    def _give_back(self, trial: optuna.trial.Trial, reason: str | None) -> None:
        """Fail a trial this worker asked for but will not run (best effort: if even this
        fails, the orphan and stale sweeps fail it later)."""
        try:
            if reason:
                self.storage.set_trial_system_attr(trial_id(trial), f"hpsearch:{reason}", True)
            self.storage.set_trial_state_values(trial_id(trial), state=TrialState.FAIL)
        except Exception as e:
            logger.warning("could not give back trial #%d: %s", trial.number, e)

    # -- ending ----------------------------------------------------------------------------

    def complete(
        self, claim: Claim[Any], heartbeat: Heartbeat, value: float, attrs: dict[str, Any]
    ) -> bool:
        """Write attrs, then COMPLETE with the value. True if this worker wrote the state;
        False if a stale-trial sweep failed the trial first (its retry runs the same
        parameters)."""
        written = self._finish(
            claim, heartbeat, TrialState.COMPLETE, value, attrs, f"reporting {self.name}"
        )
        if not written:
            logger.warning(
                "%s #%d was marked failed by a stale-trial sweep before its result (%g) could "
                "be written (heartbeats late?); its retry runs the same parameters",
                self.name,
                claim.number,
                value,
            )
        return written

    def prune(
        self, claim: Claim[Any], heartbeat: Heartbeat, value: float, attrs: dict[str, Any]
    ) -> bool:
        """Write attrs, then PRUNED with the value reached (its last report). True if this
        worker wrote the state."""
        return self._finish(
            claim, heartbeat, TrialState.PRUNED, value, attrs, f"pruning {self.name}"
        )

    def fail(self, claim: Claim[Any], heartbeat: Heartbeat, attrs: dict[str, Any]) -> bool:
        """Write attrs, then FAIL. True if this worker wrote the state."""
        return self._finish(claim, heartbeat, TrialState.FAIL, None, attrs, f"failing {self.name}")

    def report(self, claim: Claim[Any], value: float, step: int) -> None:
        """An intermediate value: the best value so far at a checkpoint (a step reported
        twice, by a retried write, keeps the first)."""

        def write() -> None:
            try:
                self.storage.set_trial_intermediate_value(claim.trial_id, step, value)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # a sweep failed it; the worker finds out when it tells the result

        retry_transient(write, f"reporting {self.name} #{claim.number} at step {step}")

    def should_prune(self, claim: Claim[Any]) -> bool:
        """The study's pruner's verdict on the trial's reports so far."""
        study = self.study
        return retry_transient(
            lambda: study.pruner.prune(study, self.storage.get_trial(claim.trial_id)),
            f"asking the pruner of {self.name}",
        )

    def stop(self, claim: Claim[Any], heartbeat: Heartbeat, attrs: dict[str, Any]) -> None:
        """Fail a trial this worker will not finish (it is stopping) and queue its parameters
        again, exactly once: not if a stale-trial sweep has queued it already."""
        what = f"stopping {self.name} #{claim.number}"
        self._finish(claim, heartbeat, TrialState.FAIL, None, attrs, what, deadline=STOP_DEADLINE)
        retry_transient(
            functools.partial(self._requeue_once, claim.trial_id), what, deadline=STOP_DEADLINE
        )

    def _finish(
        self,
        claim: Claim[Any],
        heartbeat: Heartbeat,
        final: TrialState,
        value: float | None,
        attrs: dict[str, Any],
        what: str,
        deadline: float = 900.0,
    ) -> bool:
        """Attrs, then the final state, retried as a whole; a state already written (by an
        earlier attempt, or by a sweep) is not written again. Idempotent."""
        trial_id = claim.trial_id
        written: list[bool] = []

        def write() -> None:
            try:
                for key, item in attrs.items():
                    self.storage.set_trial_user_attr(trial_id, key, item)
                if self.storage.get_trial(trial_id).state.is_finished():
                    return  # an earlier attempt got through, or a sweep failed it
                values = None if value is None else [value]
                self.storage.set_trial_state_values(trial_id, state=final, values=values)
                written.append(True)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # finished between the read and the write: by a sweep

        try:
            retry_transient(write, f"{what} #{claim.number}", deadline=deadline)
        finally:
            heartbeat.release(trial_id)
        return bool(written)

    def _requeue_once(self, trial_id: int) -> bool:
        """Queue a failed trial's parameters again with Optuna's retry callback (which records
        `failed_trial` and `retry_history` and honours the retry limit), unless a retry of it
        exists already. Under the slot lock, as the sweeps that queue retries are."""
        with trial_slot(self.storage, self.name):
            frozen = self.storage.get_trial(trial_id)
            if frozen.state != TrialState.FAIL:
                return False
            for other in self.study.get_trials(deepcopy=False):
                history = other.system_attrs.get("retry_history") or []
                if history and history[-1] == frozen.number:
                    return False  # a sweep queued it already
            callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=self.max_retry)
            callback(self.study, frozen)
            return True

    # -- sweeps ----------------------------------------------------------------------------

    def _sweep(self) -> None:
        """Fail (and queue retries of) trials whose workers stopped beating or never beat.
        Call with the slot lock held."""
        optuna.storages.fail_stale_trials(self.study)
        fail_orphaned_trials(self.storage, self.study_id)

    def sweep(self) -> None:
        with trial_slot(self.storage, self.name):
            self._sweep()

    def others_running(self) -> bool:
        """After a sweep: whether any trial is RUNNING or WAITING, one that may yet fail and
        come back as a retry."""
        self.sweep()
        states = (TrialState.RUNNING, TrialState.WAITING)
        return bool(self.study.get_trials(deepcopy=False, states=states))
