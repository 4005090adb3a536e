"""Every private name of Optuna that hpsearch uses, in one place.

gp and gp-batch (`hpsearch.search.gp`, `hpsearch.search.gp_batch`) are built on Optuna's GP
modules (`optuna._gp`: the GP, its acquisition functions and their optimiser, the search space
in the GP's coordinates) and on `optuna.samplers.GPSampler`'s internals: names Optuna does not
promise to keep between versions. They are reached only through this module, so that an Optuna
upgrade is checked here: pyproject.toml pins Optuna to the minor version these names were read
from, and tests/hpsearch/search/test_optuna_compat.py fails when one disappears (storage has a
small compatibility module of its own for trial and study ids, `storage.optuna_compat`: storage
does not import hpsearch).

The modules that import torch (`acqf_module`, `gp`, `optim_mixed`) are imported when first named, so
that importing the samplers' registry costs no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import optuna._gp.search_space as gp_search_space
import optuna.samplers._gp.sampler as _gp_sampler
from optuna.study._constrained_optimization import _is_constrained_optimization

if TYPE_CHECKING:
    import optuna._gp.acqf as acqf_module
    import optuna._gp.gp as gp
    import optuna._gp.optim_mixed as optim_mixed
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

__all__ = [
    "MAX_QMC_SEED_VALUE",
    "RELATIVE_PARAMS_KEY",
    "SYSTEM_ATTR_MAX_LENGTH",
    "GPSamplerBase",
    "acqf_module",
    "fixed_gp",
    "get_params",
    "gp",
    "gp_search_space",
    "is_constrained_optimization",
    "optim_mixed",
    "standardize_values",
    "study_storage",
    "trial_id",
]

# Optuna's modules that import torch, by the name they have here.
TORCH_MODULES = {
    "acqf_module": "optuna._gp.acqf",
    "gp": "optuna._gp.gp",
    "optim_mixed": "optuna._gp.optim_mixed",
}


def __getattr__(name: str) -> Any:
    if name in TORCH_MODULES:
        return importlib.import_module(TORCH_MODULES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The system attr prefix under which GPSampler shares a RUNNING trial's point with other
# workers, in chunks of at most SYSTEM_ATTR_MAX_LENGTH characters.
RELATIVE_PARAMS_KEY: str = _gp_sampler._RELATIVE_PARAMS_KEY
SYSTEM_ATTR_MAX_LENGTH: int = _gp_sampler._SYSTEM_ATTR_MAX_LENGTH
# The bound of the seeds of qLogEI's QMC samples.
MAX_QMC_SEED_VALUE: int = _gp_sampler._MAX_QMC_SEED_VALUE


def get_params(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's parameters, with a RUNNING trial's relative ones shared by GPSampler."""
    return _gp_sampler._get_params(trial)


def standardize_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GPSampler's standardisation of objective values (infinities clipped): (standardized,
    means, standard deviations)."""
    return _gp_sampler._standardize_values(values)


def is_constrained_optimization(trials: list[FrozenTrial]) -> bool:
    return _is_constrained_optimization(trials)


def study_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    return study._storage


def trial_id(trial: optuna.trial.Trial | FrozenTrial) -> int:
    return trial._trial_id


# GPSampler's private attributes and methods that GPSamplerBase reads or overrides: what an
# Optuna upgrade must keep (the compatibility test checks each on a fresh GPSampler).
GP_SAMPLER_ATTRIBUTES = (
    "_rng",
    "_intersection_search_space",
    "_n_startup_trials",
    "_log_prior",
    "_minimum_noise",
    "_gprs_cache_list",
    "_deterministic",
    "_tol",
    "_n_qmc_samples_qei",
)
GP_SAMPLER_METHODS = ("_sample_relative_impl", "_optimize_acqf")


class GPSamplerBase(optuna.samplers.GPSampler):
    """optuna.samplers.GPSampler with the internals that gp and gp-batch use under names of
    their own. GPSampler's two hooks are passed on: its `_sample_relative_impl` (the fit and
    the acquisition search, after the start-up check) to `sample_relative_impl`, its
    `_optimize_acqf` (the acquisition search) to `optimize_acqf`."""

    # -- the hooks -------------------------------------------------------------------------

    def _sample_relative_impl(
        self,
        study: optuna.Study,
        completed_trials: list[FrozenTrial],
        running_trials: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        return self.sample_relative_impl(study, completed_trials, running_trials, search_space)

    def sample_relative_impl(
        self,
        study: optuna.Study,
        completed_trials: list[FrozenTrial],
        running_trials: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        """One point: GPSampler's fit to `completed_trials` and its acquisition search with
        `running_trials` pending. Call under torch's CPU device."""
        return optuna.samplers.GPSampler._sample_relative_impl(
            self, study, completed_trials, running_trials, search_space
        )

    def _optimize_acqf(self, acqf: acqf_module.BaseAcquisitionFunc, best_params: Any) -> np.ndarray:
        return self.optimize_acqf(acqf, best_params)

    def optimize_acqf(
        self, acqf: acqf_module.BaseAcquisitionFunc, best_params: np.ndarray | None
    ) -> np.ndarray:
        """The acquisition search of a fit (a subclass may check its result)."""
        return self.gp_search(acqf, best_params)

    def gp_search(
        self, acqf: acqf_module.BaseAcquisitionFunc, best_params: np.ndarray | None
    ) -> np.ndarray:
        """GPSampler's own acquisition search (QMC points, then local searches from the best
        ones and `best_params`), whatever `optimize_acqf` adds."""
        return optuna.samplers.GPSampler._optimize_acqf(self, acqf, best_params)

    # -- the settings and state a subclass reads --------------------------------------------

    @property
    def n_startup_trials(self) -> int:
        return self._n_startup_trials

    @property
    def rng(self) -> np.random.RandomState:
        return self._rng.rng

    @property
    def tol(self) -> float:
        """The tolerance of the acquisition search's local searches."""
        return self._tol

    @property
    def n_qmc_samples_qei(self) -> int:
        """qLogEI's QMC samples over the pending points."""
        return self._n_qmc_samples_qei

    def search_space_includes_pruned(self) -> None:
        """Take the search space from the parameters of PRUNED trials too."""
        self._intersection_search_space = optuna.search_space.IntersectionSearchSpace(
            include_pruned=True
        )

    def fit_gp(
        self,
        X: np.ndarray,
        y: np.ndarray,
        space: gp_search_space.SearchSpace,
        start: gp.GPRegressor | None = None,
        is_categorical: np.ndarray | None = None,
    ) -> gp.GPRegressor:
        """GPSampler's fit of its kernel's parameters (its prior, noise floor, and warm start
        from `start`, else the previous fit of the same dimension), to standardized values `y`.
        `is_categorical` (default the space's) is given for points with dimensions beyond the
        space's (a warm start's context features, `hpsearch.search.warm`)."""
        import optuna._gp.gp as gp_module

        if is_categorical is None:
            is_categorical = np.asarray(space.is_categorical)
        cache = [start] if start is not None else self._gprs_cache_list
        if cache is not None and len(cache[0].inverse_squared_lengthscales) != len(is_categorical):
            cache = None
        gpr = gp_module.fit_kernel_params(
            X=X,
            Y=y,
            is_categorical=is_categorical,
            log_prior=self._log_prior,
            minimum_noise=self._minimum_noise,
            gpr_cache=cache[0] if cache is not None else None,
            deterministic_objective=self._deterministic,
        )
        self._gprs_cache_list = [gpr]
        return gpr


def fixed_gp(
    X: np.ndarray,
    y: np.ndarray,
    is_categorical: np.ndarray,
    inverse_squared_lengthscales: np.ndarray,
    kernel_scale: float,
    noise_var: float,
) -> gp.GPRegressor:
    """Optuna's GP on (X, y) with the kernel parameters given, not fitted: its Cholesky factor
    computed, ready for posteriors and acquisition functions."""
    import optuna._gp.gp as gp_module
    import torch

    gpr = gp_module.GPRegressor(
        is_categorical=torch.from_numpy(np.asarray(is_categorical)),
        X_train=torch.from_numpy(np.asarray(X, dtype=np.float64)),
        y_train=torch.from_numpy(np.asarray(y, dtype=np.float64)),
        inverse_squared_lengthscales=torch.tensor(
            inverse_squared_lengthscales, dtype=torch.float64
        ),
        kernel_scale=torch.tensor(kernel_scale, dtype=torch.float64),
        noise_var=torch.tensor(noise_var, dtype=torch.float64),
    )
    gpr._cache_matrix()
    return gpr
