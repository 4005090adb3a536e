import pytest

from objectives.architectures import ARCHS
from objectives.capacity import CapacityConfig
from objectives.training import make_dataset, train_capacity
from tests.objectives.configs import capacity_config


def _config(**kw) -> CapacityConfig:
    """The task's n_in and unroll, a 16-unit network, 32 samples."""
    paper = {"n_in": 32, "unroll": 5, "hidden_size": 16, "b": 32, "learning_rate": 0.03}
    return capacity_config(**{**paper, "max_steps": 2000, **kw})


def test_dataset_is_seeded_binary_and_balanced():
    x, y = make_dataset(4000, 32, seed=3)
    x2, y2 = make_dataset(4000, 32, seed=3)
    assert x.shape == (4000, 32) and y.shape == (4000,)
    assert set(x.unique().tolist()) == {0.0, 1.0} and set(y.unique().tolist()) == {0.0, 1.0}
    assert (x == x2).all() and (y == y2).all()
    assert 0.45 < float(y.mean()) < 0.55
    assert not (make_dataset(4000, 32, seed=4)[1] == y).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_data_set_is_memorised(arch):
    config = _config(arch=arch, activation="relu" if arch == "irnn" else "tanh")
    result = train_capacity(config)
    assert not result.diverged
    assert result.bits >= 0.9 * config.b
    assert result.num_params == config.num_params
    assert result.bits_per_param == pytest.approx(result.bits / result.num_params)


def test_memorised_set_stops_early_at_zero_errors():
    result = train_capacity(_config())
    assert result.errors == 0 and result.bits == 32.0
    assert result.steps < 2000


def test_same_seed_same_bits_other_seed_other_data():
    config = _config(b=600, max_steps=150, hidden_size=8)
    first, second = train_capacity(config), train_capacity(config)
    assert first.bits == second.bits and first.errors == second.errors
    assert first.steps == second.steps
    other = train_capacity(_config(b=600, max_steps=150, hidden_size=8, seed=1))
    assert (other.errors, other.final_loss) != (first.errors, first.final_loss)


def test_more_data_than_capacity_is_not_memorised():
    result = train_capacity(_config(hidden_size=2, b=2000, max_steps=100))
    assert 0 < result.error_fraction < 0.5
    assert result.bits < 0.5 * 2000


@pytest.mark.parametrize(
    ("init_scale", "learning_rate"), [(1e12, 1.0), (1e4, 1.0)], ids=["at-init", "after-a-step"]
)
def test_divergence_gives_zero_bits_and_flag(init_scale, learning_rate):
    config = _config(
        arch="irnn",
        activation="relu",
        depth=2,
        hidden_size=8,
        b=64,
        init_scale=init_scale,
        learning_rate=learning_rate,
        optimizer="sgd",
        max_steps=50,
    )
    result = train_capacity(config)
    assert result.diverged
    assert result.bits == 0.0 and result.bits_per_param == 0.0


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd", "adagrad"])
def test_every_optimizer_learns(optimizer):
    lr = {"adam": 0.03, "rmsprop": 0.01, "sgd": 0.1, "adagrad": 0.03}[optimizer]
    config = _config(optimizer=optimizer, learning_rate=lr, max_steps=1500, patience=1500)
    result = train_capacity(config)
    assert result.bits > 0.5 * 32


def test_grad_clip_is_applied():
    clipped = train_capacity(_config(b=300, max_steps=30, grad_clip=1e-6))
    free = train_capacity(_config(b=300, max_steps=30))
    assert clipped.final_loss != free.final_loss
