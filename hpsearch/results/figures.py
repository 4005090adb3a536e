"""The HTML figures of `hpsearch plot` (plotly), drawn from `hpsearch.results.figure_data`:

1. best bits against parameters, log-log, a line per (arch, tag), a panel per depth, with
   the fitted bits-per-parameter lines;
2. bits per parameter against parameters (paper Fig. 1e-h), over the paper's band and line;
3. the architecture multiplier matrix as a heatmap (paper Fig. 1i);
4. search progress: best value so far against trial number, per study; studies that differ
   only in how they were searched share a panel.

Points that rest on fewer than `min_trials` complete trials are hollow. Nothing here decides
what a figure shows; it only draws. plotly is imported inside the functions that draw, so that
importing this module (as the dashboard notes a worker refreshes do) loads no plotting library.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from hpsearch.results import figure_data
from hpsearch.results.claims import MIN_TRIALS
from hpsearch.results.figure_data import Axis, PanelFigure, ProgressFigure, tick_label
from hpsearch.results.rows import (
    BestRow,
    FitRow,
    Multipliers,
    Selection,
    best_rows,
    multipliers_by_tag,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

logger = logging.getLogger(__name__)

BAND_COLOR = "rgba(128, 128, 128, 0.15)"
RULE_COLOR = "rgb(110, 110, 110)"


def _axis(axis: Axis) -> dict[str, Any]:
    out: dict[str, Any] = {"title_text": axis.label}
    if axis.log:
        out["type"] = "log"
    if axis.ticks:
        out |= {
            "tickmode": "array",
            "tickvals": list(axis.ticks),
            "ticktext": [tick_label(t) for t in axis.ticks],
        }
    if axis.from_zero:
        out["rangemode"] = "tozero"
    if axis.limits is not None:
        # A log axis's range is given in powers of ten.
        out["range"] = [math.log10(x) if axis.log else x for x in axis.limits]
    return out


def _legend_only(**kwargs: Any) -> go.Scatter:
    """A legend entry with nothing drawn (for a band, a rule, hollow points)."""
    import plotly.graph_objects as go

    return go.Scatter(x=[None], y=[None], showlegend=True, hoverinfo="skip", **kwargs)


def draw_panels(data: PanelFigure) -> go.Figure:
    """A `PanelFigure` as plotly: its panels side by side, sharing y."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = max(1, len(data.panels))
    fig = make_subplots(
        rows=1, cols=cols, shared_yaxes=True, subplot_titles=list(data.panels) or [""]
    )
    title = data.title + (f"<br><sup>{data.subtitle}</sup>" if data.subtitle else "")
    fig.update_layout(title=title, template="plotly_white", height=450, width=max(500, 380 * cols))
    for band in data.bands:
        for col in range(1, cols + 1):
            fig.add_hrect(
                y0=band.low,
                y1=band.high,
                fillcolor=BAND_COLOR,
                line_width=0,
                layer="below",
                row=1,
                col=col,
                exclude_empty_subplots=False,
            )
        fig.add_trace(
            _legend_only(
                name=band.label,
                mode="markers",
                marker={"symbol": "square", "size": 14, "color": BAND_COLOR},
            )
        )
    for rule in data.rules:
        cols_of = range(1, cols + 1) if rule.panel is None else [rule.panel + 1]
        for col in cols_of:
            line = {"color": RULE_COLOR, "dash": rule.dash, "width": 1}
            if rule.axis == "y":
                fig.add_hline(y=rule.value, line=line, row=1, col=col, exclude_empty_subplots=False)
            else:
                fig.add_vline(x=rule.value, line=line, row=1, col=col, exclude_empty_subplots=False)
        fig.add_trace(
            _legend_only(
                name=rule.label, mode="lines", line={"color": RULE_COLOR, "dash": rule.dash}
            )
        )
    for s in data.series:
        symbols = [f"{s.marker}-open" if p.few else s.marker for p in s.points]
        fig.add_trace(
            go.Scatter(
                x=[p.x for p in s.points],
                y=[p.y for p in s.points],
                mode="markers+lines" if s.markers else "lines",
                name=s.name,
                legendgroup=s.group,
                showlegend=s.in_legend,
                line={"color": s.color, "dash": s.dash, "width": 2 if s.markers else 1},
                marker={"color": s.color, "symbol": symbols, "size": 8},
                hovertext=[p.study for p in s.points],
            ),
            row=1,
            col=s.panel + 1,
        )
    if data.few_trials:
        fig.add_trace(
            _legend_only(
                name=data.few_trials,
                mode="markers",
                marker={"symbol": "circle-open", "size": 8, "color": RULE_COLOR},
            )
        )
    fig.update_xaxes(**_axis(data.x))
    fig.update_yaxes(**_axis(data.y), row=1, col=1)
    if data.y.log:
        fig.update_yaxes(type="log")
    return fig


def bits_vs_params(
    rows: list[BestRow], fits: list[FitRow] | None = None, min_trials: int = MIN_TRIALS
) -> go.Figure:
    """`fits` is not read: each line's fit is made from its own rows (kept for callers)."""
    return draw_panels(figure_data.bits_vs_params(rows, min_trials))


def bits_per_param_vs_params(rows: list[BestRow], min_trials: int = MIN_TRIALS) -> go.Figure:
    return draw_panels(figure_data.bits_per_param(rows, min_trials))


def multiplier_heatmap(m: Multipliers) -> go.Figure:
    import plotly.graph_objects as go

    text = [[f"{v:.2f}" for v in row] for row in m.ratio]
    fig = go.Figure(
        go.Heatmap(
            z=[list(r) for r in m.ratio],
            x=list(m.archs),
            y=list(m.archs),
            text=text,
            texttemplate="%{text}",
            colorscale="RdBu",
            zmid=1.0,
            colorbar={"title": "ratio"},
        )
    )
    fig.update_layout(
        title="Capacity multiplier: row arch / column arch (mean bits/param)"
        + (f", tag {m.tag}" if m.tag else ""),
        template="plotly_white",
        height=480,
        width=560,
        yaxis={"autorange": "reversed"},
    )
    return fig


def draw_progress(data: ProgressFigure) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = max(1, len(data.panels))
    fig = make_subplots(rows=rows, cols=1, subplot_titles=[p.title for p in data.panels] or [""])
    fig.update_layout(
        title=data.title, template="plotly_white", height=max(350, 260 * rows), width=820
    )
    for row, panel in enumerate(data.panels, start=1):
        for s in panel.series:
            fig.add_trace(
                go.Scatter(
                    x=[p.x for p in s.points],
                    y=[p.y for p in s.points],
                    mode="lines",
                    line={"shape": "hv", "color": s.color, "dash": s.dash},
                    name=s.name,
                ),
                row=row,
                col=1,
            )
        fig.update_xaxes(title_text="trial number", row=row, col=1)
        fig.update_yaxes(title_text=panel.y_label, row=row, col=1)
    return fig


def search_progress(storage: optuna.storages.BaseStorage, selection: Selection) -> go.Figure:
    return draw_progress(figure_data.search_progress(storage, selection))


# The figures, by file stem, in the order they are written.
FIGURES: tuple[str, ...] = ("bits_vs_params", "bits_per_param", "multipliers", "progress")
# The one copy of plotly.js in a folder of figures, which each HTML file loads.
PLOTLY_JS = "plotly.min.js"


def figures(
    storage: optuna.storages.BaseStorage, selection: Selection, min_trials: int = MIN_TRIALS
) -> dict[str, go.Figure]:
    """The figures that have data to show, by file stem (a figure with none is left out)."""
    rows = best_rows(storage, selection)
    out: dict[str, go.Figure] = {}
    for data in (
        figure_data.bits_vs_params(rows, min_trials),
        figure_data.bits_per_param(rows, min_trials),
    ):
        if not data.empty:
            out[data.name] = draw_panels(data)
    # One matrix per tag (never a ratio of cells searched two ways): multipliers.html for
    # the studies without a tag, multipliers-TAG.html for each tag.
    for m in multipliers_by_tag(rows):
        if m.archs:
            out["multipliers" + (f"-{m.tag}" if m.tag else "")] = multiplier_heatmap(m)
    progress = figure_data.search_progress(storage, selection)
    if not progress.empty:
        out[progress.name] = draw_progress(progress)
    return out


def _png_renderer() -> Any:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return None
    return True


def _write_plotly_js(out: Path) -> Path:
    """plotly.js from the installed plotly package, once per folder (rewritten when another
    version of plotly left a different copy there)."""
    from plotly.offline import get_plotlyjs

    path = out / PLOTLY_JS
    text = get_plotlyjs()
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def write_figures(
    storage: optuna.storages.BaseStorage,
    out: Path,
    selection: Selection,
    min_trials: int = MIN_TRIALS,
) -> tuple[list[Path], str]:
    """Write each figure that has data as an HTML file that loads plotly.js from the one copy
    beside it (`PLOTLY_JS`, so the folder works offline), and as PNG where a renderer
    (kaleido) is installed. Returns the files written and one line on what was not: the
    figures without data, and PNGs without a renderer ("" when nothing was left out)."""
    written: list[Path] = []
    notes = []
    drawn = figures(storage, selection, min_trials)
    empty = [
        name
        for name in FIGURES
        if name not in drawn and not any(d.startswith(f"{name}-") for d in drawn)
    ]
    if empty:
        notes.append(f"not written, no data: {', '.join(empty)}")
    if drawn:
        written.append(_write_plotly_js(out))
    png = _png_renderer() is not None
    png_note = ""
    for name, fig in drawn.items():
        html = out / f"{name}.html"
        fig.write_html(html, include_plotlyjs="directory", full_html=True)
        written.append(html)
        if png:
            try:
                fig.write_image(out / f"{name}.png")
                written.append(out / f"{name}.png")
            except Exception as e:  # a renderer that cannot start (no browser for kaleido)
                png = False
                png_note = f"PNG skipped: {type(e).__name__}: {e}".splitlines()[0]
        elif not png_note:
            png_note = "PNG skipped: no renderer (pip install kaleido for PNG files)"
    if png_note:
        notes.append(png_note)
    return written, "; ".join(notes)
