"""The training rules are one set: on python scalars (one trial) and on (K,) tensors (a batch)
they decide the same; the score they keep is the one with the most bits."""

import itertools
import math

import pytest
import torch

from objectives.batched import NetworkShape, batch_group, shape_key
from objectives.metric import mutual_information_bits
from objectives.rules import DEVICE, HOST, Progress, advance, observe
from tests.objectives.configs import capacity_config


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
    ((3, 100, 10), [(0.7, 5), (0.6, 4), (0.6, 6), (0.5, 3), (0.5, 3), (0.5, 7), (0.4, 3)]),
    ((100, 100, 10), [(0.7, 5), (0.6, 2), (0.3, 0), (0.2, 0)]),  # all right: stops
    ((100, 3, 9), [(0.7, 4), (0.6, 3), (0.6, 8), (0.5, 2), (0.4, 1)]),  # max_steps
    ((100, 100, 10), [(0.7, 4), (math.nan, 9), (0.1, 0)]),  # diverges
    ((100, 100, 10), [(math.inf, 5), (0.1, 0)]),  # diverges at once
    ((2, 100, 11), [(0.7, 5), (0.7, 6), (0.7, 5), (0.7, 6)]),  # chance, odd b
]


def _run_host(trial):
    (patience, max_steps, b), seen = trial
    progress = Progress.start(capacity_config(b=b, patience=patience, max_steps=max_steps))
    for loss, errors in seen:
        train = observe(progress, loss, errors, HOST)
        if not train:
            break
        advance(progress, train)
    return progress


def test_one_trial_and_a_batch_follow_the_same_rules():
    k = len(TRIALS)
    rows = Progress.rows(k + 1, torch.device("cpu"))  # one slot left empty
    for i, ((patience, max_steps, b), _) in enumerate(TRIALS):
        rows.set_row(i, capacity_config(b=b, patience=patience, max_steps=max_steps))
    length = max(len(seen) for _, seen in TRIALS)
    for step in range(length):
        loss = [s[step][0] if step < len(s) else 0.0 for _, s in TRIALS] + [0.0]
        errors = [s[step][1] if step < len(s) else 0 for _, s in TRIALS] + [0]
        train = observe(rows, torch.tensor(loss, dtype=torch.float64), torch.tensor(errors), DEVICE)
        advance(rows, train)
    assert not rows.active.any()
    assert rows.ended.tolist() == [True] * k + [False]
    for i, trial in enumerate(TRIALS):
        alone = _run_host(trial)
        assert not alone.active and alone.ended
        for name in ("diverged", "steps", "since_best", "best_distance", "best_errors"):
            assert getattr(rows, name)[i].item() == getattr(alone, name), (i, name)
        assert math.isnan(alone.last_loss) == math.isnan(rows.last_loss[i].item())
        if not math.isnan(alone.last_loss):
            assert rows.last_loss[i].item() == alone.last_loss


def test_what_each_trial_ends_with():
    ends = [_run_host(t) for t in TRIALS]
    assert (ends[0].best_errors, ends[0].steps, ends[0].diverged) == (3, 6, False)
    assert (ends[1].best_errors, ends[1].steps) == (0, 2)
    assert (ends[2].best_errors, ends[2].steps) == (8, 3)
    assert ends[3].diverged and ends[3].steps == 1 and ends[3].best_errors == 4
    assert ends[4].diverged and ends[4].steps == 0
    # 6 errors of 11 are as far from chance as 5: not better, so the first is kept
    assert (ends[5].best_errors, ends[5].steps) == (5, 2)


def test_network_shape_is_named_and_hashable():
    config = capacity_config(arch="lstm", depth=2)
    shape = shape_key(config)
    assert shape == NetworkShape("lstm", 16, 8, 2, 3, "tanh", "adam")
    assert (shape.arch, shape.hidden_size, shape.depth) == ("lstm", 8, 2)
    assert {shape: 1}[shape_key(config)] == 1
    assert "lstm" in str(shape) and "hidden 8" in str(shape)
    assert batch_group(config) == (shape, (config.b - 1).bit_length())
