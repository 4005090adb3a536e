"""Rendering of the best-bits tables: markdown, CSV, JSON and LaTeX. The numbers come from
`hpsearch.results.rows`; nothing here computes."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hpsearch.errors import HpsearchError
from hpsearch.results.rows import (
    BEST_TABLE,
    PER_UNIT_TABLE,
    BestRow,
    FitRow,
    Multipliers,
    PerUnitRow,
    TrialRow,
    arch_rank,
)

FORMATS: tuple[str, ...] = ("md", "csv", "json", "latex")
TABLES: tuple[str, ...] = (BEST_TABLE, "fits", "multipliers", PER_UNIT_TABLE, "trials", "all")
# The formats of the trials table (its params and user attrs do not fit a printed table).
TRIALS_FORMATS: tuple[str, ...] = ("csv", "json")


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    key: str = ""  # its --table name, and its key in a JSON export of several tables

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def best_table(rows: Sequence[BestRow]) -> Table:
    columns = tuple(BestRow.__dataclass_fields__)
    return Table(
        "Best bits per (study, depth)",
        columns,
        tuple(tuple(asdict(r).values()) for r in rows),
        key=BEST_TABLE,
    )


def fits_table(rows: Sequence[FitRow]) -> Table:
    columns = tuple(FitRow.__dataclass_fields__)
    return Table(
        "Bits per parameter per (arch, depth)",
        columns,
        tuple(tuple(asdict(r).values()) for r in rows),
        key="fits",
    )


def per_unit_table(rows: Sequence[PerUnitRow]) -> Table:
    columns = tuple(PerUnitRow.__dataclass_fields__)
    return Table(
        "Best fraction reconstructed per (per-unit study, depth)",
        columns,
        tuple(tuple(asdict(r).values()) for r in rows),
        key=PER_UNIT_TABLE,
    )


def trials_table(rows: Sequence[TrialRow], flat: bool) -> Table:
    """Every trial. Nested (`flat` False, for JSON): `params` and `user_attrs` are objects.
    Flat (for CSV), as Optuna's `trials_dataframe` does it: a column `params_<name>` per
    parameter and `user_attrs_<name>` per user attr of any trial, in name order, empty where
    a trial has none, a nested value (a config, a list) as JSON text."""
    fixed = tuple(f for f in TrialRow.__dataclass_fields__ if f not in ("params", "user_attrs"))
    title = "Every trial of the selected studies"
    if not flat:
        columns = (*fixed, "params", "user_attrs")
        return Table(
            title, columns, tuple(tuple(getattr(r, c) for c in columns) for r in rows), "trials"
        )
    params = sorted({name for r in rows for name in r.params})
    attrs = sorted({name for r in rows for name in r.user_attrs})

    def cell(values: dict[str, Any], name: str) -> Any:
        value = values.get(name)
        return to_json(value, indent=None) if isinstance(value, dict | list) else value

    return Table(
        title,
        (*fixed, *(f"params_{n}" for n in params), *(f"user_attrs_{n}" for n in attrs)),
        tuple(
            (
                *(getattr(r, c) for c in fixed),
                *(cell(r.params, n) for n in params),
                *(cell(r.user_attrs, n) for n in attrs),
            )
            for r in rows
        ),
        "trials",
    )


def multipliers_table(matrices: Sequence[Multipliers]) -> Table:
    """The matrices of `multipliers_by_tag` one under another, a row per (tag, arch), a
    column per arch of any of them; an arch that a tag's studies lack is NaN in its column
    (shown "-", null in JSON). The tag column comes last, as in the other tables."""
    archs = tuple(sorted({a for m in matrices for a in m.archs}, key=lambda a: (arch_rank(a), a)))
    rows = []
    for m in matrices:
        for a, mean, ratios in zip(m.archs, m.mean_bits_per_param, m.ratio, strict=True):
            by_arch = dict(zip(m.archs, ratios, strict=True))
            rows.append((a, mean, *(by_arch.get(b, math.nan) for b in archs), m.tag))
    return Table(
        "Architecture multipliers (row / column, mean best bits per parameter)",
        ("arch", "mean_bits_per_param", *archs, "tag"),
        tuple(rows),
        key="multipliers",
    )


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


_LATEX_SPECIAL = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def _latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _md_cell(value: object) -> str:
    return _cell(value).replace("|", "\\|")


def _md(table: Table) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def _csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    return buffer.getvalue()


def _tex(table: Table) -> str:
    align = "".join(
        "r" if isinstance(v, int | float) else "l"
        for v in (table.rows[0] if table.rows else table.columns)
    )
    lines = [
        f"% {table.title}",
        f"\\begin{{tabular}}{{{align}}}",
        "\\toprule",
        " & ".join(_latex(c) for c in table.columns) + r" \\",
        "\\midrule",
    ]
    lines += [" & ".join(_latex(_cell(v)) for v in row) + r" \\" for row in table.rows]
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def strict(value: Any) -> Any:
    """`value` with every NaN and infinity, at any depth, turned into None: JSON has no
    spelling for them (`json.dumps` writes NaN, which strict parsers refuse)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def to_json(value: Any, indent: int | None = 2) -> str:
    """Strict JSON: non-finite numbers are null."""
    return json.dumps(strict(value), indent=indent, allow_nan=False)


def render(tables: Sequence[Table], fmt: str) -> str:
    """One table in any format; several in md, latex (one after another) or json (an object
    keyed by table). JSON is strict: a NaN (a ratio to an arch of 0 bits per parameter, an
    arch a tag lacks) is null."""
    if fmt not in FORMATS:
        raise HpsearchError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "json":
        if len(tables) == 1:
            return to_json(tables[0].records()) + "\n"
        keys = [t.key for t in tables]
        if "" in keys or len(set(keys)) != len(keys):
            raise ValueError(f"tables for one JSON object need distinct keys, got {keys}")
        return to_json({t.key: t.records() for t in tables}) + "\n"
    if fmt == "csv":
        if len(tables) != 1:
            raise HpsearchError(
                "csv holds one table: choose --table best, fits, multipliers, per-unit or trials"
            )
        return _csv(tables[0])
    one = _md if fmt == "md" else _tex
    if len(tables) == 1:
        return one(tables[0])
    if fmt == "md":
        return "\n".join(f"## {t.title}\n\n" + one(t) for t in tables)
    return "\n".join(one(t) for t in tables)  # each LaTeX table opens with its title
