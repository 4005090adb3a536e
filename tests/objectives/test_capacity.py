import optuna
import pytest

from objectives.capacity import DIMENSIONS, CapacityStudy, build_study, suggest_config
from objectives.space import Dimension, parse_dimension


def test_default_study_searches_b_lr_init_depth():
    study = build_study("rnn", 1000)
    searched = {name for name, dim in study.space.items() if dim.searched}
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
    default = Dimension("learning_rate", "float", low=1e-4, high=1e-1, log=True)
    assert parse_dimension("learning_rate", "1e-3", default).value == 1e-3
    r = parse_dimension("learning_rate", "1e-3:1e-2", default)
    assert (r.kind, r.low, r.high, r.log) == ("float", 1e-3, 1e-2, True)
    assert parse_dimension("learning_rate", [1e-3, 1e-2], default).low == 1e-3
    lin = parse_dimension("learning_rate", {"low": 0.1, "high": 0.2, "log": False}, default)
    assert lin.log is False
    assert parse_dimension("learning_rate", {"choices": [0.1, 0.2]}, default).choices == (0.1, 0.2)


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
