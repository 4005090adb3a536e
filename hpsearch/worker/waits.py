"""What a worker waits for, measured as it runs: `SlotClock` times its executor's empty slots
while its studies have room; the claims' waits for proposals are
`hpsearch.search.proposals.ClaimWaits`, one per study. `WaitRecorder` stores both in each
study (`hpsearch.results.waits`, shown by `hpsearch status`) at most every WAITS_SECONDS and
once more when the worker ends."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping

import optuna

from hpsearch.results.waits import WAITS_PREFIX, WAITS_SECONDS, Waits
from hpsearch.search.proposals import ClaimWaits
from storage import retry_transient
from storage.optuna_compat import study_id

logger = logging.getLogger(__name__)

# Seconds a write of the waits may spend on a database that does not answer.
WRITE_DEADLINE = 10.0


class SlotClock:
    """A worker's wall time since it started, and the part of it its executor had empty
    slots while its studies had room. The loop calls `empty` when slots are empty and it
    means to claim (at the start, after trials end), and `filled` when it stops claiming: the
    slots are full, or it wants no more; `room=False` when the studies had no room (every one
    full): that interval is not counted, so that a worker waiting for others' last trials is
    not charged for it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.empty_seconds = 0.0
        self._since: float | None = None

    def empty(self) -> None:
        if self._since is None:
            self._since = self._clock()

    def filled(self, room: bool = True) -> None:
        if self._since is not None and room:
            self.empty_seconds += self._clock() - self._since
        self._since = None

    @property
    def wall_seconds(self) -> float:
        return self._clock() - self.started

    def seconds_now(self) -> float:
        """Empty-slot seconds, the interval under way included."""
        running = 0.0 if self._since is None else self._clock() - self._since
        return self.empty_seconds + running


class WaitRecorder:
    """Writes a worker's waits into each of its studies' system attrs (WAITS_PREFIX + the
    worker's name): at most every WAITS_SECONDS (`maybe`), and at the end (`write`). A write
    that fails is logged, never raised: no trial fails for it."""

    def __init__(
        self,
        storage: optuna.storages.RDBStorage,
        studies: Mapping[str, optuna.Study],
        worker: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.studies = studies
        self.key = WAITS_PREFIX + worker
        self._clock = clock
        self._written = clock()

    def maybe(self, slots: SlotClock, claims: Mapping[str, ClaimWaits]) -> None:
        if self._clock() - self._written >= WAITS_SECONDS:
            self.write(slots, claims)

    def write(self, slots: SlotClock, claims: Mapping[str, ClaimWaits]) -> None:
        self._written = self._clock()
        wall, empty = slots.wall_seconds, slots.seconds_now()
        for name, study in self.studies.items():
            waits = claims.get(name, ClaimWaits())
            record = Waits(wall, empty, waits.claims, waits.waited, waits.seconds)
            try:
                retry_transient(
                    functools.partial(
                        self.storage.set_study_system_attr,
                        study_id(study),
                        self.key,
                        record.to_attrs(),
                    ),
                    f"recording the waits of {name}",
                    deadline=WRITE_DEADLINE,
                )
            except Exception as e:
                logger.warning("could not record the waits of %s: %s", name, e)


def summary(slots: SlotClock, claims: Mapping[str, ClaimWaits]) -> Waits:
    """The worker's waits over all its studies (for its log)."""
    return Waits(
        wall_seconds=slots.wall_seconds,
        empty_seconds=slots.seconds_now(),
        claims=sum(c.claims for c in claims.values()),
        waited_claims=sum(c.waited for c in claims.values()),
        wait_seconds=sum(c.seconds for c in claims.values()),
    )
