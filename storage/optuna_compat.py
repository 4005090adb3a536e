"""The private names of Optuna that storage uses: a trial's and a study's id in the storage.

Optuna's `Trial` and `Study` hold their storage ids only as private attributes, and every
storage call takes those ids. hpsearch's own compatibility module
(`hpsearch.search.optuna_compat`) holds the rest; this one is storage's, since storage imports
no hpsearch. tests/hpsearch/search/test_optuna_compat.py checks both.
"""

from __future__ import annotations

import optuna

__all__ = ["study_id", "trial_id"]


def trial_id(trial: optuna.trial.Trial | optuna.trial.FrozenTrial) -> int:
    return trial._trial_id


def study_id(study: optuna.Study) -> int:
    return study._study_id
