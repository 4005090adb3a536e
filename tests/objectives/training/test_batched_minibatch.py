"""Minibatch trials batched: the batched trainer draws each trial's samples as the trainer of
one trial does (`objectives.training.minibatch`), trials of one size class and of any b
share a batch (each masked to its own batch_size), and no trial's step sees another's
samples."""

import dataclasses

import pytest
import torch

from objectives.tasks.capacity.objective import train_capacity
from objectives.tasks.capacity.study import CapacityConfig
from objectives.tasks.objective import batch_group, shape_key
from objectives.training import minibatch
from objectives.training.batched import BatchedTrainer, size_class


def _trials(batch_sizes: list[int], bs: list[int], steps: int = 60) -> list[CapacityConfig]:
    return [
        CapacityConfig(
            arch="rnn",
            n_in=16,
            hidden_size=8,
            depth=1,
            unroll=3,
            b=b,
            learning_rate=0.004 * (1 + 0.25 * i),
            init_scale=0.8 + 0.1 * i,
            max_steps=steps,
            patience=10**6,
            seed=20 + i,
            batch_size=size,
        )
        for i, (size, b) in enumerate(zip(batch_sizes, bs, strict=True))
    ]


def _filled(configs: list[CapacityConfig]) -> BatchedTrainer:
    trainer = BatchedTrainer(shape_key(configs[0]), len(configs))
    for c in configs:
        trainer.add(c)
    return trainer


def test_size_classes_and_any_b_share_a_batch():
    a, b, c = _trials([33, 64, 65], [100, 3000, 100])
    assert size_class(33) == size_class(64) == 64 and size_class(65) == 128
    assert batch_group(a) == batch_group(b)  # b 100 and 3,000: one batch, minibatch
    assert batch_group(a) != batch_group(c)
    full = [dataclasses.replace(x, batch_size="full") for x in (a, b)]
    assert batch_group(full[0]) != batch_group(full[1])  # full batch: b's octave still counts


def test_mixed_sizes_and_b_agree_with_one_at_a_time():
    """Trials of batch sizes 33 to 64 and b 70 to 400 in one batch (masked to 64 samples a
    step) train as each does alone: same steps, same final loss to rounding, the same
    errors to one sample."""
    configs = _trials([33, 40, 64, 50], [70, 400, 130, 250], steps=120)
    trainer = _filled(configs)
    assert trainer.minibatch == 64
    together = dict((c.seed, r) for c, r in trainer.run(10_000))
    for c in configs:
        alone = train_capacity(c)
        mine = together[c.seed]
        assert mine.steps == alone.steps == c.max_steps
        assert abs(mine.errors - alone.errors) <= 1
        assert mine.final_loss == pytest.approx(alone.final_loss, rel=1e-3)


def test_a_trial_trains_on_its_own_draws_only():
    """Each model's minibatch is the rows `minibatch.indices` names in its own set: the
    inputs of trial k are filled with k (its padding beyond b with -1), and every drawn
    row of model k is all k, its first batch_size samples the draws of a trial alone."""
    configs = _trials([20, 32, 25], [40, 90, 60])
    trainer = _filled(configs)
    with torch.no_grad():
        trainer.x.fill_(-1.0)
        for k, c in enumerate(configs):
            trainer.x[k, : c.b] = float(k)
            trainer.y[k, : c.b] = torch.arange(c.b, dtype=torch.float32)
    for step in range(3):
        trainer.rows.steps.fill_(step)
        xb, yb = trainer._drawn()
        assert xb.shape == (3, 32, 16)
        for k, c in enumerate(configs):
            assert torch.equal(xb[k], torch.full_like(xb[k], float(k)))
            alone = minibatch.indices(
                torch.tensor([c.seed]), torch.tensor([step]), torch.tensor([c.b]), c.batch_size
            )[0]
            assert torch.equal(yb[k, : c.batch_size].long(), alone)


def test_no_gradient_crosses_between_trials():
    """Trial 1's data (and the padding of every set) made NaN: the other trials' weights
    after a few steps are exactly what they are with trial 1's data intact, and finite;
    trial 1's own weights are NaN (its poison reached its own gradient)."""
    configs = _trials([24, 32, 30], [50, 90, 70], steps=10)

    def weights_after(poison: bool, steps: int = 4) -> list[torch.Tensor]:
        trainer = _filled(configs)
        if poison:
            with torch.no_grad():
                for k, c in enumerate(configs):
                    trainer.x[k, c.b :] = float("nan")
                trainer.x[1] = float("nan")
        for _ in range(steps):
            trainer.step(whole=False)
        blocks = trainer._blocks(trainer.weights.detach())
        return [torch.cat([w[k].flatten() for w in blocks.values()]) for k in range(3)]

    start, clean, poisoned = weights_after(False, 0), weights_after(False), weights_after(True)
    for k in (0, 2):
        assert not torch.equal(clean[k], start[k])  # the steps did train
        assert torch.isfinite(poisoned[k]).all()
        assert torch.equal(poisoned[k], clean[k])
    assert torch.isnan(poisoned[1]).any()


def test_resize_trims_the_minibatch_to_the_largest_held():
    configs = _trials([40, 64, 36], [100, 120, 80], steps=30)
    trainer = _filled(configs)
    assert trainer.minibatch == 64
    trainer.stop(configs[1])
    trainer.resize(2)
    assert trainer.minibatch == 40
    ended = dict((c.seed, r) for c, r in trainer.run(10_000))
    for c in (configs[0], configs[2]):
        assert ended[c.seed].steps == c.max_steps


def test_a_batch_with_empty_slots_trains():
    """A batch that has grown past its trials (the executor doubles a full one) trains its
    occupied slots: an empty slot's draws (b 0) neither fail nor touch the others."""
    configs = _trials([40, 64], [100, 120], steps=30)
    trainer = BatchedTrainer(shape_key(configs[0]), 4)
    for c in configs:
        trainer.add(c)
    ended = dict((c.seed, r) for c, r in trainer.run(10_000))
    for c in configs:
        assert ended[c.seed].steps == c.max_steps
        assert ended[c.seed].final_loss == pytest.approx(train_capacity(c).final_loss, rel=1e-3)
