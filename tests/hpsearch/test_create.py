"""`hpsearch create` from its one schema: flags, experiment files and stored attrs agree, the
help's examples run, and studies stored by the previous version still work."""

import argparse
import json
import re
from dataclasses import fields

import optuna
import pytest
from optuna.distributions import json_to_distribution

from hpsearch.cli import COMMANDS, main
from hpsearch.experiment import Experiment, add_arguments, from_args, load_experiment
from hpsearch.export import Selection, best_rows
from hpsearch.notes import note_text
from hpsearch.studies import create_study, list_records
from objectives.capacity import CapacityStudy, build_study
from storage import open_storage
from tests.hpsearch.helpers import ROOT, hpsearch, snapshot

EXAMPLE = re.compile(r"`([^`]+)`")
BASE = ("--arch", "rnn", "--budget", "300", "--depths", "1", "--trials", "1")


def _help_examples(monkeypatch) -> dict[str, list[str]]:
    """The backquoted examples of every command's --help, unwrapped."""
    monkeypatch.setenv("COLUMNS", "1000")  # no line breaks inside an example
    found = {}
    for name, command in COMMANDS.items():
        parser = argparse.ArgumentParser(prog=f"hpsearch {name}")
        command.arguments(parser)
        found[name] = EXAMPLE.findall(parser.format_help())
    return found


def test_every_help_example_runs(monkeypatch, tmp_path, capsys):
    examples = _help_examples(monkeypatch)
    assert {name for name, found in examples.items() if found} == {"create"}, (
        "an example in another command's help: give that command a base here"
    )
    create = examples["create"]
    for expected in (
        "--space learning_rate=1e-3",
        "--space learning_rate=1e-4:1e-1",
        "--space optimizer=adam,sgd",
        "--tag tpe",
        "--from experiments/smoke.toml",
    ):
        assert expected in create
    monkeypatch.chdir(ROOT)  # examples name files as from the repository root
    for i, example in enumerate(create):
        flag, *_ = example.split()
        assert flag.startswith("--"), example
        base = list(BASE)
        if flag == "--from":
            base = []
        elif flag in base:
            at = base.index(flag)
            del base[at : at + 2]
        url = f"sqlite:///{tmp_path / f'{i}.db'}"
        code = main(["create", "--storage", url, *base, *example.split()])
        assert code == 0, (example, capsys.readouterr().err)
    assert "lr=" not in " ".join(create)


def test_tag_in_experiment_file(sqlite_url, tmp_path, capsys):
    path = tmp_path / "tagged.toml"
    path.write_text("archs = ['rnn']\nbudgets = [300]\ndepths = [1]\ntag = 'x'\n")
    assert main(["create", "--storage", sqlite_url, "--from", str(path)]) == 0
    assert capsys.readouterr().out.split() == ["capacity-rnn-p300-x"]
    assert snapshot(sqlite_url)["capacity-rnn-p300-x"][1]["tag"] == "x"


def test_from_file_takes_no_other_flags(sqlite_url, tmp_path, capsys):
    path = tmp_path / "e.toml"
    path.write_text("archs = ['rnn']\nbudgets = [300]\n")
    assert main(["create", "--storage", sqlite_url, "--from", str(path), "--trials", "3"]) == 2
    err = capsys.readouterr().err
    assert "--from takes everything from the file; drop --trials" in err


def _parse_create(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_are_declared_once(tmp_path):
    study_fields = {f.name: f for f in fields(CapacityStudy)}
    shared = [f for f in fields(Experiment) if f.metadata.get("study_field")]
    assert {f.name for f in shared} == {"n_in", "unroll", "patience", "tag"}
    for f in shared:
        assert f.default is study_fields[f.name].default
    # The flags have no defaults of their own: a flag left out is left out.
    args = _parse_create("--arch", "rnn", "--budget", "300")
    assert vars(args) == {"archs": "rnn", "budgets": "300"}
    from_flags = from_args(args)
    path = tmp_path / "e.toml"
    path.write_text("archs = ['rnn']\nbudgets = [300]\n")
    from_file = load_experiment(path)
    assert from_flags == from_file == Experiment(archs=("rnn",), budgets=(300,))
    (study,) = from_flags.studies()
    assert study == build_study("rnn", 300)
    for name in ("n_in", "unroll", "patience", "tag"):
        assert getattr(study, name) is study_fields[name].default
    # Every field is one flag and one file key; the help shows the one default.
    keys = {f.name for f in fields(Experiment)}
    path.write_text("".join(f"{key} = 0\n" for key in sorted(keys | {"colour"})))
    with pytest.raises(Exception, match=r"unknown keys \['colour'\]"):
        load_experiment(path)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    assert dests == keys
    assert "(default 32)" in " ".join(parser.format_help().split())


def test_same_settings_from_flags_and_file(tmp_path):
    args = _parse_create(
        *("--arch", "gru,lstm", "--budget", "500", "--depths", "1,2", "--trials", "7"),
        *("--n-in", "16", "--unroll", "3", "--patience", "50", "--sampler", "tpe"),
        *("--seed", "3", "--tag", "t1", "--task", "capacity"),
        *("--space", "learning_rate=1e-3:1e-2", "--space", "optimizer=adam,sgd"),
    )
    path = tmp_path / "e.toml"
    path.write_text(
        "archs = ['gru', 'lstm']\nbudgets = [500]\ndepths = [1, 2]\ntrials = 7\nn_in = 16\n"
        "unroll = 3\npatience = 50\nsampler = 'tpe'\nseed = 3\ntag = 't1'\ntask = 'capacity'\n"
        "[space]\nlearning_rate = '1e-3:1e-2'\noptimizer = 'adam,sgd'\n"
    )
    assert from_args(args).studies() == load_experiment(path).studies()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("archs = ['rnn']\nbudgets = [300]\ntask = 'calibration'\n", "unknown task"),
        ("archs = ['rnn']\nbudgets = [300]\nsampler = 'cmaes'\n", "unknown sampler 'cmaes'"),
        ("archs = ['rnn']\nbudgets = [300]\ntag = 3\n", "tag: expected text"),
        ("archs = ['rnn']\nbudgets = [300]\ntag = 'a b'\n", "tag may hold letters"),
        ("archs = ['rnn']\n", "needs budgets"),
    ],
)
def test_bad_file_values(tmp_path, text, match):
    path = tmp_path / "e.toml"
    path.write_text(text)
    with pytest.raises(Exception, match=match):
        load_experiment(path).studies()


# A study as the previous version stored it: the space as {"kind": ...}, no tag.
OLD_STUDY = {
    "task": "capacity",
    "arch": "rnn",
    "budget": 300,
    "n_in": 8,
    "unroll": 3,
    "patience": 20,
    "space": {
        "depth": {"kind": "fixed", "value": 1},
        "b": {"kind": "int", "low": 16.0, "high": 64.0, "log": True},
        "learning_rate": {"kind": "float", "low": 0.001, "high": 0.1, "log": True},
        "init_scale": {"kind": "float", "low": 0.5, "high": 2.0, "log": True},
        "activation": {"kind": "choice", "choices": ["tanh", "relu"]},
        "optimizer": {"kind": "fixed", "value": "adam"},
        "gate_bias": {"kind": "fixed", "value": 1.0},
        "grad_clip": {"kind": "fixed", "value": 0.0},
        "max_steps": {"kind": "fixed", "value": 20},
    },
    "target_trials": 2,
    "sampler": "random",
    "seed": 0,
}


class _OldSettings:
    name = "capacity-rnn-p300"

    def to_attrs(self) -> dict:
        return {k: v for k, v in OLD_STUDY.items() if k not in ("target_trials", "sampler", "seed")}


@pytest.mark.timeout(240)
def test_old_format_study_runs_exports_and_notes(sqlite_url):
    storage = open_storage(sqlite_url, create=True)
    assert create_study(storage, _OldSettings(), trials=2, sampler="random", seed=0)
    result = hpsearch("worker", "--storage", sqlite_url, "--all", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "2 complete" in result.stderr
    trials = optuna.load_study(study_name="capacity-rnn-p300", storage=storage).get_trials()
    assert {frozenset(t.params) for t in trials} == {
        frozenset({"b", "learning_rate", "init_scale", "activation"})
    }
    rows = best_rows(storage, Selection())
    assert [(r.study, r.depth) for r in rows] == [("capacity-rnn-p300", 1)]
    (record,) = list_records(storage)
    text = note_text(record, trials, sqlite_url)
    assert "`activation` {tanh, relu}" in text and "`max_steps` = 20" in text
    # Its attrs are left as they were: the old format stays readable, not rewritten.
    assert record.attrs["space"]["b"] == OLD_STUDY["space"]["b"]
    settings = CapacityStudy.from_attrs(record.attrs)
    assert settings.space["b"] == json_to_distribution(
        json.dumps({"name": "IntDistribution", "attributes": {"low": 16, "high": 64, "log": True}})
    )
