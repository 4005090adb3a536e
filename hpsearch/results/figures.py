"""Figures (plotly), built from the data layer in `hpsearch.results.rows`:

1. best bits against parameters, log-log, a line per architecture, a panel per depth, with
   the fitted bits-per-parameter lines;
2. bits per parameter against parameters (paper Fig. 1e-h);
3. the architecture multiplier matrix as a heatmap (paper Fig. 1i);
4. search progress: best value (bits, for capacity studies) so far against trial number,
   per study; studies that differ
   only in their sampler share a panel, one line per sampler.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState
from plotly.subplots import make_subplots

from hpsearch.results.rows import (
    BestRow,
    FitRow,
    Multipliers,
    Selection,
    best_rows,
    fit_rows,
    multipliers,
)
from hpsearch.studies.records import SAMPLER_KEY, SEED_KEY, StudyRecord, list_records

logger = logging.getLogger(__name__)


def _depths(rows: list[BestRow]) -> list[int]:
    return sorted({r.depth for r in rows})


def _archs(rows: list[BestRow]) -> list[str]:
    from hpsearch.results.rows import arch_rank

    return sorted({r.arch for r in rows}, key=lambda a: (arch_rank(a), a))


def _panels(rows: list[BestRow], title: str) -> tuple[go.Figure, list[int]]:
    depths = _depths(rows) or [1]
    fig = make_subplots(
        rows=1, cols=len(depths), shared_yaxes=True, subplot_titles=[f"depth {d}" for d in depths]
    )
    fig.update_layout(
        title=title, template="plotly_white", height=450, width=max(500, 380 * len(depths))
    )
    return fig, depths


def _arch_lines(
    fig: go.Figure, rows: list[BestRow], depths: list[int], value: str
) -> dict[tuple[str, int], list[BestRow]]:
    """A line per architecture in each depth's panel, of `value` against parameters; returns
    the rows drawn, by (arch, depth)."""
    colors = _colors(_archs(rows))
    drawn = {}
    for col, depth in enumerate(depths, start=1):
        for arch in _archs(rows):
            mine = sorted(
                (r for r in rows if r.arch == arch and r.depth == depth), key=lambda r: r.num_params
            )
            if not mine:
                continue
            drawn[(arch, depth)] = mine
            fig.add_trace(
                go.Scatter(
                    x=[r.num_params for r in mine],
                    y=[getattr(r, value) for r in mine],
                    mode="markers+lines",
                    name=arch,
                    legendgroup=arch,
                    showlegend=col == 1,
                    marker={"color": colors[arch]},
                    line={"color": colors[arch]},
                    hovertext=[r.study for r in mine],
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(type="log", title_text="parameters", row=1, col=col)
    return drawn


def bits_vs_params(rows: list[BestRow], fits: list[FitRow]) -> go.Figure:
    fig, depths = _panels(rows, "Best bits stored against trained parameters")
    colors = _colors(_archs(rows))
    for (arch, depth), mine in _arch_lines(fig, rows, depths, "best_bits").items():
        fit = next((f for f in fits if f.arch == arch and f.depth == depth), None)
        if fit is None:
            continue
        xs = [min(r.num_params for r in mine) * 0.8, max(r.num_params for r in mine) * 1.25]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[fit.bits_per_param_slope * x for x in xs],
                mode="lines",
                name=f"{arch}, depth {depth}: {fit.bits_per_param_slope:.2f} bits/param",
                legendgroup=arch,
                showlegend=True,
                line={"color": colors[arch], "dash": "dash", "width": 1},
            ),
            row=1,
            col=depths.index(depth) + 1,
        )
    fig.update_yaxes(type="log", title_text="best bits", row=1, col=1)
    return fig


def bits_per_param_vs_params(rows: list[BestRow]) -> go.Figure:
    fig, depths = _panels(rows, "Bits per parameter against trained parameters")
    _arch_lines(fig, rows, depths, "bits_per_param")
    fig.update_yaxes(title_text="bits per parameter", rangemode="tozero", row=1, col=1)
    return fig


def multiplier_heatmap(m: Multipliers) -> go.Figure:
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
        title="Capacity multiplier: row arch / column arch (mean bits/param)",
        template="plotly_white",
        height=480,
        width=560,
        yaxis={"autorange": "reversed"},
    )
    return fig


def _group_key(record: StudyRecord) -> str:
    """What a study searches, all but its sampler, seed and tag."""
    ignore = {SAMPLER_KEY, SEED_KEY, "tag"}
    return repr(sorted((k, repr(v)) for k, v in record.attrs.items() if k not in ignore))


def search_progress(storage: optuna.storages.BaseStorage, selection: Selection) -> go.Figure:
    records = [r for r in list_records(storage) if selection.study(r)]
    groups: dict[str, list[StudyRecord]] = {}
    for record in records:
        groups.setdefault(_group_key(record), []).append(record)
    panels = list(groups.values())
    fig = make_subplots(
        rows=max(1, len(panels)),
        cols=1,
        subplot_titles=[", ".join(r.name for r in p) for p in panels] or [""],
    )
    fig.update_layout(
        title="Search progress: best value so far against trial number",
        template="plotly_white",
        height=max(350, 260 * len(panels)),
        width=820,
    )
    for row, panel in enumerate(panels, start=1):
        by_sampler = len({r.sampler for r in panel}) == len(panel) > 1
        for record in panel:
            study_id = storage.get_study_id_from_name(record.name)
            trials = sorted(
                storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,)),
                key=lambda t: t.number,
            )
            best, xs, ys = float("-inf"), [], []
            for t in trials:
                assert t.value is not None
                best = max(best, t.value)
                xs.append(t.number)
                ys.append(best)
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    line={"shape": "hv"},
                    name=record.sampler if by_sampler else record.name,
                ),
                row=row,
                col=1,
            )
        fig.update_xaxes(title_text="trial number", row=row, col=1)
        metric = "bits" if panel[0].task == "capacity" else "value"
        fig.update_yaxes(title_text=f"best {metric} so far", row=row, col=1)
    return fig


def _colors(archs: list[str]) -> dict[str, str]:
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]
    return {a: palette[i % len(palette)] for i, a in enumerate(archs)}


def figures(storage: optuna.storages.BaseStorage, selection: Selection) -> dict[str, go.Figure]:
    rows = best_rows(storage, selection)
    return {
        "bits_vs_params": bits_vs_params(rows, fit_rows(rows)),
        "bits_per_param": bits_per_param_vs_params(rows),
        "multipliers": multiplier_heatmap(multipliers(rows)),
        "progress": search_progress(storage, selection),
    }


def _png_renderer() -> Any:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return None
    return True


def write_figures(
    storage: optuna.storages.BaseStorage, out: Path, selection: Selection
) -> tuple[list[Path], str]:
    """Write each figure as self-contained HTML (plotly.js inside), and as PNG where a
    renderer (kaleido) is installed. Returns the files written and why PNGs were skipped."""
    written: list[Path] = []
    skipped = ""
    png = _png_renderer() is not None
    for name, fig in figures(storage, selection).items():
        html = out / f"{name}.html"
        fig.write_html(html, include_plotlyjs=True, full_html=True)
        written.append(html)
        if png:
            try:
                fig.write_image(out / f"{name}.png")
                written.append(out / f"{name}.png")
            except Exception as e:  # a renderer that cannot start (no browser for kaleido)
                png, skipped = False, f"PNG skipped: {type(e).__name__}: {e}".splitlines()[0]
        elif not skipped:
            skipped = "PNG skipped: no renderer (pip install kaleido for PNG files)"
    return written, skipped
