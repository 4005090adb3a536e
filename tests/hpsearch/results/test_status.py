"""`hpsearch status`: the text table and `--format json` give the same numbers, JSON is
strict, and the best trial is the one rule of `hpsearch.results.rows`."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import TrialState, create_trial

from hpsearch.cli import main
from hpsearch.results.status import render_status, status_json, study_status
from hpsearch.studies.records import create_studies
from hpsearch.studies.schema import Experiment
from storage import open_storage


def _refuse(constant: str) -> None:
    raise ValueError(f"not strict JSON: {constant}")


def _populate(url: str) -> optuna.storages.BaseStorage:
    """A capacity study with trials in every state (two tie for best) and an empty per-unit
    study."""
    storage = open_storage(url, create=True)
    create_studies(
        storage,
        Experiment(archs=("rnn",), budgets=(500,), depths=(1,), trials=8, seed=0),
        Experiment(archs=("gru",), task="per-unit", units=(16,), depths=(1,), trials=3),
    )
    study = optuna.load_study(study_name="capacity-rnn-p500", storage=storage)
    one: dict[str, BaseDistribution] = {"depth": CategoricalDistribution([1])}
    for value, bpp in ((300.0, 0.6), (900.0, 1.8), (900.0, 1.9)):
        study.add_trial(
            create_trial(
                value=value,
                params={"depth": 1},
                distributions=one,
                user_attrs={"depth": 1, "bits_per_param": bpp},
            )
        )
    study.add_trial(create_trial(state=TrialState.FAIL, params={"depth": 1}, distributions=one))
    study.add_trial(
        create_trial(state=TrialState.PRUNED, value=100.0, params={"depth": 1}, distributions=one)
    )
    return storage


def test_json_has_the_numbers_of_the_text(sqlite_url):
    storage = _populate(sqlite_url)
    rows = study_status(storage)
    listed = json.loads(status_json(rows), parse_constant=_refuse)
    by_name = {r["study"]: r for r in listed}
    capacity = by_name["capacity-rnn-p500"]
    # The tie goes to the earlier trial (rows.best_trial): its bits per parameter is shown.
    assert (capacity["best_value"], capacity["best_bits_per_param"]) == (900.0, 1.8)
    assert (capacity["complete"], capacity["failed"], capacity["pruned"]) == (3, 1, 1)
    assert (capacity["done"], capacity["target"], capacity["trials_last_hour"]) == (4, 8, 3)
    assert (capacity["task"], capacity["metric"], capacity["best_text"]) == (
        "capacity",
        "bits",
        "900.0 bits",
    )
    per_unit = by_name["per-unit-gru-n16"]
    assert (per_unit["best_value"], per_unit["best_text"], per_unit["done"]) == (None, "-", 0)
    text = render_status(rows).splitlines()
    for line, row in zip(text[1:], listed, strict=True):
        assert line.split()[:7] == [
            row["study"],
            f"{row['done']}/{row['target']}",
            str(row["running"]),
            str(row["waiting"]),
            str(row["failed"]),
            str(row["pruned"]),
            row["best_text"].split()[0],
        ]


def test_json_is_strict():
    from hpsearch.results.status import StudyStatus

    row = StudyStatus(
        study="capacity-rnn-p500",
        task="capacity",
        target=1,
        complete=1,
        running=0,
        waiting=0,
        failed=0,
        pruned=0,
        best_value=float("nan"),
        best_bits_per_param=float("inf"),
        trials_last_hour=1,
    )
    (listed,) = json.loads(status_json([row]), parse_constant=_refuse)
    assert listed["best_value"] is None and listed["best_bits_per_param"] is None


def test_status_format_json_on_the_command_line(sqlite_url, capsys):
    storage = _populate(sqlite_url)
    storage.engine.dispose()
    assert main(["status", "--storage", sqlite_url, "-f", "json"]) == 0
    listed = json.loads(capsys.readouterr().out, parse_constant=_refuse)
    assert [r["study"] for r in listed] == ["capacity-rnn-p500", "per-unit-gru-n16"]
    assert main(["status", "--storage", sqlite_url, "--format", "text"]) == 0
    assert "4/8" in capsys.readouterr().out
    assert main(["status", "--storage", sqlite_url, "--format", "yaml"]) == 2


def test_an_empty_storage_is_an_empty_list(sqlite_url, capsys):
    open_storage(sqlite_url, create=True).engine.dispose()
    assert main(["status", "--storage", sqlite_url, "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_status_help_names_the_formats(fmt, capsys):
    assert main(["status", "--help"]) == 0
    assert fmt in capsys.readouterr().out
