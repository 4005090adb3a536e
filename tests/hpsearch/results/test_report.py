"""`hpsearch report` on hand-made studies whose best rows are known: each claim's verdict
(agrees, differs, not enough trials, no studies) from numbers worked out by hand, the
markdown against a golden file, per-unit studies in export, and the command end to end."""

import math
import os
import re
from dataclasses import replace
from datetime import date
from importlib.metadata import version
from pathlib import Path
from statistics import linear_regression

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hpsearch import __version__ as hpsearch_version
from hpsearch.cli import main
from hpsearch.results.claims import (
    AGREES,
    DIFFERS,
    NO_STUDIES,
    NOT_ENOUGH,
    collect,
    judge,
)
from hpsearch.results.figures import figures
from hpsearch.results.report import collect_report, render_markdown
from hpsearch.results.rows import Selection, best_rows, keyed_rows, per_unit_rows
from hpsearch.results.tables import best_table, render
from hpsearch.studies.records import create_study
from objectives.tasks.capacity.study import build_study
from objectives.tasks.space import fixed, to_attrs
from storage import open_storage
from tests.testing import hpsearch

GOLDEN = Path(__file__).parent / "golden" / "report.md"
MIN = 3  # complete trials per best row in these tests


def _capacity(storage, arch, budget, rows, *, tag="", unroll=5, n_in=32, overrides=None):
    """A capacity study with, for each (bits_per_param, trials, config values) in `rows`,
    `trials` complete trials whose best has exactly that bits/param (the others half of it),
    all at num_params == budget."""
    settings = build_study(
        arch, budget, depths=(1,), tag=tag, unroll=unroll, n_in=n_in, overrides=overrides
    )
    create_study(storage, settings, trials=100, sampler="random", seed=0)
    study = optuna.load_study(study_name=settings.name, storage=storage)
    for bpp, count, config in rows:
        for i in range(count):
            value = bpp if i == 0 else bpp / 2
            full = {
                "arch": arch,
                "b": 1000 + i,
                "learning_rate": 0.01,
                "init_scale": 1.0,
                "activation": "relu" if arch == "irnn" else "tanh",
                "optimizer": "adam",
                "unroll": unroll,
                "n_in": n_in,
                **config,
            }
            study.add_trial(
                create_trial(
                    state=TrialState.COMPLETE,
                    value=value * budget,
                    user_attrs={
                        "bits": value * budget,
                        "bits_per_param": value,
                        "num_params": budget,
                        "hidden_size": 10,
                        "depth": 1,
                        "config": full,
                    },
                )
            )
    return settings.name


def _per_unit(storage, arch, units, fraction, trials=MIN, n_in=8):
    """A per-unit study as the per-unit task stores it (its code is not needed here)."""
    name = f"per-unit-{arch}-u{units}"
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    attrs = {"task": "per-unit", "arch": arch, "units": units, "n_in": n_in, "unroll": 5}
    attrs |= {"tag": "", "space": {}, "target_trials": 10, "sampler": "random"}
    attrs |= {"pruner": "none", "seed": 0, "patience": 200}
    attrs["space"] = {"max_steps": to_attrs(fixed(2000))}
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    for i in range(trials):
        value = fraction if i == 0 else fraction / 2
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=value,
                user_attrs={
                    "fraction_reconstructed": value,
                    "numbers_stored": value * n_in,
                    "num_params": units * (units + n_in),
                    "hidden_size": units,
                    "depth": 1,
                    "n_in": n_in,
                },
            )
        )
    return name


def _agreeing(storage, trials=MIN):
    t = trials
    # rnn p1000 searches the activation: tanh 5.0, relu 3.5.
    _capacity(
        storage,
        "rnn",
        1000,
        [(5.0, t, {}), (3.5, t, {"activation": "relu"})],
        overrides={"activation": "tanh,relu"},
    )
    _capacity(storage, "rnn", 5000, [(5.2, t, {})])
    _capacity(storage, "rnn", 10000, [(5.3, t, {})])
    _capacity(storage, "gru", 1000, [(4.5, t, {})])
    _capacity(storage, "gru", 5000, [(4.6, t, {})])
    _capacity(storage, "gru", 10000, [(4.7, t, {})])
    _capacity(storage, "irnn", 1000, [(3.4, t, {})])
    # T: 3.0, 5.0 (the p1000 study above), 5.3: gains per step 0.5 then 0.06.
    _capacity(storage, "rnn", 1000, [(3.0, t, {})], tag="t1", unroll=1)
    _capacity(storage, "rnn", 1000, [(5.3, t, {})], tag="t10", unroll=10)
    # n_in: 5.4, 5.0 (p1000), 4.4.
    _capacity(storage, "rnn", 1000, [(5.4, t, {})], tag="n16", n_in=16)
    _capacity(storage, "rnn", 1000, [(4.4, t, {})], tag="n64", n_in=64)
    # optimizers: adam 5.1 against sgd 4.0.
    _capacity(
        storage,
        "rnn",
        1000,
        [(5.1, t, {}), (4.0, t, {"optimizer": "sgd"})],
        tag="opt",
        overrides={"optimizer": "adam,sgd"},
    )
    for arch, low in (("rnn", 0.5), ("gru", 0.55)):
        _per_unit(storage, arch, 4, low, t)
        _per_unit(storage, arch, 6, low + 0.2, t)
        _per_unit(storage, arch, 8, 0.97, t)
        _per_unit(storage, arch, 12, 0.99, t)


def _differing(storage):
    _capacity(
        storage,
        "rnn",
        1000,
        [(2.0, MIN, {}), (2.5, MIN, {"activation": "relu"})],
        overrides={"activation": "tanh,relu"},
    )
    _capacity(storage, "rnn", 5000, [(4.0, MIN, {})])
    _capacity(storage, "rnn", 10000, [(6.0, MIN, {})])
    _capacity(storage, "gru", 1000, [(2.2, MIN, {})])
    # T: the project's own 1.48 / 2.75 / 1.83 (T 1 / 5 / 10) falls after T 5.
    _capacity(storage, "lstm", 1000, [(1.48, MIN, {})], tag="t1", unroll=1)
    _capacity(storage, "lstm", 1000, [(2.75, MIN, {})])
    _capacity(storage, "lstm", 1000, [(1.83, MIN, {})], tag="t10", unroll=10)
    _capacity(storage, "gru", 1000, [(2.5, MIN, {})], tag="n64", n_in=64)
    _capacity(
        storage,
        "lstm",
        1000,
        [(2.0, MIN, {}), (2.9, MIN, {"optimizer": "rmsprop"})],
        tag="opt",
        overrides={"optimizer": "adam,rmsprop"},
    )
    _per_unit(storage, "rnn", 4, 0.3)
    _per_unit(storage, "gru", 4, 0.6)
    _per_unit(storage, "rnn", 8, 0.6)


@pytest.fixture
def memory():
    return optuna.storages.InMemoryStorage()


def _slope(points):
    """Least squares of log(bits) against log(P), by the standard library."""
    xs, ys = [math.log(x) for x, _ in points], [math.log(y) for _, y in points]
    return linear_regression(xs, ys).slope


def _claims(storage, min_trials=MIN):
    return {c.number: c for c in judge(collect(storage), min_trials)}


def test_agreeing_studies(memory):
    _agreeing(memory)
    claims = _claims(memory)
    assert {n: c.verdict for n, c in claims.items()} == dict.fromkeys(
        ("1", "2", "3", "4", "5", "6a", "6b", "7", "8"), AGREES
    )
    # Claim 1, least squares in log-log: rnn at 1000 twice (5.0, and 5.1 from the optimizer
    # study), at 5000 (5.2) and 10000 (5.3); gru at 1000 (4.5), 5000 (4.6) and 10000 (4.7).
    # rnn p1000: the best of its cell's two studies (5.0, and 5.1 in the optimizer study).
    rnn = _slope([(1000, 5.1 * 1000), (5000, 5.2 * 5000), (10000, 5.3 * 10000)])
    gru = _slope([(1000, 4.5 * 1000), (5000, 4.6 * 5000), (10000, 4.7 * 10000)])
    assert claims["1"].value == pytest.approx((rnn + gru) / 2, rel=1e-9)
    assert claims["1"].rows == 6  # one per cell
    # Claim 2: tanh rows at T 5: 5.0, 5.2, 5.3, 4.5, 4.6, 4.7, 3.4 (irnn), 5.4, 4.4, 5.1.
    # One row per cell at its best, at n_in 32 (the n16 and n64 studies are claim 8's).
    assert claims["2"].value == pytest.approx((5.1 + 5.2 + 5.3 + 4.5 + 4.6 + 4.7 + 3.4) / 7)
    assert claims["3"].value == 1.0 and claims["3"].details[0][:2] == ("rnn > gru", 3)
    # Claim 4: relu rnn 3.5 and irnn 3.4 against rnn tanh 5.1 (best of the two p1000 studies).
    assert claims["4"].value == pytest.approx((3.5 + 3.4) / 2)
    assert [d[2:] for d in claims["4"].details] == [(3.4, 5.1, "yes"), (3.5, 5.1, "yes")]
    assert claims["5"].details[0][1:3] == ("1 / 5 / 10", "3.00 / 5.10 / 5.30")
    assert claims["6a"].value == pytest.approx(0.97)
    assert claims["6b"].value == pytest.approx(0.05)
    assert claims["7"].measured == "adam best in 1 of 1 cells"
    assert claims["7"].source == "thesis"
    assert claims["8"].details[0][1:] == ("16 / 32 / 64", "5.40 / 5.10 / 4.40", "yes")
    assert all(c.trials_min == MIN for c in claims.values())


def test_differing_studies(memory):
    _differing(memory)
    claims = _claims(memory)
    assert {n: c.verdict for n, c in claims.items()} == dict.fromkeys(
        ("1", "2", "3", "4", "5", "6a", "6b", "7", "8"), DIFFERS
    )
    assert claims["1"].value == pytest.approx(
        _slope([(1000, 2000.0), (5000, 20000.0), (10000, 60000.0)])
    )
    assert "outside" in claims["2"].why
    # rnn 2.0, gru 2.2, lstm 2.9 (its optimizer study's best, rmsprop): every pair reversed.
    assert claims["3"].details[0] == ("rnn > gru", 1, 2.0, 2.2, "no")
    assert claims["3"].value == 0.0 and len(claims["3"].details) == 3
    assert claims["4"].why == "relu not lower in 1 of 1 pairs"
    # 1.48 / 2.9 / 1.83: rises from T 1 to T 10 and gains shrink, but falls 37% below the peak.
    assert claims["5"].details[0][2:] == ("1.48 / 2.90 / 1.83", "yes", "yes", "yes")
    assert "only 0.60" in claims["6a"].why
    assert claims["6b"].value == pytest.approx(0.3)
    # adam's best in the cell is 2.75 (the T 5 study), rmsprop's 2.9.
    assert claims["7"].details[0][1:] == (2.75, "rmsprop", 2.9, "no")
    assert claims["8"].details[0][1:] == ("32 / 64", "2.20 / 2.50", "no")


def test_too_few_trials_earn_no_verdict(memory):
    _agreeing(memory, trials=MIN)
    # The optimizer study's row (activation tanh, T 5, n_in 32) holds adam's and sgd's trials.
    claims = _claims(memory, min_trials=2 * MIN + 1)
    assert {c.verdict for c in claims.values()} == {NOT_ENOUGH}
    first = claims["1"]
    assert first.value is None and first.measured.startswith("preliminary: slope")
    assert "6 of 6 rows have fewer than 7 complete trials" in first.why
    assert (first.rows, first.trials_min, first.trials_total) == (6, MIN, 7 * MIN)  # opt: 2x


def test_one_thin_study_leaves_the_rest(memory):
    """A row under the minimum drops out; the claim is judged on the rows left, or is not
    judged when too few are left."""
    _capacity(memory, "rnn", 1000, [(5.0, 5, {})])
    _capacity(memory, "rnn", 5000, [(5.1, 2, {})])
    _capacity(memory, "gru", 1000, [(4.0, 5, {})])
    claims = _claims(memory, min_trials=5)
    assert claims["1"].verdict == NOT_ENOUGH  # one budget left per arch
    assert claims["2"].verdict == AGREES and claims["2"].rows == 2
    assert claims["2"].value == pytest.approx(4.5)
    assert claims["3"].verdict == AGREES
    for number in ("4", "5", "6a", "6b", "7", "8"):
        assert claims[number].verdict == NO_STUDIES, number
        assert claims[number].tests_with


def test_two_values_of_t_cannot_show_diminishing_returns(memory):
    _capacity(memory, "rnn", 1000, [(3.0, MIN, {})], tag="t1", unroll=1)
    _capacity(memory, "rnn", 1000, [(5.0, MIN, {})])
    fifth = _claims(memory)["5"]
    assert fifth.verdict == NOT_ENOUGH
    assert fifth.why == "rises, but diminishing returns need three values of T in one cell"


def test_per_unit_needs_both_sides_of_n_in(memory):
    _per_unit(memory, "rnn", 4, 0.5)
    _per_unit(memory, "rnn", 6, 0.7)
    claims = _claims(memory)
    assert claims["6a"].verdict == NOT_ENOUGH
    assert "units at or above n_in" in claims["6a"].why
    assert claims["6b"].verdict == NO_STUDIES  # one arch only


def test_export_keeps_per_unit_studies_apart(memory):
    _capacity(memory, "rnn", 1000, [(5.0, MIN, {})])
    _per_unit(memory, "gru", 8, 0.95, trials=4)
    assert [r.study for r in best_rows(memory)] == ["capacity-rnn-p1000"]
    assert [r.row.study for r in keyed_rows(memory, ("activation",))] == ["capacity-rnn-p1000"]
    (row,) = per_unit_rows(memory)
    assert (row.arch, row.units, row.n_in, row.best_fraction, row.trials_complete) == (
        "gru",
        8,
        8,
        0.95,
        4,
    )
    assert "per-unit" not in render([best_table(best_rows(memory))], "md")
    progress = figures(memory, Selection())["progress"]  # every study, per-unit too
    assert progress.layout.yaxis2.title.text == "best fraction reconstructed so far"


def test_keyed_rows_split_a_searched_setting(memory):
    _capacity(
        memory,
        "ugrnn",
        1000,
        [(4.0, 2, {}), (3.0, 3, {"activation": "relu"})],
        overrides={"activation": "tanh,relu"},
    )
    rows = keyed_rows(memory, ("activation", "unroll"))
    assert [(k.values, k.row.bits_per_param, k.row.trials_complete) for k in rows] == [
        (("relu", 5), 3.0, 3),
        (("tanh", 5), 4.0, 2),
    ]


def _mixed(storage):
    """Studies that give every verdict: 1, 2, 4 and 8 agree; 3 differs (lstm above gru);
    5 and 6a have too few trials or rows; 6b and 7 have no studies."""
    _capacity(
        storage,
        "rnn",
        1000,
        [(5.0, MIN, {}), (3.5, MIN, {"activation": "relu"})],
        overrides={"activation": "tanh,relu"},
    )
    _capacity(storage, "rnn", 5000, [(5.2, MIN, {})])
    _capacity(storage, "gru", 1000, [(4.5, MIN, {})])
    _capacity(storage, "lstm", 1000, [(4.8, MIN, {})])
    _capacity(storage, "rnn", 1000, [(3.0, 1, {})], tag="t1", unroll=1)
    _capacity(storage, "rnn", 1000, [(4.4, MIN, {})], tag="n64", n_in=64)
    _per_unit(storage, "rnn", 4, 0.5)


def test_markdown_matches_golden(memory):
    _mixed(memory)
    report = collect_report(memory, "sqlite:///report.db", MIN, day=date(2026, 1, 2))
    # The versions installed here; the golden file names fixed ones.
    assert dict(report.versions) == {
        "hpsearch": hpsearch_version,
        "Optuna": optuna.__version__,
        "torch": version("torch"),
    }
    report = replace(
        report, versions=(("hpsearch", "0.1.0"), ("Optuna", "5.1.0"), ("torch", "2.6.0"))
    )
    verdicts = [c.verdict for c in report.claims]
    # Claim 1: two budgets, 5x apart, give no verdict.
    assert verdicts[:6] == [NOT_ENOUGH, AGREES, DIFFERS, AGREES, NOT_ENOUGH, NOT_ENOUGH]
    assert verdicts[6:] == [NO_STUDIES, NO_STUDIES, AGREES]  # 6b, 7, 8
    text = render_markdown(report)
    if os.environ.get("HPSEARCH_UPDATE_GOLDEN"):  # rewrite it, then review the diff
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_report_command_end_to_end(sqlite_url, tmp_path):
    storage = open_storage(sqlite_url, create=True)
    _agreeing(storage)
    out = tmp_path / "report"
    done = hpsearch("report", "--storage", sqlite_url, "--out", str(out), "--min-trials", "3")
    assert done.returncode == 0, done.stderr
    text = (out / "report.md").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["bits_per_param.png", "bits_vs_params.png", "per_unit.png"]
    for name in pngs:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text
    assert re.search(r"- Storage: `sqlite:///.*hpsearch\.db`", text)
    assert "| 6a |" in text and text.count("| agrees |") == 9
    assert done.stdout.split()[-1] == str(out / "report.md")
    named = hpsearch(
        "report",
        *("--storage", sqlite_url, "--out", str(out), "--min-trials", "3"),
        *("--name", "results.md"),
    )
    assert named.returncode == 0, named.stderr
    assert (out / "results.md").read_text() == text


def _fails(argv, capsys, match):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert match in err[0], err[0]


def test_report_bad_input(sqlite_url, tmp_path, capsys):
    open_storage(sqlite_url, create=True)  # tables, no studies
    out = tmp_path / "out"
    _fails(["report", "--storage", sqlite_url, "--out", str(out)], capsys, "no hpsearch studies")
    assert not out.exists()
    _fails(
        ["report", "--storage", sqlite_url, "--out", str(tmp_path / "a" / "b")],
        capsys,
        "does not exist",
    )
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    _fails(["report", "--storage", sqlite_url, "--out", str(afile)], capsys, "not a folder")
    _fails(
        ["report", "--storage", sqlite_url, "--out", str(out), "--min-trials", "0"],
        capsys,
        "--min-trials must be positive",
    )
    _fails(
        ["report", "--storage", sqlite_url, "--out", str(out), "--name", "../x.md"],
        capsys,
        "give a file name ending in .md",
    )
    _fails(["report", "--storage", "foo://bar", "--out", str(out)], capsys, "unsupported database")
    missing = f"sqlite:///{tmp_path / 'absent.db'}"
    _fails(["report", "--storage", missing, "--out", str(out)], capsys, "no database at")
    assert not out.exists() and not (tmp_path / "absent.db").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_report_into_a_read_only_folder(memory, sqlite_url, tmp_path, capsys):
    _capacity(open_storage(sqlite_url, create=True), "rnn", 1000, [(5.0, MIN, {})])
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o500)
    try:
        _fails(["report", "--storage", sqlite_url, "--out", str(out)], capsys, "not writable")
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o700)


def test_export_per_unit_table_from_the_command_line(sqlite_url, capsys):
    storage = open_storage(sqlite_url, create=True)
    _per_unit(storage, "rnn", 4, 0.4, trials=3)
    _per_unit(storage, "rnn", 16, 0.97, trials=2)
    assert main(["export", "--storage", sqlite_url, "--table", "per-unit", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("study,arch,depth,units,n_in")
    assert [[*line.split(",")[:4], line.split(",")[7]] for line in lines[1:]] == [
        ["per-unit-rnn-u4", "rnn", "1", "4", "0.4"],
        ["per-unit-rnn-u16", "rnn", "1", "16", "0.97"],
    ]
    assert main(["export", "--storage", sqlite_url, "--table", "all"]) == 0
    assert "| per-unit-rnn-u16 | rnn | 1 | 16 | 8 |" in capsys.readouterr().out


def test_claims_1_and_2_count_each_cell_once_at_its_best(memory):
    _capacity(memory, "rnn", 1000, [(5.0, MIN, {})])
    # Another study of the same cell (a worse optimizer) and one at another n_in: claim 2
    # takes the cell's best, at the default n_in only.
    _capacity(
        memory,
        "rnn",
        1000,
        [(1.0, MIN, {"optimizer": "sgd"})],
        tag="sgd",
        overrides={"optimizer": "sgd"},
    )
    _capacity(memory, "rnn", 1000, [(1.0, MIN, {})], tag="n64", n_in=64)
    _capacity(memory, "rnn", 5000, [(5.0, MIN, {})])
    _capacity(
        memory,
        "rnn",
        5000,
        [(2.0, MIN, {"optimizer": "sgd"})],
        tag="sgd",
        overrides={"optimizer": "sgd"},
    )
    _capacity(memory, "rnn", 10000, [(5.0, MIN, {})])
    claims = _claims(memory, MIN)
    assert claims["2"].verdict == AGREES
    assert claims["2"].value == pytest.approx(5.0)
    # One point per budget: the slope of best bits against P is exactly 1.
    assert claims["1"].verdict == AGREES
    assert claims["1"].value == pytest.approx(1.0)


def test_claim_1_needs_three_budgets_spanning_ten_times(memory):
    """Two budgets a factor of 2 apart let any curve pass for a line: no verdict until three
    budgets span 10x; a short series beside a long one is shown but not judged."""
    _capacity(memory, "rnn", 1000, [(5.0, MIN, {})])
    _capacity(memory, "rnn", 2000, [(5.0, MIN, {})])
    first = _claims(memory)["1"]
    assert first.verdict == NOT_ENOUGH
    assert first.why == (
        "needs 3 budgets spanning 10x in P in one (arch, depth); the most here: 2 budgets "
        "spanning 2x (rnn depth 1)"
    )
    _capacity(memory, "rnn", 5000, [(5.0, MIN, {})])
    first = _claims(memory)["1"]
    assert first.verdict == NOT_ENOUGH and "3 budgets spanning 5x" in first.why
    assert first.details[0][4:6] == (3, "5x") and first.details[0][-1] == "-"
    _capacity(memory, "rnn", 10000, [(5.0, MIN, {})])
    _capacity(memory, "gru", 1000, [(4.0, MIN, {})])
    _capacity(memory, "gru", 2000, [(4.0, MIN, {})])
    first = _claims(memory)["1"]
    assert first.verdict == AGREES and first.value == pytest.approx(1.0)
    assert first.why == (
        "every slope within 1 +- 0.2; not judged, fewer than 3 budgets spanning 10x in P: "
        "gru depth 1"
    )
    assert [(d[0], d[4], d[5], d[-1]) for d in first.details] == [
        ("rnn", 4, "10x", "yes"),
        ("gru", 2, "2x", "-"),
    ]


def test_claim_3_counts_pairs_within_the_tie_band_as_ties(memory):
    """The cells store nearly the same: a pair within 5% of the larger is a tie, not a
    reversal; beyond it, a reversal still differs."""
    _capacity(memory, "rnn", 1000, [(5.0, MIN, {})])
    _capacity(memory, "gru", 1000, [(5.2, MIN, {})])  # 0.2 < 5% of 5.2: a tie
    _capacity(memory, "lstm", 1000, [(4.0, MIN, {})])
    third = _claims(memory)["3"]
    assert third.verdict == AGREES
    assert [d[-1] for d in third.details] == ["tie", "yes", "yes"]
    assert third.why == "every pair in order or tied within 5%"
    assert third.measured.startswith("2 of 3 pairs in the paper's order, 1 tied within 5%;")
    assert "pairs within 5% tie" in third.expected and "within 5%" in third.tolerance
    # A variant of the cell (rmsprop fixed): lstm's best there is now 5.5.
    rmsprop = {"optimizer": "rmsprop"}
    _capacity(memory, "lstm", 1000, [(5.5, MIN, rmsprop)], tag="b", overrides=rmsprop)
    third = _claims(memory)["3"]
    assert third.verdict == DIFFERS
    # 5.0 and 5.2 against 5.5: 0.5 and 0.3, both above 5% of 5.5 (0.275).
    assert [d[-1] for d in third.details] == ["tie", "no", "no"]
    assert third.why == "out of order: rnn > lstm, gru > lstm"


def _sampler_comparison(storage):
    """Two runs of one experiment (tags a and b: the same settings, searched apart): rnn at
    three budgets, gru at one."""
    for budget in (1000, 5000, 10000):
        _capacity(storage, "rnn", budget, [(5.0, MIN, {})], tag="a")
        _capacity(storage, "rnn", budget, [(3.0, MIN, {})], tag="b")
    _capacity(storage, "gru", 1000, [(4.0, MIN, {})], tag="a")
    _capacity(storage, "gru", 1000, [(4.8, MIN, {})], tag="b")


def test_runs_of_one_experiment_are_measured_apart_never_pooled(memory):
    _sampler_comparison(memory)
    claims = _claims(memory)
    # Claim 1: a slope per run (each exactly 1), not one through both runs' rows.
    assert [(d[0], d[4], d[-1]) for d in claims["1"].details] == [
        ("rnn tag a", 3, "yes"),
        ("rnn tag b", 3, "yes"),
    ]
    assert claims["1"].rows == 6
    # Claim 2: every run's rows, not the best of each cell.
    assert claims["2"].value == pytest.approx((3 * 5.0 + 3 * 3.0 + 4.0 + 4.8) / 8)
    assert [d[:2] for d in claims["2"].details] == [
        ("rnn tag a", 3),
        ("rnn tag b", 3),
        ("gru tag a", 1),
        ("gru tag b", 1),
    ]
    # Claim 3: the archs of each run against each other. The best of each cell (rnn 5.0
    # against gru 4.8) would have called it a tie.
    assert [(d[0], d[-1]) for d in claims["3"].details] == [
        ("rnn > gru tag a", "yes"),
        ("rnn > gru tag b", "no"),
    ]
    assert claims["3"].verdict == DIFFERS


def test_a_variant_tag_is_compared_across_not_kept_apart(memory):
    """A tag that names a variant (its studies differ in n_in) is no run: the variant meets
    the untagged studies in claim 8's cell."""
    _capacity(memory, "rnn", 1000, [(5.0, MIN, {})])
    _capacity(memory, "rnn", 1000, [(4.0, MIN, {})], tag="n64", n_in=64)
    eighth = _claims(memory)["8"]
    assert eighth.verdict == AGREES and eighth.details[0][1] == "32 / 64"


def test_the_report_reads_the_one_selection_and_draws_a_line_per_run(memory):
    from hpsearch.results.report import figure_data_of

    _sampler_comparison(memory)
    report = collect_report(memory, "sqlite://", MIN, selection=Selection(archs=("rnn",)))
    assert report.studies == {"capacity": 6} and report.trials == 6 * MIN
    assert {r.arch for r in report.best} == {"rnn"}
    assert [c.verdict for c in report.claims[:3]] == [AGREES, AGREES, NO_STUDIES]
    # A fit and a line per run.
    assert [(run, f.arch, f.bits_per_param_slope) for run, f in report.fits] == [
        ("a", "rnn", pytest.approx(5.0)),
        ("b", "rnn", pytest.approx(3.0)),
    ]
    lines = [s.name for s in figure_data_of(report)["bits_per_param.png"].series]
    assert lines == ["rnn a", "rnn b"]
    text = render_markdown(report)
    assert "| tag | arch | depth | bits_per_param_slope |" in text
