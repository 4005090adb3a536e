"""Pure exploration for the later points of a batch (GP-UCB-PE, Contal et al. 2013).

The first point of a batch is the acquisition's best (gp's LogEI or qLogEI); each later one
is the point of highest posterior variance given the results and the batch's pending points,
within the relevant region: where the upper confidence bound reaches the best lower bound of
the results, so that no point is spent where the GP is sure it loses.

Conditioning on a pending point lowers the variance around it whatever its value turns out
to be, so the variance with the pending points is that of the same GP (the same kernel
parameters, no new fit) with the pending points added as observations of any value: one
Cholesky factor per point, no fantasy samples, no kernel fit. The pending points'
neighbourhoods have the lowest variance there is, so the points keep away from them, and from
the results, by construction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hpsearch.search.optuna_compat import acqf_module, fixed_gp

if TYPE_CHECKING:
    import torch

    from hpsearch.search.optuna_compat import gp, gp_search_space

# The width of the confidence bounds that draw the relevant region, in posterior standard
# deviations.
BETA = 2.0
# The penalty, in log variance per standardized unit, on a point whose upper bound falls
# short of the best lower bound: steep, yet smooth for the gradient search.
OUTSIDE_PENALTY = 10.0
# Added to the variance before its log, as LogEI's stabilising noise.
STABILIZING_NOISE = 1e-12


def relevance_threshold(gpr: gp.GPRegressor, X: np.ndarray, beta: float = BETA) -> float:
    """The best lower confidence bound among the results at X: a point whose upper bound is
    below it is worse than a known result with high probability."""
    import torch

    with torch.no_grad():
        mean, var = gpr.posterior(torch.from_numpy(X))
    return float((mean - beta * var.sqrt()).max())


class PendingVariance(acqf_module.BaseAcquisitionFunc):  # type: ignore[misc]
    """log posterior variance at x given the results and the `pending` points (normalized),
    less OUTSIDE_PENALTY times the shortfall of x's upper bound (without the pending points)
    below `threshold` (`relevance_threshold`).

    Args:
        gpr: the batch's fitted GP (results X, standardized values y).
        X, y: its results, for the GP with the pending points added.
        pending: points whose results are awaited (RUNNING, queued, earlier in the batch).
    """

    def __init__(
        self,
        gpr: gp.GPRegressor,
        search_space: gp_search_space.SearchSpace,
        X: np.ndarray,
        y: np.ndarray,
        pending: np.ndarray,
        threshold: float,
        beta: float = BETA,
    ) -> None:
        self._gpr = gpr
        self._threshold = threshold
        self._beta = beta
        lengthscales = gpr.length_scales
        if len(pending):
            self._with_pending = fixed_gp(
                np.vstack([X, pending]),
                np.concatenate([y, np.zeros(len(pending))]),  # any value: variance only
                np.asarray(search_space.is_categorical),
                1.0 / np.square(lengthscales),
                float(gpr.kernel_scale),
                float(gpr.noise_var),
            )
        else:
            self._with_pending = gpr
        super().__init__(lengthscales, search_space)

    def log_variance(self, x: np.ndarray) -> np.ndarray:
        """log posterior variance at the points x given the results and the pending points."""
        import torch

        with torch.no_grad():
            _, var = self._with_pending.posterior(torch.from_numpy(x))
        return np.asarray(torch.log(var + STABILIZING_NOISE).numpy())

    def penalty(self, x: np.ndarray) -> np.ndarray:
        """What `eval_acqf` takes off at the points x for lying outside the relevant region
        (the same for every point of a batch: it does not see the pending points)."""
        import torch

        with torch.no_grad():
            return np.asarray(self._penalty(torch.from_numpy(x)).numpy())

    def _penalty(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        mean, var = self._gpr.posterior(x)
        ucb = mean + self._beta * (var + STABILIZING_NOISE).sqrt()
        return OUTSIDE_PENALTY * torch.clamp(self._threshold - ucb, min=0.0)

    def eval_acqf(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        _, var_pending = self._with_pending.posterior(x)
        return torch.log(var_pending + STABILIZING_NOISE) - self._penalty(x)


def best_sample(acqf: PendingVariance, candidates: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """The best of the `candidates` (QMC points of the space, drawn once for the batch) by
    `acqf`, given their `penalty` (`PendingVariance.penalty`, the same for the whole batch),
    without a local search: an exploration point is not worth the precision (the variance is
    flat near its maxima, where a gradient search takes several times LogEI's steps), and one
    candidate set with its penalty computed once makes each later point one posterior."""
    return np.asarray(candidates[int(np.argmax(acqf.log_variance(candidates) - penalty))])
