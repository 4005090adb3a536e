"""The claims' structure: each claim one object, its words beside its measurement, in the
report's order; the names that collided elsewhere are gone."""

import inspect

import hpsearch.results.claims as claims
from hpsearch.results.claims import CLAIMS
from hpsearch.results.claims.judging import PaperClaim


def test_claims_in_the_reports_order():
    assert [c.number for c in CLAIMS] == ["1", "2", "3", "4", "5", "6a", "6b", "7", "8"]


def test_each_claim_keeps_its_words_beside_its_measurement():
    for claim in CLAIMS:
        cls = type(claim)
        assert isinstance(claim, PaperClaim)
        # The statement, tolerance and measurement are written in the claim's own class.
        for name in ("number", "statement", "expected", "tolerance", "tests_with"):
            assert name in vars(cls), (cls.__name__, name)
        assert "measure" in vars(cls) and "relevant" in vars(cls), cls.__name__
        # One module per claim.
        assert inspect.getmodule(cls).CLAIM is claim


def test_no_name_collides_with_a_held_trial_or_the_per_unit_task():
    # storage.lifecycle.Claim is a held trial; objectives' per-unit RECONSTRUCTED is 1 - 1e-4.
    assert not hasattr(claims, "Claim") and not hasattr(claims, "RECONSTRUCTED")
    assert claims.SUCCESS_FRACTION == 0.9
