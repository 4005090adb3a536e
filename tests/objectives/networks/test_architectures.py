import pytest
import torch

from objectives.networks.architectures import ARCHS, count_params, solve_hidden_size
from objectives.networks.cells import init_params, num_params


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("hidden_size", [1, 3, 16])
def test_count_matches_tensors(arch, depth, hidden_size):
    params = init_params(arch, 32, hidden_size, depth, 1.0, torch.Generator().manual_seed(0))
    assert num_params(params) == count_params(arch, 32, hidden_size, depth)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("budget", [300, 1000, 10_000, 100_000])
def test_solver_is_maximal_and_matches_tensors(arch, depth, budget):
    hidden = solve_hidden_size(arch, 32, depth, budget)
    assert count_params(arch, 32, hidden, depth) <= budget
    assert count_params(arch, 32, hidden + 1, depth) > budget
    params = init_params(arch, 32, hidden, depth, 1.0, torch.Generator().manual_seed(0))
    assert num_params(params) == count_params(arch, 32, hidden, depth)


def test_known_counts():
    # rnn, n_in 32, 18 units, depth 1: 18*(18+32) weights + 18 bias + 18 h0 + 18+1 readout
    assert count_params("rnn", 32, 18, 1) == 18 * 50 + 18 + 18 + 19
    # lstm has 4 blocks and two initial-state vectors
    assert count_params("lstm", 32, 6, 1) == 4 * 6 * 38 + 4 * 6 + 2 * 6 + 7
    # +rnn: projection n_in*n, every layer sees n-wide input
    assert count_params("+rnn", 32, 5, 2) == 32 * 5 + 2 * (4 * 5 * 10 + 4 * 5 + 5) + 6


def test_gating_costs_units_at_equal_budget():
    sizes = [solve_hidden_size(a, 32, 1, 5000) for a in ("rnn", "ugrnn", "gru", "lstm")]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] > sizes[-1]


def test_budget_too_small_names_smallest_budget():
    smallest = count_params("lstm", 32, 1, 2)
    with pytest.raises(ValueError, match=f"smallest budget that works is {smallest}"):
        solve_hidden_size("lstm", 32, 2, smallest - 1)
    assert solve_hidden_size("lstm", 32, 2, smallest) == 1


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown arch 'transformer'"):
        count_params("transformer", 32, 4, 1)
