"""gp-batch's cheaper fit: the cap keeps the best and the most recent results; the kernel's
parameters are refitted every k results, kept in the study for a fresh worker."""

from __future__ import annotations

import numpy as np
import optuna

from hpsearch.search.gp import fit_subset, stored_kernel
from hpsearch.search.gp_batch import GPBatchSampler
from hpsearch.search.samplers import STARTUP_TRIALS
from tests.testing import SEARCH_SPACE, filled_study, normalized, random_point, smooth_value


def _add(study: optuna.Study, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        p = random_point(rng)
        study.add_trial(
            optuna.trial.create_trial(params=p, distributions=SEARCH_SPACE, value=smooth_value(p))
        )


def test_the_cap_keeps_the_best_quarter_and_the_most_recent():
    values = np.random.default_rng(0).normal(size=100)
    keep = fit_subset(values, 20)
    best = set(np.argsort(-values)[:5].tolist())
    recent = [i for i in range(99, -1, -1) if i not in best][:15]
    assert sorted(keep.tolist()) == sorted(best | set(recent))
    assert fit_subset(values[:10], 20).tolist() == list(range(10))


def test_the_kernel_is_refitted_every_k_results_and_reused_by_a_fresh_sampler():
    sampler = GPBatchSampler(q=2, seed=0, n_startup_trials=STARTUP_TRIALS, refit_every=8)
    study = filled_study(40, sampler)
    assert sampler.propose(study) is not None and sampler.kernel_fits == 1
    first = stored_kernel(study)
    assert first is not None and first.results == 40
    _add(study, 7, seed=3)  # fewer than k: the stored parameters are reused
    assert sampler.propose(study) is not None and sampler.kernel_fits == 1
    fresh = GPBatchSampler(q=2, seed=0, n_startup_trials=STARTUP_TRIALS, refit_every=8)
    assert fresh.propose(study) is not None and fresh.kernel_fits == 0
    _add(study, 1, seed=4)  # k results since the fit: refitted, and stored
    assert sampler.propose(study) is not None and sampler.kernel_fits == 2
    second = stored_kernel(study)
    assert second is not None and second.results == 48


def test_a_reused_kernel_proposes_close_to_a_full_fit():
    reused = GPBatchSampler(q=1, seed=0, n_startup_trials=STARTUP_TRIALS, refit_every=100)
    study = filled_study(60, reused)
    assert reused.propose(study) is not None
    _add(study, 5, seed=5)
    full = GPBatchSampler(q=1, seed=0, n_startup_trials=STARTUP_TRIALS, refit_every=1)
    a, b = reused.propose(study), full.propose(study)
    assert a is not None and b is not None and reused.kernel_fits == 1 and full.kernel_fits == 1
    # The same point to within a tenth of the space in every normalized coordinate.
    gap = np.abs(normalized(list(a.params)) - normalized(list(b.params))).max()
    assert gap < 0.1, (a.params, b.params)
