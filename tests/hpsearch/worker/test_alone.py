"""A group of one on a CPU: the batched executor trains a group's first trial alone, as one
at a time trains it (`Alone`, `OneTrial`), so its result is exactly the one-at-a-time
trainer's; a trial of its group that comes meanwhile takes it into the group's batch
(`BatchedTrainer.adopt`), where it goes on as it would have alone, to rounding."""

import dataclasses

import pytest

from hpsearch.worker.executors import Alone, BatchedExecutor, Held
from objectives.tasks.capacity.objective import train_capacity
from objectives.tasks.capacity.study import CapacityConfig
from objectives.tasks.objective import objective_of, shape_key
from objectives.tasks.registry import get_task
from objectives.training.batched import BatchedTrainer
from objectives.training.trainer import OneTrial
from tests.testing import capacity_config


def _config(seed: int = 5, batch_size: int | str = 32, steps: int = 700) -> CapacityConfig:
    return capacity_config(
        b=200, init_scale=0.9, max_steps=steps, patience=10**6, seed=seed, batch_size=batch_size
    )


def _same(a: object, b: object) -> None:
    """Equal records, but for the seconds they took."""
    mine, theirs = dataclasses.asdict(a), dataclasses.asdict(b)  # type: ignore[call-overload]
    mine.pop("seconds"), theirs.pop("seconds")
    assert mine == theirs


def _executor() -> BatchedExecutor:
    return BatchedExecutor(8, "cpu", "off", [get_task("capacity")])


def _drain(executor: BatchedExecutor, judge=lambda held, steps, value: True) -> dict:
    ended = {}
    while executor.held():
        for outcome in executor.advance(judge):
            ended[outcome.held.config.seed] = outcome
    return ended


@pytest.mark.parametrize("batch_size", [32, "full"])
def test_one_trial_in_chunks_is_train_exactly(batch_size):
    config = _config(batch_size=batch_size, steps=130)
    trial = OneTrial(config, objective_of(config))
    while trial.run(20):
        pass
    _same(trial.result(), train_capacity(config))


def test_a_group_of_one_trains_as_one_at_a_time():
    """The same seed, the same record as one at a time (the batched trainer of one agrees
    with it to rounding, as it did before)."""
    config = _config()
    executor = _executor()
    executor.submit(Held("s", get_task("capacity"), config, None))
    (trainer,) = executor._trainers.values()
    assert isinstance(trainer, Alone)
    (outcome,) = _drain(executor).values()
    alone = train_capacity(config)
    _same(outcome.result, alone)
    assert not outcome.pruned and outcome.result.steps == config.max_steps
    k1 = BatchedTrainer(shape_key(config), 1)
    k1.add(config)
    ((_, before),) = k1.run(10**6)
    assert before.steps == alone.steps and abs(before.errors - alone.errors) <= 1
    assert before.final_loss == pytest.approx(alone.final_loss, rel=1e-3)


def test_a_lone_trial_is_judged_and_pruned_as_one_at_a_time():
    config = _config()
    executor = _executor()
    executor.submit(Held("s", get_task("capacity"), config, None))
    looks = []

    def judge(held, steps, value):
        looks.append((steps, value))
        return False

    (outcome,) = _drain(executor, judge).values()
    shown = []
    alone = train_capacity(config, checkpoint=lambda s, v: shown.append((s, v)) or False)
    assert looks == shown == [(500, alone.bits)]
    assert outcome.pruned and outcome.result.pruned and outcome.result.steps == 500
    _same(outcome.result, alone)


def test_a_second_trial_of_the_group_takes_the_lone_one_into_its_batch():
    first, second, third = (_config(seed=s, steps=300) for s in (1, 2, 3))
    task = get_task("capacity")
    executor = _executor()
    executor.submit(Held("s", task, first, None))
    executor.advance(lambda *a: True)  # the lone trial has trained a chunk
    executor.submit(Held("s", task, second, None))
    key = task.batch_key(first)
    assert list(executor._trainers) == [key]  # the lone trial moved into the batch
    batch = executor._trainers[key]
    assert isinstance(batch, BatchedTrainer) and batch.occupied == 2
    executor.advance(lambda *a: True)
    executor.submit(Held("s", task, third, None))
    assert batch.occupied == 3
    ended = _drain(executor)
    for config in (first, second, third):
        alone = train_capacity(config)
        assert ended[config.seed].result.steps == alone.steps == config.max_steps
        assert abs(ended[config.seed].result.errors - alone.errors) <= 1
        assert ended[config.seed].result.final_loss == pytest.approx(alone.final_loss, rel=1e-3)


def test_a_trial_after_the_lone_one_ended_trains_alone_too():
    first, second = _config(seed=1, steps=19), _config(seed=2, steps=100)
    task = get_task("capacity")
    executor = _executor()
    executor.submit(Held("s", task, first, None))
    (ended,) = executor.advance(lambda *a: True)  # it ended in the chunk; Alone not swept
    assert ended.held.config is first
    executor.submit(Held("s", task, second, None))
    (trainer,) = executor._trainers.values()
    assert isinstance(trainer, Alone) and trainer.occupied == 1
    (outcome,) = _drain(executor).values()
    _same(outcome.result, train_capacity(second))


def test_on_a_gpu_a_group_of_one_is_a_batch():
    executor = BatchedExecutor(8, "cuda", "off", [get_task("capacity")])
    assert executor._alone_objective(get_task("capacity")) is None
    assert _executor()._alone_objective(get_task("capacity")) is not None


@pytest.mark.parametrize(
    ("optimizer", "settings"),
    [
        ("adam", {}),
        ("rmsprop", {"momentum_logit": 0.0, "learning_rate": 0.002}),
        ("sgd", {"learning_rate": 0.1}),
        ("adagrad", {"learning_rate": 0.05, "l2": 1e-3}),
    ],
)
@pytest.mark.parametrize("batch_size", [32, "full"])
def test_a_trial_adopted_midway_goes_on_as_alone(optimizer, settings, batch_size):
    """70 steps alone, then in a batch of two beside another trial: every optimizer's state
    moves, and the trial ends as it does trained alone throughout (to rounding)."""
    config = dataclasses.replace(
        _config(seed=7, batch_size=batch_size, steps=200), optimizer=optimizer, b=400, **settings
    )
    other = dataclasses.replace(config, seed=8)
    trial = OneTrial(config, objective_of(config))
    assert trial.run(70)
    batch = BatchedTrainer(shape_key(config), 2)
    batch.add(other)
    assert batch.adopt(trial) == 1
    ended = dict((c.seed, r) for c, r in batch.run(10**6))
    alone = train_capacity(config)
    adopted = ended[config.seed]
    assert adopted.steps == alone.steps == config.max_steps
    assert abs(adopted.errors - alone.errors) <= 1
    assert adopted.final_loss == pytest.approx(alone.final_loss, rel=1e-3)
    assert ended[other.seed].steps == train_capacity(other).steps
