"""Each cell against its equations (docs/tasks.md, "The six cells"), computed here by hand from
the named weight blocks, for two steps: the input at step 1, zero input at step 2."""

import pytest
import torch
from torch import sigmoid, tanh

from objectives.networks.cells import forward, init_params

N_IN, N, B, BFG = 3, 4, 5, 0.7


def _params(arch: str) -> dict[str, torch.Tensor]:
    p = init_params(arch, N_IN, N, 1, 1.0, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(8)
    # Non-zero biases and initial states, so that every term is exercised.
    for key in list(p):
        if key.endswith(("bias", "h0", "c0")) or key == "out.b":
            p[key] = torch.randn(p[key].shape, generator=g)
    return p


def _blocks(t: torch.Tensor, k: int) -> list[torch.Tensor]:
    return list(t.chunk(k, dim=-1))


def _readout(p, h):
    return (h @ p["out.w"] + p["out.b"]).squeeze(-1)


def _x():
    return torch.randint(0, 2, (B, N_IN), generator=torch.Generator().manual_seed(9)).float()


@pytest.mark.parametrize("act_name", ["tanh", "relu"])
def test_rnn(act_name):
    p, x = _params("rnn"), _x()
    s = torch.tanh if act_name == "tanh" else torch.relu
    h = p["l0.h0"].expand(B, N)
    h = s(h @ p["l0.w_h"] + x @ p["l0.w_x"] + p["l0.bias"])  # h1 = s(Wh h0 + Wx x + b)
    h = s(h @ p["l0.w_h"] + p["l0.bias"])  # step 2, zero input
    got = forward("rnn", p, x, depth=1, unroll=2, activation=act_name)
    torch.testing.assert_close(got, _readout(p, h))


def test_ugrnn():
    p, x = _params("ugrnn"), _x()
    wc_x, wg_x = _blocks(p["l0.w_x"], 2)
    wc_h, wg_h = _blocks(p["l0.w_h"], 2)
    bc, bg = _blocks(p["l0.bias"], 2)
    h = p["l0.h0"].expand(B, N)
    for xt in (x, torch.zeros_like(x)):
        c = tanh(h @ wc_h + xt @ wc_x + bc)
        g = sigmoid(h @ wg_h + xt @ wg_x + bg + BFG)
        h = g * h + (1 - g) * c
    got = forward("ugrnn", p, x, depth=1, unroll=2, gate_bias=BFG)
    torch.testing.assert_close(got, _readout(p, h))


def test_gru_reset_before_recurrent_matrix_and_gate_bias_on_update():
    p, x = _params("gru"), _x()
    wu_x, wr_x, wc_x = _blocks(p["l0.w_x"], 3)
    wu_h, wr_h = _blocks(p["l0.w_h"], 2)
    bu, br, bc = _blocks(p["l0.bias"], 3)
    h = p["l0.h0"].expand(B, N)
    for xt in (x, torch.zeros_like(x)):
        u = sigmoid(h @ wu_h + xt @ wu_x + bu + BFG)
        r = sigmoid(h @ wr_h + xt @ wr_x + br)
        c = tanh((r * h) @ p["l0.w_hc"] + xt @ wc_x + bc)
        h = u * h + (1 - u) * c
    got = forward("gru", p, x, depth=1, unroll=2, gate_bias=BFG)
    torch.testing.assert_close(got, _readout(p, h))


def test_lstm_gate_bias_on_forget_gate():
    p, x = _params("lstm"), _x()
    wx, wh, bias = (_blocks(p[k], 4) for k in ("l0.w_x", "l0.w_h", "l0.bias"))
    h, c = p["l0.h0"].expand(B, N), p["l0.c0"].expand(B, N)
    for xt in (x, torch.zeros_like(x)):
        i, f, o, g = (h @ wh[k] + xt @ wx[k] + bias[k] for k in range(4))
        c = sigmoid(f + BFG) * c + sigmoid(i) * tanh(g)
        h = sigmoid(o) * tanh(c)
    got = forward("lstm", p, x, depth=1, unroll=2, gate_bias=BFG)
    torch.testing.assert_close(got, _readout(p, h))


def test_lstm_matches_torch_lstm_cell_without_gate_bias():
    p, x = _params("lstm"), _x()
    cell = torch.nn.LSTMCell(N_IN, N)
    # torch orders the blocks i, f, g, o; ours are i, f, o, g.
    order = [0, 1, 3, 2]
    with torch.no_grad():
        cell.weight_ih.copy_(torch.cat([_blocks(p["l0.w_x"], 4)[k] for k in order], -1).T)
        cell.weight_hh.copy_(torch.cat([_blocks(p["l0.w_h"], 4)[k] for k in order], -1).T)
        cell.bias_ih.copy_(torch.cat([_blocks(p["l0.bias"], 4)[k] for k in order], -1)[0])
        cell.bias_hh.zero_()
        h, c = cell(x, (p["l0.h0"].expand(B, N), p["l0.c0"].expand(B, N)))
        h, c = cell(torch.zeros_like(x), (h, c))
    got = forward("lstm", p, x, depth=1, unroll=2, gate_bias=0.0)
    torch.testing.assert_close(got, _readout(p, h))


def test_plus_rnn_two_outputs_and_projection():
    p, x = _params("+rnn"), _x()
    wx, wh, bias = (_blocks(p[k], 4) for k in ("l0.w_x", "l0.w_h", "l0.bias"))
    h = p["l0.h0"].expand(B, N)
    for xt in (x @ p["proj"], torch.zeros(B, N)):  # the projection makes x layer-wide
        y_in = torch.relu(h @ wh[0] + xt @ wx[0] + bias[0])
        h_in = tanh(h @ wh[1] + xt @ wx[1] + bias[1])
        gy = sigmoid(h @ wh[2] + xt @ wx[2] + bias[2] + BFG)
        gh = sigmoid(h @ wh[3] + xt @ wx[3] + bias[3] + BFG)
        y = gy * xt + (1 - gy) * y_in
        h = gh * h + (1 - gh) * h_in
    got = forward("+rnn", p, x, depth=1, unroll=2, gate_bias=BFG)
    torch.testing.assert_close(got, _readout(p, y))  # the depth output y is read out


def test_stacked_layers_feed_each_step_upwards():
    p = init_params("rnn", N_IN, N, 2, 1.0, torch.Generator().manual_seed(3))
    x = _x()
    h0, h1 = p["l0.h0"].expand(B, N), p["l1.h0"].expand(B, N)
    for xt in (x, None):
        pre0 = h0 @ p["l0.w_h"] + p["l0.bias"]
        h0 = tanh(pre0 if xt is None else pre0 + xt @ p["l0.w_x"])
        h1 = tanh(h1 @ p["l1.w_h"] + h0 @ p["l1.w_x"] + p["l1.bias"])
    got = forward("rnn", p, x, depth=2, unroll=2)
    torch.testing.assert_close(got, _readout(p, h1))
