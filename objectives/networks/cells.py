"""The six recurrent cells, written by hand as pure functions over a flat dict of weights.

Layout: every weight is stored as (in, out), so that `x @ w` maps inputs to outputs, and
biases and learned initial states are row vectors (1, width); the computation works on any
leading axes, so adding a model axis K to every tensor ((K, d, n), (K, 1, n), inputs
(K, b, d)) turns the same code into K networks trained at once. Inside `forward` the
activations are feature-major, (..., width, b): the weights are applied transposed.

Names per layer l (0-based), input width d, hidden size n, G gate blocks:
    l{l}.w_x (d, G*n)   input weights          l{l}.w_h (n, G*n or 2n)  recurrent weights
    l{l}.bias (1, G*n)  biases                 l{l}.h0 (1, n)  learned initial state
    l{l}.w_hc (n, n)    GRU candidate's recurrent weights (after the reset gate)
    l{l}.c0 (1, n)      LSTM learned initial cell state
    proj (n_in, n)      +RNN input projection (no bias: zero input stays zero)
    out.w (n, n_out), out.b (1, n_out)  linear readout (one logit for the capacity task)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from objectives.networks.architectures import (
    BIAS_INITS,
    GATE_BLOCKS,
    RECURRENT_INITS,
    check_arch,
    layer_input_width,
)

Params = dict[str, Tensor]
State = tuple[Tensor, ...]


# recurrent_init -> the `_matrix` scheme of the recurrent matrices ("scheme": init_scheme's).
_RECURRENT_SCHEMES = {"identity": "identity", "orthogonal": "orthogonal", "normal": "scaled-normal"}


def _normal(shape: tuple[int, ...], std: float, generator: torch.Generator) -> Tensor:
    return torch.randn(shape, generator=generator) * std


def _orthogonal(rows: int, cols: int, generator: torch.Generator) -> Tensor:
    """A random (rows, cols) matrix with orthonormal columns (rows >= cols) or rows (rows <
    cols), uniform over such matrices: QR of a Gaussian matrix, signs fixed by R's diagonal."""
    tall = rows >= cols
    gaussian = torch.randn((rows, cols) if tall else (cols, rows), generator=generator)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r)).masked_fill(torch.diagonal(r) == 0, 1.0)
    return q if tall else q.T


def _matrix(
    scheme: str,
    fan_in: int,
    blocks: int,
    n: int,
    scale: float,
    generator: torch.Generator,
    *,
    recurrent: bool,
) -> Tensor:
    """A (fan_in, blocks * n) input or recurrent weight matrix under `scheme` (INIT_SCHEMES in
    objectives.networks.architectures), `scale` times:
      scaled-normal: N(0, scale^2 / fan_in)
      he:            N(0, 2 scale^2 / fan_in)
      orthogonal:    each (fan_in, n) block a random orthogonal matrix, times scale
      identity:      recurrent: each (n, n) block scale * I; input: as scaled-normal
    """
    shape = (fan_in, blocks * n)
    if scheme == "scaled-normal" or (scheme == "identity" and not recurrent):
        return _normal(shape, scale / fan_in**0.5, generator)
    if scheme == "he":
        return _normal(shape, scale * (2.0 / fan_in) ** 0.5, generator)
    if scheme == "orthogonal":
        return torch.cat([_orthogonal(fan_in, n, generator) for _ in range(blocks)], 1) * scale
    if scheme == "identity":
        return torch.eye(n).repeat(1, blocks) * scale
    raise ValueError(f"unknown init scheme {scheme!r}")


def init_params(
    arch: str,
    n_in: int,
    hidden_size: int,
    depth: int,
    init_scale: float,
    generator: torch.Generator,
    *,
    n_out: int = 1,
    scheme: str = "scaled-normal",
    recurrent_init: str = "scheme",
    input_scale: float | str = "auto",
    bias_init: str = "constant",
    bias_scale: float = 0.0,
) -> Params:
    """Fresh weights: input and recurrent matrices by `scheme` (`_matrix`; the default,
    scaled-normal, is N(0, init_scale^2 / fan_in)), biases and initial states zero; the
    IRNN's recurrent matrix is the identity under every scheme (that is the IRNN); a readout
    to `n_out` outputs, N(0, 1 / n). The one initialisation of both trainers.

    The paper's initialisation per kind of matrix (docs/tasks.md, "The paper's protocol"):
    `recurrent_init` other than "scheme" sets the recurrent (square) matrices, each gate
    block identity, orthogonal or N(0, 1 / n), times init_scale, and the input
    (rectangular) ones N(0, 1 / fan_in); `input_scale` scales the input matrices ("auto":
    init_scale, as under `scheme`); `bias_init` sets the layers' biases to bias_scale
    (constant) or N(0, bias_scale^2) (normal). Their defaults draw exactly what `scheme`
    alone drew."""
    check_arch(arch)
    n = hidden_size
    blocks = GATE_BLOCKS[arch]
    params: Params = {}
    if recurrent_init not in RECURRENT_INITS:
        raise ValueError(f"unknown recurrent_init {recurrent_init!r}")
    if bias_init not in BIAS_INITS:
        raise ValueError(f"unknown bias_init {bias_init!r}")
    recurrent_scheme = _RECURRENT_SCHEMES.get(recurrent_init, scheme)
    input_scheme = scheme if recurrent_init == "scheme" else "scaled-normal"
    in_scale = init_scale if input_scale == "auto" else float(input_scale)

    def matrix(fan_in: int, count: int, *, recurrent: bool) -> Tensor:
        if recurrent:
            return _matrix(
                recurrent_scheme, fan_in, count, n, init_scale, generator, recurrent=True
            )
        return _matrix(input_scheme, fan_in, count, n, in_scale, generator, recurrent=False)

    def bias(width: int) -> Tensor:
        if bias_init == "normal":
            return _normal((1, width), bias_scale, generator)
        return torch.full((1, width), float(bias_scale))

    if arch == "+rnn":
        params["proj"] = matrix(n_in, 1, recurrent=False)
    for layer in range(depth):
        d = layer_input_width(arch, n_in, n, layer)
        p = f"l{layer}."
        params[p + "w_x"] = matrix(d, blocks, recurrent=False)
        if arch == "irnn":
            params[p + "w_h"] = torch.eye(n)
        elif arch == "gru":
            params[p + "w_h"] = matrix(n, 2, recurrent=True)
            params[p + "w_hc"] = matrix(n, 1, recurrent=True)
        else:
            params[p + "w_h"] = matrix(n, blocks, recurrent=True)
        params[p + "bias"] = bias(blocks * n)
        params[p + "h0"] = torch.zeros(1, n)
        if arch == "lstm":
            params[p + "c0"] = torch.zeros(1, n)
    params["out.w"] = _normal((n, n_out), 1.0 / n**0.5, generator)
    params["out.b"] = torch.zeros(1, n_out)
    return params


def num_params(params: Params) -> int:
    return sum(t.numel() for t in params.values())


def _activation(name: str) -> Callable[[Tensor], Tensor]:
    if name == "tanh":
        return torch.tanh
    if name == "relu":
        return torch.relu
    raise ValueError(f"unknown activation {name!r}")


def _t(w: Tensor) -> Tensor:
    return w.transpose(-1, -2)


def _pre(p: Params, prefix: str, x: Tensor | None, h: Tensor) -> Tensor:
    """w_h' h + bias (+ w_x' x): the pre-activations (..., G*n, b), skipping the input term
    when the input is zero."""
    pre = _t(p[prefix + "w_h"]) @ h + _t(p[prefix + "bias"])
    return pre if x is None else pre + _t(p[prefix + "w_x"]) @ x


def _split(t: Tensor, parts: int) -> tuple[Tensor, ...]:
    """The gate blocks of pre-activations; each block's numbers are contiguous."""
    return t.chunk(parts, dim=-2)


def step(
    arch: str,
    p: Params,
    layer: int,
    state: State,
    x: Tensor | None,
    act: Callable[[Tensor], Tensor],
    gate_bias: float | Tensor,
) -> tuple[Tensor, State]:
    """One time step of one layer: (output fed upwards, new state). x None means zero input.
    Activations are feature-major, (..., width, b): see `forward`."""
    pf = f"l{layer}."
    h = state[0]
    if arch in ("rnn", "irnn"):
        h = act(_pre(p, pf, x, h))
        return h, (h,)
    if arch == "ugrnn":
        c_pre, g_pre = _split(_pre(p, pf, x, h), 2)
        g = torch.sigmoid(g_pre + gate_bias)
        h = g * h + (1.0 - g) * act(c_pre)
        return h, (h,)
    if arch == "gru":
        n = h.shape[-2]
        bias = _t(p[pf + "bias"])
        gates_pre = _t(p[pf + "w_h"]) @ h + bias[..., : 2 * n, :]
        cand_pre = bias[..., 2 * n :, :]
        if x is not None:
            x_pre = _t(p[pf + "w_x"]) @ x
            gates_pre = gates_pre + x_pre[..., : 2 * n, :]
            cand_pre = cand_pre + x_pre[..., 2 * n :, :]
        u_pre, r_pre = _split(gates_pre, 2)
        u = torch.sigmoid(u_pre + gate_bias)
        r = torch.sigmoid(r_pre)
        c = torch.tanh(cand_pre + _t(p[pf + "w_hc"]) @ (r * h))
        h = u * h + (1.0 - u) * c
        return h, (h,)
    if arch == "lstm":
        cell = state[1]
        i_pre, f_pre, o_pre, g_pre = _split(_pre(p, pf, x, h), 4)
        cell = torch.sigmoid(f_pre + gate_bias) * cell + torch.sigmoid(i_pre) * torch.tanh(g_pre)
        h = torch.sigmoid(o_pre) * torch.tanh(cell)
        return h, (h, cell)
    if arch == "+rnn":
        y_pre, h_pre, gy_pre, gh_pre = _split(_pre(p, pf, x, h), 4)
        gy = torch.sigmoid(gy_pre + gate_bias)
        gh = torch.sigmoid(gh_pre + gate_bias)
        y = (1.0 - gy) * torch.relu(y_pre)
        if x is not None:
            y = y + gy * x
        h = gh * h + (1.0 - gh) * torch.tanh(h_pre)
        return y, (h,)
    raise ValueError(f"unknown arch {arch!r}")


def initial_state(arch: str, p: Params, layer: int) -> State:
    """The learned initial state as one column (n, 1) (per model: (K, n, 1)) that broadcasts
    over the samples, so the first step's recurrent product is computed once, not once a
    sample."""
    pf = f"l{layer}."
    if arch == "lstm":
        return (_t(p[pf + "h0"]), _t(p[pf + "c0"]))
    return (_t(p[pf + "h0"]),)


def _readout(
    arch: str,
    params: Params,
    x: Tensor,
    *,
    depth: int,
    unroll: int,
    activation: str,
    gate_bias: float | Tensor,
    input_mode: str = "first",
) -> Tensor:
    """The readout, feature-major (..., n_out, b): input x (..., b, n_in) at the first step
    only, zero input after (input_mode "every": the same input at every step), `unroll`
    steps in all, the last layer's output at the last step read out linearly.

    Inside, activations are feature-major, (..., width, b), so that each gate block of the
    pre-activations is one contiguous piece of memory (sample-major, every gate
    nonlinearity would run over rows of n numbers with gaps between them, several times
    slower on a CPU)."""
    act = _activation(activation)
    if input_mode not in ("first", "every"):
        raise ValueError(f"unknown input_mode {input_mode!r}")
    every = input_mode == "every"
    inputs: Tensor = _t(params["proj"]) @ _t(x) if arch == "+rnn" else _t(x)
    states = [initial_state(arch, params, layer) for layer in range(depth)]
    out: Tensor | None = None
    for t in range(unroll):
        layer_in: Tensor | None = inputs if t == 0 or every else None
        for layer in range(depth):
            out, states[layer] = step(arch, params, layer, states[layer], layer_in, act, gate_bias)
            layer_in = out
    assert out is not None
    return _t(params["out.w"]) @ out + _t(params["out.b"])


def forward(
    arch: str,
    params: Params,
    x: Tensor,
    *,
    depth: int,
    unroll: int,
    activation: str = "tanh",
    gate_bias: float | Tensor = 1.0,
    input_mode: str = "first",
) -> Tensor:
    """Logits (..., b) of a network with one output (see `outputs`)."""
    return _readout(
        arch,
        params,
        x,
        depth=depth,
        unroll=unroll,
        activation=activation,
        gate_bias=gate_bias,
        input_mode=input_mode,
    ).squeeze(-2)


def outputs(
    arch: str,
    params: Params,
    x: Tensor,
    *,
    depth: int,
    unroll: int,
    activation: str = "tanh",
    gate_bias: float | Tensor = 1.0,
    input_mode: str = "first",
) -> Tensor:
    """Outputs (..., b, n_out): input x (..., b, n_in) at the first step only (input_mode
    "every": at every step), zero input after, `unroll` steps in all, the last layer's output
    at the last step read out linearly to the readout's n_out outputs."""
    return _t(
        _readout(
            arch,
            params,
            x,
            depth=depth,
            unroll=unroll,
            activation=activation,
            gate_bias=gate_bias,
            input_mode=input_mode,
        )
    )
