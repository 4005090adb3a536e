"""Warm starts across studies (hpsearch.search.warm): the related studies' results in this
study's coordinates, the GP samplers fitted to them, and the `warm_from` setting."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hpsearch.cli import main
from hpsearch.search.gp import GPSampler
from hpsearch.search.gp_batch import GPBatchSampler
from hpsearch.search.samplers import STARTUP_TRIALS
from hpsearch.search.warm import (
    WARM_FROM_KEY,
    check_warm_from,
    related_names,
    related_results,
    stored_warm_from,
)
from hpsearch.studies.records import list_records
from tests.testing import create_args, snapshot

# The optimum of the synthetic objective, the same for every budget in these coordinates.
BEST_B_PER_PARAM = 5.0
BEST_LR = 3e-3
BEST_INIT = 1.0


def space(budget: int) -> dict[str, Any]:
    """A capacity study's searched dimensions at `budget` (b from budget/2 to 16 budget)."""
    return {
        "b": IntDistribution(budget // 2, 16 * budget, log=True),
        "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
        "init_scale": FloatDistribution(0.1, 3.0, log=True),
    }


def bits(params: dict[str, Any], budget: int) -> float:
    """Synthetic bits: budget times a bits/param that is best at BEST_* (b relative to P)."""
    per_param = (
        2.0
        - 0.5 * math.log(params["b"] / budget / BEST_B_PER_PARAM) ** 2
        - (math.log10(params["learning_rate"]) - math.log10(BEST_LR)) ** 2
        - math.log(params["init_scale"] / BEST_INIT) ** 2
    )
    return budget * per_param


def random_params(rng: np.random.Generator, budget: int) -> dict[str, Any]:
    b = round(math.exp(rng.uniform(math.log(budget // 2), math.log(16 * budget))))
    return {
        "b": b,
        "learning_rate": math.exp(rng.uniform(math.log(1e-4), math.log(1e-1))),
        "init_scale": math.exp(rng.uniform(math.log(0.1), math.log(3.0))),
    }


def add_study(
    storage: optuna.storages.BaseStorage,
    budget: int,
    trials: int,
    *,
    arch: str = "rnn",
    warm_from: list[str] | None = None,
    seed: int = 0,
) -> optuna.Study:
    """A study of the synthetic objective with `trials` random COMPLETE trials, user attrs as
    hpsearch stores them (task, arch, budget, space with depth 1)."""
    name = f"capacity-{arch}-p{budget}"
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    attrs: dict[str, Any] = {
        "task": "capacity",
        "arch": arch,
        "budget": budget,
        "space": {"depth": {"name": "CategoricalDistribution", "attributes": {"choices": [1]}}},
    }
    if warm_from is not None:
        attrs[WARM_FROM_KEY] = warm_from
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        params = random_params(rng, budget)
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=space(budget),
                value=bits(params, budget),
                user_attrs={"depth": 1},
            )
        )
    return study


def ask(study: optuna.Study, budget: int) -> dict[str, Any]:
    trial = study.ask()
    out = {
        "b": trial.suggest_int("b", budget // 2, 16 * budget, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
        "init_scale": trial.suggest_float("init_scale", 0.1, 3.0, log=True),
    }
    study.tell(trial, bits(out, budget))
    return out


def near_optimum(params: dict[str, Any], budget: int) -> bool:
    return (
        abs(math.log(params["b"] / budget / BEST_B_PER_PARAM)) < math.log(1.6)
        and abs(math.log10(params["learning_rate"] / BEST_LR)) < 0.35
        and abs(math.log(params["init_scale"] / BEST_INIT)) < math.log(1.4)
    )


# -- the coordinates ----------------------------------------------------------------------------


def test_related_results_rescale_b_and_value_by_the_parameter_count():
    study = add_study(optuna.storages.InMemoryStorage(), 200, 3)
    related = related_results([(200.0, study.trials)], space(1000), 1000.0, 1)
    for trial, params, value in zip(study.trials, related.params, related.values, strict=True):
        assert params["b"] == pytest.approx(trial.params["b"] * 5)
        assert params["learning_rate"] == trial.params["learning_rate"]
        assert value == pytest.approx(trial.value / 200)
    # Context: log2(200 / 1000) / 4 for the budget, 0 for the (same) depth.
    assert related.context[:, 0] == pytest.approx([math.log2(0.2) / 4] * 3)
    assert related.context[:, 1] == pytest.approx([0.0] * 3)


def test_check_warm_from():
    assert check_warm_from(["auto"]) == ("auto",)
    assert check_warm_from([" a", "b"]) == ("a", "b")
    for bad in (["auto", "a"], ["a", "a"], [], [""]):
        with pytest.raises(ValueError):
            check_warm_from(bad)
    assert stored_warm_from({}) == ()  # a study stored before the setting


def test_auto_takes_the_same_task_and_arch_only():
    def summary(name: str, **attrs: Any) -> SimpleNamespace:
        return SimpleNamespace(study_name=name, user_attrs=attrs)

    own = {"task": "capacity", "arch": "rnn", "budget": 1000, WARM_FROM_KEY: ["auto"]}
    studies = [
        summary("capacity-rnn-p1000", **own),
        summary("capacity-rnn-p200", task="capacity", arch="rnn", budget=200),
        summary("capacity-gru-p200", task="capacity", arch="gru", budget=200),
        summary("per-unit-rnn-n8", task="per-unit", arch="rnn", units=8),
        summary("capacity-rnn-p500-x", task="capacity", arch="rnn", budget=500),
    ]
    assert related_names("capacity-rnn-p1000", own, studies) == [
        "capacity-rnn-p200",
        "capacity-rnn-p500-x",
    ]
    named = {**own, WARM_FROM_KEY: ["capacity-gru-p200", "gone"]}
    assert related_names("capacity-rnn-p1000", named, studies) == ["capacity-gru-p200"]
    assert related_names("capacity-rnn-p1000", {**own, WARM_FROM_KEY: None}, studies) == []


# -- the samplers -------------------------------------------------------------------------------


def warm_storage() -> tuple[optuna.storages.BaseStorage, optuna.Study]:
    """Related studies at budgets 200 and 500 (40 trials each) and a gru one whose trials
    would mislead (never read: another arch); the study at 1,000 with one poor trial of its
    own (the first trial of a study is random: its space is learned from it)."""
    storage = optuna.storages.InMemoryStorage()
    add_study(storage, 200, 40, seed=1)
    add_study(storage, 500, 40, seed=2)
    gru = add_study(storage, 200, 0, arch="gru")
    for _ in range(20):  # a "best" region far from the true one, in another arch
        params = {"b": 3000, "learning_rate": 1e-4, "init_scale": 0.1}
        gru.add_trial(optuna.trial.create_trial(params=params, distributions=space(200), value=1e6))
    own = add_study(storage, 1000, 0, warm_from=["auto"])
    own.add_trial(
        optuna.trial.create_trial(
            params={"b": 600, "learning_rate": 0.09, "init_scale": 2.9},
            distributions=space(1000),
            value=bits({"b": 600, "learning_rate": 0.09, "init_scale": 2.9}, 1000),
        )
    )
    return storage, own


def test_a_warm_study_proposes_near_the_related_optimum_from_its_first_gp_trial():
    storage, own = warm_storage()
    study = optuna.load_study(
        study_name=own.study_name, storage=storage, sampler=GPSampler(seed=0, n_startup_trials=10)
    )
    first = ask(study, 1000)  # own trial 2, well inside the random start-up of a cold study
    assert near_optimum(first, 1000), first


def test_gp_batch_proposes_near_the_related_optimum_from_its_first_fit():
    storage, own = warm_storage()
    sampler = GPBatchSampler(q=4, seed=0, n_startup_trials=10)
    study = optuna.load_study(study_name=own.study_name, storage=storage, sampler=sampler)
    proposals = sampler.propose(study)
    assert proposals is not None
    assert near_optimum(proposals.params[0], 1000), proposals.params[0]
    assert len(proposals.length_scales) == 3  # the search space's, not the context's


def test_a_cold_study_stays_in_its_start_up():
    """The same study without the setting: its second trial is random (the check above fails
    without the related trials)."""
    storage, own = warm_storage()
    own.set_user_attr(WARM_FROM_KEY, None)
    sampler = GPSampler(seed=0, n_startup_trials=10)
    study = optuna.load_study(study_name=own.study_name, storage=storage, sampler=sampler)
    assert sampler.sample_relative(study, study.ask()._cached_frozen_trial, space(1000)) == {}


@pytest.mark.parametrize("kind", ["gp", "gp-batch"])
@pytest.mark.parametrize("setting", [None, ["auto"], ["capacity-gru-p1000"]])
def test_without_related_trials_proposals_are_as_without_the_option(kind, setting):
    """No related trials (no setting; auto with no study of the same arch; a named study with
    none): the same proposals as a study without the option, with the same seed."""
    proposals = []
    for warm_from in (None, setting):
        storage = optuna.storages.InMemoryStorage()
        if setting == ["capacity-gru-p1000"]:
            add_study(storage, 1000, 0, arch="gru")
        own = add_study(storage, 1000, STARTUP_TRIALS + 2, warm_from=warm_from)
        sampler: Any = (
            GPSampler(seed=3, n_startup_trials=STARTUP_TRIALS)
            if kind == "gp"
            else GPBatchSampler(q=3, seed=3, n_startup_trials=STARTUP_TRIALS)
        )
        study = optuna.load_study(study_name=own.study_name, storage=storage, sampler=sampler)
        if kind == "gp":
            proposals.append([ask(study, 1000) for _ in range(2)])
        else:
            batch = sampler.propose(study)
            assert batch is not None
            proposals.append(batch.params)
    assert proposals[0] == proposals[1]


# -- the setting --------------------------------------------------------------------------------


def test_create_stores_the_setting_and_checks_it(sqlite_url, capsys):
    assert main(create_args(sqlite_url, 2, "--tag", "a")) == 0
    assert main(create_args(sqlite_url, 2, "--warm-from", "auto")) == 0
    assert main(create_args(sqlite_url, 2, "--tag", "b", "--warm-from", "capacity-rnn-p300-a")) == 0
    stored = {r.name: r.warm_from for r in list_records(optuna.storages.RDBStorage(sqlite_url))}
    assert stored == {
        "capacity-rnn-p300-a": (),
        "capacity-rnn-p300": ("auto",),
        "capacity-rnn-p300-b": ("capacity-rnn-p300-a",),
    }
    before = snapshot(sqlite_url)
    capsys.readouterr()
    for bad in ("auto,capacity-rnn-p300-a", "no-such-study", ",", "capacity-rnn-p300-c"):
        assert main(create_args(sqlite_url, 2, "--tag", "c", "--warm-from", bad)) == 2
        err = capsys.readouterr().err
        assert "--warm-from" in err and len(err.strip().splitlines()) == 1, err
    # An existing study with another setting is refused too.
    assert main(create_args(sqlite_url, 2, "--warm-from", "capacity-rnn-p300-a")) == 2
    assert "warm_from auto" in capsys.readouterr().err
    assert snapshot(sqlite_url) == before


def test_the_setting_in_an_experiment_file(sqlite_url, tmp_path, capsys):
    path = tmp_path / "warm.toml"
    path.write_text("archs = ['rnn']\nbudgets = [300, 600]\ndepths = [1]\nwarm_from = 'auto'\n")
    assert main(["create", "--storage", sqlite_url, "--from", str(path)]) == 0
    attrs = {name: a for name, (_, a) in snapshot(sqlite_url).items()}
    assert attrs["capacity-rnn-p300"][WARM_FROM_KEY] == ["auto"]
    # The same file again: unchanged; a list of names, one of them made by the same file.
    assert main(["create", "--storage", sqlite_url, "--from", str(path)]) == 0
    named = tmp_path / "named.toml"
    named.write_text(
        "archs = ['rnn']\nbudgets = [900, 1200]\ndepths = [1]\n"
        "warm_from = ['capacity-rnn-p300', 'capacity-rnn-p1200']\n"
    )
    assert main(["create", "--storage", sqlite_url, "--from", str(named)]) == 2
    assert "cannot warm from itself" in capsys.readouterr().err
    named.write_text(named.read_text().replace("1200']", "600']"))
    assert main(["create", "--storage", sqlite_url, "--from", str(named)]) == 0
    attrs = {name: a for name, (_, a) in snapshot(sqlite_url).items()}
    assert attrs["capacity-rnn-p900"][WARM_FROM_KEY] == ["capacity-rnn-p300", "capacity-rnn-p600"]
    bad = tmp_path / "bad.toml"
    bad.write_text("archs = ['rnn']\nbudgets = [1500]\ndepths = [1]\nwarm_from = 3\n")
    before = snapshot(sqlite_url)
    assert main(["create", "--storage", sqlite_url, "--from", str(bad)]) == 2
    assert snapshot(sqlite_url) == before


def test_proposals_land_in_the_own_space():
    """Related b rescaled beyond this study's range is fine for the fit; proposals stay in."""
    storage, own = warm_storage()
    study = optuna.load_study(
        study_name=own.study_name, storage=storage, sampler=GPSampler(seed=1, n_startup_trials=10)
    )
    for _ in range(3):
        params = ask(study, 1000)
        assert 500 <= params["b"] <= 16000
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
