"""Every registered task passes the same checks: suggest gives a valid config, a tiny run
finishes, the same seed gives the same result."""

import dataclasses

import optuna
import pytest

from objectives.tasks.registry import TASKS, get_task, supports_batching
from tests.testing import TRIAL_ATTRS

TINY = {
    "capacity": {
        "attrs": {
            "task": "capacity",
            "arch": "rnn",
            "budget": 300,
            "n_in": 8,
            "unroll": 3,
            "patience": 20,
            "space": {
                "depth": {"kind": "choice", "choices": [1, 2]},
                "b": {"kind": "int", "low": 16, "high": 64, "log": True},
                "learning_rate": {"kind": "float", "low": 1e-3, "high": 1e-1, "log": True},
                "init_scale": {"kind": "float", "low": 0.5, "high": 2.0, "log": True},
                "activation": {"kind": "fixed", "value": "tanh"},
                "optimizer": {"kind": "fixed", "value": "adam"},
                "gate_bias": {"kind": "fixed", "value": 1.0},
                "grad_clip": {"kind": "fixed", "value": 0.0},
                "max_steps": {"kind": "fixed", "value": 40},
            },
        }
    },
    "per-unit": {
        "attrs": {
            "task": "per-unit",
            "arch": "gru",
            "units": 6,
            "n_in": 4,
            "unroll": 3,
            "patience": 20,
            "samples": 64,
            "eval_samples": 32,
            "space": {
                "depth": {"kind": "choice", "choices": [1, 2]},
                "learning_rate": {"kind": "float", "low": 1e-3, "high": 1e-1, "log": True},
                "init_scale": {"kind": "float", "low": 0.5, "high": 2.0, "log": True},
                "activation": {"kind": "fixed", "value": "tanh"},
                "optimizer": {"kind": "fixed", "value": "adam"},
                "gate_bias": {"kind": "fixed", "value": 1.0},
                "grad_clip": {"kind": "fixed", "value": 0.0},
                "max_steps": {"kind": "fixed", "value": 40},
                "lr_schedule": {"kind": "fixed", "value": "cosine"},
            },
        }
    },
    "calibration": {"attrs": {"task": "calibration", "label": "tiny", "dims": 3, "seconds": 0.0}},
}


def test_every_task_has_a_tiny_setting():
    assert set(TASKS) == set(TINY)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_conformance(name):
    task = get_task(name)
    settings = task.study_from_attrs(TINY[name]["attrs"])
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(1))
    trial = study.ask()
    config = task.suggest(trial, settings, 11)
    assert config.seed == 11
    first = task.run(config, "cpu")
    again = task.run(config, "cpu")
    assert first.value == again.value
    assert "seconds" in first.to_attrs()
    assert settings.name and settings.to_attrs()["task"] == name
    assert type(task.study_from_attrs(settings.to_attrs())) is type(settings)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TASKS))
def test_batching_tasks_train_a_batch_as_one_by_one(name):
    """Every task that batches: a batch of two of its trials ends them with the values
    they end with alone (to float rounding), its progress and stop work, and its study
    says how large a batch's trials can be."""
    task = get_task(name)
    if not supports_batching(task):
        pytest.skip(f"{name} trains one trial at a time")
    settings = task.study_from_attrs(TINY[name]["attrs"])
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(2))
    trial = study.ask()
    first = task.suggest(trial, settings, 1)
    second = dataclasses.replace(first, seed=2)
    assert task.batch_key(first) == task.batch_key(second)
    batch = task.batch(first, 2, "cpu")
    batch.add(first)
    batch.add(second)
    assert [steps for _, steps, _ in batch.progress()] == [0, 0]
    ended = {id(c): r for c, r in batch.run(10_000)}
    assert batch.occupied == 0
    for config in (first, second):
        assert ended[id(config)].value == pytest.approx(task.run(config, "cpu").value, rel=1e-3)
    if hasattr(settings, "largest_config"):
        for depth in settings.depths:
            assert task.batch_bytes(settings.largest_config(depth)) > 0


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'foo'"):
        get_task("foo")


def test_capacity_result_attrs():
    task = get_task("capacity")
    settings = task.study_from_attrs(TINY["capacity"]["attrs"])
    trial = optuna.create_study(direction="maximize").ask()
    result = task.run(task.suggest(trial, settings, 3), "cpu")
    assert 0.0 <= result.value == result.bits
    for key in TRIAL_ATTRS:
        assert key in result.to_attrs()


def test_calibration_value_is_known():
    task = get_task("calibration")
    settings = task.study_from_attrs(TINY["calibration"]["attrs"])
    trial = optuna.create_study(direction="maximize").ask()
    config = task.suggest(trial, settings, 0)
    assert task.run(config, "cpu").value == -sum((x - 1.0) ** 2 for x in config.x)
