"""K seeded trials trained batched give what the same trials give one by one; a model that
diverges leaves the batch without changing the others."""

import dataclasses

import pytest

import objectives.training.batched
import objectives.training.trainer
from objectives.tasks.capacity.metric import mutual_information_bits
from objectives.tasks.capacity.objective import train_capacity
from objectives.tasks.capacity.study import CapacityConfig
from objectives.tasks.objective import batch_group, shape_key
from objectives.tasks.per_unit.objective import PerUnitResult, train_per_unit
from objectives.tasks.per_unit.study import PerUnitConfig
from objectives.training import rules
from objectives.training.batched import BatchedTrainer
from objectives.training.interface import LR_SCHEDULES, SETTINGS


def _configs(
    arch: str, optimizer: str, lr: float, k: int = 5, lr_schedule: str = "constant"
) -> list[CapacityConfig]:
    hidden = 8
    return [
        CapacityConfig(
            arch=arch,
            n_in=16,
            hidden_size=hidden,
            depth=2,
            unroll=3,
            b=60 + 45 * i,
            learning_rate=lr * (0.6 + 0.2 * i),
            init_scale=0.8 + 0.1 * i,
            optimizer=optimizer,
            gate_bias=0.5 + 0.25 * i,
            grad_clip=(0.5 if i % 2 else 0.0),
            max_steps=40,
            lr_schedule=lr_schedule,
            lr_decay=0.05 if lr_schedule == "exponential" else 1.0,
            patience=1000,
            seed=10 + i,
        )
        for i in range(k)
    ]


def _batched(configs, capacity=None):
    trainer = BatchedTrainer(shape_key(configs[0]), capacity or len(configs))
    for c in configs:
        trainer.add(c)
    results = dict((c.seed, r) for c, r in trainer.run(10_000))
    assert trainer.occupied == 0
    return results


# Learning rates and a length (40 steps) where training is not yet chaotic. Later, and at
# higher rates, the float rounding differences of batched matmuls (1e-7 per step, see the
# test below) grow exponentially, as between two runs of one network on different hardware;
# and one error more or less moves the bits of a small data set by several percent.
CELLS_AND_OPTIMIZERS = [
    ("rnn", "adam", 0.005),
    ("lstm", "adam", 0.005),
    ("gru", "rmsprop", 0.002),
    ("rnn", "sgd", 0.05),
    ("ugrnn", "adagrad", 0.03),
    ("+rnn", "adam", 0.005),
]


# Every cell and optimizer under every schedule; the fast lane runs each (cell, optimizer)
# once and each schedule twice, the rest is slow.
@pytest.mark.parametrize(
    ("arch", "optimizer", "lr", "schedule"),
    [
        pytest.param(
            *case, schedule, marks=() if (i + j) % len(LR_SCHEDULES) == 0 else pytest.mark.slow
        )
        for i, case in enumerate(CELLS_AND_OPTIMIZERS)
        for j, schedule in enumerate(LR_SCHEDULES)
    ],
)
def test_batched_equals_one_by_one(arch, optimizer, lr, schedule):
    configs = _configs(arch, optimizer, lr, lr_schedule=schedule)
    batched = _batched(configs)
    same = 0
    for c in configs:
        alone = train_capacity(c)
        together = batched[c.seed]
        assert together.steps == alone.steps
        assert together.num_params == alone.num_params
        assert not together.diverged
        # The criterion: error fraction within 1% of b.
        assert abs(together.errors - alone.errors) <= 0.01 * c.b
        if together.errors == alone.errors:
            same += 1
            assert together.bits == pytest.approx(alone.bits, rel=1e-12)
        else:
            # A sample on the decision boundary, flipped by float rounding (the losses agree
            # to 1e-5): one error. At a high error rate one error moves the bits by more
            # than 1% (e.g. b = 240, 64 against 65 errors: 3.7%), so bits are compared only
            # when the counts agree.
            assert abs(together.errors - alone.errors) == 1
            assert together.final_loss == pytest.approx(alone.final_loss, rel=1e-4)
    assert same >= len(configs) - 1


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd", "adagrad"])
def test_first_steps_match_to_rounding(optimizer, schedule):
    """The batched optimizers are torch.optim's, step for step: after 5 steps the losses
    agree to float rounding (later, rounding differences grow as training is chaotic). Over
    5 steps the step schedule decays at steps 3 and 4, the cosine at every step."""
    lr = {"adam": 0.02, "rmsprop": 0.005, "sgd": 0.1, "adagrad": 0.05}[optimizer]
    configs = [
        CapacityConfig(**{**c.__dict__, "max_steps": 5})
        for c in _configs("gru", optimizer, lr, lr_schedule=schedule)
    ]
    batched = _batched(configs)
    for c in configs:
        assert batched[c.seed].final_loss == pytest.approx(train_capacity(c).final_loss, rel=1e-4)


# The paper's protocol's settings (objectives.training.interface.SETTINGS), each trial of a
# batch with its own value where a batch may mix them (a list: trial i takes value i). Short
# runs at low rates, where training is not yet chaotic (see CELLS_AND_OPTIMIZERS); momentum
# multiplies the effective rate.
PROTOCOL_CASES = {
    "minibatch": ("rnn", "adam", 0.005, 520, {"batch_size": 32}),
    "minibatch-lstm": ("lstm", "rmsprop", 0.002, 510, {"batch_size": 48, "l2": 1e-4}),
    "sgd-momentum": ("rnn", "sgd", 0.05, 40, {"momentum_logit": ["auto", 1.0, 2.5, 4.0, 7.0]}),
    "rmsprop-momentum": (
        "gru",
        "rmsprop",
        0.001,
        25,
        {"momentum_logit": ["auto", 1.0, "auto", 3.0, 5.0]},
    ),
    "l2": ("lstm", "adam", 0.005, 40, {"l2": [0.0, 1e-3, 1e-2, 0.0, 1e-4]}),
    "exponential": (
        "ugrnn",
        "adam",
        0.005,
        40,
        {"lr_schedule": "exponential", "lr_decay": [1.0, 0.5, 0.1, 0.01, 0.001]},
    ),
    "init": (
        "gru",
        "adam",
        0.005,
        40,
        {
            "recurrent_init": ["identity", "orthogonal", "normal", "scheme", "normal"],
            "input_scale": ["auto", 0.5, 1.5, 0.2, "auto"],
            "bias_init": ["constant", "normal", "normal", "constant", "normal"],
            "bias_scale": [0.0, 0.3, -0.5, 1.0, 0.1],
        },
    ),
    "every-step": ("ugrnn", "adam", 0.005, 40, {"input_mode": "every"}),
    "every-step-+rnn": ("+rnn", "sgd", 0.05, 40, {"input_mode": "every", "momentum_logit": 2.0}),
}


def _protocol_configs(case: str) -> list[CapacityConfig]:
    arch, optimizer, lr, steps, settings = PROTOCOL_CASES[case]
    configs = _configs(arch, optimizer, lr)
    return [
        dataclasses.replace(
            c,
            max_steps=steps,
            **{k: v[i] if isinstance(v, list) else v for k, v in settings.items()},
        )
        for i, c in enumerate(configs)
    ]


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=pytest.mark.slow if case.startswith("minibatch-") else ())
        for case in PROTOCOL_CASES
    ],
)
def test_batched_equals_one_by_one_on_the_protocol(case):
    """Both trainers apply every setting of the paper's protocol alike (the criteria of
    test_batched_equals_one_by_one)."""
    configs = _protocol_configs(case)
    batched = _batched(configs)
    same = 0
    for c in configs:
        alone = train_capacity(c)
        together = batched[c.seed]
        assert together.steps == alone.steps
        assert not together.diverged and not alone.diverged
        assert abs(together.errors - alone.errors) <= max(1, 0.01 * c.b)
        if together.errors == alone.errors:
            same += 1
        assert together.final_loss == pytest.approx(alone.final_loss, rel=1e-3)
    assert same >= len(configs) - 1


def test_protocol_settings_change_batched_training():
    """Each case trains otherwise than the same trials without it (so the agreement above
    is not that of two trainers that both ignore a setting)."""
    for case in ("sgd-momentum", "rmsprop-momentum", "l2", "init", "every-step", "minibatch"):
        configs = _protocol_configs(case)
        plain = [
            dataclasses.replace(
                c, **{k: v for k, v in SETTINGS.items() if k in PROTOCOL_CASES[case][4]}
            )
            for c in configs
        ]
        changed = _batched(configs)
        before = _batched(plain)
        assert any(changed[c.seed].final_loss != before[c.seed].final_loss for c in configs), case


def test_batches_group_by_batch_size_and_input_mode():
    config = _configs("rnn", "adam", 0.01, k=1)[0]
    minibatch = dataclasses.replace(config, batch_size=32)
    assert batch_group(minibatch) != batch_group(config)
    assert batch_group(minibatch) != batch_group(dataclasses.replace(config, batch_size=16))
    # one size class, (16, 32]: masked to the largest held
    assert batch_group(minibatch) == batch_group(dataclasses.replace(config, batch_size=17))
    every = dataclasses.replace(config, input_mode="every")
    assert batch_group(every) != batch_group(config)
    assert "batch up to 32" in str(shape_key(minibatch)) and "input every" in str(shape_key(every))
    trainer = BatchedTrainer(shape_key(minibatch), 2)
    with pytest.raises(ValueError, match="in a batch of"):
        trainer.add(config)


def test_divergence_leaves_the_others_alone():
    configs = _configs("rnn", "sgd", 0.05, k=4)
    wild = CapacityConfig(
        **{
            **configs[0].__dict__,
            "learning_rate": 1e38,
            "init_scale": 50.0,
            "grad_clip": 0.0,
            "seed": 99,
            "b": 70,
        }
    )
    calm = _batched(configs)
    mixed = _batched([*configs[:2], wild, *configs[2:]])
    # It diverges after one step and keeps the score of the weights it started with.
    alone = train_capacity(wild)
    assert alone.diverged and alone.steps == 1
    assert mixed[99].diverged and mixed[99].steps == 1
    assert (mixed[99].errors, mixed[99].bits) == (alone.errors, alone.bits)
    for c in configs:
        assert mixed[c.seed].bits == pytest.approx(calm[c.seed].bits, rel=1e-6)
        assert mixed[c.seed].steps == calm[c.seed].steps


def test_slot_is_refilled_and_shapes_are_checked():
    configs = _configs("rnn", "adam", 0.02, k=3)
    trainer = BatchedTrainer(shape_key(configs[0]), 2)
    trainer.add(configs[0])
    trainer.add(configs[1])
    assert trainer.free == 0
    with pytest.raises(ValueError, match="no free slot"):
        trainer.add(configs[2])
    done = trainer.run(1000)
    assert {c.seed for c, _ in done} == {10, 11}
    trainer.add(configs[2])  # larger b than before: the batch grows its padding
    ((config, result),) = trainer.run(1000)
    assert config.seed == 12
    assert result.bits == pytest.approx(train_capacity(configs[2]).bits, rel=0.01, abs=0.5)
    other = CapacityConfig(**{**configs[0].__dict__, "hidden_size": 9})
    with pytest.raises(ValueError, match="in a batch of"):
        trainer.add(other)


def test_looking_rarely_changes_nothing():
    """On a GPU the host looks for ended trials only every few steps; the trials still stop
    at exactly their own step, with the same scores."""
    configs = [
        CapacityConfig(**{**c.__dict__, "patience": 7})
        for c in _configs("lstm", "adam", 0.005, k=6)
    ]
    results = []
    for every in (1, 7):
        trainer = BatchedTrainer(shape_key(configs[0]), 6, check_every=every)
        for c in configs:
            trainer.add(c)
        results.append({c.seed: r for c, r in trainer.run(10_000)})
    for seed, r in results[0].items():
        other = results[1][seed]
        assert (other.steps, other.errors, other.bits) == (r.steps, r.errors, r.bits)
        assert other.final_loss == r.final_loss


def test_resize_keeps_every_trial_on_course():
    """Trials moved into a larger, then a smaller batch (as the worker grows a full batch and
    compacts a half-empty one) end exactly as in a batch that was never resized."""
    configs = [
        CapacityConfig(**{**c.__dict__, "max_steps": 12 + 10 * i})
        for i, c in enumerate(_configs("lstm", "adam", 0.005, k=4))
    ]
    plain = _batched(configs)
    trainer = BatchedTrainer(shape_key(configs[0]), 4)
    for c in configs:
        trainer.add(c)
    done = trainer.run(5)
    trainer.resize(8)
    assert (trainer.capacity, trainer.occupied, trainer.free) == (8, 4, 4)
    done += trainer.run(20)  # the first two trials end (12 and 22 steps)
    assert len(done) == 2
    trainer.resize(2)
    assert trainer.max_b == max(c.b for c in configs[2:])  # padding trimmed to what is held
    with pytest.raises(ValueError, match="2 trials do not fit in 1 slots"):
        trainer.resize(1)
    done += trainer.run(10_000)
    assert trainer.occupied == 0
    for config, result in done:
        alone = plain[config.seed]
        assert (result.steps, result.errors, result.bits) == (alone.steps, alone.errors, alone.bits)
        assert result.final_loss == pytest.approx(alone.final_loss, rel=1e-6)


def test_batches_group_b_by_powers_of_two():
    """Padding to the largest b of a batch at most doubles a trial's work."""
    config = _configs("rnn", "adam", 0.01, k=1)[0]

    def group(b):
        return batch_group(CapacityConfig(**{**config.__dict__, "b": b}))

    assert group(513) == group(1024) != group(1025)
    assert group(513) != group(512)
    assert group(600)[0] == shape_key(config)
    deeper = CapacityConfig(**{**config.__dict__, "b": 600, "depth": 1})
    assert batch_group(deeper) != group(600)


def test_a_batch_of_one_trains_as_a_batch_of_many():
    """A batch of one slot runs its model without the model axis (plain matrix products);
    its trials end as they do among others."""
    configs = _configs("lstm", "adam", 0.005, k=3)
    together = _batched(configs)
    for c in configs:
        ((_, alone),) = _batched([c]).items()
        other = together[c.seed]
        assert (alone.steps, alone.errors, alone.diverged) == (other.steps, other.errors, False)
        assert alone.final_loss == pytest.approx(other.final_loss, rel=1e-5)


def test_schedules_are_applied():
    """A schedule changes training, the same way in both trainers (the equivalence tests
    above); here, that it changes it at all, and the constant schedule not."""
    ends = {
        schedule: _batched(_configs("rnn", "adam", 0.02, k=2, lr_schedule=schedule))
        for schedule in LR_SCHEDULES
    }
    for schedule in ("cosine", "step", "exponential"):
        assert ends[schedule][10].final_loss != ends["constant"][10].final_loss


def test_divergence_after_good_steps_keeps_the_bits(monkeypatch):
    """Both trainers: from step 20 on, the learning rate is multiplied by 1e30 (the rules'
    factor, patched where each trainer reads it), so every trial diverges after 20 good
    steps. Each keeps the best bits it reached before (the old rule scored 0) and is marked
    diverged; the two trainers agree."""

    def wild(progress, ops):
        return ops.where(progress.steps >= 20, 1e30, rules.lr_factor(progress, ops))

    configs = [
        CapacityConfig(**{**c.__dict__, "grad_clip": 0.0})
        for c in _configs("rnn", "sgd", 0.05, k=3)
    ]
    before = {
        c.seed: train_capacity(CapacityConfig(**{**c.__dict__, "max_steps": 20})) for c in configs
    }
    monkeypatch.setattr(objectives.training.trainer, "lr_factor", wild)
    monkeypatch.setattr(objectives.training.batched, "lr_factor", wild)
    batched = _batched(configs)
    for c in configs:
        alone = train_capacity(c)
        together = batched[c.seed]
        for result in (alone, together):
            assert result.diverged and not result.pruned
            assert 20 < result.steps < c.max_steps
            assert result.bits >= before[c.seed].bits > 0
            assert result.bits == mutual_information_bits(c.b, result.errors)
        assert (together.steps, together.errors) == (alone.steps, alone.errors)


def test_falling_loss_keeps_patience_at_bay():
    """Both trainers: inputs of 2 bits, so the best bits come within a few steps while the
    loss falls for longer; patience 5 counts from the end of that fall. (The old rule, bits
    only, stopped each trial 5 steps after its best bits.)"""
    configs = [
        CapacityConfig(**{**c.__dict__, "n_in": 2, "depth": 1, "patience": 5, "max_steps": 300})
        for c in _configs("rnn", "adam", 0.02, k=3)
    ]
    batched = _batched(configs)
    for c in configs:
        seen: list[float] = []

        def look(steps: int, bits: float, seen: list[float] = seen) -> bool:
            seen.append(bits)
            return True

        alone = train_capacity(c, checkpoint=look, every=1)
        best_from = seen.index(alone.bits) + 1  # steps taken when the best bits were seen
        # the old rule stopped at best_from + 4 steps
        assert alone.steps >= best_from + 10 and not alone.diverged
        assert (batched[c.seed].steps, batched[c.seed].errors) == (alone.steps, alone.errors)


def test_progress_and_stop():
    """A pruner's view of a batch: where every trial stands, and ending one early. The
    others train on exactly as they would have; the stopped one's result is its best so far,
    as train_capacity's checkpoint reports it at the same step."""
    configs = [
        CapacityConfig(**{**c.__dict__, "max_steps": 30}) for c in _configs("lstm", "adam", 0.01)
    ]
    plain = _batched(configs)
    trainer = BatchedTrainer(shape_key(configs[0]), 5)
    for c in configs:
        trainer.add(c)
    chance = [(c, 0, mutual_information_bits(c.b, c.b // 2)) for c in configs]
    assert trainer.progress() == chance  # (odd b: a little above 0)
    assert trainer.run(10) == []
    stand = trainer.progress()
    assert [(c.seed, steps) for c, steps, _ in stand] == [(c.seed, 10) for c in configs]
    seen = []
    alone = train_capacity(configs[2], checkpoint=lambda s, b: seen.append(b) or False, every=10)
    assert alone.pruned and alone.steps == 10
    assert stand[2][2] == pytest.approx(seen[0], rel=1e-9) == pytest.approx(alone.bits)
    stopped = trainer.stop(configs[2])
    assert stopped.pruned and not stopped.diverged and stopped.steps == 10
    assert stopped.bits == stand[2][2]
    assert (trainer.occupied, trainer.free) == (4, 1)
    assert [c.seed for c, _, _ in trainer.progress()] == [10, 11, 13, 14]
    with pytest.raises(ValueError, match="no slot holds this trial"):
        trainer.stop(configs[2])
    rest = dict((c.seed, r) for c, r in trainer.run(10_000))
    assert set(rest) == {10, 11, 13, 14}
    for seed, result in rest.items():
        assert not result.pruned
        assert (result.steps, result.errors, result.final_loss) == (
            plain[seed].steps,
            plain[seed].errors,
            plain[seed].final_loss,
        )
    assert trainer.progress() == []


# -- the per-unit task through the same trainer ---------------------------------------------


def _per_unit_configs(
    arch: str, optimizer: str, lr: float, k: int = 4, lr_schedule: str = "constant"
) -> list[PerUnitConfig]:
    """Trials of one shape whose training and held-out sets differ in size (so both are
    padded and masked in a batch), with their own rates, scales, gate biases and clips."""
    return [
        PerUnitConfig(
            arch=arch,
            n_in=6,
            hidden_size=8,
            depth=2,
            unroll=3,
            samples=40 + 25 * i,
            eval_samples=30 + 15 * i,
            learning_rate=lr * (0.6 + 0.2 * i),
            init_scale=0.8 + 0.1 * i,
            optimizer=optimizer,
            gate_bias=0.5 + 0.25 * i,
            grad_clip=(0.5 if i % 2 else 0.0),
            max_steps=40,
            lr_schedule=lr_schedule,
            patience=1000,
            seed=10 + i,
        )
        for i in range(k)
    ]


@pytest.mark.parametrize(
    ("arch", "optimizer", "lr", "schedule"),
    [
        ("rnn", "adam", 0.005, "constant"),
        ("lstm", "adam", 0.005, "cosine"),
        ("gru", "rmsprop", 0.002, "step"),
        ("ugrnn", "sgd", 0.05, "constant"),
        ("+rnn", "adagrad", 0.03, "cosine"),
    ],
)
def test_per_unit_batched_equals_one_by_one(arch, optimizer, lr, schedule):
    configs = _per_unit_configs(arch, optimizer, lr, lr_schedule=schedule)
    batched = _batched(configs)
    for c in configs:
        alone = train_per_unit(c)
        together = batched[c.seed]
        assert isinstance(together, PerUnitResult)
        assert (together.steps, together.num_params) == (alone.steps, alone.num_params)
        assert not together.diverged and together.num_params == c.num_params
        assert together.fraction_reconstructed > 0
        assert together.fraction_reconstructed == pytest.approx(
            alone.fraction_reconstructed, rel=1e-4, abs=1e-6
        )
        assert together.final_loss == pytest.approx(alone.final_loss, rel=1e-4)


def test_per_unit_batch_progress_stop_and_resize():
    """A pruner's view of a per-unit batch is the fraction reconstructed so far; a stopped
    trial keeps it; the others, moved into a smaller batch, end as they would have."""
    configs = [
        PerUnitConfig(**{**c.__dict__, "max_steps": 30})
        for c in _per_unit_configs("lstm", "adam", 0.01)
    ]
    plain = _batched(configs)
    trainer = BatchedTrainer(shape_key(configs[0]), 4)
    for c in configs:
        trainer.add(c)
    assert [v for _, _, v in trainer.progress()] == [0.0] * 4
    trainer.run(10)
    stand = trainer.progress()
    assert [steps for _, steps, _ in stand] == [10] * 4 and all(v > 0 for _, _, v in stand)
    stopped = trainer.stop(configs[3])  # the largest sets: the padding shrinks below
    assert stopped.pruned and stopped.steps == 10
    assert stopped.fraction_reconstructed == stand[3][2]
    trainer.resize(3)
    assert (trainer.max_b, trainer.max_eval) == (configs[2].samples, configs[2].eval_samples)
    rest = dict((c.seed, r) for c, r in trainer.run(10_000))
    for seed, result in rest.items():
        assert (result.steps, result.pruned) == (plain[seed].steps, False)
        assert result.fraction_reconstructed == pytest.approx(
            plain[seed].fraction_reconstructed, rel=1e-6
        )


CAPACITY_FIELDS = {f.name for f in dataclasses.fields(CapacityConfig)}


def test_tasks_do_not_share_batches():
    per_unit = _per_unit_configs("rnn", "adam", 0.01, k=1)[0]
    capacity = CapacityConfig(
        **{k: v for k, v in per_unit.__dict__.items() if k in CAPACITY_FIELDS and k != "b"},
        b=per_unit.samples,
    )
    assert shape_key(capacity) != shape_key(per_unit)
    assert batch_group(capacity)[1] == batch_group(per_unit)[1]
    assert "per-unit" in str(shape_key(per_unit)) and "per-unit" not in str(shape_key(capacity))
    trainer = BatchedTrainer(shape_key(per_unit), 2)
    with pytest.raises(ValueError, match="in a batch of"):
        trainer.add(capacity)
