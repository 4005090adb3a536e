"""gp: Optuna's GPSampler, fitted to the study's PRUNED trials as well as its COMPLETE ones.

Optuna's GPSampler fits only COMPLETE trials. In a study with a pruner most proposals end
PRUNED, so the GP never learns where they went: it keeps proposing points like those just
pruned, and they are pruned in turn (`benchmarks/capacity_search.py pruning` shows it; the
figures, with and without PRUNED trials fitted, are in docs/benchmarks.md). Here a PRUNED
trial counts with the value it was stopped at, its last report: the best bits the network had
stored by then. That is a measurement, not a guess (the network did store those bits), and a
lower bound on what the trial would have reached, so it pulls the GP down where the pruner
judged the runs poor, which is the verdict the pruner made. Everything else (the kernel, its
priors, the acquisition, the sharing of RUNNING trials' points) is GPSampler's.

A proposal never repeats a point: the acquisition search's result is checked against the
points of the trials it was fitted to, the pending ones and (gp-batch) the batch's earlier
proposals; one within REPEAT_DISTANCE length scales of any of them (the search came back to
its warm start, the best trial or the previous proposal, as it can where the acquisition is
flat) is replaced by the best point by the acquisition among REPEAT_CANDIDATES QMC points that
repeat none. A trial at a point already run or running tells the study nothing new.

gp-batch's fit is made cheaper here (`hpsearch.search.gp_batch`): `fit_subset` caps the
results it sees at the best quarter plus the most recent, and `KernelFit` is the kernel's
parameters kept in the study between refits, so that any worker, a fresh process included,
reuses them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.search.fitted import is_result
from hpsearch.search.optuna_compat import (
    MAX_QMC_SEED_VALUE,
    RELATIVE_PARAMS_KEY,
    SYSTEM_ATTR_MAX_LENGTH,
    GPSamplerBase,
    get_params,
    gp_search_space,
    standardize_values,
    study_storage,
    trial_id,
)
from hpsearch.search.warm import ContextAcqf, Related, RelatedCache, own_size, pooled, with_context
from storage.optuna_compat import study_id

if TYPE_CHECKING:
    from collections.abc import Iterable

    from optuna.distributions import BaseDistribution

    from hpsearch.search.optuna_compat import acqf_module

logger = logging.getLogger(__name__)

# The states a GP fit reads: results (COMPLETE, PRUNED with a value) and pending points.
FIT_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
# A proposal this close to a known point, in the GP's length scales, repeats it: a Matern 5/2
# correlation of 1 - 1e-8, so running it reveals nothing the GP does not know.
REPEAT_DISTANCE = 1e-4
# The QMC points a repeating proposal is replaced from.
REPEAT_CANDIDATES = 512
# The share of a capped fit's points kept for being the best (`fit_subset`).
BEST_SHARE = 0.25
# The study system attr holding the kernel parameters of the last fit (`KernelFit`).
KERNEL_ATTR = "hpsearch:gp_kernel"
# The results a fit of gp-batch sees at most, and one of gp's with related studies' results
# (`fit_subset`; gp alone fits all its own, as GPSampler does).
FIT_CAP = 600


def results(
    trials: Iterable[FrozenTrial], search_space: dict[str, BaseDistribution]
) -> list[FrozenTrial]:
    """The trials among `trials` that the GP fits, in their order: COMPLETE ones, and PRUNED
    ones with a value whose parameters cover the search space (a COMPLETE trial's always do,
    the search space being the intersection of theirs)."""
    return [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        or (is_result(t) and search_space.keys() <= t.params.keys())
    ]


class GPSampler(GPSamplerBase):
    """optuna.samplers.GPSampler whose fit, start-up count and improvement threshold include
    PRUNED trials at their last reported value (module docstring), as does the search space
    (the intersection of the parameters of COMPLETE and PRUNED trials). Same arguments."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.search_space_includes_pruned()
        # The normalized points an acquisition search must not repeat (`_optimize_acqf`).
        self._known = np.zeros((0, 0))
        # The related studies' results of a warm-started study (`hpsearch.search.warm`).
        self.related = RelatedCache()

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if search_space == {}:
            return {}
        trials = study.get_trials(deepcopy=False, states=FIT_STATES)
        fitted = results(trials, search_space)
        running = [
            t
            for t in trials
            if t.state == TrialState.RUNNING and search_space.keys() <= get_params(t).keys()
        ]
        related = self.related.get(study, search_space)
        if len(fitted) < self.n_startup_trials and not warm_enough(related, self.n_startup_trials):
            return {}
        import torch

        # As GPSampler: torch on the CPU whatever the default device; the point is shared with
        # other workers through the trial's system attrs (they treat it as pending).
        space = gp_search_space.SearchSpace(search_space)
        self._known = np.vstack(
            [
                space.get_normalized_params(fitted),
                normalize(space, [get_params(t) for t in running]),
            ]
        )
        try:
            with torch.device("cpu"):
                if related:
                    params = self.warm_sample(study, fitted, running, space, related)
                else:
                    params = self.sample_relative_impl(study, fitted, running, search_space)
        finally:
            self._known = np.zeros((0, space.dim))
        if params:
            text = json.dumps(params)
            for i in range(0, len(text), SYSTEM_ATTR_MAX_LENGTH):
                study_storage(study).set_trial_system_attr(
                    trial_id(trial),
                    f"{RELATIVE_PARAMS_KEY}:{i // SYSTEM_ATTR_MAX_LENGTH}",
                    text[i : i + SYSTEM_ATTR_MAX_LENGTH],
                )
        return params

    def warm_sample(
        self,
        study: optuna.Study,
        fitted: list[FrozenTrial],
        running: list[FrozenTrial],
        space: gp_search_space.SearchSpace,
        related: Related,
    ) -> dict[str, Any]:
        """One point, as GPSampler's fit and search, from the study's results and the related
        studies' (`warm_fit`), for this study's context. Call under torch's CPU device."""
        data = warm_fit(study, fitted, space, related, FIT_CAP)
        gpr = self.fit_gp(data.X, data.y, space, is_categorical=data.is_categorical)
        threshold, best = data.threshold_and_best(gpr)
        pending = normalize(space, [get_params(t) for t in running])
        acqf = data.acqf(gpr, space, threshold, pending, self)
        return space.get_unnormalized_param(self.optimize_acqf(acqf, best))

    def optimize_acqf(
        self, acqf: acqf_module.BaseAcquisitionFunc, best_params: np.ndarray | None
    ) -> np.ndarray:
        # GPSampler's acquisition search, then the repeat check against `self._known`: the
        # normalized points of the trials of this fit (set around the search that calls this).
        x = self.gp_search(acqf, best_params)
        return unrepeated(acqf, x, self._known, self.rng)


def normalize(space: gp_search_space.SearchSpace, params: list[dict[str, Any]]) -> np.ndarray:
    """Points in the GP's coordinates ([0, 1], categorical: the choice's index); shape
    (len(params), dims)."""
    if not params:
        return np.zeros((0, space.dim))
    # get_normalized_params reads the params given, not the trials' own.
    return space.get_normalized_params([None] * len(params), params)  # type: ignore[list-item]


def scaled_distances(
    x: np.ndarray, points: np.ndarray, length_scales: np.ndarray, is_categorical: np.ndarray
) -> np.ndarray:
    """Distances from x to each point in the GP's length scales (categorical: 0 or 1 per
    dimension, as the kernel counts them); +inf when there are no points."""
    if len(points) == 0:
        return np.array([np.inf])
    diff = np.abs(points - x)
    diff = np.where(is_categorical, (diff > 0).astype(float), diff / length_scales)
    return np.sqrt(np.square(diff).sum(axis=1))


def unrepeated(
    acqf: acqf_module.BaseAcquisitionFunc,
    x: np.ndarray,
    known: np.ndarray,
    rng: np.random.RandomState,
) -> np.ndarray:
    """x, the acquisition search's result, unless it repeats one of the `known` points (within
    REPEAT_DISTANCE length scales); then the best point by `acqf` among REPEAT_CANDIDATES QMC
    points of the space that repeat none, or x itself when every one does (a discrete space
    run through: a repeat is then a replicate)."""
    space = acqf.search_space
    scales, categorical = acqf.length_scales, np.asarray(space.is_categorical)
    if len(known) == 0 or scaled_distances(x, known, scales, categorical).min() >= REPEAT_DISTANCE:
        return x
    candidates = space.sample_normalized_params(REPEAT_CANDIDATES, rng)
    fresh = np.array(
        [
            scaled_distances(c, known, scales, categorical).min() >= REPEAT_DISTANCE
            for c in candidates
        ]
    )
    if not fresh.any():
        return x
    candidates = candidates[fresh]
    best = candidates[int(np.argmax(acqf.eval_acqf_no_grad(candidates)))]
    logger.debug("the acquisition search repeated a known point; proposing %s instead", best)
    return best


def fit_subset(values: np.ndarray, limit: int, best_share: float = BEST_SHARE) -> np.ndarray:
    """The indices (ascending) of the results a capped fit sees: all of them when there are at
    most `limit`; else the best `best_share` of `limit` by `values` (to be maximised), then the
    most recent of the others up to `limit` (`values` in trial order, the last the newest).

    The best points are where the acquisition searches, so the GP must stay accurate there;
    the most recent are where the search has been lately, so it learns what they taught.
    What is left out is old and poor: far from where proposals go, and stood for by the
    recent points around it."""
    n = len(values)
    if limit < 1:
        raise ValueError(f"the cap must be at least 1, got {limit}")
    if n <= limit:
        return np.arange(n)
    best = np.argsort(-np.asarray(values), kind="stable")[: int(best_share * limit)]
    keep = np.zeros(n, dtype=bool)
    keep[best] = True
    rest = np.flatnonzero(~keep)[::-1][: limit - len(best)]
    keep[rest] = True
    return np.flatnonzero(keep)


@dataclass(frozen=True)
class KernelFit:
    """The kernel parameters of a study's last GP fit, and what they were fitted to: the
    search space's parameter names (in the GP's order) and the study's results then."""

    names: tuple[str, ...]
    inverse_squared_lengthscales: tuple[float, ...]
    kernel_scale: float
    noise_var: float
    results: int

    def __post_init__(self) -> None:
        if len(self.names) != len(self.inverse_squared_lengthscales):
            raise ValueError("a kernel fit needs one length scale per parameter")

    def is_due(self, names: tuple[str, ...], results: int, every: int) -> bool:
        """Whether a fit to `results` results over `names` must refit the kernel: another
        space, or `every` results more than this fit saw, or a quarter more (early on the
        parameters still move as the data grows)."""
        grown = results - self.results
        return names != self.names or grown >= min(every, max(1, self.results // 4))


def stored_kernel(study: optuna.Study) -> KernelFit | None:
    """The study's last kernel fit (`KERNEL_ATTR`), or None."""
    raw = study_storage(study).get_study_system_attrs(study_id(study)).get(KERNEL_ATTR)
    if not raw:
        return None
    try:
        fields = dict(raw)
        fields["names"] = tuple(fields["names"])
        fields["inverse_squared_lengthscales"] = tuple(fields["inverse_squared_lengthscales"])
        return KernelFit(**fields)
    except (TypeError, ValueError, KeyError):
        logger.warning("ignoring an unreadable kernel fit in the study: %r", raw)
        return None


def store_kernel(study: optuna.Study, fit: KernelFit) -> None:
    """Keep `fit` in the study for every worker's next fit."""
    study_storage(study).set_study_system_attr(study_id(study), KERNEL_ATTR, asdict(fit))


def warm_enough(related: Related | None, startup: int) -> bool:
    """Whether the related studies' results are enough for the GP to take over before the
    study's own random start-up is done: as many as the start-up itself."""
    return related is not None and len(related) >= startup


@dataclass(frozen=True)
class WarmFit:
    """The data of a GP fit to a study's results and its related studies' (`hpsearch.search.
    warm`): points `X` with `k` context columns after the search space's, standardized
    values `y` (bits per parameter), `own` marking the study's own results."""

    X: np.ndarray
    y: np.ndarray
    own: np.ndarray
    k: int
    is_categorical: np.ndarray

    def threshold_and_best(self, gpr: Any) -> tuple[float, np.ndarray]:
        """The improvement threshold and the acquisition search's warm start (shape (1, d)):
        the best own result; with none yet, the best posterior mean, at this study's
        context, among the fitted points."""
        d = self.X.shape[1] - self.k
        if self.own.any():
            i = int(np.flatnonzero(self.own)[np.argmax(self.y[self.own])])
            return float(self.y[i]), self.X[i, np.newaxis, :d]
        import torch

        candidates = with_context(self.X[:, :d], self.k)
        with torch.no_grad():
            mean, _ = gpr.posterior(torch.from_numpy(candidates))
        i = int(torch.argmax(mean))
        return float(mean[i]), self.X[i, np.newaxis, :d]

    def acqf(
        self,
        gpr: Any,
        space: gp_search_space.SearchSpace,
        threshold: float,
        pending: np.ndarray,
        sampler: GPSamplerBase,
    ) -> Any:
        """LogEI (qLogEI over `pending`, the study's own pending points), at the study's
        context, over its search space."""
        inner = log_ei(gpr, space, threshold, with_context(pending, self.k), sampler)
        return ContextAcqf(inner, space, self.k)


def log_ei(
    gpr: Any,
    space: gp_search_space.SearchSpace,
    threshold: float,
    pending: np.ndarray,
    sampler: GPSamplerBase,
) -> Any:
    """GPSampler's acquisition function: LogEI, or qLogEI over `pending` (normalized points
    of the running trials) where there are any, seeded from the sampler's rng."""
    from hpsearch.search.optuna_compat import acqf_module

    if len(pending) == 0:
        return acqf_module.LogEI(gpr=gpr, search_space=space, threshold=threshold)
    return acqf_module.qLogEI(
        gpr=gpr,
        search_space=space,
        threshold=threshold,
        n_qmc_samples=sampler.n_qmc_samples_qei,
        qmc_seed=sampler.rng.randint(MAX_QMC_SEED_VALUE),
        normalized_params_of_running_trials=pending,
    )


def warm_fit(
    study: optuna.Study,
    fitted: list[FrozenTrial],
    space: gp_search_space.SearchSpace,
    related: Related,
    cap: int,
) -> WarmFit:
    """The study's results `fitted` and the related ones in the shared coordinates, capped
    at `cap` points (`fit_subset`: the related ones come first, the own last, as the most
    recent), standardized together."""
    from optuna.study import StudyDirection

    sign = -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0
    own_X = space.get_normalized_params(fitted)
    own_values = sign * np.array([t.value for t in fitted], dtype=float) / own_size(study)
    X, values, own = pooled(own_X, own_values, normalize(space, related.params), related)
    values[~own] *= sign
    keep = fit_subset(values, cap)
    X, values, own = X[keep], values[keep], own[keep]
    y, _, _ = standardize_values(values[:, np.newaxis])
    k = related.context.shape[1]
    categorical = np.concatenate([np.asarray(space.is_categorical), np.zeros(k, dtype=bool)])
    return WarmFit(X=X, y=y[:, 0], own=own, k=k, is_categorical=categorical)
