"""The proposer: a thread in each worker process that keeps the queue of each of its gp-batch
studies one batch deep while the worker's trials train, so that a claim finds proposals
waiting instead of waiting for a fit (the protocol, `refill`, is
`hpsearch.search.proposals`'s; this module only runs it beside the training).

Depth: the sampler's q, or the worker's executor capacity if larger, counted in WAITING
trials (the trials the workers hold are RUNNING, beyond it). The proposer looks at each
study every LOOK_SECONDS, and at once when its worker has claimed (`nudge`). Its fits take
the study's fit lease under its own name (the worker's name + PROPOSER_SUFFIX: a lease is
its holder's to take again, so sharing the worker's name would let the worker's fallback
claim fit beside it).

Why a thread, and its torch threads. A thread needs no second connection set-up, no pickling
of the studies and no start-up of its own, and the GP fit (torch and scipy) releases the GIL
for most of its work. Its intra-op thread count is its own: with torch's OpenMP backend,
`torch.set_num_threads` sets the calling thread's count (and the default of threads that
have not yet run a parallel op, which take it when they first do). The proposer uses
PROPOSER_THREADS = 1: the matrices of an exact GP fit (n up to about 1,000, float64) gain
little from more threads, one thread per proposer keeps a worker at its `--threads` plus
one however many worker processes share a machine, and on a GPU worker the training thread
mostly launches kernels. Before the proposer sets its own, the worker's thread runs one
parallel op, so that it keeps its count (`--threads`) rather than taking the proposer's.

Like Optuna's samplers, the worker's sampler is not thread-safe: the proposer fits with a
sampler and a study object of its own (the same kind, another seed).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from types import TracebackType

import optuna

from hpsearch.search.proposals import ProposalQueue, Proposer, Refill, refill
from hpsearch.search.samplers import make_sampler
from storage import retry_transient
from storage.lifecycle import StudyTrials

logger = logging.getLogger(__name__)

# The proposer's torch intra-op threads (see the module docstring).
PROPOSER_THREADS = 1
# How often the proposer looks at its studies' queues without being nudged (others' claims
# drain them too).
LOOK_SECONDS = 1.0
# After an error that is not transient (it is logged), the proposer waits this long.
ERROR_SECONDS = 10.0
# How long a stopping worker waits for a fit under way before giving its lease back.
STOP_SECONDS = 5.0
# A proposer's name: its worker's, with this.
PROPOSER_SUFFIX = "/proposer"


@dataclass
class _Ahead:
    """One study as the proposer sees it: its queue (over a study object of the proposer's
    own), its sampler, and the results at the last fit that proposed nothing."""

    queue: ProposalQueue
    sampler: Proposer
    after: int = -1


def settle_threads() -> None:
    """Fix the calling thread's torch thread count at what it is set to now, so that a
    thread that sets another (the proposer) does not change it (see the module docstring)."""
    import torch

    torch.set_num_threads(torch.get_num_threads())
    torch.ones(1 << 17).add_(1)  # large enough to be split: the first parallel op


class AheadProposer:
    """Keeps each gp-batch study of `studies` `depth` proposals deep, in a thread of its own
    from `start` (or entering `with`) to `stop`. `studies`: (sampler name, the worker's
    trials of the study); studies whose sampler does not batch are left out."""

    def __init__(
        self,
        storage: optuna.storages.RDBStorage,
        studies: list[tuple[str, StudyTrials]],
        worker: str,
        depth: int,
        seed: int,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be positive, got {depth}")
        self.name = worker + PROPOSER_SUFFIX
        self.depth = depth
        self.studies: list[_Ahead] = []
        for index, (sampler_name, trials) in enumerate(studies):
            sampler = make_sampler(sampler_name, (seed + index) % 2**31)
            if not isinstance(sampler, Proposer):
                continue
            study = optuna.load_study(study_name=trials.name, storage=storage, sampler=sampler)
            own = StudyTrials(storage, study, trials.target, trials.max_retry)
            self.studies.append(_Ahead(ProposalQueue(own), sampler, -1))
        self.depth_of = {a.queue.trials.name: max(depth, a.sampler.q) for a in self.studies}
        self.fits = 0  # refills that queued proposals (for tests and the log)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._abandoned = False  # the stop gave a fit under way up: its points are dropped

    def __bool__(self) -> bool:
        return bool(self.studies)

    def __enter__(self) -> AheadProposer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the thread (none without a gp-batch study)."""
        if not self.studies or self._thread is not None:
            return
        settle_threads()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Look at the queues now (the worker has just claimed from them)."""
        self._wake.set()

    def finish(self) -> None:
        """Start no more fits (the worker claims no more); `stop` waits for the thread."""
        self._stop.set()
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread: a fit under way gets STOP_SECONDS to end and queue its points;
        after that its lease is given back (so other workers need not wait it out) and its
        points are dropped."""
        self.finish()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        thread.join(STOP_SECONDS)
        if thread.is_alive():
            self._abandoned = True
            logger.info("%s: a fit was under way at the stop; its lease is given back", self.name)
            for ahead in self.studies:
                try:
                    ahead.queue.end_fit(self.name)
                except Exception as e:  # it runs out by itself
                    logger.warning("%s: could not give back the fit lease: %s", self.name, e)

    def _keep(self) -> bool:
        return not self._abandoned

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        import torch

        torch.set_num_threads(PROPOSER_THREADS)
        while not self._stop.is_set():
            self._wake.clear()
            busy = False
            for ahead in self.studies:
                if self._stop.is_set():
                    return
                busy = self._look(ahead) or busy
            if not busy:
                self._wake.wait(LOOK_SECONDS)

    def _look(self, ahead: _Ahead) -> bool:
        """One look at one study; True if it queued proposals (the proposer looks again at
        once: the queue may still be short)."""
        name = ahead.queue.trials.name
        try:
            done: Refill = retry_transient(
                lambda: refill(
                    ahead.sampler,
                    ahead.queue,
                    self.depth_of[name],
                    self.name,
                    after=ahead.after,
                    keep=self._keep,
                ),
                f"proposing ahead for {name}",
            )
        except Exception as e:  # the claims' own fits stand in meanwhile
            logger.warning("%s: proposing ahead for %s failed: %s", self.name, name, e)
            self._stop.wait(ERROR_SECONDS)
            return False
        if done.state == "start-up":
            ahead.after = done.results
        if done.state == "queued":
            self.fits += 1
            logger.debug("%s: queued %d proposals for %s", self.name, done.queued, name)
        # None queued (all near trials run meanwhile): wait for the next look, not fit again.
        return done.queued > 0
