"""gp-batch: one GP fit proposes q points at once (a batched GP bandit, Desautels et al. 2014).

`GPBatchSampler` is gp (`hpsearch.search.gp.GPSampler`: Optuna's `GPSampler`, fitted to
PRUNED trials too, at the value they were stopped at) with one change: a fit yields a batch of
q proposals (`propose`), which workers queue in the study, and an ask takes the next queued one
instead of fitting again. The kernel (Matern 5/2 ARD), its priors, its fit, the acquisition
optimiser, the random start-up and the sharing of a RUNNING trial's parameters through the
trial's system attrs are GPSampler's.

Method: sequential greedy q-batch log expected improvement. Proposal k maximises Optuna's
`qLogEI` with the RUNNING trials of every worker, the queued (WAITING) ones and the proposals
1..k-1 of this batch as the pending points: the GP is conditioned on joint fantasy samples at
the pending points, so a point whose value a pending point would already reveal earns nothing.
This is exactly how `GPSampler` treats other workers' RUNNING trials, so proposal 1 is what
`gp` would propose, and proposal k is what `gp` would propose were the first k-1 already
running. The alternatives were weighed:

- Kriging believer / GP-BUCB (hallucinate the posterior mean at the pending points, then
  LogEI): cheaper per point, but Optuna's GP supports hallucinated data only once per fitted
  model (`append_running_data`, used inside `LogPI`), it believes the mean where qLogEI
  integrates over it, and it would treat RUNNING trials differently from gp.
- Thompson samples: Optuna's GP modules have no joint sampling over a candidate set.

The fit is the expensive part (O(n^3) per step of its optimiser), each further point one
acquisition optimisation; `benchmarks/proposals.py --split Q` measures both (figures in
docs/benchmarks.md). Proposal 1 is searched as gp searches (GPSampler's QMC points, then its
local searches); proposals 2..q with a quarter of the QMC points (`later_samples`) and 3 local
searches (`later_local_searches`), started from the best trial, the batch's previous proposal
and the best QMC point, so that a batch costs a few fits, not q. The first point of a batch
matters most (it is what gp would run); the later ones are the exploration around it that the
pending points' fantasies push them to. No proposal repeats a result, a pending point or an
earlier proposal of its batch (`hpsearch.search.gp.unrepeated`): the queue's own check
(`Proposals.near`) looks only at trials the fit did not know, so a search that came back to
its warm start would otherwise queue a repeat.

Who fits, when, and how the points reach the workers is the proposal protocol
(`hpsearch.search.proposals`): one worker at a time fits outside the study's slot lock, its
claim queues the points under the lock as WAITING trials, and any worker's ask takes the
oldest. An ask for a trial whose parameters are fixed (a queued proposal, a retry) does not
fit. An ask with nothing queued (the random start-up; or a claim whose proposals were all
dropped as near trials run meanwhile) samples one point as gp does.

Like Optuna's samplers, not thread-safe: one thread proposes or asks at a time.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpsearch.search.gp import (
    FIT_CAP,
    FIT_STATES,
    GPSampler,
    KernelFit,
    fit_subset,
    log_ei,
    normalize,
    results,
    store_kernel,
    stored_kernel,
    unrepeated,
    warm_enough,
    warm_fit,
)
from hpsearch.search.optuna_compat import (
    acqf_module,
    fixed_gp,
    gp_search_space,
    is_constrained_optimization,
    optim_mixed,
    standardize_values,
)
from hpsearch.search.proposals import Proposals, point
from hpsearch.search.warm import CONTEXT_NAMES

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

logger = logging.getLogger(__name__)

DEFAULT_Q = 8
MIN_DISTANCE = 0.1
# The acquisition search of proposals 2..q of a batch (proposal 1 uses GPSampler's own).
LATER_SAMPLES = 512
LATER_LOCAL_SEARCHES = 3
# The results a fit sees at most (`hpsearch.search.gp.fit_subset`): FIT_CAP, from gp; a
# warm-started study's related results count towards it.
# Results between two fits of the kernel's parameters (`KernelFit.is_due`).
REFIT_EVERY = 32
# How proposals 2..q are chosen: "explore" (posterior variance with the pending points,
# `hpsearch.search.exploration`) or "qlogei" (sequential greedy qLogEI with fantasies).
LATER_POINTS = ("explore", "qlogei")
# The QMC points an exploration point is the best of (`exploration.best_sample`).
EXPLORE_SAMPLES = 1024


class GPBatchSampler(GPSampler):
    """GPSampler whose fit proposes `q` points at once (see the module docstring).

    Args:
        q: proposals per fit.
        min_distance: a proposal this close (in length scales: the GP's own, per dimension;
            a categorical mismatch counts 1) to a trial its fit did not know is not queued
            (`Proposals.near`); 0.1 length scales is a Matern 5/2 correlation of 0.992.
        later_samples, later_local_searches: QMC points and local searches of the
            acquisition search for proposals 2..q (proposal 1: GPSampler's 2,048 and 10).
        fit_cap: the results a fit sees at most: the best quarter and the most recent.
        refit_every: results between fits of the kernel's parameters; in between, a fit
            reuses the study's last ones (`KernelFit`), warm start of the next fit.
        later: how proposals 2..q are chosen (LATER_POINTS).
        seed, n_startup_trials, ...: as for `optuna.samplers.GPSampler`.
    """

    def __init__(
        self,
        *,
        q: int = DEFAULT_Q,
        min_distance: float = MIN_DISTANCE,
        later_samples: int = LATER_SAMPLES,
        later_local_searches: int = LATER_LOCAL_SEARCHES,
        fit_cap: int = FIT_CAP,
        refit_every: int = REFIT_EVERY,
        later: str = "qlogei",
        **gp_kwargs: Any,
    ) -> None:
        if q < 1:
            raise ValueError(f"q must be at least 1, got {q}")
        if min_distance < 0:
            raise ValueError(f"min_distance must be >= 0, got {min_distance}")
        if later_samples < 1 or later_local_searches < 3:
            raise ValueError(
                "later_samples must be >= 1 and later_local_searches >= 3 (the best point, the "
                f"previous proposal and one QMC point), got {later_samples}, "
                f"{later_local_searches}"
            )
        if fit_cap < 1 or refit_every < 1:
            raise ValueError(
                f"fit_cap and refit_every must be at least 1, got {fit_cap}, {refit_every}"
            )
        if later not in LATER_POINTS:
            raise ValueError(f"later must be one of {', '.join(LATER_POINTS)}, got {later!r}")
        super().__init__(**gp_kwargs)
        self.q = q
        self.fit_cap = fit_cap
        self.refit_every = refit_every
        self.later = later
        self.kernel_fits = 0  # fits of the kernel's parameters by this sampler
        self.min_distance = min_distance
        self.later_samples = later_samples
        self.later_local_searches = later_local_searches
        self.fits = 0  # batches computed by this sampler (for tests and benchmarks)

    # -- what a worker calls ------------------------------------------------------------------

    def propose(self, study: optuna.Study, q: int | None = None) -> Proposals | None:
        """One fit, `q` (default `self.q`) proposals for the study's shared queue.

        The fit sees the study's results (COMPLETE and PRUNED trials); the proposals avoid its
        RUNNING trials and its WAITING ones (other workers' queued proposals, queued retries)
        as pending points. None while the study is in its random start-up, or for a study this
        sampler does not batch (multi-objective, constrained): their asks sample as gp's do.
        Reads the storage; call it outside the study's slot lock.
        """
        search_space = self.infer_relative_search_space(study, None)  # type: ignore[arg-type]
        if not search_space:
            return None
        trials = study.get_trials(deepcopy=False, states=(*FIT_STATES, TrialState.WAITING))
        return self._propose(study, trials, search_space, q or self.q)

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

    def _batches(self, study: optuna.Study, completed: list[FrozenTrial]) -> bool:
        return len(study.directions) == 1 and not is_constrained_optimization(completed)

    def _propose(
        self,
        study: optuna.Study,
        trials: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
        q: int,
    ) -> Proposals | None:
        """Fit once; choose q points by sequential greedy qLogEI over the pending points (the
        RUNNING and WAITING trials among `trials`)."""
        import torch

        completed = results(trials, search_space)
        related = self.related.get(study, search_space) or None
        started = len(completed) >= self.n_startup_trials
        if not (started or warm_enough(related, self.n_startup_trials)):
            return None
        if not self._batches(study, completed):
            return None
        running = [
            t
            for t in trials
            if t.state in (TrialState.RUNNING, TrialState.WAITING)
            and search_space.keys() <= point(t).keys()
        ]
        space = gp_search_space.SearchSpace(search_space)
        with torch.device("cpu"):
            pending = normalize(space, [point(t) for t in running])
            if related is None:
                sign = -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0
                values = sign * np.array([t.value for t in completed])
                fitted = [completed[i] for i in fit_subset(values, self.fit_cap)]
                X = space.get_normalized_params(fitted)
                y, _, _ = standardize_values(sign * np.array([[t.value] for t in fitted]))
                y = y[:, 0]
                gpr = self._gp(study, tuple(search_space), X, y, space, len(completed))
                best = X[np.argmax(y), np.newaxis]
                threshold_y = float(y.max())
            else:
                # With the related studies' results, in the shared coordinates (warm_fit).
                warm = warm_fit(study, completed, space, related, self.fit_cap)
                X, y = warm.X, warm.y
                names = (*search_space, *CONTEXT_NAMES[: warm.k])
                n_results = len(completed) + len(related)
                gpr = self._gp(study, names, X, y, space, n_results, warm.is_categorical)
                threshold_y, best = warm.threshold_and_best(gpr)
            # Every result counts as known for the repeat check, fitted or not.
            known = np.vstack([space.get_normalized_params(completed), pending])
            threshold = None
            candidates: np.ndarray | None = None
            penalty = np.zeros(0)
            chosen: list[np.ndarray] = []
            for _ in range(q):
                acqf: acqf_module.BaseAcquisitionFunc
                if chosen and self.later == "explore" and related is None:
                    from hpsearch.search.exploration import (
                        PendingVariance,
                        best_sample,
                        relevance_threshold,
                    )

                    if threshold is None:
                        threshold = relevance_threshold(gpr, X)
                    explore = PendingVariance(gpr, space, X, y, pending, threshold)
                    acqf = explore
                elif related is not None:
                    # Exploration points are of the study's own GP: a warm fit takes qLogEI.
                    acqf = warm.acqf(gpr, space, threshold_y, pending, self)
                else:
                    acqf = log_ei(gpr, space, threshold_y, pending, self)
                if chosen and self.later == "explore" and related is None:
                    if candidates is None:
                        candidates = space.sample_normalized_params(EXPLORE_SAMPLES, self.rng)
                        penalty = explore.penalty(candidates)
                    x = best_sample(explore, candidates, penalty)
                elif not chosen:
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
                x = unrepeated(acqf, x, np.vstack([known, chosen]) if chosen else known, self.rng)
                chosen.append(x)
                pending = np.vstack([pending, x[np.newaxis]])
        self.fits += 1
        return Proposals(
            id=uuid.uuid4().hex,
            params=[space.get_unnormalized_param(x) for x in chosen],
            search_space=dict(search_space),
            length_scales=gpr.length_scales[: space.dim],
            is_categorical=np.asarray(space.is_categorical),
            known=frozenset(t.number for t in [*completed, *running]),
            min_distance=self.min_distance,
        )

    def _gp(
        self,
        study: optuna.Study,
        names: tuple[str, ...],
        X: np.ndarray,
        y: np.ndarray,
        space: gp_search_space.SearchSpace,
        n_results: int,
        is_categorical: np.ndarray | None = None,
    ) -> Any:
        """The GP on (X, y): the study's last kernel parameters when they are not due a refit
        (`KernelFit.is_due`), else a fit of them, warm-started from the last ones and kept in
        the study for every worker."""
        if is_categorical is None:
            is_categorical = np.asarray(space.is_categorical)
        last = stored_kernel(study)
        start = None
        if last is not None and last.names == names:
            start = fixed_gp(
                X,
                y,
                is_categorical,
                np.array(last.inverse_squared_lengthscales),
                last.kernel_scale,
                last.noise_var,
            )
            if not last.is_due(names, n_results, self.refit_every):
                return start
        gpr = self.fit_gp(X, y, space, start, is_categorical)
        self.kernel_fits += 1
        store_kernel(
            study,
            KernelFit(
                names=names,
                inverse_squared_lengthscales=tuple(
                    float(v) for v in gpr.inverse_squared_lengthscales.detach().numpy()
                ),
                kernel_scale=float(gpr.kernel_scale),
                noise_var=float(gpr.noise_var),
                results=n_results,
            ),
        )
        return gpr
