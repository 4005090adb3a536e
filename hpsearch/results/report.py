"""`hpsearch report`: one markdown page that sets the storage's studies against the paper.

The data (`Report`: the header's counts and settings, the claims of `hpsearch.results.claims`,
the best rows), all read through one `Selection`, is collected first; `render_markdown` and
`write_report` only render it. The PNG figures show what `hpsearch.results.figure_data`
computes (as the HTML figures of `hpsearch plot` do), drawn with matplotlib's Agg renderer (no
browser, no network), imported inside the functions that draw, so that the rest of hpsearch
never loads it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from hpsearch.results import figure_data
from hpsearch.results.claims import (
    DEFAULT_N_IN,
    MIN_TRIALS,
    NO_STUDIES,
    NOT_ENOUGH,
    PAPER_UNROLL,
    SUCCESS_FRACTION,
    VERDICTS,
    ClaimVerdict,
    collect,
    judge,
)
from hpsearch.results.claims.judging import KeyedRun
from hpsearch.results.figure_data import Axis, PanelFigure, tick_label
from hpsearch.results.provenance import Settings, settings_by_task, versions
from hpsearch.results.rows import (
    BestRow,
    FitRow,
    PerUnitRow,
    Selection,
    arch_rank,
    best_rows,
    fit_rows,
    per_unit_rows,
)
from hpsearch.results.tables import Table, best_table, fits_table, per_unit_table, render
from hpsearch.studies.records import list_records
from objectives.tasks.capacity.study import default_activation
from storage import redact_url

if TYPE_CHECKING:
    from matplotlib.axes import Axes

logger = logging.getLogger(__name__)

REPORT_FILE = "report.md"
# The capacity figures' n_in where studies have it: the capacity task's default.
FIGURES: dict[str, str] = {
    "bits_vs_params.png": "Best bits against parameters (log-log), a panel per depth",
    "bits_per_param.png": "Bits per parameter against parameters, a panel per depth",
    "per_unit.png": "Fraction reconstructed against units per layer (per-unit task)",
}
VERDICT_MEANING: dict[str, str] = {
    "agrees": "the measurement is within the tolerance stated for the claim",
    "differs": "it is outside that tolerance",
    "not enough trials": "studies speak to the claim, but too few best rows have the minimum "
    "number of complete trials, or too few such rows are left to compare; a number measured "
    "on thinner rows is marked preliminary and earns no verdict",
    "no studies": "nothing in this storage speaks to the claim",
}


@dataclass(frozen=True)
class Report:
    storage: str  # redacted
    day: date
    min_trials: int
    studies: dict[str, int]  # by task
    trials: int
    trials_complete: int
    claims: tuple[ClaimVerdict, ...]
    best: tuple[BestRow, ...]
    fits: tuple[tuple[str, FitRow], ...]  # (run, fit): a fit per run
    per_unit: tuple[PerUnitRow, ...]
    # What the capacity figures draw: the paper's setting only (see `plotted_rows`).
    plotted: tuple[BestRow, ...] = ()
    plotted_n_in: int | None = None
    # The run of each capacity study (`hpsearch.results.runs`): the figures draw a line per
    # (arch, run), the fits are made per run.
    runs: Mapping[str, str] = field(default_factory=dict)
    # The settings and versions behind the numbers, and the trials the studies were to have.
    settings: tuple[Settings, ...] = ()
    versions: tuple[tuple[str, str], ...] = ()
    targets: int = 0

    def __post_init__(self) -> None:
        if self.min_trials < 1:
            raise ValueError(f"min_trials must be positive, got {self.min_trials}")

    @property
    def figures(self) -> tuple[str, ...]:
        """The PNG files this report embeds: those it has data for."""
        names = []
        if self.plotted:
            names += ["bits_vs_params.png", "bits_per_param.png"]
        if self.per_unit:
            names.append("per_unit.png")
        return tuple(names)


def collect_report(
    storage: optuna.storages.BaseStorage,
    url: str,
    min_trials: int = MIN_TRIALS,
    selection: Selection | None = None,
    day: date | None = None,
) -> Report:
    """The report on the studies `selection` picks (all by default): every number, claim
    and figure is read through that one selection of rows (`hpsearch.results.rows`)."""
    selection = selection or Selection()
    studies: dict[str, int] = {}
    trials = complete = 0
    records = [r for r in list_records(storage) if selection.study(r)]
    for record in records:
        studies[record.task] = studies.get(record.task, 0) + 1
        study_id = storage.get_study_id_from_name(record.name)
        every = storage.get_all_trials(study_id, deepcopy=False)
        trials += len(every)
        complete += sum(1 for t in every if t.state == TrialState.COMPLETE)
    evidence = collect(storage, selection)
    best = best_rows(storage, selection)
    n_in, plotted = plotted_rows(evidence.rows)
    runs = {k.row.study: k.run for k in evidence.rows}
    fits = [
        (run, fit)
        for run in sorted({runs[r.study] for r in plotted})
        for fit in fit_rows([r for r in plotted if runs[r.study] == run])
    ]
    return Report(
        storage=redact_url(url),
        day=day or date.today(),
        min_trials=min_trials,
        studies=dict(sorted(studies.items())),
        trials=trials,
        trials_complete=complete,
        claims=tuple(judge(evidence, min_trials)),
        best=tuple(best),
        fits=tuple(fits),
        per_unit=tuple(per_unit_rows(storage, selection)),
        plotted=tuple(plotted),
        plotted_n_in=n_in,
        runs=runs,
        settings=settings_by_task(records),
        versions=versions(),
        targets=sum(r.target for r in records),
    )


def plotted_rows(rows: Sequence[KeyedRun]) -> tuple[int | None, list[BestRow]]:
    """The rows of the capacity figures: each arch's own activation, T = 5 and one n_in
    (32, the default, where there are such rows; else the most common), and one point per
    (arch, depth, budget, run), the best (an optimizer study of the same budget would
    otherwise draw several; the runs of a sampler comparison are drawn apart)."""
    mine = [
        k
        for k in rows
        if k.get("activation") == default_activation(k.row.arch) and k.get("unroll") == PAPER_UNROLL
    ]
    if not mine:
        return None, []
    counts = Counter(int(k.get("n_in")) for k in mine)
    n_in = DEFAULT_N_IN if DEFAULT_N_IN in counts else counts.most_common(1)[0][0]
    best: dict[tuple[str, int, int, str], BestRow] = {}
    for k in mine:
        if k.get("n_in") != n_in:
            continue
        key = (k.row.arch, k.row.depth, k.row.budget, k.run)
        if key not in best or k.row.best_bits > best[key].best_bits:
            best[key] = k.row
    return n_in, sorted(best.values(), key=lambda r: (arch_rank(r.arch), r.depth, r.budget))


# --- markdown ---------------------------------------------------------------------------------


def _fits_table(fits: Sequence[tuple[str, FitRow]]) -> Table:
    """The fits, with a column naming the run where there are runs."""
    table = fits_table([fit for _, fit in fits])
    if not any(run for run, _ in fits):
        return table
    rows = tuple((run, *row) for (run, _), row in zip(fits, table.rows, strict=True))
    return replace(table, columns=("tag", *table.columns), rows=rows)


def _trials_cell(claim: ClaimVerdict) -> str:
    if claim.rows == 0:
        return "-"
    rows = "1 row" if claim.rows == 1 else f"{claim.rows} rows"
    return f"{rows}; {claim.trials_total} trials, fewest {claim.trials_min} per row"


def _measured_cell(claim: ClaimVerdict) -> str:
    """What was measured; for a claim without a verdict, also why (too few budgets, rows
    under the minimum of trials), so that its row says what is missing."""
    if claim.verdict != NOT_ENOUGH:
        return claim.measured
    return claim.why if claim.measured == "-" else f"{claim.measured}; {claim.why}"


def claims_table(claims: Sequence[ClaimVerdict]) -> Table:
    return Table(
        "Claims",
        ("#", "claim", "source", "expected", "measured", "best rows (complete trials)", "verdict"),
        tuple(
            (
                c.number,
                c.statement,
                c.source,
                c.expected,
                _measured_cell(c),
                _trials_cell(c),
                c.verdict,
            )
            for c in claims
        ),
    )


def _pairs(pairs: Sequence[tuple[str, str]], sep: str = " ") -> str:
    return "; ".join(f"{key}{sep}{value}" for key, value in pairs)


def _settings_lines(report: Report) -> list[str]:
    """The settings behind the numbers, which the verdicts are to be read against."""
    lines = []
    for s in report.settings:
        lines.append(f"- Settings of the {s.task} studies: {_pairs(s.stated)}.")
        if s.varying:
            lines.append(f"  - Settings that vary between them: {_pairs(s.varying)}.")
        elif s.studies > 1:
            lines.append("  - No other setting varies between them.")
    if report.versions:
        versions = ", ".join(f"{name} {version}" for name, version in report.versions)
        lines.append(f"- Versions: {versions}.")
    return lines


def _header(report: Report) -> list[str]:
    total = sum(report.studies.values())
    by_task = ", ".join(f"{n} {task}" for task, n in report.studies.items())
    return [
        "# hpsearch report",
        "",
        f"- Storage: `{report.storage}`",
        f"- Date: {report.day.isoformat()}",
        f"- Studies: {total} ({by_task}); trials: {report.trials} ({report.trials_complete} "
        f"complete) of {report.targets} targeted",
        *_settings_lines(report),
        f"- A best row (the best trial of one study and depth, split by the trials' activation, "
        f"unroll and n_in) counts towards a verdict with at least {report.min_trials} complete "
        "trials.",
        "",
    ]


def _claim_section(claim: ClaimVerdict) -> list[str]:
    lines = [
        f"### {claim.number}. {claim.statement}: {claim.verdict}",
        "",
        f"- Source: {claim.source}; expected: {claim.expected}.",
        f"- Agrees when: {claim.tolerance}.",
        *([f"- Measured: {claim.measured}."] if claim.measured != "-" else []),
        f"- Why this verdict: {claim.why}.",
        "",
    ]
    if claim.details:
        if claim.verdict == NOT_ENOUGH:
            lines += ["Preliminary, from every row that speaks to the claim:", ""]
        lines.append(render([Table("", claim.columns, claim.details)], "md"))
    return lines


def render_markdown(report: Report) -> str:
    lines = _header(report)
    lines += ["## Claims", "", render([claims_table(report.claims)], "md")]
    lines += [f"- **{v}**: {VERDICT_MEANING[v]}." for v in VERDICTS]
    untested = [c for c in report.claims if c.verdict == NO_STUDIES]
    if untested:
        lines += ["", "Studies that would test the claims with none:", ""]
        lines += [f"- {c.number}: {c.tests_with}." for c in untested]
    lines += ["", "## Details", ""]
    for claim in report.claims:
        if claim.verdict != NO_STUDIES:
            lines += _claim_section(claim)
    if report.figures:
        lines += ["## Figures", ""]
        if report.plotted:
            lines += [
                f"Capacity figures: {_setting(report)}; the best row per (arch, depth, budget); "
                f"hollow points rest on fewer than {report.min_trials} complete trials; dashed "
                "lines: bits per parameter fitted through the origin.",
                "",
            ]
        lines += [f"![{FIGURES[name]}]({name})\n" for name in report.figures]
    if report.best:
        lines += ["## Best bits per (study, depth)", "", render([best_table(report.best)], "md")]
        lines += [
            "## Bits per parameter per (arch, depth)",
            "",
            f"The figures' rows: each arch's own activation, T = {PAPER_UNROLL}, n_in "
            f"{report.plotted_n_in}, the best study of each (arch, depth, budget).",
            "",
            render([_fits_table(report.fits)], "md"),
        ]
    if report.per_unit:
        lines += [
            "## Best fraction reconstructed per (per-unit study, depth)",
            "",
            render([per_unit_table(report.per_unit)], "md"),
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


# --- figures (matplotlib, Agg) ----------------------------------------------------------------

_DASHES = {"solid": "-", "dash": "--", "dot": ":", "dashdot": "-."}
_MARKERS = {"circle": "o", "square": "s", "diamond": "d", "triangle-up": "^", "triangle-down": "v"}


def _setting(report: Report) -> str:
    return f"each arch's own activation, T {PAPER_UNROLL}, n_in {report.plotted_n_in}"


def _limits(ax: Axes, axis: str, spec: Axis) -> None:
    """Log axes get the figure data's ticks as labels (and limits); other labels are off."""
    from matplotlib.ticker import NullFormatter

    if spec.log:
        getattr(ax, f"set_{axis}scale")("log")
    if spec.ticks:
        getattr(ax, f"set_{axis}ticks")(spec.ticks, [tick_label(t) for t in spec.ticks])
        getattr(ax, f"{axis}axis").set_minor_formatter(NullFormatter())
    if spec.limits is not None:
        getattr(ax, f"set_{axis}lim")(*spec.limits)
    elif spec.from_zero and axis == "y":
        ax.set_ylim(bottom=0)
    elif spec.from_zero:
        ax.set_xlim(left=0)


def _draw(data: PanelFigure, path: Path) -> None:
    """A `PanelFigure` as a PNG: its panels side by side, sharing y."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    cols = max(1, len(data.panels))
    fig = Figure(figsize=(max(6.4, 4.2 * cols), 4.6), layout="constrained")
    axes: list[Axes] = list(fig.subplots(1, cols, sharey=True, squeeze=False)[0])
    fig.suptitle(data.title + (f"\n{data.subtitle}" if data.subtitle else ""))
    for ax, title in zip(axes, data.panels, strict=False):
        ax.set_title(title)
        ax.set_xlabel(data.x.label)
        ax.grid(True, which="both", alpha=0.3)
    for band in data.bands:
        for i, ax in enumerate(axes):
            ax.axhspan(
                band.low, band.high, color="0.9", zorder=0, label=band.label if i == 0 else None
            )
    for rule in data.rules:
        for i, ax in enumerate(axes):
            if rule.panel is not None and rule.panel != i:
                continue
            draw = ax.axhline if rule.axis == "y" else ax.axvline
            first = rule.panel is not None or i == 0
            draw(
                rule.value,
                color="0.5",
                linestyle=_DASHES[rule.dash],
                linewidth=1,
                label=rule.label if first else None,
            )
    for s in data.series:
        ax = axes[s.panel]
        xs, ys = [p.x for p in s.points], [p.y for p in s.points]
        label = s.name if s.in_legend else None
        if not s.markers:
            ax.plot(xs, ys, color=s.color, linestyle=_DASHES[s.dash], linewidth=0.8, label=label)
            continue
        ax.plot(xs, ys, color=s.color, linestyle=_DASHES[s.dash], label=label)
        ax.scatter(
            xs,
            ys,
            marker=_MARKERS[s.marker],
            color=[s.color if not p.few else "white" for p in s.points],
            edgecolors=s.color,
            zorder=3,
        )
    _limits(axes[0], "x", data.x)
    for ax in axes[1:]:
        _limits(ax, "x", data.x)
    _limits(axes[0], "y", data.y)
    axes[0].set_ylabel(data.y.label)
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if data.few_trials:
        handles.append(
            Line2D([], [], marker="o", linestyle="", markerfacecolor="white", color="0.3")
        )
        labels.append(data.few_trials)
    axes[-1].legend(handles, labels, fontsize="small")
    fig.savefig(path, dpi=100)


def figure_data_of(report: Report) -> dict[str, PanelFigure]:
    """What each of the report's PNG files shows, by file name."""
    out = {}
    if report.plotted:
        setting = _setting(report)

        def run(row: BestRow) -> str:
            return report.runs.get(row.study, "")

        out["bits_vs_params.png"] = figure_data.bits_vs_params(
            report.plotted, report.min_trials, setting, tag_of=run
        )
        out["bits_per_param.png"] = figure_data.bits_per_param(
            report.plotted, report.min_trials, setting, tag_of=run
        )
    if report.per_unit:
        out["per_unit.png"] = figure_data.per_unit(
            report.per_unit, report.min_trials, SUCCESS_FRACTION
        )
    return out


def write_report(report: Report, out: Path, name: str = REPORT_FILE) -> list[Path]:
    """Write the figures and the markdown file `name` (default report.md) into the folder
    `out` (which must exist); returns the files written, the markdown last."""
    written = []
    data = figure_data_of(report)
    for figure in report.figures:
        _draw(data[figure], out / figure)
        written.append(out / figure)
    (out / name).write_text(render_markdown(report))
    written.append(out / name)
    return written
