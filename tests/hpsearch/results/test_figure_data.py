"""What the figures show, computed once for the HTML and PNG back ends: series per (arch,
tag), the paper's band and line, hollow points for rows on few trials, readable log ticks;
then the plotly back end draws each of them."""

from dataclasses import replace

import pytest

from hpsearch.results import figure_data
from hpsearch.results.figure_data import log_axis
from hpsearch.results.figures import draw_panels
from hpsearch.results.rows import BestRow

ROW = BestRow(
    study="capacity-rnn-p1000",
    task="capacity",
    arch="rnn",
    depth=1,
    budget=1000,
    num_params=1000,
    hidden_size=10,
    best_bits=5000.0,
    bits_per_param=5.0,
    b=5000,
    learning_rate=0.01,
    init_scale=1.0,
    trials_complete=30,
)


def _row(arch, budget, bpp, trials=30, depth=1, study=None):
    return replace(
        ROW,
        study=study or f"capacity-{arch}-p{budget}",
        arch=arch,
        budget=budget,
        num_params=budget,
        best_bits=bpp * budget,
        bits_per_param=bpp,
        trials_complete=trials,
        depth=depth,
    )


ROWS = [
    _row("rnn", 100, 5.0),
    _row("rnn", 1000, 5.2, trials=2),
    _row("gru", 100, 4.5),
    _row("gru", 1000, 4.6, depth=2),
]


@pytest.mark.parametrize(
    ("values", "ticks"),
    [
        ([100, 1000], (100, 200, 500, 1000)),  # one decade: 1, 2, 5 (no 3 ... 9)
        ([1000, 20000], (1000, 2000, 5000, 10000, 20000)),
        ([50, 1e6], (100, 1000, 10_000, 100_000, 1_000_000)),  # wide: powers of ten
        ([700], (500, 1000)),  # one point: the labels around it
    ],
)
def test_log_ticks_are_round_numbers(values, ticks):
    axis = log_axis("parameters", values)
    assert axis.ticks == ticks
    low, high = axis.limits
    assert low <= min(values) and high >= max(values)
    assert [figure_data.tick_label(t) for t in axis.ticks[:2]] == [
        f"{ticks[0]:,}",
        f"{ticks[1]:,}",
    ]


def test_bits_per_param_has_the_papers_band_and_line_and_marks_few_trials():
    data = figure_data.bits_per_param(ROWS, min_trials=3)
    assert [(b.low, b.high) for b in data.bands] == [(3.0, 6.0)]
    assert [(r.axis, r.value) for r in data.rules] == [("y", 5.0)]
    assert data.panels == ("depth 1", "depth 2")
    rnn = next(s for s in data.series if s.name == "rnn")
    assert [(p.x, p.y, p.few) for p in rnn.points] == [(100, 5.0, False), (1000, 5.2, True)]
    assert data.few_trials == "hollow: fewer than 3 complete trials"
    # gru is in both panels, named in the legend once.
    assert [(s.panel, s.in_legend) for s in data.series if s.name == "gru"] == [
        (0, True),
        (1, False),
    ]
    assert figure_data.bits_per_param(ROWS, min_trials=2).few_trials == ""


def test_a_line_per_tag_never_one_zig_zag():
    rows = [
        _row("rnn", 100, 5.0, study="capacity-rnn-p100-gp"),
        _row("rnn", 100, 4.0, study="capacity-rnn-p100-tpe"),
        _row("rnn", 1000, 5.1, study="capacity-rnn-p1000-gp"),
        _row("rnn", 1000, 3.9, study="capacity-rnn-p1000-tpe"),
    ]
    data = figure_data.bits_vs_params(rows, 3, tag_of=lambda r: r.study.rsplit("-", 1)[1])
    lines = {s.name: s for s in data.series if s.markers}
    assert set(lines) == {"rnn gp", "rnn tpe"}
    assert [p.y for p in lines["rnn tpe"].points] == [400.0, 3900.0]
    assert lines["rnn gp"].color == lines["rnn tpe"].color != ""
    assert lines["rnn gp"].dash != lines["rnn tpe"].dash
    # Through the origin: (100 * 500 + 1000 * 5100) / (100^2 + 1000^2) = 5.099; tpe 3.901.
    fits = [s.name for s in data.series if not s.markers]
    assert fits == ["rnn gp, depth 1: 5.10 bits/param", "rnn tpe, depth 1: 3.90 bits/param"]


def test_html_draws_the_band_the_line_hollow_points_and_round_ticks():
    fig = draw_panels(figure_data.bits_per_param(ROWS, min_trials=3))
    shapes = {(s.type, s.y0, s.y1) for s in fig.layout.shapes}
    assert ("rect", 3.0, 6.0) in shapes and ("line", 5.0, 5.0) in shapes
    rnn = next(t for t in fig.data if t.name == "rnn")
    assert list(rnn.marker.symbol) == ["circle", "circle-open"]
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert "hollow: fewer than 3 complete trials" in names
    assert "paper: 3 to 6" in names and "paper: ~5" in names
    assert list(fig.layout.xaxis.tickvals) == [100, 200, 500, 1000]
    assert list(fig.layout.xaxis.ticktext) == ["100", "200", "500", "1,000"]
    assert fig.layout.xaxis2.tickvals == fig.layout.xaxis.tickvals  # every panel


def test_bits_vs_params_log_log_with_round_ticks():
    fig = draw_panels(figure_data.bits_vs_params(ROWS, min_trials=3))
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert all(str(int(v)).lstrip("125").strip("0") == "" for v in fig.layout.yaxis.tickvals)
