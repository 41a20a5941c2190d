"""Renderers of a ``Collection``: Markdown, CSV (long form), LaTeX and HTML (pandas Styler), JSON.

Every table becomes one ``Grid`` (rows of cells under optional column groups: the datasets
of a cross-dataset table), so each text format is written once for all table kinds. User
text (model names, configuration labels, paths) is escaped for each format.
"""

from __future__ import annotations

from pathlib import Path

import csv
import html
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.records import Skipped
from benchmark.results.tables import (
    BETTER,
    WORSE,
    Cell,
    Collection,
    CrossTable,
    Table,
    arrow,
    direction,
)

FORMATS = ("md", "csv", "latex", "html", "json")


@dataclass
class Grid:
    kind: str  # "comparison" | "ablation" | "across-datasets"
    heading: str
    description: str
    groups: list[str] | None  # column groups (datasets), each with every metric; None: one group
    metrics: list[str]
    rows: list[tuple[str, str, list[Cell | None]]]  # (label, seeds, cells group by group)
    legend: Callable[[Callable[[str], str]], str]

    def headers(self) -> list[str]:
        return [f"{m} {arrow(m)}" for m in self.metrics]


def grid(table: Table | CrossTable) -> Grid:
    if isinstance(table, CrossTable):
        rows = []
        for label in table.rows:
            seeds = "/".join("–" if n is None else str(n) for n in table.seeds(label))
            rows.append((label, seeds, [table.cell(label, name, m) for name, _ in table.datasets for m in table.metrics]))
        return Grid(table.kind, table.heading(), table.description(), [n for n, _ in table.datasets], table.metrics, rows, table.legend)
    rows = [(r.label, str(len(r.runs)), [r.cells[m] for m in table.metrics]) for r in table.rows]
    return Grid(table.kind, table.heading(), table.protocol.description(), None, table.metrics, rows, table.legend)


def cell_parts(cell: Cell | None, kind: str) -> tuple[str, str]:
    """(value text, suffix): the suffix (marker, ablation delta) stays outside Markdown's bold."""
    if cell is None or cell.mean is None:
        return "–", ""
    text = f"{cell.mean:.4f}" + (f" ± {cell.std:.4f}" if cell.std is not None else "")
    suffix = cell.marker
    if kind == "ablation" and cell.delta is not None:
        suffix += f" (Δ {cell.delta:+.4f})"
    return text, suffix


# --- Markdown ---------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]|#])")


def md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def render_markdown(collection: Collection) -> str:
    out = []
    for table in collection.tables:
        g = grid(table)
        out.append(f"## {md_escape(g.heading)}\n\n{md_escape(g.description)}\n")
        headers = g.headers() if g.groups is None else [f"{group} {h}" for group in g.groups for h in g.headers()]
        out.append("| model | seeds | " + " | ".join(md_escape(h) for h in headers) + " |")
        out.append("|---|---:|" + "---:|" * len(headers))
        for label, seeds, cells in g.rows:
            texts = []
            for cell in cells:
                text, suffix = cell_parts(cell, g.kind)
                rank = cell.rank if cell is not None else None
                if rank == 1:
                    text = f"**{text}**"
                elif rank == 2:
                    text = f"<ins>{text}</ins>"  # GitHub Markdown has no underline syntax
                texts.append(text + suffix)
            out.append(f"| {md_escape(label)} | {seeds} | " + " | ".join(texts) + " |")
        out.append(f"\n{g.legend(md_escape)}\n")  # the legend's own text is plain; the row labels it names are escaped
    out += [f"Note: {md_escape(note)}" for note in collection.notes] + ([""] if collection.notes else [])
    out.extend(_skipped_lines(collection.skipped, md_escape))
    return "\n".join(out).rstrip() + "\n"


def _skipped_lines(skipped: list[Skipped], escape: Callable[[str], str]) -> list[str]:
    if not skipped:
        return []
    return [f"Skipped runs ({len(skipped)}):\n"] + [f"- {escape(s.path)}: {escape(s.reason)}" for s in skipped] + [""]


# --- LaTeX and HTML through pandas' Styler ------------------------------------------------


def _frame(g: Grid, text: Callable[[str], str], cell_text: Callable[[Cell | None], str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cell strings, ranks 0/1/2) of a grid, with a two-level header for column groups."""
    headers = [text(h) for h in g.headers()]
    if g.groups is None:
        columns: Any = ["Model", "Seeds", *headers]
    else:
        columns = pd.MultiIndex.from_tuples([("", "Model"), ("", "Seeds")] + [(text(group), h) for group in g.groups for h in headers])
    values = [[text(label), text(seeds), *map(cell_text, cells)] for label, seeds, cells in g.rows]
    ranks = [[0, 0, *((c.rank or 0) if c is not None else 0 for c in cells)] for _, _, cells in g.rows]
    return pd.DataFrame(values, columns=columns), pd.DataFrame(ranks, columns=columns)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
    "[": "{[}", "]": "{]}",  # a cell starting with [ would be read as the optional argument of the row's \\
}  # fmt: skip
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))
_LATEX_SYMBOLS = {
    "±": r"$\pm$", "Δ": r"$\Delta$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", BETTER: r"$^{\blacktriangle}$",
    WORSE: r"$^{\blacktriangledown}$", "·": r"$\cdot$", "–": "--", "…": r"\dots{}",
}  # fmt: skip


def latex_escape(text: str) -> str:
    text = _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], text)
    for symbol, command in _LATEX_SYMBOLS.items():  # after the specials: the commands' $ and \ stay as they are
        text = text.replace(symbol, command)
    return text


def render_latex(collection: Collection) -> str:
    out = ["% generated by `python -m benchmark collect`; needs \\usepackage{booktabs} and \\usepackage{amssymb}"]
    for table in collection.tables:
        g = grid(table)
        frame, ranks = _frame(g, latex_escape, lambda c, kind=g.kind: latex_escape("".join(cell_parts(c, kind))))
        styles = ranks.map(lambda r: {1: "textbf: --rwrap;", 2: "underline: --rwrap;"}.get(r, ""))
        caption = latex_escape(f"{g.heading}. {g.description}. {g.legend(lambda s: s)}")
        styler = frame.style.hide(axis="index").apply(lambda _, css=styles: css, axis=None)
        out.append(styler.to_latex(hrules=True, column_format="lr" + "r" * (frame.shape[1] - 2), multicol_align="c", caption=caption,
                                   position="ht", position_float="centering", environment="table"))  # fmt: skip
    out += [f"% note: {n}".replace("\n", " ") for n in collection.notes]
    out += [f"% skipped {s.path}: {s.reason}".replace("\n", " ") for s in collection.skipped]
    return "\n".join(out).rstrip() + "\n"


_HTML_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 0.3em}th,td{padding:0.25em 0.6em;text-align:right;white-space:nowrap}
td.col0{text-align:left}thead tr:last-child th{border-bottom:2px solid #444}tbody tr:last-child td{border-bottom:2px solid #444}
th.level0{text-align:center}td.best{font-weight:bold}td.second{text-decoration:underline}
p.legend{font-size:0.85em;color:#555;max-width:70em}p.protocol{color:#444}"""


def render_html(collection: Collection) -> str:
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>llm4rec-bench results</title>',
           f"<style>{_HTML_STYLE}</style></head><body>", "<h1>llm4rec-bench results</h1>"]  # fmt: skip
    for i, table in enumerate(collection.tables):
        g = grid(table)
        frame, ranks = _frame(g, lambda s: s, lambda c, kind=g.kind: "".join(cell_parts(c, kind)))
        classes = ranks.map(lambda r: {1: "best", 2: "second"}.get(r, ""))
        styler = frame.style.hide(axis="index").set_td_classes(classes).format(escape="html").format_index(escape="html", axis=1)
        out += [f"<h2>{esc(g.heading)}</h2>", f'<p class="protocol">{esc(g.description)}</p>', styler.to_html(table_uuid=f"t{i}"),
                f'<p class="legend">{esc(g.legend(lambda s: s))}</p>']  # fmt: skip
    if collection.notes:
        out += ["<ul>"] + [f"<li>{esc(n)}</li>" for n in collection.notes] + ["</ul>"]
    if collection.skipped:
        out.append(f"<h2>Skipped runs ({len(collection.skipped)})</h2><ul>")
        out += [f"<li>{esc(s.path)}: {esc(s.reason)}</li>" for s in collection.skipped]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --- CSV and JSON ---------------------------------------------------------------------------

CSV_COLUMNS = [
    "table", "dataset", "data_source", "split", "eval_protocol", "sampling", "ks", "streaming", "fingerprint", "model",
    "label", "config_hash", "n_runs", "metric", "direction", "mean", "std", "n", "rank", "reference", "test", "p_value",
    "p_holm", "diff", "marker", "significant", "delta",
]  # fmt: skip


def _raw(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _csv_rows(kind: str, table: Table, metrics: list[str]) -> list[dict[str, Any]]:
    p = table.protocol
    base = {"table": kind, "dataset": p.dataset, "data_source": p.data_source, "split": p.split, "eval_protocol": p.eval_protocol,
            "sampling": " ".join(map(str, p.sampling)) if p.sampling else "", "ks": " ".join(map(str, p.ks)),
            "streaming": p.streaming, "fingerprint": p.fingerprint, "reference": table.reference or "", "test": table.test}  # fmt: skip
    return [
        {**base, "model": row.model, "label": row.label, "config_hash": row.config_hash or "", "n_runs": len(row.runs), "metric": m,
         "direction": direction(m), "mean": _raw(c.mean), "std": _raw(c.std), "n": c.n, "rank": c.rank or "",
         "p_value": _raw(c.p_value), "p_holm": _raw(c.p_holm), "diff": _raw(c.diff), "marker": c.marker, "significant": c.significant,
         "delta": _raw(c.delta)}
        for row in table.rows for m in metrics if (c := row.cells[m]) is not None
    ]  # fmt: skip


def render_csv(collection: Collection) -> str:
    """Long form: one line per (table, dataset, row, metric), so it loads straight into a data frame."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for table in collection.tables:
        parts = [t for _, t in table.datasets] if isinstance(table, CrossTable) else [table]
        for part in parts:
            writer.writerows(_csv_rows(table.kind, part, table.metrics))
    return buffer.getvalue()


def render_json(collection: Collection) -> str:
    return json.dumps(collection.as_dict(), indent=2, default=str) + "\n"


RENDERERS: dict[str, Callable[[Collection], str]] = {
    "md": render_markdown, "csv": render_csv, "latex": render_latex, "html": render_html, "json": render_json,
}  # fmt: skip


def render(collection: Collection, fmt: str = "md") -> str:
    if fmt not in RENDERERS:
        raise BenchmarkError(f"--format must be one of {FORMATS}, got {fmt!r}")
    return RENDERERS[fmt](collection)


EXTENSIONS = {".md": "md", ".csv": "csv", ".tex": "latex", ".html": "html", ".json": "json"}


def output_format(output: str | None, fmt: str | None) -> str:
    """The format to write: ``--format`` (default md) on stdout; the extension of ``--output``
    otherwise, refused when unknown or when ``--format`` says something else."""
    if output is None:
        return fmt or "md"
    suffix = Path(output).suffix.lower()
    inferred = EXTENSIONS.get(suffix)
    if inferred is None:
        known = ", ".join(f"{ext} ({name})" for ext, name in EXTENSIONS.items())
        raise BenchmarkError(f"--output {output}: unknown extension {suffix or '(none)'!r}; the format follows the extension: {known}")
    if fmt is not None and fmt != inferred:
        raise BenchmarkError(f"--format {fmt} conflicts with --output {output}, whose extension {suffix} means {inferred}: "
                             "drop --format or change the extension")  # fmt: skip
    return inferred
