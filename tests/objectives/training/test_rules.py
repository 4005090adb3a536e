"""The training rules are one set: on python scalars (one trial) and on (K,) tensors (a batch)
they decide the same; the score they keep is the one with the most bits."""

import itertools
import math

import pytest
import torch

from objectives.tasks.capacity.metric import mutual_information_bits
from objectives.tasks.capacity.objective import OBJECTIVE as CAPACITY
from objectives.tasks.capacity.objective import CapacityResult, capacity_score, capacity_start
from objectives.tasks.objective import batch_group, shape_key
from objectives.training.batched import NetworkShape
from objectives.training.interface import LR_SCHEDULES
from objectives.training.rules import DEVICE, HOST, Progress, advance, lr_factor, observe, prune
from tests.testing import capacity_config


@pytest.mark.parametrize("b", [1, 2, 7, 60, 1001, 4000])
def test_distance_from_chance_orders_errors_as_bits_do(b):
    """The rows keep the best |2 * errors - b|, not the bits: the two orders must agree."""
    by_distance = sorted(range(b + 1), key=lambda e: abs(2 * e - b))
    for fewer, more in itertools.pairwise(by_distance):
        bits_fewer, bits_more = (mutual_information_bits(b, e) for e in (fewer, more))
        if abs(2 * fewer - b) == abs(2 * more - b):
            assert bits_fewer == pytest.approx(bits_more, rel=1e-9, abs=1e-9)
        else:
            assert bits_more > bits_fewer


# Per trial: (patience, max_steps, b) and the (loss, errors) it sees at each step.
TRIALS = [
    ((3, 100, 10), [(0.7, 5), (0.6, 4), (0.6, 6), (0.5, 3), (0.5, 3), (0.5, 7), (0.5, 3)]),
    ((100, 100, 10), [(0.7, 5), (0.6, 2), (0.3, 0), (0.2, 0)]),  # all right: stops
    ((100, 3, 9), [(0.7, 4), (0.6, 3), (0.6, 8), (0.5, 2), (0.4, 1)]),  # max_steps
    ((100, 100, 10), [(0.7, 4), (math.nan, 9), (0.1, 0)]),  # diverges
    ((100, 100, 10), [(math.inf, 5), (0.1, 0)]),  # diverges at once
    ((2, 100, 11), [(0.7, 5), (0.7, 6), (0.7, 5), (0.7, 6)]),  # chance, odd b
    # bits plateau from the first step, the loss falls until the fifth: patience counts on
    # from there (the old rule, bits only, stopped it after 2 steps)
    ((2, 100, 10), [(0.7, 3), (0.6, 3), (0.5, 3), (0.4, 3), (0.3, 3)] + [(0.3, 3)] * 4),
    # a loss falling by less than LOSS_MARGIN a step counts once its fall adds up to it
    ((2, 100, 10), [(0.5, 3), (0.49997, 3), (0.49994, 3), (0.49994, 3), (0.49994, 3), (0, 3)]),
]


def _run_host(trial):
    (patience, max_steps, b), seen = trial
    config = capacity_config(b=b, patience=patience, max_steps=max_steps)
    progress = Progress.start(config, capacity_start(config))
    for loss, errors in seen:
        train = observe(progress, loss, *capacity_score(errors, b), HOST)
        if not train:
            break
        advance(progress, train)
    return progress


def test_one_trial_and_a_batch_follow_the_same_rules():
    k = len(TRIALS)
    rows = Progress.rows(k + 1, torch.device("cpu"))  # one slot left empty
    for i, ((patience, max_steps, b), _) in enumerate(TRIALS):
        config = capacity_config(b=b, patience=patience, max_steps=max_steps)
        rows.set_row(i, config, capacity_start(config))
    length = max(len(seen) for _, seen in TRIALS)
    b = torch.tensor([b for (_, _, b), _ in TRIALS] + [0], dtype=torch.float64)
    for step in range(length):
        loss = [s[step][0] if step < len(s) else 0.0 for _, s in TRIALS] + [0.0]
        errors = torch.tensor([s[step][1] if step < len(s) else 0 for _, s in TRIALS] + [0])
        scored = capacity_score(errors, b)
        train = observe(rows, torch.tensor(loss, dtype=torch.float64), *scored, DEVICE)
        advance(rows, train)
    assert not rows.active.any()
    assert rows.ended.tolist() == [True] * k + [False]
    for i, trial in enumerate(TRIALS):
        alone = _run_host(trial)
        assert not alone.active and alone.ended
        for name in (
            "diverged",
            "pruned",
            "steps",
            "since_best",
            "best_score",
            "best_kept",
            "score_mark",
            "best_loss",
        ):
            assert getattr(rows, name)[i].item() == getattr(alone, name), (i, name)
        assert math.isnan(alone.last_loss) == math.isnan(rows.last_loss[i].item())
        if not math.isnan(alone.last_loss):
            assert rows.last_loss[i].item() == alone.last_loss


def test_what_each_trial_ends_with():
    ends = [_run_host(t) for t in TRIALS]
    assert (ends[0].best_kept, ends[0].steps, ends[0].diverged) == (3, 6, False)
    assert (ends[1].best_kept, ends[1].steps) == (0, 2)
    assert (ends[2].best_kept, ends[2].steps) == (8, 3)
    assert ends[3].diverged and ends[3].steps == 1 and ends[3].best_kept == 4
    assert ends[4].diverged and ends[4].steps == 0
    # 6 errors of 11 are as far from chance as 5: not better, so the first is kept
    assert (ends[5].best_kept, ends[5].steps) == (5, 2)
    assert (ends[6].best_kept, ends[6].steps, ends[6].best_loss) == (3, 6, 0.3)
    assert (ends[7].steps, ends[7].best_loss) == (4, 0.49994)


def test_a_diverged_trial_keeps_its_best_score():
    """Trial 3 reaches 4 errors of 10, then its loss turns NaN: it keeps those bits (the
    old rule scored every diverged trial 0 bits)."""
    config = capacity_config(b=10)
    result = CapacityResult.of(
        config, _run_host(TRIALS[3]), num_params=100, seconds=0.0, device="cpu"
    )
    assert result.diverged and not result.pruned
    assert result.errors == 4
    assert result.bits == pytest.approx(mutual_information_bits(10, 4)) and result.bits > 0
    at_once = CapacityResult.of(
        config, _run_host(TRIALS[4]), num_params=100, seconds=0.0, device="cpu"
    )
    assert at_once.diverged and at_once.bits == 0.0  # chance: nothing scored before


@pytest.mark.parametrize("max_steps", [1, 7, 8, 100, 100_000])
def test_learning_rate_schedules(max_steps):
    """The factors of LR_SCHEDULES, the same on python scalars and on (K,) rows."""
    steps = sorted({0, 1, max_steps // 2 - 1, max_steps // 2, (3 * max_steps) // 4, max_steps - 1})
    steps = [s for s in steps if 0 <= s < max_steps]
    rows = Progress.rows(len(LR_SCHEDULES) * len(steps), torch.device("cpu"))
    host = []
    for i, (schedule, s) in enumerate(itertools.product(LR_SCHEDULES, steps)):
        config = capacity_config(max_steps=max_steps, lr_schedule=schedule, lr_decay=0.05)
        rows.set_row(i, config, capacity_start(config))
        rows.steps[i] = s
        one = Progress.start(config, capacity_start(config))
        one.steps = s
        factor = lr_factor(one, HOST)
        host.append(factor)
        if schedule == "constant":
            assert factor == 1.0
        elif schedule == "cosine":
            assert factor == pytest.approx((1 + math.cos(math.pi * s / max_steps)) / 2)
            assert 0 < factor <= 1.0 and (s > 0 or factor == 1.0)
        elif schedule == "exponential":  # learning_rate * lr_decay ** (s / max_steps)
            assert factor == pytest.approx(0.05 ** (s / max_steps), rel=1e-15)
            assert 0.05 < factor <= 1.0 and (s > 0 or factor == 1.0)
        else:
            assert factor == (0.01 if 4 * s >= 3 * max_steps else 0.1 if 2 * s >= max_steps else 1)
    device = lr_factor(rows, DEVICE)
    assert device.dtype == torch.float64
    assert device.tolist() == pytest.approx(host, rel=1e-15)


def test_pruned_trials_end_with_their_best_score():
    config = capacity_config(b=10)
    one = Progress.start(config, capacity_start(config))
    rows = Progress.rows(3, torch.device("cpu"))
    for k in range(3):
        rows.set_row(k, config, capacity_start(config))
    for loss, errors in [(0.7, 4), (0.6, 2), (0.6, 3)]:
        advance(one, observe(one, loss, *capacity_score(errors, 10), HOST))
        e = capacity_score(torch.tensor([errors] * 3), 10)
        advance(rows, observe(rows, torch.tensor([loss] * 3, dtype=torch.float64), *e, DEVICE))
    prune(one, True, HOST)
    prune(rows, torch.tensor([False, True, False]), DEVICE)
    assert (one.active, one.ended, one.pruned, one.best_kept, one.steps) == (
        False,
        True,
        True,
        2,
        3,
    )
    assert rows.pruned.tolist() == rows.ended.tolist() == [False, True, False]
    assert rows.active.tolist() == [True, False, True]
    result = CapacityResult.of(
        capacity_config(b=10), one, num_params=100, seconds=0.0, device="cpu"
    )
    assert result.pruned and not result.diverged
    assert result.bits == mutual_information_bits(10, 2)
    assert result.to_attrs()["pruned"] is True


def test_network_shape_is_named_and_hashable():
    config = capacity_config(arch="lstm", depth=2)
    shape = shape_key(config)
    assert shape == NetworkShape("lstm", 16, 8, 2, 3, "tanh", "adam", CAPACITY)
    assert (shape.arch, shape.hidden_size, shape.depth) == ("lstm", 8, 2)
    assert {shape: 1}[shape_key(config)] == 1
    assert "lstm" in str(shape) and "hidden 8" in str(shape)
    assert batch_group(config) == (shape, (config.b - 1).bit_length())
