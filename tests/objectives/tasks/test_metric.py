import itertools
import math

import pytest

from objectives.tasks.capacity.metric import binary_entropy, bits_per_param, mutual_information_bits


def test_perfect_memorisation_is_b_bits():
    assert mutual_information_bits(100, 0) == 100.0


def test_all_wrong_is_also_b_bits():
    # p = 1 is a flipped channel: the labels are still fully determined.
    assert mutual_information_bits(100, 100) == 100.0


def test_chance_is_zero_bits():
    assert mutual_information_bits(100, 50) == pytest.approx(0.0, abs=1e-12)


def test_symmetric_in_p_and_one_minus_p():
    for errors in range(0, 41):
        assert mutual_information_bits(40, errors) == pytest.approx(
            mutual_information_bits(40, 40 - errors)
        )


def test_matches_formula():
    b, errors = 1000, 70
    p = errors / b
    expected = b * (1 + p * math.log2(p) + (1 - p) * math.log2(1 - p))
    assert mutual_information_bits(b, errors) == pytest.approx(expected)
    assert binary_entropy(0.11) == pytest.approx(0.4999, abs=1e-3)


def test_monotone_towards_chance():
    values = [mutual_information_bits(200, e) for e in range(0, 101)]
    assert all(a > b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize(("b", "errors"), [(0, 0), (10, -1), (10, 11)])
def test_bad_input_raises(b, errors):
    with pytest.raises(ValueError):
        mutual_information_bits(b, errors)


def test_bits_per_param():
    assert bits_per_param(500.0, 100) == 5.0
    with pytest.raises(ValueError):
        bits_per_param(1.0, 0)
