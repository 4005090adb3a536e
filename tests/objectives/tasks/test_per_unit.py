"""The per-unit capacity task: its study and config, its data and score, and that a network
with as many units as input numbers gives its input back while a narrower one cannot."""

import math

import optuna
import pytest
import torch

from objectives.networks.architectures import ARCHS, count_params
from objectives.networks.cells import init_params, num_params
from objectives.tasks.objective import objective_of
from objectives.tasks.per_unit.objective import reconstruction_inputs, train_per_unit
from objectives.tasks.per_unit.study import (
    DIMENSIONS,
    MIN_SAMPLES,
    RECONSTRUCTED,
    TASK,
    PerUnitConfig,
    PerUnitStudy,
    auto_samples,
    build_study,
    suggest_config,
)
from objectives.tasks.per_unit.study import TASK as PER_UNIT_TASK
from objectives.tasks.space import is_searched


def per_unit_config(**overrides) -> PerUnitConfig:
    """A small trial: 8 input numbers, 16 units, 3 steps."""
    base = dict(
        arch="rnn",
        n_in=8,
        hidden_size=16,
        depth=1,
        unroll=3,
        samples=256,
        eval_samples=256,
        learning_rate=0.02,
        init_scale=1.0,
        max_steps=300,
        patience=100,
    )
    return PerUnitConfig(**{**base, **overrides})


# -- study ------------------------------------------------------------------------------------


def test_study_name_space_and_attrs():
    study = build_study("gru", 32)
    assert study.name == "per-unit-gru-n32" and TASK == "per-unit" == PER_UNIT_TASK
    assert build_study("gru", 32, tag="a1").name == "per-unit-gru-n32-a1"
    searched = {name for name in DIMENSIONS if is_searched(study.space[name])}
    assert searched == {"depth", "learning_rate", "init_scale"}
    assert study.depths == (1, 2, 4) and build_study("+rnn", 8).depths == (2, 4)
    assert (study.n_in, study.unroll, study.patience) == (64, 5, 200)
    attrs = study.to_attrs()
    assert attrs["task"] == "per-unit"
    for name in ("arch", "units", "n_in", "unroll", "patience", "samples", "eval_samples", "tag"):
        assert attrs[name] == getattr(study, name)
    assert set(attrs["space"]) == set(DIMENSIONS)
    assert PerUnitStudy.from_attrs(attrs) == study


def test_overrides_and_bad_settings():
    study = build_study(
        "rnn", 16, depths=(1, 2), overrides={"optimizer": "adam,rmsprop"}, n_in=8, samples=500
    )
    assert is_searched(study.space["optimizer"]) and study.depths == (1, 2)
    assert study.samples_at(1) == study.samples_at(2) == 500
    with pytest.raises(ValueError, match="unknown search dimension 'b'"):
        build_study("rnn", 16, overrides={"b": "100"})
    with pytest.raises(ValueError, match="units must be an integer"):
        build_study("rnn", 0)
    with pytest.raises(ValueError, match="unknown arch"):
        build_study("transformer", 16)
    with pytest.raises(ValueError, match=r"samples must be an integer in \[2,"):
        build_study("rnn", 16, samples=1)
    with pytest.raises(ValueError, match="depth 1"):
        build_study("+rnn", 16, depths=(1, 2))
    with pytest.raises(ValueError, match="tag may hold"):
        build_study("rnn", 16, tag="a b")


def test_default_training_set_is_four_numbers_a_parameter():
    """samples 0: max(MIN_SAMPLES, ceil(4 P / n_in)) at each depth (module docstring)."""
    study = build_study("lstm", 128)
    for depth in study.depths:
        p = count_params("lstm", 64, 128, depth, n_out=64)
        assert study.samples_at(depth) == max(MIN_SAMPLES, math.ceil(4 * p / 64))
    assert study.samples_at(4) > MIN_SAMPLES  # large networks get more than the minimum
    assert build_study("rnn", 8).samples_at(1) == MIN_SAMPLES == auto_samples(10, 64)
    largest = study.largest_config(4)
    assert (largest.samples, largest.hidden_size, largest.depth) == (study.samples_at(4), 128, 4)


def test_suggest_gives_the_studys_config():
    study = build_study("ugrnn", 12, n_in=8, unroll=4, eval_samples=100)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(3)).ask()
    config = suggest_config(trial, study, 5)
    assert set(trial.params) == {"depth", "learning_rate", "init_scale"}
    assert (config.hidden_size, config.n_in, config.unroll, config.seed) == (12, 8, 4, 5)
    assert config.depth == trial.params["depth"]
    assert config.samples == study.samples_at(config.depth) and config.eval_samples == 100
    assert config.learning_rate == trial.params["learning_rate"]


# -- parameters, data, score ------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_parameter_count_is_exact(arch, depth):
    """The readout has n_in outputs: n_in * units + n_in more parameters than one logit."""
    params = init_params(arch, 64, 20, depth, 1.0, torch.Generator().manual_seed(0), n_out=64)
    assert num_params(params) == count_params(arch, 64, 20, depth, n_out=64)
    assert params["out.w"].shape == (20, 64) and params["out.b"].shape == (1, 64)
    extra = count_params(arch, 64, 20, depth, n_out=64) - count_params(arch, 64, 20, depth)
    assert extra == 20 * 63 + 63
    activation = "relu" if arch == "irnn" else "tanh"
    config = per_unit_config(arch=arch, depth=depth, n_in=64, hidden_size=20, activation=activation)
    assert config.num_params == count_params(arch, 64, 20, depth, n_out=64)


def test_held_out_inputs_are_fresh_and_fixed():
    x, held = reconstruction_inputs(500, 300, 8, seed=4)
    assert x.shape == (500, 8) and held.shape == (300, 8)
    _, held2 = reconstruction_inputs(200, 300, 8, seed=4)
    assert torch.equal(held, held2)  # the held-out set does not depend on the training set
    assert not torch.isclose(x[:, None, :], held[None, :, :]).all(-1).any()
    assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.05
    assert not torch.equal(reconstruction_inputs(500, 300, 8, seed=5)[1], held)


def test_score_is_the_fraction_of_variance_reconstructed():
    objective = objective_of(per_unit_config())
    y = torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sst = float(((y - y.mean(0)) ** 2).sum())
    for out, fraction in [
        (y, 1.0),
        (y.mean(0).expand_as(y), 0.0),
        (0.5 * y + 0.5 * y.mean(0), 0.75),  # error 0.5 (y - mean): a quarter of the variance
        (-y, 0.0),  # worse than the mean: clipped at 0
    ]:
        score, kept, done = objective.score(out, y, None, sst)
        assert score.item() == pytest.approx(fraction, abs=1e-12) and kept.item() == score.item()
        assert bool(done) == (fraction >= RECONSTRUCTED)
    nan = torch.full_like(y, math.nan)
    assert math.isnan(objective.score(nan, y, None, sst)[0].item())
    # batched: a mask leaves the padding out (wrong outputs there change nothing)
    padded = torch.cat([y, torch.zeros(10, 4, dtype=torch.float64)])[None]
    mask = torch.arange(60)[None] < 50
    wrong_padding = padded + 7.0 * (~mask)[..., None]
    masked, _, _ = objective.score(wrong_padding, padded, mask, torch.tensor([sst]))
    assert masked.tolist() == [1.0]
    unmasked, _, _ = objective.score(wrong_padding, padded, None, torch.tensor([sst]))
    assert unmasked.item() < 1.0


# -- training ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["rnn", "lstm"])
def test_enough_units_reconstruct_the_input(arch):
    result = train_per_unit(per_unit_config(arch=arch))
    assert not result.diverged and not result.pruned
    assert result.fraction_reconstructed > 0.95
    assert result.numbers_stored == pytest.approx(8 * result.fraction_reconstructed)
    assert result.value == result.fraction_reconstructed
    attrs = result.to_attrs()
    for key in (
        "fraction_reconstructed",
        "numbers_stored",
        "num_params",
        "hidden_size",
        "depth",
        "n_in",
        "steps",
        "seconds",
        "device",
        "diverged",
        "pruned",
    ):
        assert key in attrs
    assert attrs["num_params"] == per_unit_config(arch=arch).num_params
    assert (attrs["hidden_size"], attrs["n_in"]) == (16, 8)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["rnn", "gru"])
def test_a_quarter_of_the_units_cannot(arch):
    """2 units for 8 numbers: at most about a quarter of the variance gets through."""
    result = train_per_unit(per_unit_config(arch=arch, hidden_size=2))
    assert not result.diverged
    assert 0.05 < result.fraction_reconstructed < 0.6


def test_memorising_the_training_set_earns_nothing():
    """Trained on 3 inputs, the training loss falls far below the held-out error: the
    score (held-out) is what generalises, much less than the 16-unit network's above."""
    result = train_per_unit(per_unit_config(samples=3, max_steps=200))
    assert result.final_loss < 0.2
    assert result.fraction_reconstructed < 0.7


def test_checkpoints_see_the_best_fraction_and_can_prune():
    seen: list[tuple[int, float]] = []

    def look(steps: int, value: float) -> bool:
        seen.append((steps, value))
        return steps < 40

    result = train_per_unit(per_unit_config(), checkpoint=look, every=20)
    assert [s for s, _ in seen] == [20, 40]
    assert result.pruned and result.steps == 40
    assert result.fraction_reconstructed == seen[-1][1] >= seen[0][1] > 0
