"""`hpsearch create --task per-unit`: a new study is the task as the paper ran it (n_in 64,
unroll 12, uniform inputs), its input distribution a setting stored with it; a study stored
before the setting reads, compares and trains as it was made (Gaussian inputs)."""

import shutil
from pathlib import Path

import optuna
import pytest

from hpsearch.cli import main
from hpsearch.studies.loader import load_experiment
from hpsearch.studies.records import differences, list_records
from hpsearch.studies.schema import Experiment
from objectives.tasks.registry import get_task
from tests.testing import snapshot

OLD_DB = Path(__file__).parents[2] / "data" / "b2cc86b" / "b2cc86b.db"
BASE = ("--task", "per-unit", "--arch", "rnn", "--units", "8", "--depths", "1", "--trials", "1")


def _create(url: str, *extra: str) -> int:
    return main(["create", "--storage", url, *BASE, *extra])


def test_a_new_study_is_the_published_task(sqlite_url, capsys):
    assert _create(sqlite_url) == 0
    (_, attrs) = snapshot(sqlite_url)["per-unit-rnn-n8"]
    assert (attrs["n_in"], attrs["unroll"], attrs["inputs"]) == (64, 12, "uniform")
    study = get_task("per-unit").study_from_attrs(attrs)
    assert (study.n_in, study.unroll, study.inputs) == (64, 12, "uniform")


def test_inputs_is_a_stored_setting_from_flags_and_files(sqlite_url, tmp_path, capsys):
    assert _create(sqlite_url, "--inputs", "gaussian", "--tag", "g") == 0
    assert snapshot(sqlite_url)["per-unit-rnn-n8-g"][1]["inputs"] == "gaussian"
    path = tmp_path / "e.toml"
    path.write_text("task = 'per-unit'\narchs = ['rnn']\nunits = [8]\ninputs = 'gaussian'\n")
    experiment = load_experiment(path)
    assert experiment == Experiment(archs=("rnn",), task="per-unit", units=(8,), inputs="gaussian")
    assert [s.inputs for s in experiment.studies()] == ["gaussian"]
    assert Experiment(archs=("rnn",), task="per-unit", units=(8,)).studies()[0].inputs == (
        "uniform"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--inputs", "cauchy"), "inputs must be uniform or gaussian, got 'cauchy'"),
        (("--inputs", ""), "inputs must be uniform or gaussian, got ''"),
    ],
)
def test_a_bad_inputs_value_is_one_line_and_exit_2(sqlite_url, capsys, extra, message):
    assert _create(sqlite_url, "--tag", "ok") == 0
    before = snapshot(sqlite_url)
    capsys.readouterr()
    assert _create(sqlite_url, *extra) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"hpsearch create: error: {message}"]
    assert "Traceback" not in captured.err and captured.out == ""
    assert snapshot(sqlite_url) == before  # nothing written


def test_inputs_is_for_the_per_unit_task_only(sqlite_url, capsys):
    argv = ["create", "--storage", sqlite_url, "--arch", "rnn", "--budget", "300"]
    assert main([*argv, "--inputs", "uniform"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "hpsearch create: error: --inputs is for --task per-unit"
    ]
    assert snapshot(sqlite_url) == {}


@pytest.fixture
def old_url(tmp_path: Path) -> str:
    shutil.copy(OLD_DB, tmp_path / "old.db")
    return f"sqlite:///{tmp_path / 'old.db'}"


def test_an_old_per_unit_study_reads_as_before(old_url, capsys):
    """Stored without `inputs`: Gaussian, with its stored n_in and unroll (64 and 5); asking
    for it again with those settings finds it as it is, while today's defaults differ."""
    storage = optuna.storages.RDBStorage(old_url)
    (record,) = [r for r in list_records(storage) if r.name == "per-unit-rnn-n8"]
    assert "inputs" not in record.attrs
    study = get_task("per-unit").study_from_attrs(record.attrs)
    assert (study.inputs, study.n_in, study.unroll) == ("gaussian", 64, 5)
    stored = {k: v for k, v in record.attrs.items() if k not in ("space", "target_trials")}
    stored = {k: v for k, v in stored.items() if k not in ("sampler", "pruner", "seed")}
    assert {k: v for k, v in study.to_attrs().items() if k in stored} == stored
    settings = dict(
        archs=("rnn",), task="per-unit", units=(8,), depths=(1,), trials=3, sampler="random"
    )
    space = {"max_steps": "100"}
    same = Experiment(**settings, unroll=5, inputs="gaussian", seed=1, space=space)
    assert differences(record, same.studies()[0], same) == []
    today = Experiment(**settings, seed=1, space=space)
    assert differences(record, today.studies()[0], today) == [
        ("unroll", "5", "12"),
        ("inputs", "gaussian", "uniform"),
    ]


def test_an_old_per_unit_trial_trains_again_to_its_value(old_url):
    """Its Gaussian inputs are drawn as they were: the same trial gives the same value."""
    storage = optuna.storages.RDBStorage(old_url)
    summary = next(s for s in storage.get_all_studies() if s.study_name == "per-unit-rnn-n8")
    trial = storage.get_all_trials(summary._study_id)[0]
    task = get_task("per-unit")
    study = task.study_from_attrs(summary.user_attrs)
    seed = trial.user_attrs["config"]["seed"]
    config = task.suggest(optuna.trial.FixedTrial(trial.params), study, seed)
    assert config.inputs == "gaussian"
    assert {k: v for k, v in config.to_attrs().items() if k != "inputs"} == (
        trial.user_attrs["config"]
    )
    assert task.run(config, "cpu").value == pytest.approx(trial.value, rel=1e-9)
