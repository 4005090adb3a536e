"""Samplers by name. The sampler is not stored by Optuna, so each worker rebuilds it from the
study's user attrs, with a seed of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna

from hpsearch.errors import HpsearchError

if TYPE_CHECKING:
    from storage.lifecycle import Backlog, Proposals

SAMPLERS: tuple[str, ...] = ("gp", "gp-batch", "tpe", "random")
STARTUP_TRIALS = 10
# Proposals per GP fit of gp-batch.
BATCH_Q = 8


def check_sampler(name: str) -> None:
    if name not in SAMPLERS:
        raise HpsearchError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """gp: Optuna's GPSampler (Matern 5/2 ARD, qLogEI over other workers' RUNNING trials);
    gp-batch: the same GP, BATCH_Q proposals per fit (`hpsearch.batch_sampler`); tpe: TPE with
    the constant liar for parallel workers; random: uniform in the space."""
    check_sampler(name)
    if name == "gp":
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=STARTUP_TRIALS, warn_independent_sampling=False
        )
    if name == "gp-batch":
        from hpsearch.batch_sampler import GPBatchSampler

        return GPBatchSampler(
            q=BATCH_Q, seed=seed, n_startup_trials=STARTUP_TRIALS, warn_independent_sampling=False
        )
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=STARTUP_TRIALS, constant_liar=True, multivariate=True
        )
    return optuna.samplers.RandomSampler(seed=seed)


def prepare_proposals(
    sampler: optuna.samplers.BaseSampler,
    study: optuna.Study,
    n: int,
    backlog: Callable[[], Backlog],
) -> Proposals | None:
    """What a worker calls before claiming `n` trials of `study`, outside the slot lock. For
    gp-batch, when the study's queue (`backlog`: its WAITING trials, and its room below the
    target) holds fewer than `n`, one GP fit proposes max(n, BATCH_Q) points (at most the
    room), to be queued in the study under the lock (`StudyTrials.claim(proposals=...)`), where
    every worker's ask takes them. None when there is nothing to queue: other samplers, the
    random start-up, a queue deep enough, a full study."""
    from hpsearch.batch_sampler import GPBatchSampler

    if not isinstance(sampler, GPBatchSampler):
        return None
    state = backlog()
    if state.queued >= n or state.room <= 0:
        return None
    return sampler.propose(study, min(max(n, BATCH_Q), state.room))
