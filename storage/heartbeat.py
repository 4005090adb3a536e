"""Heartbeats for trials run through ask-and-tell, where Optuna's own heartbeat thread (which
covers only `study.optimize`) does not reach. One thread beats for every trial a worker holds."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

import optuna
import sqlalchemy
from optuna.trial import TrialState

logger = logging.getLogger(__name__)


class Heartbeat:
    """Records a heartbeat for each held trial every `interval` seconds, from one thread.

    `hold(trial_id)` beats at once (so that a worker killed a moment later still leaves a
    trial that goes stale), `release(trial_id)` stops beating for it. `sweep`, if given, runs
    after every round of beats: the worker uses it to fail other workers' stale trials
    promptly, not only when it next asks for a trial.
    """

    def __init__(
        self,
        storage: optuna.storages.RDBStorage,
        interval: float,
        sweep: Callable[[], None] | None = None,
    ) -> None:
        self._storage = storage
        self._interval = interval
        self._sweep = sweep
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hpsearch-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)

    def hold(self, trial_id: int) -> None:
        self._storage.record_heartbeat(trial_id)
        with self._lock:
            self._held.add(trial_id)

    def release(self, trial_id: int) -> None:
        with self._lock:
            self._held.discard(trial_id)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                held = sorted(self._held)
            for trial_id in held:
                try:
                    self._storage.record_heartbeat(trial_id)
                except Exception as e:  # a missed beat is retried next interval
                    logger.warning("heartbeat for trial id %d failed: %s", trial_id, e)
            if self._sweep is not None:
                try:
                    self._sweep()
                except Exception as e:
                    logger.warning("stale-trial sweep failed: %s", e)


_ORPHANS = sqlalchemy.text(
    "SELECT t.trial_id FROM trials t WHERE t.study_id = :study_id AND t.state = 'RUNNING' "
    "AND NOT EXISTS (SELECT 1 FROM trial_heartbeats h WHERE h.trial_id = t.trial_id)"
)


def fail_orphaned_trials(storage: optuna.storages.RDBStorage, study_id: int) -> list[int]:
    """Fail RUNNING trials that never got a first heartbeat.

    Call with the study's slot lock held. hpsearch workers ask for a trial and record its
    first heartbeat under that lock, so a trial without one was asked by a worker that died
    (or lost its connection) in that moment. Optuna's stale-trial check skips such trials,
    and one left RUNNING would hold a slot of the study's target forever. No clock is
    compared, so clock or time-zone differences between hosts do not matter.
    """
    with storage.engine.connect() as connection:
        ids = [row[0] for row in connection.execute(_ORPHANS, {"study_id": study_id})]
    failed = []
    for trial_id in ids:
        try:
            storage.set_trial_system_attr(trial_id, "hpsearch:orphaned", True)
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    if failed:
        logger.warning(
            "failed %d orphaned trial(s) without heartbeats: ids %s", len(failed), failed
        )
    return failed
