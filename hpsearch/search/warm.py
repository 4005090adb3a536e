"""Warm starts across studies: the related studies' results in this study's GP coordinates.

A study with the setting `warm_from` (`auto`: every other study in the storage of the same
task and arch; or a list of study names) has gp and gp-batch fit one GP to its own results
and the related studies' ones, in coordinates that mean the same in every study:

- b relative to the parameter count P (the study's budget): a related trial at b_r in a study
  of P_r counts at b = b_r * P / P_r in this one (in this study's normalized coordinates, which
  may lie outside [0, 1]: the GP's kernel does not care). Every other parameter keeps its value
  (a learning rate means the same at any P);
- the value in bits per parameter (bits / P);
- context features of each trial, one more GP dimension each: log2(P_r / P) / CONTEXT_OCTAVES
  (0 for this study's trials), and, when this study does not search the depth, the depth
  relative to this study's (0 for its own). The GP fits a length scale for each, so it learns
  from the data how far a study at another budget or depth speaks for this one.

Proposals are made for this study's context (`ContextAcqf` fixes the context features at 0)
inside this study's own space. What a related trial cannot be put into this study's space (a
categorical choice this study lacks, a parameter it has that the trial does not) is left out.

The functions here are pure, over arrays and parameter dicts, but for `read_related` (reads the
related studies from the storage) and `RelatedCache` (keeps them per sampler for REFRESH_SECONDS).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

if TYPE_CHECKING:
    import torch

    from hpsearch.search.optuna_compat import acqf_module, gp_search_space

logger = logging.getLogger(__name__)

# The study user attr holding the setting: ["auto"] or study names; absent: no warm start.
WARM_FROM_KEY = "warm_from"
AUTO = "auto"
# The parameter scaled by P across studies, and the study attr giving P.
SCALED_PARAM = "b"
SIZE_ATTR = "budget"
DEPTH = "depth"
# One unit of the log-P context feature: a factor 2**CONTEXT_OCTAVES in P (200 -> 1,000 is
# 0.58 units, within the [0, 1] range of the other dimensions).
CONTEXT_OCTAVES = 4.0
# One unit of the depth context feature: this many layers.
DEPTH_UNIT = 4.0
# Seconds a sampler keeps the related trials it read before reading them again.
REFRESH_SECONDS = 60.0
# The names of the context features, after the search space's in a stored kernel fit.
CONTEXT_NAMES = ("hpsearch:warm:log_params", "hpsearch:warm:depth")


def check_warm_from(names: Sequence[str]) -> tuple[str, ...]:
    """The setting as stored: ("auto",) or distinct study names; ValueError otherwise."""
    names = tuple(n.strip() for n in names)
    if not names or any(not n for n in names):
        raise ValueError("give auto or study names, comma-separated")
    if AUTO in names and len(names) > 1:
        raise ValueError("auto takes every related study: give it alone")
    if len(set(names)) != len(names):
        raise ValueError(f"study names must not repeat, got {','.join(names)}")
    return names


def stored_warm_from(attrs: Mapping[str, Any]) -> tuple[str, ...]:
    """A study's setting from its user attrs; () for a study without one (made before it)."""
    value = attrs.get(WARM_FROM_KEY)
    if not value:
        return ()
    if isinstance(value, str):
        value = [value]
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class Related:
    """The results of the related studies, ready for this study's GP: `params` (each trial's
    parameters over this study's search space, b already rescaled to this study's P),
    `values` (bits per parameter), `context` (shape (n, k): the context features)."""

    params: list[dict[str, Any]]
    values: np.ndarray
    context: np.ndarray

    def __len__(self) -> int:
        return len(self.params)


def context_features(
    sizes: np.ndarray, depths: np.ndarray, size: float, depth: int, with_depth: bool
) -> np.ndarray:
    """The context features of trials of studies of P `sizes` and `depths`, seen from a study
    of P `size` and depth `depth`: shape (n, 1 or 2); rows of zeros for the study's own."""
    columns = [np.log2(np.asarray(sizes, dtype=float) / size) / CONTEXT_OCTAVES]
    if with_depth:
        columns.append((np.asarray(depths, dtype=float) - depth) / DEPTH_UNIT)
    return np.stack(columns, axis=1) if len(sizes) else np.zeros((0, len(columns)))


def rescaled(params: Mapping[str, Any], size: float, own_size: float) -> dict[str, Any]:
    """A related trial's parameters seen from a study of P `own_size`: b times own_size / size."""
    out = dict(params)
    if SCALED_PARAM in out:
        out[SCALED_PARAM] = float(out[SCALED_PARAM]) * own_size / size
    return out


def fits_space(params: Mapping[str, Any], search_space: Mapping[str, Any]) -> bool:
    """Whether a related trial's parameters can be put into this study's space: every
    parameter present, every categorical choice one of this study's."""
    for name, distribution in search_space.items():
        if name not in params:
            return False
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            if params[name] not in distribution.choices:
                return False
        elif not isinstance(params[name], int | float) or not math.isfinite(params[name]):
            return False
        elif getattr(distribution, "log", False) and params[name] <= 0:
            return False
    return True


def trial_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's parameters, with those its study fixed read from its config (user attr)."""
    config = trial.user_attrs.get("config")
    fixed = dict(config) if isinstance(config, dict) else {}
    return {**fixed, **trial.params}


def trial_depth(trial: optuna.trial.FrozenTrial) -> int:
    params = trial_params(trial)
    return int(params.get(DEPTH, trial.user_attrs.get(DEPTH, 1)))


def related_results(
    studies: Sequence[tuple[float, Sequence[optuna.trial.FrozenTrial]]],
    search_space: Mapping[str, Any],
    own_size: float,
    own_depth: int,
) -> Related:
    """The results of related studies, given as (P, their result trials), in this study's
    coordinates (module docstring)."""
    params: list[dict[str, Any]] = []
    values: list[float] = []
    sizes: list[float] = []
    depths: list[int] = []
    for size, trials in studies:
        for trial in trials:
            mapped = rescaled(trial_params(trial), size, own_size)
            if trial.value is None or not fits_space(mapped, search_space):
                continue
            params.append({name: mapped[name] for name in search_space})
            values.append(float(trial.value) / size)
            sizes.append(size)
            depths.append(trial_depth(trial))
    context = context_features(
        np.array(sizes), np.array(depths), own_size, own_depth, DEPTH not in search_space
    )
    return Related(params, np.array(values, dtype=float), context)


def related_names(
    own: str, attrs: Mapping[str, Any], studies: Sequence[optuna.study.StudySummary | Any]
) -> list[str]:
    """The studies a study of user attrs `attrs` warms from, among `studies` (frozen studies
    with `study_name` and `user_attrs`): `auto`: every other one of the same task and arch
    that has a size; else the named ones that exist (a missing one is skipped with a
    warning: `hpsearch create` checked them, but a study can be deleted since)."""
    setting = stored_warm_from(attrs)
    if not setting:
        return []
    by_name = {s.study_name: s for s in studies}
    if setting == (AUTO,):
        return sorted(
            name
            for name, s in by_name.items()
            if name != own
            and s.user_attrs.get("task") == attrs.get("task")
            and s.user_attrs.get("arch") == attrs.get("arch")
            and SIZE_ATTR in s.user_attrs
        )
    missing = [n for n in setting if n not in by_name]
    if missing:
        logger.warning("%s warms from studies no longer here: %s", own, ", ".join(missing))
    return [n for n in setting if n in by_name and n != own]


def own_depth(attrs: Mapping[str, Any]) -> int:
    """The study's depth when it has one (the single choice of its depth dimension), else 1."""
    space = attrs.get("space")
    if isinstance(space, dict) and isinstance(space.get(DEPTH), dict):
        choices = space[DEPTH].get("attributes", {}).get("choices") or [1]
        return int(choices[0])
    return 1


def read_related(study: optuna.Study, search_space: Mapping[str, Any]) -> Related | None:
    """The related studies' results of `study` in its coordinates; None for a study that
    does not warm from any (no setting, no size, or no related study)."""
    from hpsearch.search.fitted import is_result
    from hpsearch.search.optuna_compat import study_storage

    attrs = study.user_attrs
    if not stored_warm_from(attrs) or SIZE_ATTR not in attrs:
        return None
    storage = study_storage(study)
    summaries = storage.get_all_studies()
    names = related_names(study.study_name, attrs, summaries)
    by_name = {s.study_name: s for s in summaries}
    studies = []
    for name in names:
        size = by_name[name].user_attrs.get(SIZE_ATTR)
        if not isinstance(size, int | float) or size <= 0:
            continue
        trials = storage.get_all_trials(by_name[name]._study_id, deepcopy=False)
        studies.append((float(size), [t for t in trials if is_result(t)]))
    if not studies:
        return None
    return related_results(studies, search_space, float(attrs[SIZE_ATTR]), own_depth(attrs))


class RelatedCache:
    """The related results of each study a sampler proposes for, read again after
    `refresh` seconds (they change as the related studies run, but slowly)."""

    def __init__(self, refresh: float = REFRESH_SECONDS) -> None:
        self.refresh = refresh
        self._kept: dict[tuple[str, tuple[str, ...]], tuple[float, Related | None]] = {}

    def get(self, study: optuna.Study, search_space: Mapping[str, Any]) -> Related | None:
        key = (study.study_name, tuple(search_space))
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is None or now - kept[0] >= self.refresh:
            kept = (now, read_related(study, search_space))
            self._kept[key] = kept
        return kept[1]


def own_size(study: optuna.Study) -> float:
    return float(study.user_attrs[SIZE_ATTR])


def pooled(
    own_X: np.ndarray, own_values: np.ndarray, related_X: np.ndarray, related: Related
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The GP's data: related results first, then the study's own (in trial order, so that a
    capped fit keeps the own ones as the most recent), each row with its context features;
    the values in bits per parameter. Returns (X, values, own mask)."""
    k = related.context.shape[1]
    X = np.vstack(
        [np.hstack([related_X, related.context]), np.hstack([own_X, np.zeros((len(own_X), k))])]
    )
    values = np.concatenate([related.values, own_values])
    own = np.concatenate([np.zeros(len(related), dtype=bool), np.ones(len(own_X), dtype=bool)])
    return X, values, own


def with_context(X: np.ndarray, k: int) -> np.ndarray:
    """Points of this study (pending ones, proposals) with their context features (zeros)."""
    return np.hstack([X, np.zeros((len(X), k))])


class ContextAcqf:
    """An acquisition function of a GP with k context dimensions after the search space's,
    seen as one over the search space alone: the context fixed at this study's (zeros).
    Has what Optuna's acquisition search reads: `search_space`, `length_scales` (the search
    space's), `eval_acqf`, `eval_acqf_no_grad`, `eval_acqf_with_grad`."""

    def __init__(
        self,
        inner: acqf_module.BaseAcquisitionFunc,
        search_space: gp_search_space.SearchSpace,
        k: int,
    ) -> None:
        self.inner = inner
        self.search_space = search_space
        self.k = k
        self.length_scales = np.asarray(inner.length_scales)[: search_space.dim]

    def eval_acqf(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        zeros = torch.zeros((*x.shape[:-1], self.k), dtype=x.dtype)
        return self.inner.eval_acqf(torch.cat([x, zeros], dim=-1))

    def eval_acqf_no_grad(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.eval_acqf(torch.from_numpy(x)).detach().numpy()

    def eval_acqf_with_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        import torch

        assert x.ndim == 1
        tensor = torch.from_numpy(x).requires_grad_(True)
        value = self.eval_acqf(tensor)
        value.backward()  # type: ignore[no-untyped-call]
        assert tensor.grad is not None
        return value.item(), tensor.grad.detach().numpy()
