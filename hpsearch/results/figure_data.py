"""What each figure shows, computed once for its two back ends: plotly HTML
(`hpsearch.results.figures`, for `hpsearch plot`) and matplotlib PNG
(`hpsearch.results.report`, for `hpsearch report`). The back ends only draw what is here:
the panels, a series per (arch, tag) with its colour and line style, the fitted lines, the
paper's band and line, the points that rest on few trials, and the labelled ticks of a log
axis. Imports no plotting library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from hpsearch.results.rows import BestRow, PerUnitRow, Selection, arch_rank, fit_line
from hpsearch.results.runs import settings_key, tag_of
from hpsearch.studies.records import StudyRecord, list_records
from objectives.tasks.description import describe

PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#17becf",
)
DASHES: tuple[str, ...] = ("solid", "dash", "dot", "dashdot")
MARKERS: tuple[str, ...] = ("circle", "square", "diamond", "triangle-up", "triangle-down")
# The paper's bits per parameter (Collins et al. 2017, Fig. 1e-h): 3 to 6 over its archs and
# depths, about 5 on average.
PAPER_BAND: tuple[float, float] = (3.0, 6.0)
PAPER_LINE = 5.0
# A fitted line runs from this far below a series' smallest x to this far above its largest.
FIT_REACH: tuple[float, float] = (0.8, 1.25)
# A log axis reaches at least this factor beyond its smallest and largest values.
LOG_MARGIN = 1.1


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    study: str  # the hover text
    trials: int  # complete trials the point rests on
    few: bool  # fewer than the figure's minimum: drawn hollow


@dataclass(frozen=True)
class Series:
    """One line in one panel. A series and its fitted line share `group` (one legend entry
    toggles both in HTML); `in_legend` is set on the first series of each name only."""

    name: str
    group: str
    color: str
    panel: int
    points: tuple[Point, ...]
    dash: str = "solid"
    marker: str = "circle"
    markers: bool = True  # False: a line only (a fit)
    in_legend: bool = True


@dataclass(frozen=True)
class Band:
    """A horizontal band across every panel."""

    low: float
    high: float
    label: str


@dataclass(frozen=True)
class Rule:
    """A straight line across one panel, or every panel (`panel` None): `axis` "x" is a
    vertical line at x = value, "y" a horizontal one."""

    axis: str
    value: float
    label: str
    dash: str = "dot"
    panel: int | None = None


@dataclass(frozen=True)
class Axis:
    label: str
    log: bool = False
    ticks: tuple[float, ...] = ()  # the labelled ticks of a log axis
    from_zero: bool = False
    limits: tuple[float, float] | None = None


@dataclass(frozen=True)
class PanelFigure:
    """Panels side by side, sharing the y axis."""

    name: str  # the file's stem
    title: str
    subtitle: str
    panels: tuple[str, ...]  # panel titles
    x: Axis
    y: Axis
    series: tuple[Series, ...]
    bands: tuple[Band, ...] = ()
    rules: tuple[Rule, ...] = ()
    # The legend's words for hollow points; "" when no point is hollow.
    few_trials: str = ""

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


def row_tag(row: BestRow) -> str:
    """The tag of a row's study ("" for none): each tag is a line of its own."""
    return str(getattr(row, "tag", ""))


def archs_in_order(archs: Sequence[str]) -> list[str]:
    return sorted(set(archs), key=lambda a: (arch_rank(a), a))


def colors(archs: Sequence[str]) -> dict[str, str]:
    """A colour per arch, in the paper's order of archs."""
    return {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(archs_in_order(archs))}


def tick_label(value: float) -> str:
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def log_axis(label: str, values: Sequence[float]) -> Axis:
    """A log axis over `values` (positive), from LOG_MARGIN below the smallest to LOG_MARGIN
    above the largest, labelled at 1, 2 and 5 times the powers of ten where that spans two
    decades or less, else at the powers of ten (never at the minor ticks between). Where
    fewer than two labels would fall inside, the axis widens to the labels around it."""
    positive = [v for v in values if v > 0]
    if not positive:
        return Axis(label, log=True)
    low, high = min(positive) / LOG_MARGIN, max(positive) * LOG_MARGIN
    steps = (1.0, 2.0, 5.0) if math.log10(high / low) <= 2 else (1.0,)
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    grid = [m * 10.0**k for k in range(first, last + 1) for m in steps]
    ticks = [t for t in grid if low <= t <= high]
    if len(ticks) < 2:
        low, high = max(t for t in grid if t <= low), min(t for t in grid if t >= high)
        ticks = [t for t in grid if low <= t <= high]
    return Axis(label, log=True, ticks=tuple(ticks), limits=(low, high))


def _few_words(points: Sequence[Point], min_trials: int) -> str:
    return f"hollow: fewer than {min_trials} complete trials" if any(p.few for p in points) else ""


def _depth_series(
    rows: Sequence[BestRow], value: str, min_trials: int, tag_of: Callable[[BestRow], str]
) -> tuple[list[int], list[tuple[Series, list[BestRow]]]]:
    """A series per (arch, tag) in each depth's panel, of `value` against parameters, with
    the rows it draws."""
    depths = sorted({r.depth for r in rows})
    color = colors([r.arch for r in rows])
    tags = sorted({tag_of(r) for r in rows})
    out: list[tuple[Series, list[BestRow]]] = []
    named: set[str] = set()
    for panel, depth in enumerate(depths):
        for arch in archs_in_order([r.arch for r in rows]):
            for tag in tags:
                mine = sorted(
                    (r for r in rows if r.arch == arch and r.depth == depth and tag_of(r) == tag),
                    key=lambda r: r.num_params,
                )
                if not mine:
                    continue
                name = f"{arch} {tag}" if tag else arch
                points = tuple(
                    Point(
                        float(r.num_params),
                        float(getattr(r, value)),
                        r.study,
                        r.trials_complete,
                        r.trials_complete < min_trials,
                    )
                    for r in mine
                )
                series = Series(
                    name=name,
                    group=name,
                    color=color[arch],
                    panel=panel,
                    points=points,
                    dash=DASHES[tags.index(tag) % len(DASHES)],
                    in_legend=name not in named,
                )
                named.add(name)
                out.append((series, mine))
    return depths, out


def bits_vs_params(
    rows: Sequence[BestRow],
    min_trials: int,
    subtitle: str = "",
    tag_of: Callable[[BestRow], str] = row_tag,
) -> PanelFigure:
    """Best bits against parameters, log-log, a panel per depth, with each series' bits per
    parameter fitted through the origin (capacity is linear in P) as a dashed line."""
    depths, drawn = _depth_series(rows, "best_bits", min_trials, tag_of)
    series = [s for s, _ in drawn]
    for s, mine in drawn:
        fit = fit_line(mine, "")  # the series as drawn: its rows may carry several tags
        slope = fit.bits_per_param_slope
        xs = [min(p.x for p in s.points) * FIT_REACH[0], max(p.x for p in s.points) * FIT_REACH[1]]
        series.append(
            Series(
                name=f"{s.name}, depth {depths[s.panel]}: {slope:.2f} bits/param",
                group=s.group,
                color=s.color,
                panel=s.panel,
                points=tuple(Point(x, slope * x, "", 0, False) for x in xs),
                dash="dash",
                markers=False,
            )
        )
    points = [p for s in series for p in s.points]
    return PanelFigure(
        name="bits_vs_params",
        title="Best bits against parameters",
        subtitle=subtitle,
        panels=tuple(f"depth {d}" for d in depths),
        x=log_axis("parameters", [p.x for p in points]),
        y=log_axis("best bits", [p.y for p in points]),
        series=tuple(series),
        few_trials=_few_words(points, min_trials),
    )


def bits_per_param(
    rows: Sequence[BestRow],
    min_trials: int,
    subtitle: str = "",
    tag_of: Callable[[BestRow], str] = row_tag,
) -> PanelFigure:
    """Bits per parameter against parameters (paper Fig. 1e-h), a panel per depth, over the
    paper's band (3 to 6) and line (~5)."""
    depths, drawn = _depth_series(rows, "bits_per_param", min_trials, tag_of)
    series = tuple(s for s, _ in drawn)
    points = [p for s in series for p in s.points]
    return PanelFigure(
        name="bits_per_param",
        title="Bits per parameter against parameters",
        subtitle=subtitle,
        panels=tuple(f"depth {d}" for d in depths),
        x=log_axis("parameters", [p.x for p in points]),
        y=Axis("bits per parameter", from_zero=True),
        series=series,
        bands=(Band(*PAPER_BAND, label="paper: {:g} to {:g}".format(*PAPER_BAND)),),
        rules=(Rule("y", PAPER_LINE, f"paper: ~{PAPER_LINE:g}"),),
        few_trials=_few_words(points, min_trials),
    )


def per_unit(rows: Sequence[PerUnitRow], min_trials: int, success: float) -> PanelFigure:
    """Best fraction reconstructed against units per layer, a panel per n_in, a series per
    (arch, depth), with the line units = n_in and the mark `success`."""
    n_ins = sorted({r.n_in for r in rows})
    color = colors([r.arch for r in rows])
    series = []
    rules = [Rule("y", success, f"{success} reconstructed")]
    named: set[str] = set()
    for panel, n_in in enumerate(n_ins):
        mine = [r for r in rows if r.n_in == n_in]
        depths = sorted({r.depth for r in mine})
        for arch in archs_in_order([r.arch for r in rows]):
            for depth in depths:
                line = sorted(
                    (r for r in mine if r.arch == arch and r.depth == depth), key=lambda r: r.units
                )
                if not line:
                    continue
                name = arch if len(depths) == 1 else f"{arch}, depth {depth}"
                series.append(
                    Series(
                        name=name,
                        group=name,
                        color=color[arch],
                        panel=panel,
                        points=tuple(
                            Point(
                                float(r.units),
                                r.best_fraction,
                                r.study,
                                r.trials_complete,
                                r.trials_complete < min_trials,
                            )
                            for r in line
                        ),
                        dash=DASHES[depths.index(depth) % len(DASHES)],
                        marker=MARKERS[depths.index(depth) % len(MARKERS)],
                        in_legend=name not in named,
                    )
                )
                named.add(name)
        rules.append(Rule("x", n_in, f"units = n_in = {n_in}", dash="dash", panel=panel))
    points = [p for s in series for p in s.points]
    return PanelFigure(
        name="per_unit",
        title="Per-unit capacity",
        subtitle="",
        panels=tuple(f"n_in {n}" for n in n_ins),
        x=Axis("units per layer"),
        y=Axis("best fraction reconstructed", limits=(0.0, 1.05)),
        series=tuple(series),
        rules=tuple(rules),
        few_trials=_few_words(points, min_trials),
    )


@dataclass(frozen=True)
class ProgressPanel:
    title: str
    y_label: str
    series: tuple[Series, ...]


@dataclass(frozen=True)
class ProgressFigure:
    """Panels stacked one above the other, one per kind of search (see `search_progress`)."""

    title: str
    panels: tuple[ProgressPanel, ...]
    name: str = "progress"

    @property
    def empty(self) -> bool:
        return not any(s.points for p in self.panels for s in p.series)


def _metric(task: str) -> str:
    try:
        return describe(task).metric
    except ValueError:  # a task this version does not know
        return "value"


def search_progress(storage: optuna.storages.BaseStorage, selection: Selection) -> ProgressFigure:
    """The best value so far against trial number, a line per study; studies that differ
    only in how they were searched (their tag, sampler, pruner, seed or target) share a
    panel, a line per tag, each in its own colour."""
    records = [r for r in list_records(storage) if selection.study(r)]
    groups: dict[str, list[StudyRecord]] = {}
    for record in records:
        groups.setdefault(settings_key(record), []).append(record)
    panels = []
    for index, group in enumerate(groups.values()):
        series = []
        for i, record in enumerate(sorted(group, key=tag_of)):
            study_id = storage.get_study_id_from_name(record.name)
            trials = sorted(
                storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,)),
                key=lambda t: t.number,
            )
            best, points = -math.inf, []
            for t in trials:
                assert t.value is not None
                best = max(best, t.value)
                points.append(Point(float(t.number), best, record.name, 0, False))
            name = (tag_of(record) or "no tag") if len(group) > 1 else record.name
            series.append(
                Series(name, name, PALETTE[i % len(PALETTE)], index, tuple(points), markers=False)
            )
        metric = _metric(group[0].task)
        panels.append(
            ProgressPanel(", ".join(r.name for r in group), f"best {metric} so far", tuple(series))
        )
    return ProgressFigure("Search progress: best value so far against trial number", tuple(panels))
