"""The six recurrent architectures of Collins et al. (2017): exact parameter counts and the
budget solver that picks the hidden size for a parameter budget, and the names of the
activations and initialisation schemes the cells offer.

Torch-free, so that study creation and export can validate budgets without importing torch.
"""

from __future__ import annotations

ARCHS: tuple[str, ...] = ("rnn", "irnn", "ugrnn", "gru", "lstm", "+rnn")

# Blocks of (n x (n + d)) weights per layer: candidate plus gates.
GATE_BLOCKS: dict[str, int] = {"rnn": 1, "irnn": 1, "ugrnn": 2, "gru": 3, "lstm": 4, "+rnn": 4}

# Learned initial-state vectors per layer (the LSTM learns both h0 and c0).
STATE_VECTORS: dict[str, int] = {"rnn": 1, "irnn": 1, "ugrnn": 1, "gru": 1, "lstm": 2, "+rnn": 1}

GATED: frozenset[str] = frozenset({"ugrnn", "gru", "lstm", "+rnn"})

# The nonlinearities of `objectives.networks.cells` (the IRNN is the ReLU one by definition).
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu")

# How input and recurrent matrices start (objectives.networks.cells._matrix), init_scale times:
#   scaled-normal: N(0, 1 / fan_in)     he: N(0, 2 / fan_in)
#   orthogonal: each gate block a random orthogonal matrix
#   identity: each recurrent gate block the identity (input matrices scaled-normal)
# The IRNN's recurrent matrix is the identity whatever the scheme.
INIT_SCHEMES: tuple[str, ...] = ("scaled-normal", "identity", "orthogonal", "he")

# The paper's initialisation per kind of matrix (objectives.networks.cells.init_params):
# recurrent (square) matrices identity, orthogonal or normal N(0, 1 / n), or "scheme" (as
# init_scheme says, the behaviour before these were added); biases constant or normal.
RECURRENT_INITS: tuple[str, ...] = ("scheme", "identity", "orthogonal", "normal")
BIAS_INITS: tuple[str, ...] = ("constant", "normal")


def check_arch(arch: str) -> None:
    if arch not in GATE_BLOCKS:
        raise ValueError(f"unknown arch {arch!r}: choose from {', '.join(ARCHS)}")


def layer_input_width(arch: str, n_in: int, hidden_size: int, layer: int) -> int:
    """Width of the input that layer `layer` (0-based) sees.

    The +RNN adds its input to its depth output, so every layer, the first included, sees
    `hidden_size` wide input (the first through a learned projection).
    """
    if arch == "+rnn" or layer > 0:
        return hidden_size
    return n_in


def count_params(arch: str, n_in: int, hidden_size: int, depth: int, n_out: int = 1) -> int:
    """Exact number of trained parameters: every layer, learned initial state, and the linear
    readout to `n_out` outputs (1 logit for the capacity task, n_in for per-unit)."""
    check_arch(arch)
    if n_in < 1 or hidden_size < 1 or depth < 1 or n_out < 1:
        raise ValueError("n_in, hidden_size, depth and n_out must be positive")
    n = hidden_size
    blocks = GATE_BLOCKS[arch]
    total = 0
    for layer in range(depth):
        d = layer_input_width(arch, n_in, n, layer)
        total += blocks * n * (n + d)  # recurrent and input weights
        total += blocks * n  # biases
        total += STATE_VECTORS[arch] * n  # learned initial state
    if arch == "+rnn":
        total += n_in * n  # input projection (no bias: zero input stays zero)
    total += n * n_out + n_out  # linear readout
    return total


def solve_hidden_size(arch: str, n_in: int, depth: int, budget: int) -> int:
    """Largest hidden size (same in every layer) whose total count is <= budget."""
    smallest = count_params(arch, n_in, 1, depth)
    if budget < smallest:
        raise ValueError(
            f"budget {budget} is too small for {arch} at depth {depth} with n_in {n_in}: "
            f"the smallest budget that works is {smallest}"
        )
    low, high = 1, 2
    while count_params(arch, n_in, high, depth) <= budget:
        low, high = high, high * 2
    # count(low) <= budget < count(high); count is strictly increasing in hidden size.
    while high - low > 1:
        mid = (low + high) // 2
        if count_params(arch, n_in, mid, depth) <= budget:
            low = mid
        else:
            high = mid
    return low
