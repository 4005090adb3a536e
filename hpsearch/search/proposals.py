"""The proposal protocol of gp-batch: how workers share one study's GP fits.

A GP fit is the expensive part of a proposal, and it grows with the study. gp-batch proposes q
points per fit (`hpsearch.search.gp_batch`), and the points live in the study itself, one queue
shared by every worker (on every machine): each is a WAITING trial whose parameters are fixed
and whose system attr `PROPOSAL_ATTR` marks it "<fit id>/<index>". Any worker's `study.ask()`
takes the oldest WAITING trial first, as it takes a retry, without fitting. The study's slot
lock (`storage.slots`) makes "count, then queue or ask" atomic, so the workers together never
exceed the study's target; the fit itself happens outside the lock, by one worker at a time,
which holds the study's fit lease (the study system attr `FIT_ATTR`:
{"by": worker, "until": unix time}; a lease whose worker died runs out by itself).

One worker claiming n trials of a study (q = max(n, the sampler's q); `plan_claim`, then
`claim`), with the study's queue (its WAITING trials, `Backlog.queued`) and room (trials that may
still be added before the target, `Backlog.room`) read without the lock:

    FULL     room == 0: claim n (retries only, or nothing).
    DEEP     queued >= n and queued >= q // 2: claim n from the queue only.
    SHORT    otherwise: try to take the fit lease (under the lock):
      FIT      taken: fit once and propose min(q, room) points, outside the lock, renewing the
               lease every FIT_LEASE_SECONDS / 3; then claim n, the claim queueing the points
               and ending the lease in the same hold of the lock (`ProposalQueue.queueing`,
               run by `StudyTrials.claim` after its sweep). Queued are only as many as the
               room, none already queued (the same mark, by an earlier attempt of a retried
               claim), none near a trial the fit did not know (`Proposals.near`). No points (the
               random start-up, or a study gp-batch does not batch): the lease ends and the
               claim's asks sample, as any sampler's do. Points all dropped as near: the
               claim's ask samples under the lock, as gp's does, so the fitter always gets
               a trial while the study has room.
      TAKEN    another worker's lease holds (or a proposer's, below):
               something queued: claim min(n, queued) from the queue only (the slots it
                 leaves empty are claimed again at once, and wait only if the queue is
                 empty by then);
               nothing queued, not waiting (a worker of several studies): pass the study
                 over (`claim` returns None), and come back to it, waiting, once no other
                 study has trials to give;
               nothing queued, waiting: WAIT until the lease ends or runs out (a look at
                 the lease every QUEUE_POLL_SECONDS, at most FIT_LEASE_SECONDS; not at the
                 trials, so that many waiting workers do not starve the one that fits);
                 then claim what is
                 queued (queue only), or claim n when the study is full, or, with nothing
                 queued and room left (the fitter died, or proposed nothing), start again
                 from SHORT.
    A claim from the queue only takes WAITING trials and never samples under the lock. If it
    comes back empty (other workers took the queue between the look and the claim), the
    worker plans again from the top.

Other samplers (gp, tpe, random) skip all this: claim n, each ask sampling under the lock.

Proposals ahead of need (`refill`, run by each worker's proposer thread,
`hpsearch.worker.proposer`, while its trials train) keep the queue `depth` deep (one batch:
the sampler's q, or the worker's executor capacity if larger), so that claims find it DEEP
and never wait for a fit; the claim path above stays as the fallback (the start-up, a queue
emptied faster than a fit). One look, per study:

    TAKEN    some worker's fit lease holds (one small read, not the trials): nothing.
    FULL     room == 0: nothing.
    DEEP     queued >= depth: nothing.
    START-UP fewer results than the sampler's random start-up, or no more than at the last
             look whose fit proposed nothing: nothing (no lease and no lock per look).
    FIT      otherwise take the fit lease (the same lease, under the lock: one fit per study
             at a time across workers, proposers and claims), fit and propose
             min(room, max(q, depth - queued)) points outside the lock while renewing the
             lease, then queue them and end the lease in one hold of the lock
             (`ProposalQueue.queue`: the same `_queue` as a claim's, so never past the
             target and never near a trial the fit did not know). A proposer that dies
             stops renewing; its lease runs out as a claim's does.

Each claim's wait for proposals (its own fit, or another's fit it waited out; with other
samplers the claim itself, whose asks sample under the lock) is added to `ClaimWaits`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    NamedTuple,
    Protocol,
    TypeVar,
    runtime_checkable,
)

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.search.gp import normalize, scaled_distances
from hpsearch.search.optuna_compat import get_params, gp_search_space
from storage.lifecycle import COUNTED, Claim, StudyTrials
from storage.retry import retry_transient
from storage.slots import trial_slot

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from storage.heartbeat import Heartbeat

logger = logging.getLogger(__name__)
T = TypeVar("T")

# The trial system attr that marks a queued proposal (WAITING, asked like a retry):
# "<fit id>/<index>".
PROPOSAL_ATTR = "hpsearch:proposal"
# The study system attr of the fit lease: {"by": worker, "until": unix time}.
FIT_ATTR = "hpsearch:fitting"
FIT_LEASE_SECONDS = 120.0
# How often a worker waiting for another's proposals looks at the fit lease.
QUEUE_POLL_SECONDS = 0.25


def point(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's point: a WAITING trial's fixed (queued) parameters, else its parameters (with
    a RUNNING trial's relative ones, as GPSampler shares them)."""
    if trial.state == TrialState.WAITING:
        return dict(trial.system_attrs.get("fixed_params") or {})
    return get_params(trial)


@dataclass(frozen=True)
class Proposals:
    """One fit's points for the study's queue, in the order they were chosen, and what the fit
    knew: the length scales of its GP (for `near`) and the trials whose points it saw."""

    id: str
    params: Sequence[dict[str, Any]]
    search_space: dict[str, BaseDistribution]
    length_scales: np.ndarray
    is_categorical: np.ndarray
    known: frozenset[int]  # trial numbers whose points the fit saw (results or pending)
    min_distance: float

    def near(self, params: dict[str, Any], trials: list[FrozenTrial]) -> bool:
        """Whether `params` lies within min_distance length scales of the point of a trial the
        fit did not know (another worker's queued batch, or a trial asked since the fit, or one
        that had no point yet at the fit): it is then not queued."""
        keys = self.search_space.keys()
        points = [
            point(t) for t in trials if t.number not in self.known and keys <= point(t).keys()
        ]
        if not points:
            return False
        space = gp_search_space.SearchSpace(self.search_space)
        x = normalize(space, [params])[0]
        distances = scaled_distances(
            x, normalize(space, points), self.length_scales, self.is_categorical
        )
        return bool(distances.min() < self.min_distance)


@runtime_checkable
class Proposer(Protocol):
    """A sampler that proposes points in batches for the queue (gp-batch)."""

    @property
    def q(self) -> int: ...

    def propose(self, study: optuna.Study, q: int | None = None) -> Proposals | None: ...


@dataclass(frozen=True)
class Backlog:
    """What a study's queue holds: WAITING trials (queued proposals and retries; an ask takes
    them first), and room: trials that may still be added before the target."""

    queued: int
    room: int


class ProposalQueue:
    """One study's queue of proposals and its fit lease, over the study's trials."""

    def __init__(self, trials: StudyTrials) -> None:
        self.trials = trials

    @property
    def _storage(self) -> optuna.storages.RDBStorage:
        return self.trials.storage

    def backlog(self) -> Backlog:
        """The queue as it stands (read without the lock: other workers may change it)."""
        return self.look()[0]

    def look(self) -> tuple[Backlog, int]:
        """The queue as it stands, and the study's results (COMPLETE and PRUNED trials), in
        one read without the lock."""
        trials = self.trials.study.get_trials(deepcopy=False, states=COUNTED)
        queued = sum(t.state == TrialState.WAITING for t in trials)
        results = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        backlog = Backlog(queued=queued, room=max(0, self.trials.target - len(trials)))
        return backlog, results

    # -- the fit lease ---------------------------------------------------------------------

    def start_fit(self, worker: str, seconds: float = FIT_LEASE_SECONDS) -> bool:
        """Take the study's fit lease for `seconds`, under the slot lock: True if this worker
        may now fit proposals for the queue, False while another worker's lease holds. The
        claim that queues the proposals ends it (`queueing`), else `end_fit`."""

        def take() -> bool:
            with trial_slot(self._storage, self.trials.name):
                now = time.time()
                if self._fitter(now) not in (None, worker):
                    return False
                self._set_lease(worker, now + seconds)
                return True

        return retry_transient(take, f"taking the fit lease of {self.trials.name}")

    @contextlib.contextmanager
    def keep_fit(self, worker: str, seconds: float = FIT_LEASE_SECONDS) -> Iterator[None]:
        """Renew this worker's fit lease every `seconds` / 3 while the body runs, so that a
        fit longer than the lease (a large study on a busy machine) is not taken for a dead
        one; a worker that dies stops renewing, and its lease runs out."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(seconds / 3):
                try:
                    with trial_slot(self._storage, self.trials.name):
                        if self._fitter(time.time()) == worker:
                            self._set_lease(worker, time.time() + seconds)
                except Exception as e:  # the lease then runs out; others fit instead
                    logger.debug("%s: could not renew the fit lease: %s", self.trials.name, e)

        thread = threading.Thread(target=renew, name=f"fit-lease {self.trials.name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)

    def end_fit(self, worker: str) -> None:
        """Give the fit lease back (if this worker holds it), under the slot lock."""

        def give() -> None:
            with trial_slot(self._storage, self.trials.name):
                self._end_fit(worker)

        retry_transient(give, f"ending the fit lease of {self.trials.name}")

    def fitting(self) -> bool:
        """Whether some worker's fit lease holds (read without the lock)."""
        return self._fitter(time.time()) is not None

    def wait_for_queue(self, seconds: float = FIT_LEASE_SECONDS) -> Backlog:
        """While another worker fits: wait until its lease ends (its claim queues all its
        proposals, then ends the lease in the same hold of the lock) or runs out, for at most
        `seconds`; returns the queue then. It looks only at the lease while it waits (one
        small read every QUEUE_POLL_SECONDS), not at the study's trials: many waiting
        workers must not starve the one that fits."""
        deadline = time.monotonic() + seconds
        while self.fitting() and time.monotonic() < deadline:
            time.sleep(QUEUE_POLL_SECONDS)
        return self.backlog()

    def _fitter(self, now: float) -> str | None:
        attrs = self._storage.get_study_system_attrs(self.trials.study_id)
        lease = attrs.get(FIT_ATTR)
        if not isinstance(lease, dict) or float(lease.get("until", 0)) <= now:
            return None
        return str(lease.get("by"))

    def _set_lease(self, worker: str, until: float) -> None:
        lease: dict[str, Any] = {"by": worker, "until": until}
        self._storage.set_study_system_attr(self.trials.study_id, FIT_ATTR, lease)

    def _end_fit(self, worker: str) -> None:
        """Call with the slot lock held."""
        if self._fitter(time.time()) == worker:
            self._set_lease(worker, 0)

    # -- queueing --------------------------------------------------------------------------

    def queueing(self, proposals: Proposals, worker: str) -> Callable[[], None]:
        """What a claim runs under the slot lock (`StudyTrials.claim`'s `under_lock`, after
        its sweep and before its asks): queue the proposals, then end this worker's fit
        lease, in the same hold."""

        def queue_then_end_fit() -> None:
            self._queue(proposals)
            self._end_fit(worker)

        return queue_then_end_fit

    def queue(self, proposals: Proposals, worker: str) -> int:
        """Queue proposals and end this worker's fit lease, in one hold of the slot lock
        (a proposer's refill: no claim with it); how many were queued. Retried on transient
        errors, queueing nothing twice."""

        def queue_then_end_fit() -> int:
            with trial_slot(self._storage, self.trials.name):
                queued = self._queue(proposals)
                self._end_fit(worker)
                return queued

        return retry_transient(queue_then_end_fit, f"queueing proposals of {self.trials.name}")

    def _queue(self, proposals: Proposals) -> int:
        """Queue proposals as WAITING trials (call with the slot lock held); returns how many.
        Idempotent: a proposal queued by an earlier attempt (same mark) is not queued again."""
        study = self.trials.study
        trials = study.get_trials(deepcopy=False)
        counted = [t for t in trials if t.state in COUNTED]
        marks = {t.system_attrs.get(PROPOSAL_ATTR) for t in trials}
        room = self.trials.target - len(counted)
        # The batch's own points (queued by an earlier attempt) were chosen knowing each other.
        others = [
            t
            for t in counted
            if not str(t.system_attrs.get(PROPOSAL_ATTR, "")).startswith(f"{proposals.id}/")
        ]
        queued = 0
        for index, params in enumerate(proposals.params):
            if queued >= room:
                break
            mark = f"{proposals.id}/{index}"
            if mark in marks or proposals.near(params, others):
                continue
            study.add_trial(
                optuna.trial.create_trial(
                    state=TrialState.WAITING,
                    system_attrs={"fixed_params": dict(params), PROPOSAL_ATTR: mark},
                )
            )
            queued += 1
        skipped = len(proposals.params) - queued
        if skipped:
            logger.debug(
                "%s: queued %d proposals, %d not (no room, or near a trial queued or run)",
                self.trials.name,
                queued,
                skipped,
            )
        return queued


class ClaimPlan(NamedTuple):
    """How to claim: `proposals` to queue (or None), `n` trials to claim (0: none now, the
    study's next proposals are being fitted elsewhere), and whether to take only queued
    trials (`StudyTrials.claim`'s `queued_only`: with the queue taken meanwhile, the claim
    comes back short and the worker plans again, instead of fitting under the lock)."""

    proposals: Proposals | None
    n: int
    queued_only: bool = False


def plan_claim(
    sampler: optuna.samplers.BaseSampler,
    queue: ProposalQueue,
    n: int,
    worker: str,
    wait: bool = True,
    waited: Callable[[float], None] | None = None,
) -> ClaimPlan:
    """What a worker does before claiming `n` trials of a study, outside the slot lock (the
    module docstring's states): proposals to queue in the claim, how many trials to claim,
    and whether from the queue only. Other samplers than gp-batch: ClaimPlan(None, n).
    `waited` is told the seconds of each fit of its own and each wait for another's."""
    if not isinstance(sampler, Proposer):
        return ClaimPlan(None, n)
    q = max(n, sampler.q)
    while True:
        state = queue.backlog()
        if state.room <= 0:
            return ClaimPlan(None, n)  # full: the claim finds nothing (or a retry)
        if state.queued >= n and state.queued >= q // 2:
            return ClaimPlan(None, n, queued_only=True)  # the queue is deep
        if queue.start_fit(worker):
            start = time.monotonic()
            try:
                with queue.keep_fit(worker):
                    proposals = sampler.propose(queue.trials.study, min(q, state.room))
            except BaseException:
                queue.end_fit(worker)
                raise
            if waited is not None and proposals is not None:  # None: no fit (start-up)
                waited(time.monotonic() - start)
            if proposals is None:  # the random start-up: asks sample, cheaply
                queue.end_fit(worker)
            # Should the claim find none of them queueable (all near trials run meanwhile),
            # its ask samples under the lock, as gp does: the fitter always gets a trial.
            return ClaimPlan(proposals, n)
        if state.queued or not wait:
            # Another worker (or a proposer) refills the queue: take what it holds now; the
            # slots left empty are claimed again at once. Nothing, not waiting: passed over.
            return ClaimPlan(None, min(n, state.queued), queued_only=True)
        start = time.monotonic()
        state = queue.wait_for_queue()
        if waited is not None:
            waited(time.monotonic() - start)
        if state.queued:
            return ClaimPlan(None, min(n, state.queued), queued_only=True)
        if state.room <= 0:
            return ClaimPlan(None, n)
        # The lease ended or ran out with nothing queued (its worker died, or had nothing to
        # propose): take it now.


def claim(
    queue: ProposalQueue,
    heartbeat: Heartbeat,
    worker: str,
    prepare: Callable[[optuna.trial.Trial], T],
    n: int,
    wait: bool = True,
    waits: ClaimWaits | None = None,
) -> list[Claim[T]] | None:
    """Up to `n` new trials of the queue's study, planned (`plan_claim`, retried on transient
    errors) and claimed; planned again when a claim from the queue only came back empty.
    [] when the study is full; None when the study is passed over (`wait` False, and another
    worker is fitting its next proposals with none queued). The time it waited for
    proposals is added to `waits`."""
    trials = queue.trials
    batched = isinstance(trials.study.sampler, Proposer)
    spent = 0.0

    def waited(seconds: float) -> None:
        nonlocal spent
        spent += seconds

    claims: list[Claim[T]] | None = None
    try:
        while True:
            how = retry_transient(
                functools.partial(
                    plan_claim, trials.study.sampler, queue, n, worker, wait=wait, waited=waited
                ),
                f"proposing trials of {trials.name}",
            )
            if how.n == 0:
                return None
            hook = None if how.proposals is None else queue.queueing(how.proposals, worker)
            start = time.monotonic()
            claims = trials.claim(
                heartbeat, worker, prepare, how.n, queued_only=how.queued_only, under_lock=hook
            )
            if not batched:  # its asks sampled under the lock: that was the proposal
                waited(time.monotonic() - start)
            if claims or not how.queued_only:
                return claims
            # Other workers took the queue between looking and claiming: plan again.
    finally:
        if waits is not None:
            waits.add(spent, claimed=bool(claims))


@dataclass
class ClaimWaits:
    """What one worker's claims of one study waited for proposals: a fit of its own (the
    fallback when the queue ran short), another worker's fit it waited out, or, for samplers
    that do not batch, the claim itself (its asks sample, gp's fit, under the lock).
    `claims` counts claims that got trials; `waited` those of them that waited at all (never
    more than `claims`); `seconds` every claim's wait, those that found the study full
    included."""

    claims: int = 0
    waited: int = 0
    seconds: float = 0.0

    def add(self, seconds: float, claimed: bool = True) -> None:
        self.claims += int(claimed)
        self.waited += int(claimed and seconds > 0)
        self.seconds += seconds

    @property
    def mean(self) -> float:
        """Seconds waited per claim that got trials (0 with none)."""
        return self.seconds / self.claims if self.claims else 0.0


# -- proposals ahead of need ---------------------------------------------------------------

RefillState = Literal["taken", "full", "deep", "start-up", "stopped", "queued"]


class Refill(NamedTuple):
    """What one look of a proposer did (the module docstring's states): `queued` proposals
    queued by it, and the study's `results` (COMPLETE and PRUNED trials) at the look (-1 when
    it did not read the trials)."""

    state: RefillState
    queued: int = 0
    results: int = -1


def refill(
    sampler: Proposer,
    queue: ProposalQueue,
    depth: int,
    worker: str,
    after: int = -1,
    keep: Callable[[], bool] = lambda: True,
) -> Refill:
    """One look of a proposer at a study's queue, outside the slot lock: fit and queue
    proposals if the queue holds fewer than `depth`, the study has room and no fit lease
    holds. `after`: the results at the last look whose fit proposed nothing (the random
    start-up); no fit until there are more. `keep`, asked once the fit is done: False (the
    worker is stopping) ends the lease without queueing. `worker` names the lease: a
    proposer's name must differ from its worker's claims', or the two would fit at once."""
    if queue.fitting():
        return Refill("taken")
    state, results = queue.look()
    if state.room <= 0:
        return Refill("full", 0, results)
    if state.queued >= depth:
        return Refill("deep", 0, results)
    if results <= after or results < getattr(sampler, "n_startup_trials", 0):
        return Refill("start-up", 0, results)
    if not queue.start_fit(worker):
        return Refill("taken", 0, results)
    try:
        with queue.keep_fit(worker):
            q = min(state.room, max(sampler.q, depth - state.queued))
            proposals = sampler.propose(queue.trials.study, q)
    except BaseException:
        queue.end_fit(worker)
        raise
    if proposals is None:
        queue.end_fit(worker)
        return Refill("start-up", 0, results)
    if not keep():
        queue.end_fit(worker)
        return Refill("stopped", 0, results)
    return Refill("queued", queue.queue(proposals, worker), results)
