import json

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from objectives.tasks.capacity.study import (
    DIMENSIONS,
    CapacityConfig,
    CapacityStudy,
    build_study,
    suggest_config,
)
from objectives.tasks.space import is_searched, parse_dimension
from tests.testing import OLD_ATTRS


def test_default_study_searches_b_lr_init_depth():
    study = build_study("rnn", 1000)
    searched = {name for name, dim in study.space.items() if is_searched(dim)}
    assert searched == {"depth", "b", "learning_rate", "init_scale"}
    assert study.name == "capacity-rnn-p1000"
    assert study.depths == (1, 2, 4)


def test_attrs_round_trip():
    study = build_study(
        "gru", 2000, depths=(1, 2), overrides={"optimizer": "adam,sgd", "gate_bias": "0:3"}
    )
    assert CapacityStudy.from_attrs(study.to_attrs()) == study


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"learning_rate": "0.1:0.01"}, "low 0.1 must be below high 0.01"),
        ({"learning_rate": "0:0.1"}, "log range needs low > 0"),
        ({"b": "1:100"}, "out of range"),
        ({"optimizer": "adam,lbfgs"}, "unknown value 'lbfgs'"),
        ({"activation": "relu"}, "gru uses tanh only"),
        ({"momentum": "0.9"}, "unknown search dimension 'momentum'"),
        ({"learning_rate": "fast"}, "expected a number"),
        ({"max_steps": "10.5"}, "expected an integer"),
        ({"grad_clip": "-1"}, "out of range"),
        ({"lr_schedule": "constant,linear"}, "unknown value 'linear'; allowed: constant, cos"),
        ({"lr_schedule": "0:1"}, "takes values, not a range"),
        ({"max_steps": "100001000"}, "out of range"),
    ],
)
def test_bad_space_is_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_study("gru", 1000, overrides=overrides)


def test_gate_bias_not_searched_for_ungated():
    with pytest.raises(ValueError, match="rnn has no gates"):
        build_study("rnn", 1000, overrides={"gate_bias": "0:2"})


def test_activation_searched_for_rnn():
    study = build_study("rnn", 1000, overrides={"activation": "tanh,relu"})
    assert study.space["activation"].choices == ("tanh", "relu")


def test_depth_too_big_for_budget():
    with pytest.raises(ValueError, match="budget 150 is too small for lstm at depth 4"):
        build_study("lstm", 150, depths=(1, 4))


def test_parse_dimension_forms():
    default = FloatDistribution(1e-4, 1e-1, log=True)
    assert parse_dimension("learning_rate", "1e-3", default) == CategoricalDistribution((1e-3,))
    r = parse_dimension("learning_rate", "1e-3:1e-2", default)
    assert r == FloatDistribution(1e-3, 1e-2, log=True)
    assert parse_dimension("learning_rate", [1e-3, 1e-2], default).low == 1e-3
    lin = parse_dimension("learning_rate", {"low": 0.1, "high": 0.2, "log": False}, default)
    assert lin.log is False
    assert parse_dimension("learning_rate", {"choices": [0.1, 0.2]}, default).choices == (0.1, 0.2)
    assert parse_dimension("b", "16:400", IntDistribution(8, 64, log=True)) == IntDistribution(
        16, 400, log=True
    )
    fixed = parse_dimension("max_steps", "60", CategoricalDistribution((2000,)))
    assert fixed.choices == (60,) and isinstance(fixed.choices[0], int)


def test_suggest_config_uses_every_searched_dimension():
    study = build_study(
        "lstm",
        3000,
        depths=(1, 2),
        overrides={"optimizer": "adam,rmsprop", "gate_bias": "-1:3", "grad_clip": "0.5:50"},
    )
    opt = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    for _ in range(20):
        trial = opt.ask()
        config = suggest_config(trial, study, seed=7)
        assert set(trial.params) == {
            "depth",
            "b",
            "learning_rate",
            "init_scale",
            "optimizer",
            "gate_bias",
            "grad_clip",
        }
        assert config.depth in (1, 2)
        assert config.hidden_size == study.hidden_size(config.depth)
        assert config.num_params <= 3000
        assert 1500 <= config.b <= 48000
        assert -1 <= config.gate_bias <= 3
        opt.tell(trial, 0.0)


def test_dimension_order_is_fixed():
    assert DIMENSIONS[0] == "depth"
    assert set(build_study("rnn", 500).space) == set(DIMENSIONS)


def test_old_space_attrs_still_load():
    old = CapacityStudy.from_attrs(OLD_ATTRS)  # no "tag": made before tags
    new = build_study(
        "gru", 2000, depths=(1, 2), overrides={"optimizer": "adam,sgd", "gate_bias": "0:3"}
    )
    assert old == new
    assert old.space["b"] == IntDistribution(1000, 32000, log=True)
    assert old.space["activation"] == CategoricalDistribution(("tanh",))
    assert CapacityStudy.from_attrs(old.to_attrs()) == old


def test_space_is_stored_as_optuna_json():
    from optuna.distributions import json_to_distribution

    study = build_study("rnn", 1000, overrides={"max_steps": "60"})
    stored = json.loads(json.dumps(study.to_attrs()))  # as the storage keeps it
    for name, dim in study.space.items():
        assert json_to_distribution(json.dumps(stored["space"][name])) == dim
    assert stored["space"]["max_steps"] == {
        "name": "CategoricalDistribution",
        "attributes": {"choices": [60]},
    }


def test_fixed_dimensions_are_not_trial_params():
    study = build_study("rnn", 1000, depths=(2,), overrides={"learning_rate": "1e-3"})
    opt = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    trial = opt.ask()
    config = suggest_config(trial, study, seed=0)
    assert set(trial.params) == {"b", "init_scale"}
    assert (config.depth, config.learning_rate, config.max_steps) == (2, 1e-3, 2000)
    assert isinstance(config.max_steps, int)


@pytest.mark.parametrize(
    ("arch", "overrides", "b", "activation"),
    [
        ("rnn", {}, 16000, "tanh"),
        ("irnn", {"b": "100:5000"}, 5000, "relu"),
        ("ugrnn", {"b": "300,2000,900", "activation": "relu,tanh"}, 2000, "relu"),
        ("lstm", {"b": "700"}, 700, "tanh"),
    ],
)
def test_largest_config(arch, overrides, b, activation):
    study = build_study(arch, 1000, depths=(1, 2), overrides=overrides, n_in=16, unroll=3)
    for depth in (1, 2):
        config = study.largest_config(depth)
        assert (config.arch, config.depth, config.b, config.activation) == (
            arch,
            depth,
            b,
            activation,
        )
        assert config.hidden_size == study.hidden_size(depth)
        assert (config.n_in, config.unroll) == (16, 3)
        assert (config.learning_rate, config.init_scale) == (1e-3, 1.0)
    with pytest.raises(ValueError, match="depth 4 is not searched"):
        study.largest_config(4)


def test_lr_schedule_is_fixed_constant_by_default_and_searchable():
    # added after the first nine (and before init_scheme): older studies' order is unchanged
    assert DIMENSIONS[9:11] == ("lr_schedule", "init_scheme")
    default = build_study("rnn", 1000)
    assert default.space["lr_schedule"] == CategoricalDistribution(("constant",))
    study = build_study(
        "rnn",
        1000,
        depths=(1,),
        overrides={"lr_schedule": "constant,cosine,step", "max_steps": "100000"},
    )
    assert study.space["lr_schedule"].choices == ("constant", "cosine", "step")
    assert CapacityStudy.from_attrs(json.loads(json.dumps(study.to_attrs()))) == study
    opt = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    schedules = set()
    for _ in range(12):
        trial = opt.ask()
        config = suggest_config(trial, study, seed=0)
        assert list(trial.params)[-1] == "lr_schedule"
        assert config.lr_schedule == trial.params["lr_schedule"]
        assert config.max_steps == 100_000
        schedules.add(config.lr_schedule)
        opt.tell(trial, 0.0)
    assert schedules == {"constant", "cosine", "step"}


def test_studies_stored_before_lr_schedule_load_as_constant():
    for attrs in (OLD_ATTRS, build_study("gru", 2000).to_attrs()):
        stored = json.loads(json.dumps(attrs))
        stored["space"].pop("lr_schedule", None)
        assert "lr_schedule" not in stored["space"]
        study = CapacityStudy.from_attrs(stored)
        assert study.space["lr_schedule"] == CategoricalDistribution(("constant",))
    config = CapacityConfig(**{**study.largest_config(1).to_attrs(), "max_steps": 100_000})
    assert config.lr_schedule == "constant"
    with pytest.raises(ValueError, match="lr_schedule 'linear'; allowed: constant, cosine"):
        CapacityConfig(**{**config.to_attrs(), "lr_schedule": "linear"})
