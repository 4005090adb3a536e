"""A storage made at commit b2cc86b, before the packages moved into rooms (tests/data/b2cc86b,
its README says how), loads, exports, trains and resumes with today's code as it did then.

Exports are compared key by key against that commit's own output: every value it wrote is
written again. Columns added since (a table may gain one) are allowed; none may change or go.
The one intended difference: `fits` and `multipliers` no longer pool studies that differ only
by tag (rnn's tags a and b), so those are compared for gru, which has one study.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import optuna
import pytest

from hpsearch.cli import main
from hpsearch.worker.loop import trial_seed
from objectives.tasks.registry import get_task

DATA = Path(__file__).parent / "data" / "b2cc86b"


@pytest.fixture
def old_url(tmp_path: Path) -> str:
    shutil.copy(DATA / "b2cc86b.db", tmp_path / "old.db")
    return f"sqlite:///{tmp_path / 'old.db'}"


def _export(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> str:
    capsys.readouterr()
    assert main(["export", "--storage", url, *args]) == 0
    return capsys.readouterr().out


def _same_values(old: dict, new: dict) -> None:
    for key, value in old.items():
        assert key in new, f"column {key} is gone"
        if isinstance(value, float):
            assert new[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert new[key] == value, key


def test_best_and_per_unit_export_as_at_the_old_commit(old_url, capsys):
    old = json.loads((DATA / "all.json").read_text())
    new = json.loads(_export(capsys, old_url, "--table", "all", "--format", "json"))
    for table in ("best", "per-unit"):
        assert len(new[table]) == len(old[table]), table
        for old_row, new_row in zip(old[table], new[table], strict=True):
            _same_values(old_row, new_row)
    for name, table in (("best.csv", "best"), ("per_unit.csv", "per-unit")):
        old_rows = list(csv.DictReader(io.StringIO((DATA / name).read_text())))
        new_rows = list(
            csv.DictReader(
                io.StringIO(_export(capsys, old_url, "--table", table, "--format", "csv"))
            )
        )
        assert len(new_rows) == len(old_rows) > 0
        for old_row, new_row in zip(old_rows, new_rows, strict=True):
            _same_values(old_row, new_row)


def test_fits_of_a_single_study_export_as_at_the_old_commit(old_url, capsys):
    old = [r for r in json.loads((DATA / "all.json").read_text())["fits"] if r["arch"] == "gru"]
    new = json.loads(
        _export(capsys, old_url, "--table", "fits", "--format", "json", "--arch", "gru")
    )
    assert len(new) == len(old) == 1
    _same_values(old[0], new[0])


def test_stored_trials_train_again_to_the_same_value(old_url):
    storage = optuna.storages.RDBStorage(old_url)
    task = get_task("capacity")
    summary = next(s for s in storage.get_all_studies() if s.study_name == "capacity-gru-p200-a")
    trial = storage.get_all_trials(summary._study_id)[0]
    seed = int(summary.user_attrs["seed"])
    config_attrs = trial.user_attrs["config"]
    # The seed formula is unchanged: the stored config's seed is today's trial_seed.
    assert config_attrs["seed"] == trial_seed(seed, trial.number)
    study = task.study_from_attrs(summary.user_attrs)
    config = task.suggest(optuna.trial.FixedTrial(trial.params), study, config_attrs["seed"])
    result = task.run(config, "cpu")
    assert result.value == pytest.approx(trial.value, rel=1e-9)
    assert result.to_attrs()["errors"] == trial.user_attrs["errors"]


def test_an_old_study_resumes(old_url, capsys):
    storage = optuna.storages.RDBStorage(old_url)
    summary = next(s for s in storage.get_all_studies() if s.study_name == "per-unit-rnn-n8")
    before = storage.get_all_trials(summary._study_id)
    storage.set_study_user_attr(summary._study_id, "target_trials", len(before) + 1)
    args = ["worker", "--storage", old_url, "--study", "per-unit-rnn-n8", "--device", "cpu"]
    assert main([*args, "--seed", "0"]) == 0
    after = storage.get_all_trials(summary._study_id)
    assert len(after) == len(before) + 1
    assert [t.value for t in after[: len(before)]] == [t.value for t in before]
    new = after[-1]
    assert new.state == optuna.trial.TrialState.COMPLETE
    assert set(before[0].user_attrs) <= set(new.user_attrs)
    assert main(["status", "--storage", old_url]) == 0
    assert "per-unit-rnn-n8" in capsys.readouterr().out
