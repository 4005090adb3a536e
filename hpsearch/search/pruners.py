"""Pruners by name, stored with the study like its sampler: a trial reports its best bits at
checkpoints (every few hundred steps) and the study's pruner may stop it there.

Steps are the resource: a checkpoint's step is the number of optimizer steps taken.
"""

from __future__ import annotations

import optuna

from hpsearch.errors import HpsearchError, unknown_choice
from hpsearch.search.samplers import STARTUP_TRIALS

PRUNERS: tuple[str, ...] = ("none", "median", "sha", "hyperband")


def check_pruner(name: str) -> None:
    if name not in PRUNERS:
        raise HpsearchError(unknown_choice("pruner", name, PRUNERS))


def make_pruner(name: str, every: int) -> optuna.pruners.BasePruner:
    """none: never; median: stop a trial whose best bits at a checkpoint are below the median
    of earlier trials at the same step (after STARTUP_TRIALS trials and two checkpoints);
    sha: successive halving, from one checkpoint of steps up; hyperband: brackets of
    successive halving from one checkpoint of steps to the longest trial seen. `every` is the
    trials' checkpoint interval in steps."""
    check_pruner(name)
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=STARTUP_TRIALS, n_warmup_steps=2 * every, interval_steps=every
        )
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=every)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=every, max_resource="auto")
    return optuna.pruners.NopPruner()
