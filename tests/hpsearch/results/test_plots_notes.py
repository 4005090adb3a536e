"""Figures, dashboard notes and the progress display, on hand-made studies."""

import optuna
import pytest
from optuna_dashboard import get_note
from optuna_dashboard._custom_plot_data import SYSTEM_ATTR_PLOT_DATA
from plotly.offline import get_plotlyjs

from hpsearch.cli import main
from hpsearch.dashboard.notes import FIGURE_ID, publish
from hpsearch.results.figures import (
    bits_per_param_vs_params,
    bits_vs_params,
    multiplier_heatmap,
    search_progress,
    write_figures,
)
from hpsearch.results.rows import Selection, best_rows, fit_rows, multipliers
from hpsearch.studies.records import create_studies, list_records
from hpsearch.studies.schema import Experiment
from hpsearch.worker.progress import ProgressBar
from objectives.tasks.capacity.study import build_study
from tests.testing import add_trials, capacity_trial


def test_bits_vs_params_panels_lines_and_fits(storage):
    rows = best_rows(storage)
    fig = bits_vs_params(rows, fit_rows(rows))
    data = [t for t in fig.data if t.mode == "markers+lines"]
    assert {(t.name, t.xaxis) for t in data} == {("rnn", "x"), ("rnn", "x2"), ("gru", "x")}
    rnn1 = next(t for t in data if t.name == "rnn" and t.xaxis == "x")
    assert list(rnn1.x) == [400, 1000] and list(rnn1.y) == [1200.0, 3000.0]
    fit = next(t for t in fig.data if t.name == "rnn, depth 1: 3.00 bits/param")
    assert fit.y[0] == pytest.approx(3.0 * fit.x[0]) and fit.line.dash == "dash"
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


def test_bits_per_param_and_heatmap(storage):
    rows = best_rows(storage)
    fig = bits_per_param_vs_params(rows)
    rnn2 = next(t for t in fig.data if t.name == "rnn" and t.xaxis == "x2")
    assert list(rnn2.y) == pytest.approx([1.6, 2.0])
    heat = multiplier_heatmap(multipliers(rows)).data[0]
    assert list(heat.x) == ["rnn", "gru"]
    assert heat.z[0][1] == pytest.approx(2.4 / 1.5)


def test_progress_puts_samplers_side_by_side(sqlite_url):
    from storage import open_storage

    storage = open_storage(sqlite_url, create=True)
    for sampler in ("gp", "random"):
        create_studies(
            storage,
            Experiment(
                archs=("rnn",),
                budgets=(500,),
                depths=(1,),
                trials=5,
                sampler=sampler,
                seed=1,
                tag=sampler,
            ),
        )
    create_studies(
        storage, Experiment(archs=("gru",), budgets=(500,), depths=(1,), trials=5, seed=1)
    )
    for name, values in (
        ("capacity-rnn-p500-gp", [1.0, 3.0, 2.0]),
        ("capacity-rnn-p500-random", [2.0, 1.0]),
    ):
        study = optuna.load_study(study_name=name, storage=storage)
        for v in values:
            study.add_trial(capacity_trial(v, 1, 10, 100))
    fig = search_progress(storage, Selection())
    # One panel for the two rnn studies (they differ only in sampler), one for gru.
    assert len(fig.layout.annotations) == 2
    lines = {t.name: t for t in fig.data}
    assert set(lines) == {"gp", "random", "capacity-gru-p500"}
    assert list(lines["gp"].y) == [1.0, 3.0, 3.0]  # best so far
    assert lines["gp"].xaxis == lines["random"].xaxis != lines["capacity-gru-p500"].xaxis


def test_progress_a_line_per_tag_whatever_the_search(sqlite_url):
    """Replicates of one sampler (tags s1, s2, seeds 1, 2) and a pruned tpe arm differ only
    in how they were searched: one panel, a line per tag."""
    from storage import open_storage

    storage = open_storage(sqlite_url, create=True)
    for tag, sampler, pruner, seed in (
        ("s1", "gp", "none", 1),
        ("s2", "gp", "none", 2),
        ("tpe", "tpe", "median", 1),
    ):
        experiment = Experiment(
            archs=("rnn",),
            budgets=(500,),
            depths=(1,),
            trials=5,
            sampler=sampler,
            pruner=pruner,
            seed=seed,
            tag=tag,
        )
        create_studies(storage, experiment)
        study = optuna.load_study(study_name=f"capacity-rnn-p500-{tag}", storage=storage)
        for v in (1.0, 2.0):
            study.add_trial(capacity_trial(v * seed, 1, 10, 100))
    fig = search_progress(storage, Selection())
    assert len(fig.layout.annotations) == 1
    assert [t.name for t in fig.data] == ["s1", "s2", "tpe"]
    assert len({t.line.color for t in fig.data}) == 3
    assert list(fig.data[1].y) == [2.0, 4.0]
    assert fig.layout.yaxis.title.text == "best bits so far"


def _script_sources(html: str) -> list[str]:
    from html.parser import HTMLParser

    sources: list[str] = []

    class Scripts(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "script":
                sources.extend(v or "" for k, v in attrs if k == "src")

    Scripts().feed(html)
    return sources


def test_write_figures_share_one_plotly_js(storage, tmp_path):
    written, skipped = write_figures(storage, tmp_path, Selection())
    names = sorted(p.name for p in written if p.suffix == ".html")
    assert names == [
        "bits_per_param.html",
        "bits_vs_params.html",
        "multipliers.html",
        "progress.html",
    ]
    assert tmp_path / "plotly.min.js" in written
    # One copy of plotly.js, from the installed package, which every figure loads.
    assert (tmp_path / "plotly.min.js").read_text() == get_plotlyjs()
    for name in names:
        html = (tmp_path / name).read_text()
        assert _script_sources(html) == ["plotly.min.js"]  # beside it: works offline
        assert len(html) < 200_000  # plotly.js is not inside the file
    assert "capacity-rnn-p500" in (tmp_path / "bits_vs_params.html").read_text()
    assert skipped == "" or skipped.startswith("PNG skipped")
    # Written again into the same folder: the copy is left as it is.
    before = (tmp_path / "plotly.min.js").stat().st_mtime_ns
    write_figures(storage, tmp_path, Selection())
    assert (tmp_path / "plotly.min.js").stat().st_mtime_ns == before


def test_a_figure_without_data_is_not_written(sqlite_url, tmp_path):
    from storage import open_storage

    storage = open_storage(sqlite_url, create=True)
    create_studies(storage, Experiment(archs=("rnn",), budgets=(500,), trials=3, seed=0))
    out = tmp_path / "figs"
    out.mkdir()
    written, skipped = write_figures(storage, out, Selection())
    assert written == [] and list(out.iterdir()) == []
    assert skipped.startswith(
        "not written, no data: bits_vs_params, bits_per_param, multipliers, progress"
    )
    study = optuna.load_study(study_name="capacity-rnn-p500", storage=storage)
    study.add_trial(capacity_trial(1200.0, 1, 1300, 400))
    written, skipped = write_figures(storage, out, Selection())
    assert sorted(p.name for p in written) == [
        "bits_per_param.html",
        "bits_vs_params.html",
        "multipliers.html",
        "plotly.min.js",
        "progress.html",
    ]
    assert "no data" not in skipped


def test_studies_of_several_tags_get_a_multiplier_matrix_each(storage, tmp_path):
    for tag, bits in (("gp", 2000.0), ("tpe", 1000.0)):
        create_studies(
            storage,
            Experiment(
                archs=("rnn", "gru"), budgets=(500,), depths=(1,), trials=4, seed=0, tag=tag
            ),
        )
        add_trials(storage, f"capacity-rnn-p500-{tag}", [capacity_trial(bits, 1, 2100, 400)])
        add_trials(storage, f"capacity-gru-p500-{tag}", [capacity_trial(800.0, 1, 900, 400)])
    written, _ = write_figures(storage, tmp_path, Selection())
    names = {p.name for p in written}
    assert {"multipliers.html", "multipliers-gp.html", "multipliers-tpe.html"} <= names
    gp = (tmp_path / "multipliers-gp.html").read_text()
    assert "tag gp" in gp and "2.50" in gp  # rnn 5 bits/param against gru 2 in the gp studies
    assert "tag gp" not in (tmp_path / "multipliers.html").read_text()
    assert main(["plot", "--storage", storage.url, "--out", str(tmp_path / "cli")]) == 0


def test_note_and_figure_on_the_dashboard(storage):
    assert publish(storage) == 4  # every capacity study, the one without trials too
    study = optuna.load_study(study_name="capacity-rnn-p500", storage=storage)
    note = get_note(study)
    assert note.startswith("## capacity-rnn-p500")
    assert "**budget**: 500 parameters" in note
    assert "1200.0 bits = **3.000 bits/param** (trial 1: depth 1, 400 parameters, b = 1300" in note
    assert "4 of 10 trials complete" in note
    assert "hpsearch export --storage sqlite:///" in note and "--budget 500" in note
    attrs = storage.get_study_system_attrs(study._study_id)
    assert any(k.startswith(SYSTEM_ATTR_PLOT_DATA + FIGURE_ID) for k in attrs)


def test_note_hides_password(sqlite_url):
    from hpsearch.dashboard.notes import note_text
    from storage import open_storage

    storage = open_storage(sqlite_url, create=True)
    create_studies(storage, Experiment(archs=("rnn",), budgets=(500,), trials=3, seed=0))
    record = list_records(storage)[0]
    text = note_text(record, [], "postgresql+psycopg://bob:hunter2@db/hp")
    assert "hunter2" not in text and "bob:***@db/hp" in text
    assert "no complete trial yet" in text


def test_note_describes_searched_and_fixed_dimensions():
    from hpsearch.dashboard.notes import note_text
    from hpsearch.studies.records import StudyRecord
    from tests.testing import OLD_ATTRS

    for space in (
        OLD_ATTRS["space"],
        build_study(
            "gru", 2000, depths=(1, 2), overrides={"optimizer": "adam,sgd", "gate_bias": "0:3"}
        ).to_attrs()["space"],
    ):
        attrs = {**OLD_ATTRS, "space": space, "target_trials": 5, "sampler": "gp", "seed": 0}
        text = note_text(StudyRecord("capacity-gru-p2000", "capacity", attrs), [], "sqlite://")
        assert (
            "**Search** (gp, target 5 trials): `depth` {1, 2}; `b` [1000, 32000] log; "
            "`learning_rate` [0.0001, 0.1] log; `init_scale` [0.1, 3] log; "
            "`optimizer` {adam, sgd}; `gate_bias` [0, 3]. Fixed: `activation` = tanh; "
            "`grad_clip` = 0.0; `max_steps` = 2000; `lr_schedule` = constant; "
            "`init_scheme` = scaled-normal." in text
        ), text


def test_a_note_names_the_papers_dimensions_set_otherwise():
    from hpsearch.dashboard.notes import note_text
    from hpsearch.studies.records import StudyRecord
    from tests.testing import OLD_ATTRS

    overrides = {"batch_size": "500", "lr_schedule": "exponential", "lr_decay": "1e-3:1"}
    space = build_study("rnn", 1000, depths=(1,), overrides=overrides).to_attrs()["space"]
    attrs = {**OLD_ATTRS, "arch": "rnn", "budget": 1000, "space": space}
    attrs |= {"target_trials": 5, "sampler": "gp", "seed": 0}
    text = note_text(StudyRecord("capacity-rnn-p1000", "capacity", attrs), [], "sqlite://")
    assert "`lr_decay` [0.001, 1] log" in text and "`batch_size` = 500" in text
    assert "`input_mode`" not in text and "`l2`" not in text  # at their defaults: not said


def test_progress_bar_counts_and_rate(storage, capsys):
    records = list_records(storage)
    with ProgressBar(storage, records, enabled=True) as progress:
        progress.update()
        assert progress.bar is not None
        # Complete trials in the three studies, and the pruned one: a pruned trial takes its
        # place in the target as a complete one does.
        assert progress.bar.n == 4 + 2 + 2 + 1
        assert progress.bar.total == 40  # four studies of 10
        assert "best 3.000 bits/param" in progress.bar.postfix
    assert "trials/h here" in capsys.readouterr().err
    with ProgressBar(storage, records, enabled=False) as quiet:
        quiet.update()
        assert quiet.bar is None


def test_export_and_plot_commands(storage, tmp_path, capsys):
    url = storage.url
    assert main(["export", "--storage", url, "--table", "all", "--format", "latex"]) == 0
    out = capsys.readouterr().out
    assert out.count("\\begin{tabular}") == 4  # best, fits, multipliers, per-unit
    assert main(["export", "--storage", url, "--table", "fits", "--arch", "gru"]) == 0
    assert capsys.readouterr().out.splitlines()[2].startswith("| gru | 1 | 1.50 |")
    assert main(["export", "--storage", url, "--table", "all", "--format", "csv"]) == 2
    assert "csv holds one table" in capsys.readouterr().err
    assert main(["export", "--storage", url, "--table", "everything"]) == 2
    assert main(["export", "--storage", url, "--depth", "x"]) == 2
    capsys.readouterr()
    assert main(["plot", "--storage", url, "--out", str(tmp_path / "figs")]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) >= 5 and all(p.endswith((".html", ".png", ".js")) for p in printed)
    assert main(["plot", "--storage", url, "--out", str(tmp_path / "no" / "figs")]) == 2
