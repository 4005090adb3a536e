import pytest

from objectives.networks.architectures import ARCHS
from objectives.tasks.capacity.metric import mutual_information_bits
from objectives.tasks.capacity.objective import make_dataset, train_capacity
from objectives.tasks.capacity.study import CapacityConfig
from tests.testing import capacity_config


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


def _wild(**kw) -> CapacityConfig:
    return _config(
        arch="irnn",
        activation="relu",
        depth=2,
        hidden_size=8,
        b=64,
        learning_rate=1.0,
        optimizer="sgd",
        max_steps=50,
        **kw,
    )


def test_divergence_at_init_scores_chance_and_flag():
    result = train_capacity(_wild(init_scale=1e20))
    assert result.diverged and result.steps == 0
    assert result.bits == 0.0 and result.bits_per_param == 0.0


def test_divergence_after_a_step_keeps_the_first_score():
    """Finite loss at the start, NaN after one step: the first step's score is kept."""
    result = train_capacity(_wild(init_scale=1e12))
    assert result.diverged and result.steps == 1
    assert 0 < result.errors < 32 and result.bits == mutual_information_bits(64, result.errors)


def test_checkpoint_is_called_and_can_prune():
    config = _config(b=600, hidden_size=8, max_steps=100, patience=1000)
    seen: list[tuple[int, float]] = []
    full = train_capacity(config, checkpoint=lambda s, b: seen.append((s, b)) or True, every=30)
    assert [s for s, _ in seen] == [30, 60, 90]  # not at max_steps: the trial ends there
    assert not full.pruned and full.steps == 100
    assert [b for _, b in seen] == sorted(b for _, b in seen)  # the best so far

    def stop_at_60(steps: int, bits: float) -> bool:
        return steps < 60

    pruned = train_capacity(config, checkpoint=stop_at_60, every=30)
    assert pruned.pruned and not pruned.diverged and pruned.steps == 60
    assert pruned.bits == seen[1][1]
    assert pruned.to_attrs()["pruned"] is True and full.to_attrs()["pruned"] is False
    with pytest.raises(ValueError, match="every must be a positive integer"):
        train_capacity(config, checkpoint=stop_at_60, every=0)


def test_tasks_pass_checkpoints_through():
    from objectives.tasks.calibration.study import CalibrationConfig
    from objectives.tasks.registry import get_task

    config = _config(b=600, hidden_size=8, max_steps=100, patience=1000)
    result = get_task("capacity").run(config, "cpu", checkpoint=lambda s, b: False, every=10)
    assert result.to_attrs()["pruned"] and result.to_attrs()["steps"] == 10
    plain = get_task("capacity").run(config, "cpu", checkpoint=lambda s, b: s < 500)
    assert plain.to_attrs()["steps"] == 100  # the default every, 500, is never reached
    calibration = CalibrationConfig(x=(1.0, 1.0), seconds=0.0, seed=0)
    assert get_task("calibration").run(calibration, "cpu", lambda s, b: False, 1).value == 0.0


def test_bits_plateau_while_the_loss_falls_is_not_stopped():
    """Inputs of 2 bits: the best bits (the majority label of each input) come within a few
    steps, the loss falls for longer; patience 5 counts from the end of that fall (under the
    old rule, bits only, the trial stopped within 10 steps)."""
    config = capacity_config(n_in=2, b=60, patience=5, max_steps=300, learning_rate=0.02)
    seen: list[float] = []
    result = train_capacity(config, checkpoint=lambda s, b: seen.append(b) or True, every=5)
    assert len(set(seen)) == 1  # bits flat from step 5 on
    assert 20 < result.steps < 300 and not result.diverged


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_schedules_change_training(schedule):
    config = _config(b=300, max_steps=30)
    scheduled = train_capacity(_config(b=300, max_steps=30, lr_schedule=schedule))
    assert scheduled.steps == 30
    assert scheduled.final_loss != train_capacity(config).final_loss


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
