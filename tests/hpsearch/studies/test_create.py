"""`hpsearch create` from its one schema: flags, experiment files and stored attrs agree, the
help's examples run, and studies stored by the previous version still work."""

import argparse
import json
import re
from dataclasses import fields

import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    json_to_distribution,
)

from hpsearch.cli import COMMANDS, main
from hpsearch.cli.flags import add_arguments, from_args
from hpsearch.dashboard.notes import note_text
from hpsearch.results.rows import Selection, best_rows
from hpsearch.studies.loader import load_experiment
from hpsearch.studies.records import create_study, list_records
from hpsearch.studies.schema import Experiment
from objectives.tasks.capacity.study import CapacityStudy, build_study
from storage import open_storage
from tests.testing import ROOT, create_args, hpsearch, snapshot

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


PER_UNIT_BASE = ("--arch", "rnn", "--depths", "1", "--trials", "1")


def _run_examples(examples, tmp_path, capsys, base_of) -> None:
    for i, example in enumerate(examples):
        flag, *_ = example.split()
        assert flag.startswith("--"), example
        base = list(base_of(example))
        if flag == "--from":
            base = []
        elif flag in base:
            at = base.index(flag)
            del base[at : at + 2]
        url = f"sqlite:///{tmp_path / f'{i}.db'}"
        code = main(["create", "--storage", url, *base, *example.split()])
        assert code == 0, (example, capsys.readouterr().err)


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
        "--from experiments/unroll-small.toml",
        "--task per-unit --units 8,16,32",
    ):
        assert expected in create
    monkeypatch.chdir(ROOT)  # examples name files as from the repository root
    capacity = [e for e in create if "--task per-unit" not in e]
    _run_examples(capacity, tmp_path, capsys, lambda example: BASE)
    assert "lr=" not in " ".join(create)


def test_every_per_unit_help_example_runs(monkeypatch, tmp_path, capsys):
    pytest.importorskip(
        "objectives.tasks.per_unit.study", reason="the per-unit task is not merged yet"
    )
    per_unit = [e for e in _help_examples(monkeypatch)["create"] if "--task per-unit" in e]
    assert per_unit
    monkeypatch.chdir(ROOT)
    _run_examples(per_unit, tmp_path, capsys, lambda example: PER_UNIT_BASE)


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
        assert f.default is None  # the task's own default, on its study class
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
    with pytest.raises(Exception, match=r"unknown key 'colour'; the keys are archs, "):
        load_experiment(path)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    assert dests == keys
    text = " ".join(parser.format_help().split())
    assert f"(default {study_fields['n_in'].default}" in text
    assert f"time steps T (default {study_fields['unroll'].default} for capacity" in text


def test_per_unit_defaults_are_its_own(tmp_path, capsys):
    per_unit = pytest.importorskip(
        "objectives.tasks.per_unit.study", reason="per-unit is not merged yet"
    )
    own = {f.name: f.default for f in fields(per_unit.PerUnitStudy)}
    capacity = {f.name: f.default for f in fields(CapacityStudy)}
    args = _parse_create("--task", "per-unit", "--arch", "rnn,gru", "--units", "8,16")
    experiment = from_args(args)
    assert experiment.n_in is None and experiment.sizes == (8, 16)
    studies = experiment.studies()
    assert [s.name for s in studies] == [
        "per-unit-rnn-n8",
        "per-unit-rnn-n16",
        "per-unit-gru-n8",
        "per-unit-gru-n16",
    ]
    assert all(isinstance(s, per_unit.PerUnitStudy) for s in studies)
    for name in ("n_in", "unroll", "patience", "tag"):
        assert getattr(studies[0], name) == own[name]
    path = tmp_path / "e.toml"
    path.write_text("task = 'per-unit'\narchs = ['rnn', 'gru']\nunits = [8, 16]\n")
    assert load_experiment(path).studies() == studies
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = " ".join(parser.format_help().split())
    if own["n_in"] != capacity["n_in"]:
        assert f"(default {capacity['n_in']} for capacity, {own['n_in']} for per-unit)" in text
    assert ", ".join(per_unit.DIMENSIONS) in text
    # Created, its attrs say its task; n_in is the study's own, stored.
    url = f"sqlite:///{tmp_path / 'p.db'}"
    argv = ["create", "--storage", url, "--task", "per-unit", "--arch", "rnn", "--units", "8"]
    assert main([*argv, "--depths", "1", "--trials", "2", "--n-in", "12", "--tag", "x"]) == 0
    assert capsys.readouterr().out.split() == ["per-unit-rnn-n8-x"]
    (trials, attrs) = snapshot(url)["per-unit-rnn-n8-x"]
    assert (trials, attrs["task"], attrs["n_in"], attrs["units"]) == (0, "per-unit", 12, 8)


SIZE_ERRORS = [
    (["--arch", "rnn", "--units", "8"], "--units is for --task per-unit"),
    (["--arch", "rnn", "--budget", "300", "--units", "8"], "--units is for --task per-unit"),
    (["--task", "per-unit", "--arch", "rnn", "--budget", "300"], "--budget is for --task capacity"),
    (["--task", "per-unit", "--arch", "rnn"], "--task per-unit needs --units"),
    (["--arch", "rnn"], "--task capacity needs --budget"),
    (
        ["--task", "per-unit", "--units", "8"],
        "create needs --arch and --budget (or --task per-unit",
    ),
    (["--task", "per-unit", "--arch", "rnn", "--units", "8,8"], "--arch and --units values must"),
    (["--task", "per-unit", "--arch", "rnn", "--units", "8,x"], "--units: expected whole numbers"),
    (["--task", "transformer", "--arch", "rnn", "--budget", "300"], "unknown task 'transformer'"),
]


@pytest.mark.parametrize(("args", "match"), SIZE_ERRORS)
def test_task_and_size_flags_must_agree(sqlite_url, capsys, args, match):
    """Checked before the task's module is imported: these hold without
    objectives.tasks.per_unit.study."""
    assert main(create_args(sqlite_url, 1)) == 0
    capsys.readouterr()
    before = snapshot(sqlite_url)
    assert main(["create", "--storage", sqlite_url, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
    assert snapshot(sqlite_url) == before


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("archs = ['rnn']\nunits = [8]\n", "units is for task per-unit"),
        ("archs = ['rnn']\nbudgets = [300]\ntask = 'per-unit'\n", "budgets is for task capacity"),
        ("archs = ['rnn']\ntask = 'per-unit'\n", "task per-unit needs units"),
        ("archs = ['rnn']\nunits = 'many'\ntask = 'per-unit'\n", "units: expected a list"),
    ],
)
def test_task_and_size_keys_must_agree(tmp_path, capsys, text, match):
    path = tmp_path / "e.toml"
    path.write_text(text)
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert main(["create", "--storage", url, "--from", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}: " in err[0] and match in err[0], err
    assert not (tmp_path / "new.db").exists()


def test_status_shows_each_task_in_its_own_words():
    from hpsearch.results.status import StudyStatus, render_status

    common = dict(target=10, complete=3, running=1, waiting=0, failed=0, pruned=0)
    rows = [
        StudyStatus(
            study="capacity-rnn-p500",
            task="capacity",
            best_value=1200.0,
            best_bits_per_param=3.0,
            trials_last_hour=3,
            **common,
        ),
        StudyStatus(
            study="per-unit-gru-n64-a-rather-long-tag",
            task="per-unit",
            best_value=0.953,
            best_bits_per_param=None,
            trials_last_hour=3,
            **common,
        ),
    ]
    assert rows[0].best_bits == 1200.0 and rows[1].best_bits is None
    lines = render_status(rows).splitlines()
    assert "1200.0 bits" in lines[1] and "3.000" in lines[1]
    assert "0.953 recon." in lines[2] and "bits" not in lines[2]
    assert len({line.index("3/10") for line in lines[1:]}) == 1  # the columns line up


def test_per_unit_note_and_status(sqlite_url):
    pytest.importorskip(
        "objectives.tasks.per_unit.study", reason="the per-unit task is not merged yet"
    )
    from hpsearch.results.status import render_status, study_status
    from hpsearch.studies.records import Created, create_studies

    storage = open_storage(sqlite_url, create=True)
    experiment = Experiment(archs=("rnn",), task="per-unit", units=(16,), depths=(1,), trials=3)
    assert create_studies(storage, experiment) == [Created("per-unit-rnn-n16", "created", 3)]
    (record,) = list_records(storage)
    text = note_text(record, [], sqlite_url)
    assert "## per-unit-rnn-n16" in text and "**units**: 16 per layer" in text
    assert "no complete trial yet (target 3)" in text and "bits" not in text
    (row,) = study_status(storage)
    assert (row.task, row.target, row.best_value) == ("per-unit", 3, None)
    assert "per-unit-rnn-n16" in render_status([row])


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
        ("budgets = [300]\n", "needs archs"),
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


def test_an_old_format_study_compares_by_what_it_means(sqlite_url, capsys):
    """A study stored by an earlier version (the space as {"kind": ...}, no lr_schedule or
    init_scheme dimension) is the same study when its settings mean the same."""
    storage = open_storage(sqlite_url, create=True)
    assert create_study(storage, _OldSettings(), trials=2, sampler="random", seed=0)
    argv = [
        *("create", "--storage", sqlite_url, "--arch", "rnn", "--budget", "300"),
        *("--depths", "1", "--n-in", "8", "--unroll", "3", "--patience", "20"),
        *("--sampler", "random", "--seed", "0", "--trials", "2", "--space", "b=16:64"),
        *("--space", "learning_rate=0.001:0.1", "--space", "init_scale=0.5:2"),
        *("--space", "activation=tanh,relu", "--space", "max_steps=20"),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.splitlines() == ["capacity-rnn-p300 (exists, unchanged)"]
    assert main([*argv[:-1], "max_steps=40"]) == 2
    assert "max_steps 20 (asked: 40)" in capsys.readouterr().err


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def test_the_paper_protocol_dimensions_from_flags_and_files(tmp_path):
    """The paper's dimensions: fixed to today's behaviour by default; on the command line and
    in a file a word-or-number dimension takes its word or numbers, and a range of batch_size,
    lr_decay, l2 or input_scale is searched on a log scale."""
    (default,) = from_args(_parser().parse_args(["--arch", "gru", "--budget", "1000"])).studies()
    assert default.space["batch_size"] == CategoricalDistribution(("full",))
    assert default.space["momentum_logit"] == CategoricalDistribution(("auto",))
    argv = ["--arch", "gru", "--budget", "1000"]
    for spec in (
        "batch_size=16:256",
        "lr_decay=1e-3:1",
        "l2=1e-8:1e-3",
        "momentum_logit=1:7",
        "input_scale=auto,0.5",
        "lr_schedule=exponential",
        "grad_clip=1:100",
        "input_mode=first,every",
    ):
        argv += ["--space", spec]
    (study,) = from_args(_parser().parse_args(argv)).studies()
    assert study.space["batch_size"] == IntDistribution(16, 256, log=True)
    assert study.space["lr_decay"] == FloatDistribution(1e-3, 1.0, log=True)
    assert study.space["l2"] == FloatDistribution(1e-8, 1e-3, log=True)
    assert study.space["momentum_logit"] == FloatDistribution(1.0, 7.0)
    assert study.space["grad_clip"] == FloatDistribution(1.0, 100.0, log=True)
    assert study.space["input_scale"] == CategoricalDistribution(("auto", 0.5))
    assert study.space["input_mode"] == CategoricalDistribution(("first", "every"))
    path = tmp_path / "e.toml"
    path.write_text(
        "archs = ['gru']\nbudgets = [1000]\n[space]\nbatch_size = 64\n"
        "momentum_logit = 'auto,3.0'\nbias_scale = '-2:2'\n"
    )
    (from_file,) = load_experiment(path).studies()
    assert from_file.space["batch_size"] == CategoricalDistribution((64,))
    assert from_file.space["momentum_logit"] == CategoricalDistribution(("auto", 3.0))
    assert from_file.space["bias_scale"] == FloatDistribution(-2.0, 2.0)
