"""Samplers by name. The sampler is not stored by Optuna, so each worker rebuilds it from the
study's user attrs, with a seed of its own."""

from __future__ import annotations

import optuna

from hpsearch.errors import HpsearchError

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
    sampler: optuna.samplers.BaseSampler, study: optuna.Study, q: int | None = None
) -> int:
    """What a worker calls before claiming a trial of `study`, outside the slot lock: for
    gp-batch, the expensive GP fit happens here (only when its cache of proposals has run dry
    or gone stale) so that the ask under the lock only pops one. Returns the proposals cached
    (0 for other samplers, and in the random start-up: their asks need nothing prepared).
    `q`: proposals per fit, when a worker is about to claim more than BATCH_Q at once."""
    from hpsearch.batch_sampler import GPBatchSampler

    if isinstance(sampler, GPBatchSampler):
        return sampler.prepare(study, None if q is None else max(q, BATCH_Q))
    return 0
