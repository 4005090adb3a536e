"""Bad input: one line on stderr, exit code 2, no traceback, nothing changed in the database."""

import json
from pathlib import Path

import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, json_to_distribution

from hpsearch.cli import main
from tests.testing import create_args, hpsearch, snapshot


@pytest.fixture
def populated(sqlite_url):
    assert main(create_args(sqlite_url, 3)) == 0
    return sqlite_url


def _fails_cleanly(argv, capsys, match):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert match in lines[0], lines[0]


CREATE_CASES = [
    (["--arch", "rnn,transformer", "--budget", "300"], "unknown arch 'transformer'"),
    (["--arch", "rnn", "--budget", "abc"], "--budget: expected whole numbers"),
    (["--arch", "rnn", "--budget", "0"], "budget must be an integer in [1,"),
    (["--arch", "lstm", "--budget", "1000,100"], "budget 100 is too small for lstm"),
    (["--arch", "rnn", "--budget", "300", "--depths", "1,x"], "--depths: expected whole"),
    (["--arch", "rnn", "--budget", "300", "--depths", "0"], "depth: 0 is not an integer"),
    (["--arch", "rnn", "--budget", "300", "--space", "learning_rate=1:0.1"], "must be below"),
    (["--arch", "rnn", "--budget", "300", "--space", "learning_rate"], "--space takes NAME="),
    (["--arch", "rnn", "--budget", "300", "--space", "lr=0.1"], "unknown search dimension"),
    (["--arch", "rnn", "--budget", "300", "--sampler", "cmaes"], "unknown sampler 'cmaes'"),
    (["--arch", "rnn", "--budget", "300", "--trials", "0"], "trials must be in"),
    (["--arch", "rnn", "--budget", "300", "--trials", "many"], "invalid int value"),
    (["--arch", "rnn", "--budget", "300", "--n-in", "0"], "n_in must be an integer"),
    (["--budget", "300"], "create needs --arch and --budget"),
    (["--arch", "rnn", "--budget", "300", "--seed", "-1"], "seed must be in"),
    # The paper's protocol's dimensions (b searched from 150 at budget 300 by default).
    (
        ["--arch", "rnn", "--budget", "300", "--space", "batch_size=0"],
        "batch_size=0: 0 is out of range",
    ),
    (["--arch", "rnn", "--budget", "300", "--space", "batch_size=200"], "above the smallest b"),
    (
        ["--arch", "rnn", "--budget", "300", "--space", "batch_size=few"],
        "batch_size=few: expected an integer",
    ),
    (
        ["--arch", "rnn", "--budget", "300", "--space", "lr_decay=2"],
        "lr_decay=2: 2 is out of range",
    ),
    (["--arch", "rnn", "--budget", "300", "--space", "input_mode=last"], "unknown value 'last'"),
    (["--arch", "rnn", "--budget", "300", "--space", "recurrent_init=he"], "unknown value 'he'"),
]


@pytest.mark.parametrize(("args", "match"), CREATE_CASES)
def test_bad_create_changes_nothing(populated, capsys, args, match):
    before = snapshot(populated)
    _fails_cleanly(["create", "--storage", populated, *args], capsys, match)
    assert snapshot(populated) == before


def test_bad_create_on_new_file_creates_no_file(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    _fails_cleanly(
        ["create", "--storage", url, "--arch", "gru", "--budget", "50"], capsys, "too small"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["status", "--storage", "foo://bar"], "unsupported database 'foo'"),
        (["status", "--storage", "::nonsense::"], "cannot read storage URL"),
        (["export", "--storage", "postgresql://u:pw@127.0.0.1:1/x"], "cannot use storage"),
    ],
)
def test_unreadable_storage(argv, match, capsys):
    _fails_cleanly(argv, capsys, match)


def test_missing_database_is_not_created(tmp_path, capsys):
    path = tmp_path / "absent.db"
    for command in ("status", "export", "worker"):
        extra = ["--all"] if command == "worker" else []
        _fails_cleanly(
            [command, "--storage", f"sqlite:///{path}", *extra], capsys, "no database at"
        )
    assert not path.exists()


def test_missing_study(populated, capsys):
    before = snapshot(populated)
    _fails_cleanly(
        ["worker", "--storage", populated, "--study", "capacity-rnn-p999"],
        capsys,
        "no hpsearch study named 'capacity-rnn-p999'",
    )
    assert snapshot(populated) == before


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ([], "needs --study NAME (repeatable) or --all"),
        (["--all", "--study", "capacity-rnn-p300"], "not both"),
        (["--all", "--n-trials", "0"], "--n-trials must be positive"),
        (["--all", "--device", "tpu"], "choose auto, cpu or cuda"),
        (["--all", "--heartbeat-interval", "30", "--heartbeat-grace", "10"], "must exceed"),
        (["--all", "--threads", "0"], "--threads must be positive"),
    ],
)
def test_bad_worker_args(populated, capsys, args, match):
    before = snapshot(populated)
    _fails_cleanly(["worker", "--storage", populated, *args], capsys, match)
    assert snapshot(populated) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_gpu(populated, capsys):
    before = snapshot(populated)
    _fails_cleanly(
        ["worker", "--storage", populated, "--all", "--device", "cuda"], capsys, "no CUDA device"
    )
    assert snapshot(populated) == before


def test_bad_export_format(populated, capsys, tmp_path):
    _fails_cleanly(
        ["export", "--storage", populated, "--format", "xlsx"], capsys, "unknown format 'xlsx'"
    )
    _fails_cleanly(
        ["export", "--storage", populated, "--out", str(tmp_path / "no" / "t.md")],
        capsys,
        "does not exist",
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("archs = ['rnn']\nbudgets = [300]\ncolour = 'red'\n", "unknown key 'colour'; the keys"),
        ("archs = ['rnn']\nbuget = [300]\n", "unknown key 'buget' (did you mean 'budgets'?)"),
        ("archs = ['rnn']\nbudgets = [300\n", "not valid TOML"),
        ("archs = ['rnn']\nbudgets = ['big']\n", "budgets: expected a list of whole numbers"),
        ("archs = ['rnn']\nbudgets = [300]\n[space]\nlearning_rate = '1:0.1'\n", "below"),
        ("archs = ['rnn']\nbudgets = [300]\n[space]\nlearning_rate = [1, 0.1]\n", "ambiguous"),
    ],
)
def test_bad_experiment_file(populated, capsys, tmp_path, text, match):
    path = tmp_path / "exp.toml"
    path.write_text(text)
    before = snapshot(populated)
    _fails_cleanly(["create", "--storage", populated, "--from", str(path)], capsys, match)
    assert snapshot(populated) == before


def test_missing_experiment_file(populated, capsys, tmp_path: Path):
    _fails_cleanly(
        ["create", "--storage", populated, "--from", str(tmp_path / "x.toml")],
        capsys,
        "cannot read",
    )


def test_experiment_file_creates_studies(sqlite_url, capsys, tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(
        "archs = ['rnn', 'lstm']\nbudgets = [500]\ndepths = [1, 2]\ntrials = 7\nsampler = 'tpe'\n"
        "seed = 3\n[space]\nlearning_rate = '1e-3:1e-2'\noptimizer = ['adam', 'sgd']\n"
    )
    assert main(["create", "--storage", sqlite_url, "--from", str(path)]) == 0
    assert capsys.readouterr().out.split() == ["capacity-rnn-p500", "capacity-lstm-p500"]
    attrs = snapshot(sqlite_url)["capacity-lstm-p500"][1]
    assert attrs["target_trials"] == 7 and attrs["sampler"] == "tpe" and attrs["seed"] == 3
    space = {name: json_to_distribution(json.dumps(d)) for name, d in attrs["space"].items()}
    assert space["learning_rate"] == FloatDistribution(1e-3, 1e-2, log=True)
    assert space["optimizer"] == CategoricalDistribution(("adam", "sgd"))
    assert main(["create", "--storage", sqlite_url, "--from", str(path)]) == 0
    assert "exists, unchanged" in capsys.readouterr().out


def test_real_process_prints_one_line_and_exits_2(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    for args in (
        ["create", "--storage", url, "--arch", "nope", "--budget", "10"],
        ["create", "--storage", url, "--bogus-flag"],
        ["status", "--storage", url],
    ):
        result = hpsearch(*args)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "p.db").exists()


def test_storage_from_environment(tmp_path):
    url = f"sqlite:///{tmp_path / 'env.db'}"
    result = hpsearch(
        "create", "--arch", "rnn", "--budget", "300", "--trials", "1", env={"HPSEARCH_STORAGE": url}
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "env.db").exists()
