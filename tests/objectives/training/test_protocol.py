"""The paper's protocol's settings (docs/tasks.md, "The paper's protocol") have their effect:
minibatches, the exponential schedule, momentum, L2 decay, the initialisation per kind of
matrix, and the input shown at every step. (That both trainers apply them alike:
test_batched.py.)"""

import dataclasses
import math

import pytest
import torch

import objectives.training.trainer
from objectives.networks.architectures import INIT_SCHEMES
from objectives.networks.cells import forward, init_params
from objectives.tasks.capacity.objective import OBJECTIVE, train_capacity
from objectives.tasks.capacity.study import CapacityConfig
from objectives.training import minibatch
from objectives.training.interface import SCORE_STEPS, SETTINGS, momentum
from objectives.training.trainer import make_optimizer
from tests.testing import capacity_config


class Recording:
    """The capacity objective, recording how many samples each loss and score call sees."""

    def __init__(self) -> None:
        self.losses: list[int] = []
        self.scores: list[int] = []

    def __getattr__(self, name):
        return getattr(OBJECTIVE, name)

    def loss(self, out, y, mask, count):
        self.losses.append(out.shape[-2])
        return OBJECTIVE.loss(out, y, mask, count)

    def score(self, out, y, mask, norm):
        self.scores.append(out.shape[-2])
        return OBJECTIVE.score(out, y, mask, norm)


def test_minibatch_trial_trains_on_64_and_scores_all_b():
    config = capacity_config(b=300, batch_size=64, max_steps=2 * SCORE_STEPS, patience=10**6)
    recording = Recording()
    result = objectives.training.trainer.train(config, recording)
    assert result.steps == 2 * SCORE_STEPS and not result.diverged
    # scored on all b at steps 0, SCORE_STEPS and the last; every other loss is a minibatch's
    assert recording.scores == [300, 300, 300]
    assert recording.losses.count(64) == 2 * SCORE_STEPS + 1
    assert recording.losses.count(300) == 3  # the whole set's loss where scored
    full = capacity_config(b=300, max_steps=2 * SCORE_STEPS, patience=10**6)
    everything = Recording()
    objectives.training.trainer.train(dataclasses.replace(full, max_steps=20), everything)
    assert everything.scores == [300] * 21 and set(everything.losses) == {300}


def test_minibatch_draws_are_uniform_seeded_and_in_range():
    seeds, steps = torch.tensor([1, 1, 2]), torch.tensor([0, 1, 0])
    b = torch.tensor([50, 50, 7000])
    drawn = minibatch.indices(seeds, steps, b, 4000)
    assert drawn.shape == (3, 4000) and drawn.dtype == torch.long
    assert torch.equal(drawn, minibatch.indices(seeds, steps, b, 4000))  # seeded
    assert not torch.equal(drawn[0], drawn[1])  # another step, other samples
    assert (drawn[:2] < 50).all() and (drawn >= 0).all() and (drawn[2] < 7000).all()
    assert drawn[2].max() > 6000  # the whole set is drawn from
    counts = torch.bincount(drawn[0], minlength=50).float()
    assert counts.min() > 40 and counts.max() < 125  # 80 each expected


def test_minibatch_trial_is_patient_until_it_is_scored():
    """Patience is checked where the trial is scored: a patience of 10 does not stop a
    minibatch trial before its second scoring."""
    config = capacity_config(b=200, batch_size=32, max_steps=3 * SCORE_STEPS, patience=10)
    result = train_capacity(config)
    assert result.steps >= SCORE_STEPS and result.steps % SCORE_STEPS == 0


def test_batch_size_is_checked_against_b():
    with pytest.raises(ValueError, match="batch_size 300 is above b"):
        capacity_config(b=200, batch_size=300)
    with pytest.raises(ValueError, match="batch_size must be"):
        capacity_config(b=200, batch_size=0)


class _Recorded:
    def __init__(self, optimizer, rates):
        self.optimizer, self.rates = optimizer, rates
        self.param_groups = optimizer.param_groups

    def zero_grad(self, set_to_none=True):
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self):
        self.rates.append(self.param_groups[0]["lr"])
        self.optimizer.step()


def _optimizers(monkeypatch, config):
    """The optimizer a trial trains with, and the learning rate of each of its steps."""
    made, rates = [], []

    def recorded(*args, **kwargs):
        optimizer = make_optimizer(*args, **kwargs)
        made.append(optimizer)
        return _Recorded(optimizer, rates)

    monkeypatch.setattr(objectives.training.trainer, "make_optimizer", recorded)
    train_capacity(config)
    return made, rates


def test_exponential_schedule_gives_the_formulas_rate(monkeypatch):
    config = capacity_config(
        lr_schedule="exponential", lr_decay=0.01, learning_rate=0.02, max_steps=40, patience=999
    )
    _, rates = _optimizers(monkeypatch, config)
    assert len(rates) == 40
    for s in (0, 1, 10, 20, 39):
        assert rates[s] == pytest.approx(0.02 * 0.01 ** (s / 40), rel=1e-12)
    assert rates[20] == pytest.approx(0.002)  # halfway: sqrt(0.01) of the start


@pytest.mark.parametrize(
    ("optimizer", "logit", "expected", "nesterov"),
    [
        ("sgd", "auto", 0.9, True),
        ("rmsprop", "auto", 0.0, None),
        ("sgd", 2.0, 1 / (1 + math.exp(-2.0)), True),
        ("rmsprop", 7.0, 1 / (1 + math.exp(-7.0)), None),
    ],
)
def test_momentum_and_l2_reach_the_optimizer(monkeypatch, optimizer, logit, expected, nesterov):
    config = capacity_config(optimizer=optimizer, momentum_logit=logit, l2=3e-4, max_steps=2)
    assert momentum(config) == pytest.approx(expected, rel=1e-15)
    (made,), _ = _optimizers(monkeypatch, config)
    (group,) = made.param_groups
    assert group["momentum"] == pytest.approx(expected, rel=1e-15)
    assert group["weight_decay"] == 3e-4
    if nesterov is not None:
        assert group["nesterov"] is nesterov
    (plain,), _ = _optimizers(monkeypatch, capacity_config(optimizer="adam", max_steps=2))
    assert plain.param_groups[0]["weight_decay"] == 0.0


def test_l2_and_momentum_change_training():
    base = capacity_config(optimizer="sgd", learning_rate=0.2, max_steps=30, patience=999)
    loss = train_capacity(base).final_loss
    assert train_capacity(dataclasses.replace(base, l2=1e-2)).final_loss != loss
    assert train_capacity(dataclasses.replace(base, momentum_logit=4.0)).final_loss != loss


def test_input_every_step_is_the_hand_written_forward():
    """An rnn of depth 2, the input shown at every step, against its equations written out:
    h1_t = tanh(Wh1' h1 + Wx1' x + b1), h2_t = tanh(Wh2' h2 + Wx2' h1_t + b2), read out."""
    gen = torch.Generator().manual_seed(4)
    p = init_params("rnn", 6, 5, 2, 1.0, gen, bias_init="normal", bias_scale=0.5)
    p = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in p.items()}
    x = torch.randn(9, 6, generator=gen)
    h1, h2 = p["l0.h0"].expand(9, 5), p["l1.h0"].expand(9, 5)
    for _ in range(4):
        h1 = torch.tanh(h1 @ p["l0.w_h"] + x @ p["l0.w_x"] + p["l0.bias"])
        h2 = torch.tanh(h2 @ p["l1.w_h"] + h1 @ p["l1.w_x"] + p["l1.bias"])
    by_hand = (h2 @ p["out.w"] + p["out.b"]).squeeze(-1)
    every = forward("rnn", p, x, depth=2, unroll=4, input_mode="every")
    torch.testing.assert_close(every, by_hand, rtol=1e-5, atol=1e-6)
    first = forward("rnn", p, x, depth=2, unroll=4)
    assert not torch.allclose(first, by_hand)
    with pytest.raises(ValueError, match="unknown input_mode 'last'"):
        forward("rnn", p, x, depth=2, unroll=4, input_mode="last")


def test_input_mode_changes_training():
    base = capacity_config(max_steps=20, patience=999)
    every = dataclasses.replace(base, input_mode="every")
    assert train_capacity(every).final_loss != train_capacity(base).final_loss


def _init(arch="rnn", n=64, n_in=48, **kwargs):
    return init_params(
        arch, n_in, n, 2, kwargs.pop("scale", 0.7), torch.Generator().manual_seed(1), **kwargs
    )


def test_recurrent_init_gives_the_stated_matrices():
    n = 64
    identity = _init(recurrent_init="identity")
    assert torch.equal(identity["l0.w_h"], 0.7 * torch.eye(n))
    gru = _init("gru", recurrent_init="identity")
    assert torch.equal(gru["l1.w_h"], 0.7 * torch.eye(n).repeat(1, 2))
    assert torch.equal(gru["l1.w_hc"], 0.7 * torch.eye(n))
    orthogonal = _init("lstm", recurrent_init="orthogonal")["l0.w_h"]
    for block in orthogonal.split(n, dim=1):  # each gate block orthogonal, times the scale
        torch.testing.assert_close(block.T @ block, 0.49 * torch.eye(n), atol=1e-5, rtol=0)
    normal = _init("lstm", n=200, recurrent_init="normal", scale=1.5)["l0.w_h"]
    assert normal.mean().abs() < 0.01
    assert normal.std().item() == pytest.approx(1.5 / math.sqrt(200), rel=0.02)
    # the input (rectangular) matrices: N(0, input_scale^2 / fan_in) under every choice
    for choice in ("identity", "orthogonal", "normal"):
        p = _init("lstm", n=200, n_in=100, recurrent_init=choice, input_scale=0.05)
        assert p["l0.w_x"].std().item() == pytest.approx(0.05 / math.sqrt(100), rel=0.02)
        assert p["l1.w_x"].std().item() == pytest.approx(0.05 / math.sqrt(200), rel=0.02)
    # the irnn's recurrent matrix stays the identity, unscaled
    assert torch.equal(_init("irnn", recurrent_init="normal")["l0.w_h"], torch.eye(n))


def test_input_scale_alone_scales_the_input_matrices():
    same = _init(input_scale=0.7)
    default = _init()
    for name in default:
        assert torch.equal(same[name], default[name]), name
    smaller = _init(input_scale=0.35)
    torch.testing.assert_close(smaller["l0.w_x"], default["l0.w_x"] / 2)
    assert torch.equal(smaller["l0.w_h"], default["l0.w_h"])


def test_bias_init_gives_the_stated_biases():
    constant = _init("gru", bias_init="constant", bias_scale=-1.5)
    for layer in (0, 1):
        assert torch.equal(constant[f"l{layer}.bias"], torch.full((1, 3 * 64), -1.5))
    assert torch.equal(constant["out.b"], torch.zeros(1, 1))  # the readout's stays zero
    assert torch.equal(constant["l0.h0"], torch.zeros(1, 64))
    normal = _init("lstm", n=300, bias_init="normal", bias_scale=0.8)["l0.bias"]
    assert normal.std().item() == pytest.approx(0.8, rel=0.05)
    assert normal.mean().abs() < 0.1


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm", "+rnn", "irnn"])
def test_the_defaults_draw_what_init_scheme_drew(arch, scheme):
    """recurrent_init "scheme", input_scale "auto", constant biases of 0: the weights of
    init_scheme alone, number for number (stored studies train as they did)."""
    plain = init_params(arch, 16, 8, 2, 1.3, torch.Generator().manual_seed(5), scheme=scheme)
    defaults = {
        k: SETTINGS[k] for k in ("recurrent_init", "input_scale", "bias_init", "bias_scale")
    }
    new = init_params(
        arch, 16, 8, 2, 1.3, torch.Generator().manual_seed(5), scheme=scheme, **defaults
    )
    assert set(plain) == set(new)
    for name in plain:
        assert torch.equal(plain[name], new[name]), name


def test_settings_defaults_are_the_config_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(CapacityConfig)}
    assert {name: fields[name] for name in SETTINGS} == SETTINGS
