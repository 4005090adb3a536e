"""The best-bits data layer on hand-made studies with known trials: best rows, the
bits-per-parameter fits and the multiplier matrix, checked by hand; then each rendering."""

import csv
import io
import json
import math
from dataclasses import replace

import optuna
import pytest

from hpsearch.cli import main
from hpsearch.results.rows import (
    Selection,
    best_rows,
    fit_line,
    fit_rows,
    keyed_rows,
    multipliers,
    multipliers_by_tag,
    trial_rows,
)
from hpsearch.results.status import study_status
from hpsearch.results.tables import (
    best_table,
    fits_table,
    multipliers_table,
    per_unit_table,
    render,
    to_json,
    trials_table,
)
from hpsearch.studies.records import create_studies
from hpsearch.studies.schema import Experiment
from storage import open_storage
from tests.testing import add_trials, capacity_trial, populated_storage


def _add_tagged(storage):
    """rnn at budget 500 searched twice more, under the tags gp and tpe (a sampler
    comparison), beside the untagged studies: 2000 and 1000 bits at 400 parameters."""
    for tag in ("gp", "tpe"):
        create_studies(
            storage,
            Experiment(archs=("rnn",), budgets=(500,), depths=(1,), trials=4, seed=0, tag=tag),
        )
    add_trials(storage, "capacity-rnn-p500-gp", [capacity_trial(2000.0, 1, 2100, 400)])
    add_trials(storage, "capacity-rnn-p500-tpe", [capacity_trial(1000.0, 1, 1100, 400)])
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


def test_studies_that_differ_by_tag_stand_side_by_side(storage):
    _add_tagged(storage)
    rows = best_rows(storage, Selection(budgets=(500,), depths=(1,)))
    assert [(r.study, r.tag, r.best_bits) for r in rows] == [
        ("capacity-rnn-p500", "", 1200.0),
        ("capacity-rnn-p500-gp", "gp", 2000.0),
        ("capacity-rnn-p500-tpe", "tpe", 1000.0),
    ]
    (keyed,) = keyed_rows(storage, ("b",), Selection(tags=("gp",)))
    assert keyed.tag == "gp" and keyed.get("b") == 2100
    # Fits and multipliers per tag: never one line through the gp and tpe studies.
    fits = [(f.arch, f.depth, f.tag, f.mean_bits_per_param) for f in fit_rows(best_rows(storage))]
    assert fits == [
        ("rnn", 1, "", 3.0),
        ("rnn", 1, "gp", 5.0),
        ("rnn", 1, "tpe", 2.5),
        ("rnn", 2, "", pytest.approx(1.8)),
        ("gru", 1, "", 1.5),
    ]
    # A caller that chose its own series fits them as one line, under its own label.
    pooled = fit_line([r for r in rows if r.arch == "rnn"], "all")
    assert (pooled.tag, pooled.budgets) == ("all", 1)
    assert pooled.mean_bits_per_param == pytest.approx((3.0 + 5.0 + 2.5) / 3)
    with pytest.raises(ValueError, match="one arch and depth"):
        fit_line(best_rows(storage), "")
    matrices = multipliers_by_tag(best_rows(storage))
    assert [(m.tag, m.archs, m.mean_bits_per_param) for m in matrices] == [
        ("", ("rnn", "gru"), pytest.approx((2.4, 1.5))),
        ("gp", ("rnn",), (5.0,)),
        ("tpe", ("rnn",), (2.5,)),
    ]
    with pytest.raises(ValueError, match="one multiplier matrix per tag"):
        multipliers(best_rows(storage))
    table = multipliers_table(matrices)
    assert table.columns == ("arch", "mean_bits_per_param", "rnn", "gru", "tag")
    md = render([table], "md").splitlines()
    assert md[2:] == [
        "| rnn | 2.40 | 1.00 | 1.60 |  |",
        "| gru | 1.50 | 0.625 | 1.00 |  |",
        "| rnn | 5.00 | 1.00 | - | gp |",
        "| rnn | 2.50 | 1.00 | - | tpe |",
    ]
    assert render([best_table(rows)], "md").splitlines()[0].endswith("| trials_complete | tag |")
    assert render([fits_table(fit_rows(rows))], "csv").splitlines()[0].endswith(",budgets,tag")


def test_one_tag_exports_as_no_tag(storage, tmp_path):
    """Studies that all carry one tag have the tables they would have had without it, but
    for the tag column."""
    tagged = open_storage(f"sqlite:///{tmp_path / 'tagged.db'}", create=True)
    create_studies(
        tagged,
        Experiment(
            archs=("gru", "rnn"), budgets=(500, 1000), depths=(1, 2), trials=10, seed=0, tag="gp"
        ),
    )
    for name in ("capacity-rnn-p500", "capacity-rnn-p1000", "capacity-gru-p1000"):
        study = optuna.load_study(study_name=name, storage=storage)
        add_trials(tagged, f"{name}-gp", study.get_trials())

    def tables(rows):
        return [fits_table(fit_rows(rows)), multipliers_table(multipliers_by_tag(rows))]

    for plain, with_tag in zip(tables(best_rows(storage)), tables(best_rows(tagged)), strict=True):
        assert plain.columns == with_tag.columns
        assert [r[-1] for r in plain.rows] == [""] * len(plain.rows)
        assert [r[-1] for r in with_tag.rows] == ["gp"] * len(plain.rows)
        assert [r[:-1] for r in plain.rows] == [r[:-1] for r in with_tag.rows]


def test_renderings(storage):
    rows = best_rows(storage)
    tables = [best_table(rows), fits_table(fit_rows(rows)), multipliers_table([multipliers(rows)])]
    md = render(tables[:1], "md").splitlines()
    assert len(md) == 2 + 5 and "| capacity-rnn-p500 | capacity | rnn | 1 | 500 |" in md[2]
    doc = json.loads(render(tables, "json"))
    assert set(doc) == {"best", "fits", "multipliers"}
    assert doc["multipliers"][0]["arch"] == "rnn"
    assert doc["multipliers"][0]["gru"] == pytest.approx(1.6)
    latex = render(tables[1:2], "latex")
    assert "\\begin{tabular}{lrrrrl}" in latex and "bits\\_per\\_param\\_slope" in latex
    assert "rnn & 1 & 3.00 & 3.00 & 2 &  \\\\" in latex
    assert render(tables[2:], "csv").splitlines()[0] == "arch,mean_bits_per_param,rnn,gru,tag"
    both = render(tables, "md")
    assert both.count("## ") == 3


def test_all_four_tables_in_json_and_latex(storage):
    # What `export --table all` renders: JSON keeps every table under its name, and LaTeX
    # titles each table once.
    rows = best_rows(storage)
    tables = [
        best_table(rows),
        fits_table(fit_rows(rows)),
        multipliers_table(multipliers_by_tag(rows)),
        per_unit_table([]),
    ]
    doc = json.loads(render(tables, "json"))
    assert list(doc) == ["best", "fits", "multipliers", "per-unit"]
    assert doc["per-unit"] == [] and len(doc["best"]) == len(rows)
    latex = render(tables, "latex")
    for table in tables:
        assert latex.count(f"% {table.title}\n") == 1
    assert latex.count("\\begin{tabular}") == 4


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_is_strict(sqlite_url, capsys):
    """An arch of 0 mean bits per parameter makes the other archs' ratios to it NaN, and a
    row of no parameters a NaN fit: JSON says null, never NaN."""
    storage = open_storage(sqlite_url, create=True)
    create_studies(storage, Experiment(archs=("gru", "rnn"), budgets=(500,), trials=3, seed=0))
    add_trials(storage, "capacity-rnn-p500", [capacity_trial(100.0, 1, 150, 400)])
    add_trials(storage, "capacity-gru-p500", [capacity_trial(0.0, 1, 150, 400)])
    for table in ("multipliers", "all"):
        assert main(["export", "--storage", sqlite_url, "--table", table, "--format", "json"]) == 0
        doc = _strict_json(capsys.readouterr().out)
        matrix = doc if table == "multipliers" else doc["multipliers"]
        assert matrix[0]["arch"] == "rnn" and matrix[0]["gru"] is None
        assert matrix[1]["rnn"] == 0.0
    (fit,) = fit_rows([replace(best_rows(storage)[1], num_params=0, best_bits=0.0)])
    assert math.isnan(fit.bits_per_param_slope)
    text = render([fits_table([fit])], "json")
    assert _strict_json(text)[0]["bits_per_param_slope"] is None
    nested = {"a": [1.0, float("inf"), {"b": float("-inf"), "c": float("nan")}], "d": (2, 3)}
    assert _strict_json(to_json(nested)) == {"a": [1.0, None, {"b": None, "c": None}], "d": [2, 3]}


def test_export_every_trial(storage, capsys):
    _add_tagged(storage)
    url = storage.url
    assert main(["export", "--storage", url, "--table", "trials", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    # Every trial of every study, failed and pruned ones too, by study name and number.
    assert [(r["study"], r["number"]) for r in rows][:7] == [
        ("capacity-gru-p1000", "0"),
        ("capacity-gru-p1000", "1"),
        ("capacity-rnn-p1000", "0"),
        ("capacity-rnn-p1000", "1"),
        ("capacity-rnn-p500", "0"),
        ("capacity-rnn-p500", "1"),
        ("capacity-rnn-p500", "2"),
    ]
    assert len(rows) == 2 + 2 + 6 + 1 + 1
    failed = next(r for r in rows if r["state"] == "FAIL")
    assert (failed["study"], failed["number"], failed["value"]) == ("capacity-rnn-p500", "4", "")
    assert {r["state"] for r in rows} == {"COMPLETE", "FAIL", "PRUNED"}
    first = rows[0]
    assert list(first)[:8] == [
        "study",
        "task",
        "tag",
        "number",
        "state",
        "value",
        "datetime_start",
        "datetime_complete",
    ]
    assert [c for c in first if c.startswith("params_")] == ["params_depth", "params_x"]
    assert (first["params_depth"], first["params_x"], first["value"]) == ("1", "0.5", "1500.0")
    assert json.loads(first["user_attrs_config"]) == {
        "b": 1800,
        "learning_rate": 0.01,
        "init_scale": 1.0,
    }
    assert first["user_attrs_num_params"] == "1000" and first["datetime_start"]
    assert next(r for r in rows if r["study"] == "capacity-rnn-p500-gp")["tag"] == "gp"

    args = ["export", "--storage", url, "--table", "trials", "--format", "json"]
    assert main([*args, "--study", "capacity-rnn-p500", "--depth", "2"]) == 0
    trials = _strict_json(capsys.readouterr().out)
    assert [t["number"] for t in trials] == [2, 3]
    assert trials[0]["params"] == {"depth": 2, "x": 0.5}
    assert trials[0]["user_attrs"]["config"]["b"] == 900 and trials[0]["value"] == 800.0
    for fmt in ("md", "latex"):
        assert main(["export", "--storage", url, "--table", "trials", "--format", fmt]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "--format csv or --format json" in err[0], err


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
        storage = _add_tagged(populated_storage(url))
        rows = best_rows(storage)
        tables = [
            best_table(rows),
            fits_table(fit_rows(rows)),
            multipliers_table(multipliers_by_tag(rows)),
        ]
        outputs.append([render(tables, fmt) for fmt in ("md", "json", "latex")])
        # Every trial, but for when it ran.
        trials = [
            replace(t, datetime_start=None, datetime_complete=None) for t in trial_rows(storage)
        ]
        outputs[-1] += [
            render([trials_table(trials, flat)], fmt)
            for flat, fmt in ((True, "csv"), (False, "json"))
        ]
        storage.engine.dispose()
    assert outputs[0] == outputs[1]
