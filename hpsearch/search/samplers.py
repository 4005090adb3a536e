"""Samplers by name. The sampler is not stored by Optuna, so each worker rebuilds it from the
study's user attrs, with a seed of its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import optuna

from hpsearch.errors import HpsearchError

if TYPE_CHECKING:
    from storage.lifecycle import Proposals, StudyTrials

SAMPLERS: tuple[str, ...] = ("gp", "gp-batch", "tpe", "random")
STARTUP_TRIALS = 10
# Proposals per GP fit of gp-batch.
BATCH_Q = 8


def check_sampler(name: str) -> None:
    if name not in SAMPLERS:
        raise HpsearchError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """gp: Optuna's GPSampler (Matern 5/2 ARD, qLogEI over other workers' RUNNING trials),
    fitted to PRUNED trials too (`hpsearch.search.gp`); gp-batch: the same GP, BATCH_Q
    proposals per fit (`hpsearch.search.gp_batch`); tpe: TPE with the constant liar for parallel
    workers; random: uniform in the space."""
    check_sampler(name)
    if name == "gp":
        from hpsearch.search.gp import GPSampler

        return GPSampler(
            seed=seed, n_startup_trials=STARTUP_TRIALS, warn_independent_sampling=False
        )
    if name == "gp-batch":
        from hpsearch.search.gp_batch import GPBatchSampler

        return GPBatchSampler(
            q=BATCH_Q, seed=seed, n_startup_trials=STARTUP_TRIALS, warn_independent_sampling=False
        )
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=STARTUP_TRIALS, constant_liar=True, multivariate=True
        )
    return optuna.samplers.RandomSampler(seed=seed)


class ClaimPlan(NamedTuple):
    """How to claim: `proposals` to queue (or None), `n` trials to claim (0: none now, the
    study's next proposals are being fitted elsewhere), and whether to take only queued
    trials (`StudyTrials.claim`'s `queued_only`: with the queue taken meanwhile, the claim
    comes back short and the worker plans again, instead of fitting under the lock)."""

    proposals: Proposals | None
    n: int
    queued_only: bool = False


def prepare_proposals(
    sampler: optuna.samplers.BaseSampler,
    trials: StudyTrials,
    n: int,
    worker: str,
    wait: bool = True,
) -> ClaimPlan:
    """What a worker calls before claiming `n` trials of a study, outside the slot lock:
    proposals to queue in the claim, how many trials to claim, and whether from the queue
    only.

    For gp-batch the study's queue (its WAITING trials) is kept filled by one worker at a time:
    when it holds fewer than half a fit's worth (q = max(n, the sampler's q)), the worker that
    takes the study's fit lease (`StudyTrials.start_fit`) fits the GP once and proposes q
    points (at most the room below the target), which its claim queues under the lock, where
    every worker's ask takes them. The others claim from the queue meanwhile; one that finds
    fewer than `n` queued waits for the fitter's proposals (`wait_for_queue`) and then claims
    what is queued, rather than fitting too (on a small machine several fits at once each take
    as long as all of them); with `wait` False it claims nothing (0) instead, so that a worker
    of several studies turns to another. A worker that claims from a queue others fill claims
    queued trials only. Other samplers: ClaimPlan(None, n)."""
    from hpsearch.search.gp_batch import GPBatchSampler

    if not isinstance(sampler, GPBatchSampler):
        return ClaimPlan(None, n)
    q = max(n, sampler.q)
    while True:
        state = trials.backlog()
        if state.room <= 0:
            return ClaimPlan(None, n)  # full: the claim finds nothing (or a retry)
        if state.queued >= n and state.queued >= q // 2:
            return ClaimPlan(None, n, queued_only=True)  # the queue is deep
        if trials.start_fit(worker):
            try:
                with trials.keep_fit(worker):
                    proposals = sampler.propose(trials.study, min(q, state.room))
            except BaseException:
                trials.end_fit(worker)
                raise
            if proposals is None:  # the random start-up: asks sample, cheaply
                trials.end_fit(worker)
            # Should the claim find none of them queueable (all near trials run meanwhile),
            # its ask samples under the lock, as gp does: the fitter always gets a trial.
            return ClaimPlan(proposals, n)
        if state.queued >= n:
            # Another worker refills the queue; it holds enough for this claim.
            return ClaimPlan(None, n, queued_only=True)
        if not wait:
            return ClaimPlan(None, min(n, state.queued), queued_only=True)
        state = trials.wait_for_queue()
        if state.queued:
            return ClaimPlan(None, min(n, state.queued), queued_only=True)
        if state.room <= 0:
            return ClaimPlan(None, n)
        # The lease ended or ran out with nothing queued (its worker died, or had nothing to
        # propose): take it now.
