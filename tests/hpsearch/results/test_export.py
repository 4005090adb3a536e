"""The best-bits data layer on hand-made studies with known trials: best rows, the
bits-per-parameter fits and the multiplier matrix, checked by hand; then each rendering."""

import json

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from hpsearch.cli import main
from hpsearch.results.rows import Selection, best_rows, fit_rows, multipliers
from hpsearch.results.status import study_status
from hpsearch.results.tables import (
    best_table,
    fits_table,
    multipliers_table,
    per_unit_table,
    render,
)
from hpsearch.studies.records import create_studies
from hpsearch.studies.schema import Experiment
from storage import open_storage


def _trial(bits, depth, b, params, state=TrialState.COMPLETE, hidden=10):
    attrs = {
        "bits": bits,
        "bits_per_param": bits / params,
        "num_params": params,
        "hidden_size": hidden,
        "depth": depth,
        "config": {"b": b, "learning_rate": 0.01, "init_scale": 1.0},
    }
    return create_trial(
        state=state,
        value=bits if state == TrialState.COMPLETE else None,
        params={"depth": depth, "x": 0.5},
        distributions={"depth": CategoricalDistribution([1, 2]), "x": FloatDistribution(0, 1)},
        user_attrs=attrs,
    )


@pytest.fixture
def storage(sqlite_url):
    return _populate(sqlite_url)


def _populate(url):
    """rnn at budgets 500 and 1000, gru at 1000, with known best trials."""
    storage = open_storage(url, create=True)
    create_studies(
        storage,
        Experiment(archs=("gru", "rnn"), budgets=(500, 1000), depths=(1, 2), trials=10, seed=0),
    )

    def add(name, trials):
        _add(storage, name, trials)

    add(
        "capacity-rnn-p500",
        [
            _trial(100.0, 1, 150, 400),
            _trial(1200.0, 1, 1300, 400),
            _trial(800.0, 2, 900, 500),
            _trial(0.0, 2, 50, 500),
            _trial(9999.0, 1, 9, 400, state=TrialState.FAIL),
            _trial(9999.0, 1, 9, 400, state=TrialState.PRUNED),
        ],
    )
    add("capacity-rnn-p1000", [_trial(3000.0, 1, 3500, 1000), _trial(2000.0, 2, 2500, 1000)])
    add("capacity-gru-p1000", [_trial(1500.0, 1, 1800, 1000), _trial(1000.0, 1, 1200, 1000)])
    return storage


def _add(storage, name, trials):
    study = optuna.load_study(study_name=name, storage=storage)
    for t in trials:
        study.add_trial(t)


def _add_tagged(storage):
    """rnn at budget 500 searched twice more, under the tags gp and tpe (a sampler
    comparison), beside the untagged studies: 2000 and 1000 bits at 400 parameters."""
    for tag in ("gp", "tpe"):
        create_studies(
            storage,
            Experiment(archs=("rnn",), budgets=(500,), depths=(1,), trials=4, seed=0, tag=tag),
        )
    _add(storage, "capacity-rnn-p500-gp", [_trial(2000.0, 1, 2100, 400)])
    _add(storage, "capacity-rnn-p500-tpe", [_trial(1000.0, 1, 1100, 400)])
    return storage


def test_best_rows(storage):
    rows = best_rows(storage)
    assert [(r.study, r.depth) for r in rows] == [
        ("capacity-rnn-p500", 1),
        ("capacity-rnn-p500", 2),
        ("capacity-rnn-p1000", 1),
        ("capacity-rnn-p1000", 2),
        ("capacity-gru-p1000", 1),
    ]
    first = rows[0]
    assert (first.best_bits, first.b, first.trials_complete) == (1200.0, 1300, 2)
    assert first.bits_per_param == 3.0 and first.budget == 500 and first.num_params == 400
    assert (rows[1].best_bits, rows[1].trials_complete) == (800.0, 2)


def test_selection(storage):
    assert {r.study for r in best_rows(storage, Selection(archs=("gru",)))} == {
        "capacity-gru-p1000"
    }
    assert {r.depth for r in best_rows(storage, Selection(depths=(2,)))} == {2}
    assert {r.budget for r in best_rows(storage, Selection(budgets=(500,)))} == {500}
    assert best_rows(storage, Selection(tasks=("calibration",))) == []


def test_selection_by_study_and_tag(storage):
    _add_tagged(storage)
    picked = Selection(studies=("capacity-gru-p1000", "capacity-rnn-p500-gp"))
    assert [r.study for r in best_rows(storage, picked)] == [
        "capacity-rnn-p500-gp",
        "capacity-gru-p1000",
    ]
    assert {r.study for r in best_rows(storage, Selection(tags=("tpe",)))} == {
        "capacity-rnn-p500-tpe"
    }
    both = Selection(tags=("gp", "tpe"), depths=(1,))
    assert [r.best_bits for r in best_rows(storage, both)] == [2000.0, 1000.0]


@pytest.mark.parametrize("command", ["export", "plot", "report"])
def test_an_unknown_study_or_tag_names_the_close_ones(storage, command, tmp_path, capsys):
    _add_tagged(storage)
    out = [] if command == "export" else ["--out", str(tmp_path / "out")]
    base = [command, "--storage", storage.url, *out]
    for extra, message in [
        (
            ["--study", "capacity-rnn-p500-gpp"],
            "no hpsearch study named 'capacity-rnn-p500-gpp' (did you mean "
            "'capacity-rnn-p500-gp', 'capacity-rnn-p500-tpe' or 'capacity-rnn-p500'?)",
        ),
        (["--study", "nothing-like-it"], "no hpsearch study named 'nothing-like-it'; "),
        (["--tag", "gp,tp"], "no hpsearch study has the tag 'tp' (did you mean 'tpe'?)"),
        (["--tag", "sobol"], "no hpsearch study has the tag 'sobol'; tags here: gp, tpe"),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()  # nothing written


def test_export_and_report_select_studies(storage, tmp_path, capsys):
    _add_tagged(storage)
    url = storage.url
    args = ["export", "--storage", url, "--format", "json"]
    assert main([*args, "--study", "capacity-gru-p1000", "--study", "capacity-rnn-p1000"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["study"] for r in rows] == ["capacity-rnn-p1000"] * 2 + ["capacity-gru-p1000"]
    assert main([*args, "--tag", "tpe", "--table", "fits"]) == 0
    (fit,) = json.loads(capsys.readouterr().out)
    assert fit["mean_bits_per_param"] == 2.5  # tpe's study alone: 1000 bits / 400
    out = tmp_path / "report"
    report = ["report", "--storage", url, "--out", str(out), "--study", "capacity-gru-p1000"]
    assert main(report) == 0
    text = (out / "report.md").read_text()
    assert "capacity-gru-p1000" in text and "capacity-rnn-p500" not in text


def test_fits_by_hand(storage):
    fits = {(f.arch, f.depth): f for f in fit_rows(best_rows(storage))}
    # rnn depth 1: points (400, 1200) and (1000, 3000): slope through the origin
    # = (400*1200 + 1000*3000) / (400^2 + 1000^2) = 3480000 / 1160000 = 3.0
    assert fits[("rnn", 1)].bits_per_param_slope == pytest.approx(3.0)
    assert fits[("rnn", 1)].mean_bits_per_param == pytest.approx(3.0)
    assert fits[("rnn", 1)].budgets == 2
    # rnn depth 2: (500, 800) and (1000, 2000): (400000 + 2000000) / (250000 + 1000000) = 1.92
    assert fits[("rnn", 2)].bits_per_param_slope == pytest.approx(1.92)
    assert fits[("rnn", 2)].mean_bits_per_param == pytest.approx((1.6 + 2.0) / 2)
    assert fits[("gru", 1)].bits_per_param_slope == pytest.approx(1.5)
    assert fits[("gru", 1)].budgets == 1
    assert list(fits) == [("rnn", 1), ("rnn", 2), ("gru", 1)]


def test_multipliers_by_hand(storage):
    m = multipliers(best_rows(storage))
    assert m.archs == ("rnn", "gru")
    rnn_mean = (3.0 + 1.6 + 3.0 + 2.0) / 4  # 2.4
    assert m.mean_bits_per_param == pytest.approx((rnn_mean, 1.5))
    assert m.ratio[0][1] == pytest.approx(2.4 / 1.5)
    assert m.ratio[1][0] == pytest.approx(1.5 / 2.4)
    assert m.ratio[0][0] == m.ratio[1][1] == 1.0


def test_renderings(storage):
    rows = best_rows(storage)
    tables = [best_table(rows), fits_table(fit_rows(rows)), multipliers_table(multipliers(rows))]
    md = render(tables[:1], "md").splitlines()
    assert len(md) == 2 + 5 and "| capacity-rnn-p500 | capacity | rnn | 1 | 500 |" in md[2]
    doc = json.loads(render(tables, "json"))
    assert set(doc) == {"best", "fits", "multipliers"}
    assert doc["multipliers"][0]["arch"] == "rnn"
    assert doc["multipliers"][0]["gru"] == pytest.approx(1.6)
    latex = render(tables[1:2], "latex")
    assert "\\begin{tabular}{lrrrr}" in latex and "bits\\_per\\_param\\_slope" in latex
    assert "rnn & 1 & 3.00 & 3.00 & 2 \\\\" in latex
    assert render(tables[2:], "csv").splitlines()[0] == "arch,mean_bits_per_param,rnn,gru"
    both = render(tables, "md")
    assert both.count("## ") == 3


def test_all_four_tables_in_json_and_latex(storage):
    # What `export --table all` renders: JSON keeps every table under its name, and LaTeX
    # titles each table once.
    rows = best_rows(storage)
    tables = [
        best_table(rows),
        fits_table(fit_rows(rows)),
        multipliers_table(multipliers(rows)),
        per_unit_table([]),
    ]
    doc = json.loads(render(tables, "json"))
    assert list(doc) == ["best", "fits", "multipliers", "per-unit"]
    assert doc["per-unit"] == [] and len(doc["best"]) == len(rows)
    latex = render(tables, "latex")
    for table in tables:
        assert latex.count(f"% {table.title}\n") == 1
    assert latex.count("\\begin{tabular}") == 4


def test_status_counts(storage):
    status = {s.study: s for s in study_status(storage)}
    rnn = status["capacity-rnn-p500"]
    assert (rnn.complete, rnn.failed, rnn.pruned, rnn.best_bits) == (4, 1, 1, 1200.0)


def test_foreign_studies_are_ignored(sqlite_url):
    storage = open_storage(sqlite_url, create=True)
    optuna.create_study(storage=storage, study_name="someone-elses")
    assert best_rows(storage) == []
    assert study_status(storage) == []


@pytest.mark.postgres
def test_same_tables_on_postgres_and_sqlite(sqlite_url, postgres_url):
    outputs = []
    for url in (sqlite_url, postgres_url):
        storage = _populate(url)
        rows = best_rows(storage)
        tables = [
            best_table(rows),
            fits_table(fit_rows(rows)),
            multipliers_table(multipliers(rows)),
        ]
        outputs.append([render(tables, fmt) for fmt in ("md", "json", "latex")])
        storage.engine.dispose()
    assert outputs[0] == outputs[1]
