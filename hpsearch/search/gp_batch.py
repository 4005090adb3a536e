"""gp-batch: one GP fit proposes q points at once (a batched GP bandit, Desautels et al. 2014).

`GPBatchSampler` is gp (`hpsearch.search.gp.GPSampler`: Optuna's `GPSampler`, fitted to
PRUNED trials too, at the value they were stopped at) with one change: a fit yields a batch of
q proposals, which workers queue in the study (or this sampler caches), and an ask takes the
next one instead of fitting again. The kernel (Matern 5/2 ARD), its priors, its fit, the
acquisition optimiser, the random start-up and the sharing of a RUNNING trial's parameters
through the trial's system attrs are GPSampler's.

Method: sequential greedy q-batch log expected improvement. Proposal k maximises Optuna's
`qLogEI` with the RUNNING trials of every worker and the proposals 1..k-1 of this batch as the
pending points: the GP is conditioned on joint fantasy samples at the pending points, so a point
whose value a pending point would already reveal earns nothing. This is exactly how `GPSampler`
treats other workers' RUNNING trials, so proposal 1 is what `gp` would propose, and proposal k
is what `gp` would propose were the first k-1 already running. The alternatives were weighed:

- Kriging believer / GP-BUCB (hallucinate the posterior mean at the pending points, then
  LogEI): about a quarter cheaper per point here, but Optuna's GP supports hallucinated data
  only once per fitted model (`append_running_data`, used inside `LogPI`), it believes the
  mean where qLogEI integrates over it, and it would treat RUNNING trials differently from gp.
- Thompson samples: Optuna's GP modules have no joint sampling over a candidate set.

The fit is the expensive part (O(n^3) per step of its optimiser), each further point one
acquisition optimisation; `benchmarks/proposals.py` measures both. Proposal 1 is searched as
gp searches (2,048 QMC points, then 10 local searches); proposals 2..q with a quarter of the
QMC points (`later_samples`, 512) and 3 local searches (`later_local_searches`), started from
the best trial, the batch's previous proposal and the best QMC point: at 1,000 trials in 4
dimensions a later point cost 0.77 s against proposal 1's 3.34 s and the fit's 11.0 s on a
loaded 2-core machine (`benchmarks/proposals.py --split 16`), so a batch of 32 costs a few
fits, not 32. The first point of a batch matters most (it is what gp would run); the later
ones are the exploration around it that the pending points' fantasies push them to.
No proposal repeats a result, a pending point or an earlier proposal of its batch
(`hpsearch.search.gp.unrepeated`): the queue's own check (`Proposals.near`) looks only at
trials the fit did not know, so a search that came back to its warm start would otherwise
queue a repeat.

Using it from workers (`hpsearch.worker.loop`): the proposals live in the study itself, one queue
shared by every worker. A worker that finds fewer WAITING trials than it is about to claim
calls `propose(study, q)` outside the study's slot lock (one fit, q points that avoid the
RUNNING and WAITING trials); its claim then queues them under the lock as WAITING trials
marked `hpsearch:proposal` (`storage.lifecycle.StudyTrials.claim`: only as many as the
study's target has room for, none near a trial queued or run since the fit, `Proposals.near`),
and any worker's `study.ask()` takes the oldest. An ask for a trial whose parameters are
fixed (a queued proposal, a retry) does not fit. `sample_relative` is always correct without
a queue: with none, an ask fits under the lock, as gp does, keeping the rest of its batch in
this sampler's own cache (`prepare` fills that cache outside the lock, for single-process use).

A cached proposal is dropped when it is no longer what a fresh fit would propose:

- stale: more than `max_unseen_results` trials (default q) have ended with a result (COMPLETE
  or PRUNED) since its fit. A
  batch of q is meant to be run without feedback, as q parallel evaluations would be; once it
  misses more results than that it no longer reflects the study. `prepare` applies this
  limit; an ask applies twice it, because dropping there means fitting under the lock, and
  with several workers a batch prepared just before the lock was taken often misses a few
  results by the time the lock is held (seen in benchmarks/proposals.py with 4 workers).
- taken: it lies within `min_distance` length scales (the GP's own, per dimension; categorical
  dimensions count a mismatch as 1) of the point of a trial the fit did not know: another
  worker, with a cache of its own made from the same state, is already running (or has run)
  nearly the same point. 0.1 length scales is a Matern 5/2 correlation of 0.992.
- the search space changed since the fit.

Not thread-safe beyond a lock around the cache: call `prepare` and `ask` from one thread, or
several, but each call waits for the other.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpsearch.search.gp import (
    FIT_STATES,
    GPSampler,
    normalize,
    results,
    scaled_distances,
    unrepeated,
)
from hpsearch.search.optuna_compat import (
    MAX_QMC_SEED_VALUE,
    acqf_module,
    get_params,
    gp_search_space,
    is_constrained_optimization,
    optim_mixed,
    standardize_values,
)
from hpsearch.search.proposals import Proposals, point

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

logger = logging.getLogger(__name__)

DEFAULT_Q = 8
MIN_DISTANCE = 0.1
# The acquisition search of proposals 2..q of a batch (proposal 1 uses GPSampler's own).
LATER_SAMPLES = 512
LATER_LOCAL_SEARCHES = 3


@dataclass
class _Batch:
    """Proposals of one fit, in the order they were chosen, and what the fit knew."""

    search_space: dict[str, BaseDistribution]
    proposals: list[dict[str, Any]]
    normalized: list[np.ndarray]
    length_scales: np.ndarray
    is_categorical: np.ndarray
    n_results: int  # COMPLETE and PRUNED trials the fit saw
    known: frozenset[int]  # trial numbers whose points the fit saw (results or pending)


class GPBatchSampler(GPSampler):
    """GPSampler whose fit proposes `q` points at once (see the module docstring).

    Args:
        q: proposals per fit.
        max_unseen_results: completed trials a proposal may miss before it is dropped
            (default q).
        min_distance: a proposal this close (in length scales) to a trial its fit did not know
            is dropped.
        later_samples, later_local_searches: QMC points and local searches of the
            acquisition search for proposals 2..q (proposal 1: GPSampler's 2,048 and 10).
        seed, n_startup_trials, ...: as for `optuna.samplers.GPSampler`.
    """

    def __init__(
        self,
        *,
        q: int = DEFAULT_Q,
        max_unseen_results: int | None = None,
        min_distance: float = MIN_DISTANCE,
        later_samples: int = LATER_SAMPLES,
        later_local_searches: int = LATER_LOCAL_SEARCHES,
        **gp_kwargs: Any,
    ) -> None:
        if q < 1:
            raise ValueError(f"q must be at least 1, got {q}")
        if max_unseen_results is not None and max_unseen_results < 0:
            raise ValueError(f"max_unseen_results must be >= 0, got {max_unseen_results}")
        if min_distance < 0:
            raise ValueError(f"min_distance must be >= 0, got {min_distance}")
        if later_samples < 1 or later_local_searches < 3:
            raise ValueError(
                "later_samples must be >= 1 and later_local_searches >= 3 (the best point, the "
                f"previous proposal and one QMC point), got {later_samples}, "
                f"{later_local_searches}"
            )
        super().__init__(**gp_kwargs)
        self.q = q
        self.max_unseen_results = q if max_unseen_results is None else max_unseen_results
        self.min_distance = min_distance
        self.later_samples = later_samples
        self.later_local_searches = later_local_searches
        self._batch: _Batch | None = None
        self._lock = threading.RLock()
        self.fits = 0  # batches computed by this sampler (for tests and benchmarks)

    # -- what a worker calls ------------------------------------------------------------------

    def pending(self) -> int:
        """Proposals cached (not checked against the study: no storage access)."""
        batch = self._batch
        return 0 if batch is None else len(batch.proposals)

    def prepare(self, study: optuna.Study, q: int | None = None) -> int:
        """Make sure proposals are cached for the next asks; returns how many are.

        Drops stale and taken proposals (module docstring); if none is left, fits the GP to the
        study's results (COMPLETE and PRUNED trials) and proposes `q` (default `self.q`) points
        that avoid its RUNNING trials. Returns 0 while the study is in its random start-up, or
        for a study this sampler does not batch (multi-objective, constrained): their asks
        work as gp's.
        Reads the storage; call it outside the study's slot lock.
        """
        search_space = self._search_space(study)
        if not search_space:
            return 0
        with self._lock:
            trials = study.get_trials(deepcopy=False, states=FIT_STATES)
            self._drop_unusable(trials, search_space, self.max_unseen_results)
            if self.pending() == 0:
                self._batch = self._propose(study, trials, search_space, q or self.q)
            return self.pending()

    def propose(self, study: optuna.Study, q: int | None = None) -> Proposals | None:
        """One fit, `q` (default `self.q`) proposals for the study's shared queue, not cached.

        The fit sees the study's results (COMPLETE and PRUNED trials); the proposals avoid its
        RUNNING trials and its WAITING ones (other workers' queued proposals, queued retries)
        as pending points. None while the study is in its random start-up, or for a study this
        sampler does not batch. Reads the storage; call it outside the study's slot lock.
        """
        search_space = self._search_space(study)
        if not search_space:
            return None
        trials = study.get_trials(deepcopy=False, states=(*FIT_STATES, TrialState.WAITING))
        with self._lock:
            batch = self._propose(study, trials, search_space, q or self.q)
        if batch is None or not batch.proposals:
            return None
        return Proposals(
            id=uuid.uuid4().hex,
            params=list(batch.proposals),
            search_space=batch.search_space,
            length_scales=batch.length_scales,
            is_categorical=batch.is_categorical,
            known=batch.known,
            min_distance=self.min_distance,
        )

    # -- the sampler ----------------------------------------------------------------------------

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        # A trial taken from the queue (a queued proposal, or a retry) has its parameters
        # fixed already: they are what it runs, so fitting for it would be wasted.
        fixed = trial.system_attrs.get("fixed_params") or {}
        if search_space and search_space.keys() <= fixed.keys():
            return {}
        return super().sample_relative(study, trial, search_space)

    def sample_relative_impl(
        self,
        study: optuna.Study,
        completed_trials: list[FrozenTrial],
        running_trials: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        # gp's sample_relative calls this after its start-up check, under torch's CPU
        # device, and shares the result with other workers through the trial's system attrs.
        if not self._batches(study, completed_trials):
            return super().sample_relative_impl(
                study, completed_trials, running_trials, search_space
            )
        with self._lock:
            trials = [*completed_trials, *running_trials]
            self._drop_unusable(trials, search_space, 2 * self.max_unseen_results)
            if self.pending() == 0:
                self._batch = self._propose(study, trials, search_space, self.q)
            assert self._batch is not None and self._batch.proposals
            self._batch.normalized.pop(0)
            return self._batch.proposals.pop(0)

    # -- the cache ------------------------------------------------------------------------------

    def _search_space(self, study: optuna.Study) -> dict[str, BaseDistribution]:
        # GPSampler ignores the trial (the intersection search space of the study's trials).
        return self.infer_relative_search_space(study, None)  # type: ignore[arg-type]

    def _batches(self, study: optuna.Study, completed: list[FrozenTrial]) -> bool:
        return len(study.directions) == 1 and not is_constrained_optimization(completed)

    def _drop_unusable(
        self,
        trials: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
        max_unseen_results: int,
    ) -> None:
        batch = self._batch
        if batch is None:
            return
        if batch.search_space != search_space:
            self._drop_all("the search space changed")
            return
        n_results = len(results(trials, search_space))
        if n_results - batch.n_results > max_unseen_results:
            self._drop_all(f"{n_results - batch.n_results} results came in since its fit")
            return
        space = gp_search_space.SearchSpace(search_space)
        unseen = [
            t
            for t in trials
            if t.number not in batch.known and search_space.keys() <= get_params(t).keys()
        ]
        if not unseen:
            return
        new = [get_params(t) for t in unseen]
        new_points = normalize(space, new)
        kept = [
            i
            for i, x in enumerate(batch.normalized)
            if scaled_distances(x, new_points, batch.length_scales, batch.is_categorical).min()
            >= self.min_distance
        ]
        if len(kept) < len(batch.proposals):
            logger.debug(
                "dropping %d of %d cached proposals: trials close to them are run already",
                len(batch.proposals) - len(kept),
                len(batch.proposals),
            )
            batch.proposals = [batch.proposals[i] for i in kept]
            batch.normalized = [batch.normalized[i] for i in kept]
        # Points checked once need not be checked again (the proposals do not move). A trial
        # without its point yet (just asked) is checked once it has one.
        batch.known = batch.known | {t.number for t in unseen}

    def _drop_all(self, why: str) -> None:
        assert self._batch is not None
        if self._batch.proposals:
            logger.debug("dropping %d cached proposals: %s", len(self._batch.proposals), why)
        self._batch = None

    def _propose(
        self,
        study: optuna.Study,
        trials: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
        q: int,
    ) -> _Batch | None:
        """Fit once; choose q points by sequential greedy qLogEI over the pending points (the
        RUNNING and WAITING trials among `trials`)."""
        import torch

        completed = results(trials, search_space)
        if len(completed) < self.n_startup_trials or not self._batches(study, completed):
            return None
        running = [
            t
            for t in trials
            if t.state in (TrialState.RUNNING, TrialState.WAITING)
            and search_space.keys() <= point(t).keys()
        ]
        space = gp_search_space.SearchSpace(search_space)
        with torch.device("cpu"):
            X = space.get_normalized_params(completed)
            sign = -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0
            y, _, _ = standardize_values(sign * np.array([[t.value] for t in completed]))
            y = y[:, 0]
            gpr = self.fit_gp(X, y, space)
            best = X[np.argmax(y), np.newaxis]
            pending = normalize(space, [point(t) for t in running])
            chosen: list[np.ndarray] = []
            for _ in range(q):
                acqf: acqf_module.BaseAcquisitionFunc
                if len(pending) == 0:
                    acqf = acqf_module.LogEI(gpr=gpr, search_space=space, threshold=y.max())
                else:
                    acqf = acqf_module.qLogEI(
                        gpr=gpr,
                        search_space=space,
                        threshold=y.max(),
                        n_qmc_samples=self.n_qmc_samples_qei,
                        qmc_seed=self.rng.randint(MAX_QMC_SEED_VALUE),
                        normalized_params_of_running_trials=pending,
                    )
                if not chosen:
                    # gp's search (GPSampler's, without gp's repeat check against its own
                    # trials: this fit's are checked just below).
                    x = self.gp_search(acqf, best)
                else:
                    x, _ = optim_mixed.optimize_acqf_mixed(
                        acqf,
                        warmstart_normalized_params_array=np.vstack([best, chosen[-1]]),
                        n_preliminary_samples=self.later_samples,
                        n_local_search=self.later_local_searches,
                        tol=self.tol,
                        rng=self.rng,
                    )
                # Not a repeat of a result, a pending point or an earlier proposal.
                x = unrepeated(acqf, x, np.vstack([X, pending]), self.rng)
                chosen.append(x)
                pending = np.vstack([pending, x[np.newaxis]])
        self.fits += 1
        return _Batch(
            search_space=dict(search_space),
            proposals=[space.get_unnormalized_param(x) for x in chosen],
            normalized=chosen,
            length_scales=gpr.length_scales,
            is_categorical=np.asarray(space.is_categorical),
            n_results=len(completed),
            known=frozenset(t.number for t in [*completed, *running]),
        )
