"""`hpsearch create` on studies that exist: the same settings leave them unchanged, a new target
is set and said, and any other difference is refused (exit 2, every difference in one line,
nothing written for any study)."""

from __future__ import annotations

import pytest

from hpsearch.cli import main
from hpsearch.studies.records import Created, create_studies
from hpsearch.studies.schema import Experiment
from storage import open_storage
from tests.testing import snapshot

BASE = ["--arch", "rnn,gru", "--budget", "300", "--depths", "1,2", "--seed", "1"]


def _create(url: str, *args: str) -> list[str]:
    return ["create", "--storage", url, *BASE, *args]


@pytest.fixture
def made(sqlite_url, capsys):
    assert main(_create(sqlite_url, "--trials", "100", "--sampler", "gp")) == 0
    assert capsys.readouterr().out.split() == ["capacity-rnn-p300", "capacity-gru-p300"]
    return sqlite_url


def test_the_same_settings_leave_the_studies_unchanged(made, capsys):
    before = snapshot(made)
    assert main(_create(made, "--trials", "100")) == 0
    assert capsys.readouterr().out.splitlines() == [
        "capacity-rnn-p300 (exists, unchanged)",
        "capacity-gru-p300 (exists, unchanged)",
    ]
    assert snapshot(made) == before


def test_a_new_target_is_set_and_said(made, capsys):
    before = snapshot(made)
    assert main(_create(made, "--trials", "200")) == 0
    assert capsys.readouterr().out.splitlines() == [
        "capacity-rnn-p300: target 100 -> 200",
        "capacity-gru-p300: target 100 -> 200",
    ]
    after = snapshot(made)
    for name, (_, attrs) in after.items():
        assert attrs["target_trials"] == 200
        assert {**attrs, "target_trials": 100} == before[name][1]  # nothing else changed
    # No seed given: the study keeps its own, and the target may change again.
    argv = ["create", "--storage", made, "--arch", "rnn", "--budget", "300", "--depths", "1,2"]
    assert main([*argv, "--trials", "50"]) == 0
    assert capsys.readouterr().out.splitlines() == ["capacity-rnn-p300: target 200 -> 50"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--sampler", "tpe", "--depths", "1"],
            "capacity-rnn-p300 exists with depths 1,2, sampler gp (asked: 1, tpe); "
            "capacity-gru-p300 exists with depths 1,2, sampler gp (asked: 1, tpe); ",
        ),
        (
            ["--space", "max_steps=1000", "--n-in", "16"],
            "capacity-rnn-p300 exists with n_in 32, max_steps 2000 (asked: 16, 1000); ",
        ),
        (["--seed", "2"], "capacity-rnn-p300 exists with seed 1 (asked: 2); "),
        (["--pruner", "median"], "capacity-rnn-p300 exists with pruner none (asked: median); "),
        (
            ["--space", "learning_rate=1e-3:1e-2"],
            "exists with learning_rate 0.0001:0.1 (log) (asked: 0.001:0.01 (log))",
        ),
    ],
)
def test_any_other_difference_is_refused_and_nothing_written(made, capsys, args, said):
    """Refused even with a new target too, and even where one study would be new: all studies
    are checked before any is written."""
    before = snapshot(made)
    argv = [
        *("create", "--storage", made, "--arch", "rnn,gru,lstm", "--budget", "300"),
        *("--depths", "1,2", "--seed", "1", "--trials", "300", *args),
    ]
    if "--seed" in args:
        del argv[argv.index("--seed") : argv.index("--seed") + 2]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("hpsearch create: error: capacity-"), err[0]
    assert said in err[0], err[0]
    assert "only the target (trials) of an existing study can change" in err[0]
    assert snapshot(made) == before  # no target set, no lstm study made


def test_from_a_file_too(made, tmp_path, capsys):
    path = tmp_path / "e.toml"
    path.write_text(
        "archs = ['rnn']\nbudgets = [300]\ndepths = [1, 2]\nseed = 1\ntrials = 100\n"
        "sampler = 'random'\n"
    )
    before = snapshot(made)
    assert main(["create", "--storage", made, "--from", str(path)]) == 2
    assert "capacity-rnn-p300 exists with sampler gp (asked: random)" in capsys.readouterr().err
    assert snapshot(made) == before


def test_what_create_studies_says(made):
    storage = open_storage(made)
    experiment = Experiment(archs=("rnn", "lstm"), budgets=(300,), depths=(1, 2), seed=1, trials=7)
    assert create_studies(storage, experiment) == [
        Created("capacity-rnn-p300", "retargeted", 7, 100),
        Created("capacity-lstm-p300", "created", 7),
    ]
    assert create_studies(storage, experiment) == [
        Created("capacity-rnn-p300", "unchanged", 7),
        Created("capacity-lstm-p300", "unchanged", 7),
    ]


def test_a_study_not_made_by_hpsearch_is_refused(sqlite_url, capsys):
    import optuna

    optuna.create_study(study_name="capacity-rnn-p300", storage=sqlite_url)
    before = snapshot(sqlite_url)
    assert main(_create(sqlite_url)) == 2
    assert "capacity-rnn-p300 exists and was not made by hpsearch" in capsys.readouterr().err
    assert snapshot(sqlite_url) == before
