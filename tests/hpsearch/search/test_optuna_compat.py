"""Every private name of Optuna that hpsearch and storage use is still there: run after an
Optuna upgrade (pyproject.toml pins the minor version these names were read from)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import optuna
import pytest

import hpsearch.search.optuna_compat as compat
import storage.optuna_compat as storage_compat

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", sorted(compat.TORCH_MODULES))
def test_each_module_that_imports_torch_is_there(name: str):
    assert getattr(compat, name) is importlib.import_module(compat.TORCH_MODULES[name])


def test_the_names_the_gp_samplers_call_are_there():
    assert callable(compat.acqf_module.LogEI) and callable(compat.acqf_module.qLogEI)
    assert callable(compat.acqf_module.BaseAcquisitionFunc.eval_acqf_no_grad)
    assert callable(compat.gp.fit_kernel_params) and compat.gp.GPRegressor
    assert callable(compat.optim_mixed.optimize_acqf_mixed)
    space = compat.gp_search_space.SearchSpace
    for method in ("get_normalized_params", "get_unnormalized_param", "sample_normalized_params"):
        assert callable(getattr(space, method)), method
    assert isinstance(compat.RELATIVE_PARAMS_KEY, str)
    assert compat.SYSTEM_ATTR_MAX_LENGTH > 0 and compat.MAX_QMC_SEED_VALUE > 0


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        compat.no_such_module  # noqa: B018


def test_gp_sampler_keeps_the_internals_the_subclasses_use():
    sampler = optuna.samplers.GPSampler(seed=0)
    for name in compat.GP_SAMPLER_ATTRIBUTES:
        assert hasattr(sampler, name), name
    for name in compat.GP_SAMPLER_METHODS:
        assert callable(getattr(optuna.samplers.GPSampler, name)), name
    base = compat.GPSamplerBase(seed=0, n_startup_trials=7)
    assert base.n_startup_trials == 7 and base.tol > 0 and base.n_qmc_samples_qei > 0
    assert 0 <= base.rng.randint(10) < 10


def test_the_helpers_reach_a_trial_and_a_study():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    frozen = study.trials[0]
    assert compat.trial_id(trial) == storage_compat.trial_id(trial) == compat.trial_id(frozen)
    assert storage_compat.study_id(study) == study._study_id
    assert compat.study_storage(study) is study._storage
    assert compat.get_params(frozen) == {"x": trial.params["x"]}
    values, means, stds = compat.standardize_values(compat.np.array([[1.0], [3.0]]))
    assert values.ravel().tolist() == [-1.0, 1.0] and means[0] == 2.0 and stds[0] == 1.0
    assert compat.is_constrained_optimization([frozen]) is False


def _private_optuna_uses(path: Path) -> list[str]:
    """The private names of Optuna a module imports (`optuna._x`, `from optuna... import _x`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "optuna" and any(p.startswith("_") for p in parts[1:]):
                found.append(name)
    return found


# Private attributes of Optuna's trials and studies, read on an object other than `self`.
PRIVATE_ATTRIBUTE = re.compile(r"\b(?!self\b)\w+\._(trial_id|study_id|storage|get_trials)\b")


def _project_modules() -> list[Path]:
    allowed = {ROOT / "hpsearch/search/optuna_compat.py", ROOT / "storage/optuna_compat.py"}
    return [
        path
        for package in ("hpsearch", "storage", "objectives")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path not in allowed
    ]


def test_no_other_module_uses_a_private_name_of_optuna():
    found = {
        str(path.relative_to(ROOT)): uses
        for path in _project_modules()
        if (uses := _private_optuna_uses(path) + PRIVATE_ATTRIBUTE.findall(path.read_text()))
    }
    assert not found, found


def test_the_check_finds_a_private_name():
    assert PRIVATE_ATTRIBUTE.search("storage.record(trial._trial_id)")
    assert not PRIVATE_ATTRIBUTE.search("self._storage.record_heartbeat(trial_id)")
