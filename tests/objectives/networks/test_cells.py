import pytest
import torch

from objectives.networks.architectures import ARCHS
from objectives.networks.cells import forward, init_params


def _act(arch: str) -> str:
    return "relu" if arch == "irnn" else "tanh"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_forward_backward_shapes(arch, depth):
    params = init_params(arch, 8, 5, depth, 1.0, torch.Generator().manual_seed(0))
    for p in params.values():
        p.requires_grad_(True)
    x = torch.randint(0, 2, (7, 8)).float()
    logits = forward(arch, params, x, depth=depth, unroll=3, activation=_act(arch))
    assert logits.shape == (7,)
    logits.sum().backward()
    for name, p in params.items():
        assert p.grad is not None, name
        assert p.grad.shape == p.shape


@pytest.mark.parametrize("arch", ARCHS)
def test_every_weight_gets_gradient(arch):
    params = init_params(arch, 8, 4, 2, 1.0, torch.Generator().manual_seed(1))
    for p in params.values():
        p.requires_grad_(True)
    x = torch.randint(0, 2, (16, 8)).float()
    forward(arch, params, x, depth=2, unroll=3, activation=_act(arch)).square().sum().backward()
    dead = [n for n, p in params.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert dead == []


@pytest.mark.parametrize("arch", ARCHS)
def test_leading_model_axis_equals_separate_networks(arch):
    """The weight layout lets K networks run as one: stack every tensor on a new axis 0."""
    nets = [init_params(arch, 6, 4, 2, 1.0, torch.Generator().manual_seed(s)) for s in (0, 1, 2)]
    xs = [
        torch.randint(0, 2, (5, 6), generator=torch.Generator().manual_seed(s)).float()
        for s in (3, 4, 5)
    ]
    one_by_one = torch.stack(
        [
            forward(arch, p, x, depth=2, unroll=4, activation=_act(arch))
            for p, x in zip(nets, xs, strict=False)
        ]
    )
    stacked = {k: torch.stack([p[k] for p in nets]) for k in nets[0]}
    batched = forward(arch, stacked, torch.stack(xs), depth=2, unroll=4, activation=_act(arch))
    assert batched.shape == (3, 5)
    torch.testing.assert_close(batched, one_by_one)


def test_input_only_at_first_step():
    """With unroll 1 the readout sees the input; the zero-input steps change the result."""
    params = init_params("rnn", 4, 3, 1, 1.0, torch.Generator().manual_seed(0))
    x = torch.ones(2, 4)
    assert not torch.allclose(
        forward("rnn", params, x, depth=1, unroll=1), forward("rnn", params, x, depth=1, unroll=2)
    )


def test_irnn_starts_from_identity():
    params = init_params("irnn", 4, 3, 1, 1.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(params["l0.w_h"], torch.eye(3))
    assert params["l0.bias"].abs().sum() == 0
