"""One spelling of a search dimension (hpsearch.studies.spelling): the same text means the same
distribution in a --space flag and in an experiment file's [space]; the old file forms are
refused with the new form in a one-line error; every preset's studies have the space they had
before the syntax changed."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution as Choice
from optuna.distributions import FloatDistribution, IntDistribution

from hpsearch.cli import main
from hpsearch.cli.flags import add_arguments, from_args
from hpsearch.errors import HpsearchError
from hpsearch.studies.loader import load_experiment, load_experiments
from hpsearch.studies.spelling import from_file, spell
from tests.testing import ROOT, create_args, snapshot

# The ugrnn has gates (gate_bias) and a searched activation: every dimension can vary.
BASE = "archs = ['ugrnn']\nbudgets = [300, 500]\ndepths = [1]\n"


def _file(tmp_path: Path, space: str) -> Path:
    path = tmp_path / "e.toml"
    path.write_text(f"{BASE}[space]\n{space}\n")
    return path


def _flags(*space: str):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["--arch", "ugrnn", "--budget", "300,500", "--depths", "1"]
    for item in space:
        argv += ["--space", item]
    return from_args(parser.parse_args(argv))


def _space(experiment, name):
    return [study.space[name] for study in experiment.studies()]


@pytest.mark.parametrize(
    ("flag", "file", "expected"),
    [
        ("max_steps=2000", "max_steps = 2000", Choice((2000,))),
        ("max_steps=200:400", 'max_steps = "200:400"', IntDistribution(200, 400)),
        ("max_steps=200,400", 'max_steps = "200,400"', Choice((200, 400))),
        ("max_steps=200,400,800", "max_steps = [200, 400, 800]", Choice((200, 400, 800))),
        ("gate_bias=0:2", 'gate_bias = "0:2"', FloatDistribution(0.0, 2.0)),
        ("gate_bias=0.5", "gate_bias = 0.5", Choice((0.5,))),
        (
            "learning_rate=1e-4:1e-1",
            'learning_rate = "1e-4:1e-1"',
            FloatDistribution(1e-4, 0.1, log=True),
        ),
        ("optimizer=adam,sgd", 'optimizer = ["adam", "sgd"]', Choice(("adam", "sgd"))),
        ("optimizer=adam,sgd", 'optimizer = "adam,sgd"', Choice(("adam", "sgd"))),
        ("activation=tanh,relu", 'activation = ["tanh", "relu"]', Choice(("tanh", "relu"))),
        ("activation=relu", 'activation = ["relu"]', Choice(("relu",))),
    ],
)
def test_one_spelling_in_flags_and_files(tmp_path, flag, file, expected):
    name = flag.partition("=")[0]
    from_flags = _flags(flag)
    from_a_file = load_experiment(_file(tmp_path, file))
    assert from_flags == from_a_file
    assert _space(from_flags, name) == _space(from_a_file, name) == [expected, expected]


OLD_FORMS = [
    # (a line in an old form, what the error says to write instead)
    ("max_steps = [200, 400]", 'max_steps = "200:400" for the range or max_steps = "200,400"'),
    ("gate_bias = [0, 2]", 'write gate_bias = "0:2" for the range or gate_bias = "0,2"'),
    ("learning_rate = ['1e-4', '1e-2']", 'write learning_rate = "1e-4:1e-2" for the range'),
    ("optimizer = { choices = ['adam', 'sgd'] }", 'write optimizer = ["adam", "sgd"]'),
    ("max_steps = { choices = [200, 400] }", 'write max_steps = "200,400"'),
    ("gate_bias = { low = 0, high = 2 }", 'write gate_bias = "0:2"'),
    ("learning_rate = { low = 0.001, high = 0.1, log = false }", 'learning_rate = "0.001:0.1"'),
    ("max_steps = { value = 500 }", "write max_steps = 500"),
]


@pytest.mark.parametrize(("line", "new"), OLD_FORMS)
def test_an_old_form_is_refused_with_the_new_form(sqlite_url, tmp_path, capsys, line, new):
    """No old file silently changes meaning: each old form is one line, exit 2, nothing
    written, and the message shows the line as read and what to write."""
    assert main(create_args(sqlite_url, 1)) == 0
    capsys.readouterr()
    before = snapshot(sqlite_url)
    path = _file(tmp_path, line)
    assert main(["create", "--storage", sqlite_url, "--from", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    name = line.split()[0]
    assert err[0].startswith(f"hpsearch create: error: {path}: [space] {name} = "), err[0]
    assert new in err[0], err[0]
    assert snapshot(sqlite_url) == before


def test_a_variant_space_error_names_its_table(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text(
        f"{BASE}[space]\nmax_steps = 100\n[[variants]]\ntag = 'a'\n[[variants]]\ntag = 'b'\n"
        "[variants.space]\ngate_bias = [0, 2]\n"
    )
    with pytest.raises(HpsearchError, match=r"e.toml: variant 2: \[variants.space\] gate_bias"):
        load_experiments(path)
    path.write_text(f"{BASE}[space]\nlearning_rate = 'abc'\n[[variants]]\ntag = 'a'\n")
    with pytest.raises(HpsearchError) as raised:
        load_experiments(path)
    assert str(raised.value) == f'{path}: variant 1: [space] learning_rate = "abc": not a number'


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("learning_rate=abc", "--space learning_rate=abc: not a number"),
        ("learning_rate=1e-4:x", "--space learning_rate=1e-4:x: 'x' is not a number"),
        ("max_steps=100,lots", "--space max_steps=100,lots: 'lots' is not a number"),
        ("learning_rate=1:0.1", "--space learning_rate=1:0.1: range low 1 must be below high 0.1"),
        ("optimizer=adamw", "--space optimizer=adamw: unknown value 'adamw'"),
        (
            "learning-rate=0.1",
            "--space learning-rate=0.1: unknown search dimension (did you mean 'learning_rate'?)",
        ),
    ],
)
def test_a_bad_flag_names_the_flag_and_the_dimension(sqlite_url, capsys, item, message):
    assert main(create_args(sqlite_url, 1, "--space", item)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hpsearch create: error: {message}"), err


def test_the_same_error_in_a_file_quotes_the_line(tmp_path):
    with pytest.raises(HpsearchError) as raised:
        load_experiment(_file(tmp_path, "learning_rate = 'abc'"))
    assert str(raised.value).endswith(': [space] learning_rate = "abc": not a number')


def test_odd_file_values_are_refused():
    for value, match in (
        (True, "expected a number, text or a list"),
        ([], "an empty list"),
        (["a,b", "c"], "a choice holds no ','"),
        ([[1], 2, 3], "a choice is a number or a word"),
    ):
        with pytest.raises(ValueError, match=match):
            from_file("x", value)


def test_spell_is_the_flag_spelling():
    assert spell(Choice((1, 2))) == "1,2"
    assert spell(Choice(("adam",))) == "adam"
    assert spell(IntDistribution(200, 400)) == "200:400"
    assert spell(FloatDistribution(1e-4, 0.1, log=True)) == "0.0001:0.1 (log)"


def _fixed(value):
    return Choice((value,))


STEPS_1000 = {"max_steps": _fixed(1000)}
# Every preset's [space] as the previous syntax read it (none of them used a two-element list
# or a table, so the files keep their words), per variant tag.
PRESET_SPACES = {
    "capacity": lambda tag: {
        "batch_size": IntDistribution(32, 500, log=True),
        "max_steps": _fixed(50_000),
        "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
        "lr_schedule": _fixed("cosine"),
        "optimizer": _fixed("adam"),
    },
    "smoke": lambda tag: {"max_steps": _fixed(20)},
    "paper-fig1": lambda tag: {},
    "paper-fig1-small": lambda tag: STEPS_1000,
    "input-size": lambda tag: {},
    "input-size-small": lambda tag: STEPS_1000,
    "unroll": lambda tag: {},
    "unroll-small": lambda tag: STEPS_1000,
    "per-unit": lambda tag: {},
    "per-unit-small": lambda tag: STEPS_1000,
    "relu-vs-tanh": lambda tag: {"activation": _fixed(tag)},
    "relu-vs-tanh-small": lambda tag: {"activation": _fixed(tag), **STEPS_1000},
    "init": lambda tag: {"activation": _fixed("relu"), "init_scheme": _fixed(tag)},
    "init-small": lambda tag: {
        "activation": _fixed("relu"),
        "init_scheme": _fixed(tag),
        **STEPS_1000,
    },
    "optimizers": lambda tag: {
        "learning_rate": FloatDistribution(1e-4, 1.0, log=True),
        "optimizer": _fixed(tag),
    },
    "optimizers-small": lambda tag: {
        "learning_rate": FloatDistribution(1e-4, 1.0, log=True),
        "optimizer": _fixed(tag),
        **STEPS_1000,
    },
}

# The paper's protocol (new with the paper-protocol presets): every dimension of Appendix A.
PAPER_SPACE = {
    "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
    "lr_schedule": _fixed("exponential"),
    "lr_decay": FloatDistribution(1e-3, 1.0, log=True),
    "optimizer": Choice(("sgd", "rmsprop", "adam")),
    "momentum_logit": FloatDistribution(1.0, 7.0),
    "grad_clip": FloatDistribution(1.0, 100.0, log=True),
    "l2": FloatDistribution(1e-8, 1e-3, log=True),
    "recurrent_init": Choice(("identity", "orthogonal", "normal")),
    "init_scale": FloatDistribution(0.01, 2.0, log=True),
    "input_scale": FloatDistribution(1e-3, 2.0, log=True),
    "bias_init": Choice(("constant", "normal")),
    "bias_scale": FloatDistribution(-2.0, 2.0),
    "input_mode": Choice(("first", "every")),
}
PRESET_SPACES["paper-protocol"] = lambda tag: {
    **PAPER_SPACE,
    "batch_size": IntDistribution(32, 500, log=True),
    "max_steps": _fixed(100_000),
    **({"gate_bias": FloatDistribution(0.0, 6.0)} if tag == "paper-gated" else {}),
}
# The demo (scripts/demo.sh): minibatch cosine training at budget 500.
PRESET_SPACES["demo"] = lambda tag: {
    "b": IntDistribution(1000, 4000, log=True),
    "batch_size": _fixed(128),
    "max_steps": _fixed(30_000),
    "learning_rate": FloatDistribution(5e-3, 3e-2, log=True),
    "init_scale": FloatDistribution(0.3, 2.0, log=True),
    "lr_schedule": _fixed("cosine"),
    "optimizer": _fixed("adam"),
}
PRESET_SPACES["paper-protocol-small"] = lambda tag: {
    **PAPER_SPACE,
    "b": IntDistribution(1000, 10_000, log=True),
    "batch_size": IntDistribution(64, 1000, log=True),
    "max_steps": _fixed(20_000),
}


def test_every_preset_is_listed():
    assert {p.stem for p in (ROOT / "experiments").glob("*.toml")} == set(PRESET_SPACES)


@pytest.mark.parametrize("name", sorted(PRESET_SPACES))
def test_every_preset_has_the_space_it_had(name):
    experiments = load_experiments(ROOT / "experiments" / f"{name}.toml")
    for experiment in experiments:
        defaults = dataclasses.replace(experiment, space={}).studies()
        studies = experiment.studies()
        assert [s.name for s in studies] == [s.name for s in defaults]
        for study, default in zip(studies, defaults, strict=True):
            expected = {**default.space, **PRESET_SPACES[name](experiment.tag or "")}
            assert study.space == expected, study.name
            assert list(study.space) == list(default.space)  # the dimensions' order


def test_the_study_catalog_imports_no_argparse():
    for path in sorted((ROOT / "hpsearch" / "studies").glob("*.py")):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {n for n in names if n == "argparse" or n.startswith("hpsearch.cli")}, path
