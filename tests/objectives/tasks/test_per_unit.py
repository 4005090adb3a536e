"""The per-unit capacity task: its study and config, its data and score, and that a network
with as many units as input numbers gives its input back while a narrower one cannot."""

import math

import optuna
import pytest
import torch

from objectives.networks.architectures import ARCHS, count_params
from objectives.networks.cells import init_params, num_params
from objectives.tasks.objective import objective_of, shape_key
from objectives.tasks.per_unit.objective import reconstruction_inputs, train_per_unit
from objectives.tasks.per_unit.study import (
    DIMENSIONS,
    INPUTS,
    INPUTS_BEFORE,
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
from objectives.training.batched import BatchedTrainer


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
    assert (study.n_in, study.unroll, study.inputs, study.patience) == (64, 12, "uniform", 200)
    attrs = study.to_attrs()
    assert attrs["task"] == "per-unit"
    fields = ("arch", "units", "n_in", "unroll", "inputs", "patience", "samples", "eval_samples")
    for name in (*fields, "tag"):
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
    with pytest.raises(ValueError, match="inputs must be uniform or gaussian, got 'cauchy'"):
        build_study("rnn", 16, inputs="cauchy")
    with pytest.raises(ValueError, match="inputs must be"):
        per_unit_config(inputs="Uniform")


# The attrs of a per-unit study as stored before `inputs` existed (every field but it, as
# `to_attrs` wrote them then; tests/data/b2cc86b holds such studies in a storage).
OLD_ATTRS = {
    "task": "per-unit",
    "arch": "gru",
    "units": 16,
    "n_in": 8,
    "unroll": 5,
    "patience": 100,
    "samples": 0,
    "eval_samples": 256,
    "tag": "",
}


def test_an_old_study_reads_as_it_was_made():
    """No `inputs` in its attrs: Gaussian inputs, at the n_in and unroll it stored, whatever
    a new study's defaults; its trials get the same configs, so they train on the same data."""
    new = build_study("gru", 16, n_in=8, unroll=5, patience=100, eval_samples=256)
    assert new.inputs == "uniform" != INPUTS_BEFORE == "gaussian"
    old = PerUnitStudy.from_attrs({**OLD_ATTRS, "space": new.to_attrs()["space"]})
    assert (old.n_in, old.unroll, old.inputs) == (8, 5, "gaussian")
    assert old == PerUnitStudy(**{**new.__dict__, "inputs": "gaussian"})
    assert PerUnitStudy.from_attrs(old.to_attrs()) == old  # stored again, it says gaussian
    assert old.to_attrs()["inputs"] == "gaussian"
    trial = optuna.trial.FixedTrial({"depth": 1, "learning_rate": 0.01, "init_scale": 1.0})
    assert suggest_config(trial, old, 3).inputs == "gaussian"
    assert suggest_config(trial, new, 3).inputs == "uniform"
    assert old.largest_config(1).inputs == "gaussian"
    # A stored trial's config without the setting reads as what it ran.
    config = suggest_config(trial, old, 3).to_attrs()
    del config["inputs"]
    assert PerUnitConfig(**config) == suggest_config(trial, old, 3)


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


@pytest.mark.parametrize("inputs", INPUTS)
def test_held_out_inputs_are_fresh_and_fixed(inputs):
    x, held = reconstruction_inputs(500, 300, 8, seed=4, inputs=inputs)
    assert x.shape == (500, 8) and held.shape == (300, 8)
    _, held2 = reconstruction_inputs(200, 300, 8, seed=4, inputs=inputs)
    assert torch.equal(held, held2)  # the held-out set does not depend on the training set
    assert not torch.isclose(x[:, None, :], held[None, :, :]).all(-1).any()
    assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.05
    assert not torch.equal(reconstruction_inputs(500, 300, 8, seed=5, inputs=inputs)[1], held)


def _moments(x: torch.Tensor) -> tuple[float, float, float]:
    """Sample mean, variance and fourth moment of every number in x."""
    x = x.double().flatten()
    return float(x.mean()), float(x.var()), float(x.pow(4).mean())


def test_uniform_inputs_have_variance_1_within_the_stated_range():
    """The paper's inputs: uniform on [-sqrt(3), sqrt(3)], so mean 0, variance 1 and fourth
    moment 9/5 (a Gaussian's is 3), each within 5 standard errors of the sample."""
    x, held = reconstruction_inputs(20_000, 5_000, 8, seed=1, inputs="uniform")
    half = math.sqrt(3.0)
    for numbers in (x, held):
        n = numbers.numel()
        mean, variance, fourth = _moments(numbers)
        assert abs(mean) < 5 * math.sqrt(1 / n)
        assert abs(variance - 1) < 5 * math.sqrt((9 / 5 - 1) / n)
        assert abs(fourth - 9 / 5) < 5 * math.sqrt((9 - (9 / 5) ** 2) / n)  # E x^8 = 3^4 / 9
        assert float(numbers.min()) >= -half and float(numbers.max()) <= half
        # The whole range is used: the extremes lie close to its ends.
        assert float(numbers.min()) < -half + 0.01 and float(numbers.max()) > half - 0.01
        # Evenly: each of 6 equal bins holds a sixth, within 5 standard errors.
        counts = torch.histc(numbers.double(), bins=6, min=-half, max=half)
        assert (counts / n - 1 / 6).abs().max() < 5 * math.sqrt((1 / 6) * (5 / 6) / n)


def test_gaussian_inputs_are_the_old_draws():
    """Studies stored before `inputs` drew torch.randn, held-out set first: the same numbers
    now, so that they resume on the data they began with."""
    x, held = reconstruction_inputs(300, 200, 5, seed=9, inputs="gaussian")
    generator = torch.Generator().manual_seed(9)
    assert torch.equal(held, torch.randn(200, 5, generator=generator))
    assert torch.equal(x, torch.randn(300, 5, generator=generator))
    assert float(x.abs().max()) > math.sqrt(3.0)  # unbounded, unlike the uniform ones
    with pytest.raises(ValueError, match="inputs must be"):
        reconstruction_inputs(3, 3, 2, seed=0, inputs="normal")


@pytest.mark.parametrize("inputs", INPUTS)
def test_the_objective_makes_the_configs_inputs(inputs):
    """The data both trainers train and score on is the config's distribution."""
    config = per_unit_config(inputs=inputs)
    data = objective_of(config).data(config)
    expected = reconstruction_inputs(256, 256, 8, seed=0, inputs=inputs)
    assert torch.equal(data.x, expected[0]) and torch.equal(data.y, expected[0])
    assert torch.equal(data.x_eval, expected[1]) and torch.equal(data.y_eval, expected[1])
    if inputs == "uniform":
        assert float(data.x.abs().max()) <= math.sqrt(3.0)


def test_both_trainers_train_on_the_configs_inputs():
    """One at a time and batched, a uniform trial ends as the other trainer's does, and
    apart from the same trial on Gaussian inputs."""
    configs = [per_unit_config(max_steps=30, inputs=inputs) for inputs in ("uniform", "gaussian")]
    configs = [PerUnitConfig(**{**c.__dict__, "seed": i}) for i, c in enumerate(configs)]
    # Same seed, only the distribution differs: compared separately from the batched pair.
    same_seed = PerUnitConfig(**{**configs[1].__dict__, "seed": 0})
    trainer = BatchedTrainer(shape_key(configs[0]), 2)
    for c in configs:
        trainer.add(c)
    together = {c.seed: r for c, r in trainer.run(10_000)}
    for c in configs:
        alone = train_per_unit(c)
        assert together[c.seed].steps == alone.steps == 30
        assert together[c.seed].fraction_reconstructed == pytest.approx(
            alone.fraction_reconstructed, rel=1e-4, abs=1e-6
        )
        assert together[c.seed].final_loss == pytest.approx(alone.final_loss, rel=1e-4)
    assert train_per_unit(same_seed).final_loss != pytest.approx(together[0].final_loss, rel=1e-3)


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
