"""Samplers by name. The sampler is not stored by Optuna, so each worker rebuilds it from the
study's user attrs, with a seed of its own."""

from __future__ import annotations

import optuna

from hpsearch.errors import HpsearchError

SAMPLERS: tuple[str, ...] = ("gp", "gp-batch", "tpe", "random")
# Trials of a study before the model takes over: the random start of gp, gp-batch and tpe,
# and the history the median pruner waits for before it compares (one start for both).
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
