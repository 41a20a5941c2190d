"""The leaderboard pages: ``leaderboards/README.md`` and the self-contained ``index.html``.

The HTML page inlines ``page.js`` and ``page.css`` (package files,
read with importlib.resources): no external assets. Its data are embedded as escaped JSON
and put into the page with ``textContent`` only, and its Content-Security-Policy lets only
that exact script and style run. What an auditor gets: one tab per dataset (``index.html#<dataset>``
opens a tab, ``#<dataset>/<id prefix>`` also an entry's details; a tab click updates the
address), sortable columns, mean ± std over seeds where an entry has several, the
provenance columns (suite version, config hash, preparation fingerprint) within 1,400 px,
a line under every entry with its reproduce command (``python -m benchmark reproduce <id>``,
``benchmark.reproduce``), and per entry, on a click of its config hash: the full config, the
reproduce command, every seed's figures and the full hashes. README.md lists the same
commands under each table.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

from benchmark.data.datasets import get_dataset
from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_text
from benchmark.leaderboard.board import (
    DEFAULT_DIR,
    ID_CHARS,
    SORT_METRIC,
    TABLE_METRICS,
    entry_id,
    load_board,
    official_data,
    rank_key,
    real_datasets,
)
from benchmark.leaderboard.submission import check_url

REPRODUCE = "python -m benchmark reproduce {id}"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def _safe_url(value: Any) -> str | None:
    """A URL fit for a link, re-checked at render time (a file may have been edited by hand)."""
    return check_url(value, "url", []) if isinstance(value, str) else None


def _short_sha(code: Any) -> str:
    if not isinstance(code, dict) or not code.get("git_sha"):
        return ""
    return _text(code.get("git_sha"))[:8] + (", dirty" if code.get("dirty") else "")


def reproduce_command(entry: dict[str, Any]) -> str:
    """``python -m benchmark reproduce <entry id prefix>``."""
    return REPRODUCE.format(id=entry_id(entry)[:ID_CHARS]) if entry_id(entry) else ""


def _rows(board: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for rank, entry in enumerate(sorted(board["entries"], key=rank_key), start=1):
        metrics = entry.get("metrics") if isinstance(entry.get("metrics"), dict) else {}
        std = entry.get("metrics_std") if isinstance(entry.get("metrics_std"), dict) else {}
        authors = entry.get("authors")
        suite = entry.get("suite_version") if isinstance(entry.get("suite_version"), dict) else {}
        sha = _text(suite.get("git_sha"))
        seeds = [s for s in entry.get("seeds", []) if isinstance(s, dict)] if isinstance(entry.get("seeds"), list) else []
        config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        rows.append({
            "rank": rank,
            "id": entry_id(entry)[:ID_CHARS],
            "id_full": entry_id(entry) or f"row-{rank}",
            "model": _text(entry.get("model")),
            "authors": ", ".join(map(_text, authors)) if isinstance(authors, list) else _text(authors),
            "metrics": {key: _number(metrics.get(key)) for key, _, _ in TABLE_METRICS},
            "std": {key: _number(std.get(key)) for key, _, _ in TABLE_METRICS},
            "n": len(seeds) or 1,  # entries from before seeds were recorded are one run
            "code_url": _safe_url(entry.get("code_url")),
            "paper_url": _safe_url(entry.get("paper_url")),
            "config_hash": _text(entry.get("config_hash")),
            "config": json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False, default=str),
            "fingerprint": _text(entry.get("dataset_fingerprint"))[:ID_CHARS],
            "fingerprint_full": _text(entry.get("dataset_fingerprint")),
            "data_identity": _text(entry.get("data_identity")),
            "preparation_version": entry.get("preparation_version") if isinstance(entry.get("preparation_version"), int) else None,
            "missing": entry.get("n_users_missing") if isinstance(entry.get("n_users_missing"), int) else None,
            "n_test_users": entry.get("n_test_users") if isinstance(entry.get("n_test_users"), int) else None,
            "date": _text(entry.get("date")),
            "suite": _text(suite.get("version")) + (f" {sha[:8]}" if sha else ""),
            "suite_full": _text(suite.get("version")) + (f" {sha}" if sha else "") + (" (dirty)" if suite.get("dirty") else ""),
            "suite_dirty": suite.get("dirty") is True,
            "reproduce": reproduce_command(entry),
            "seeds": [
                {
                    "seed": s.get("seed") if isinstance(s.get("seed"), int) else None,
                    **{name: _number((s.get("metrics") or {}).get(key)) for name, key in (("ndcg", "ndcg@10"), ("hr", "hr@10"), ("recall", "recall@10"))},
                    "lists": _text(s.get("predictions_sha256"))[:ID_CHARS],
                    "code": _short_sha(s.get("code")),
                }
                for s in seeds
            ],
        })  # fmt: skip
    return rows


def _md(text: str) -> str:
    """Markdown text: HTML-escaped (GitHub renders inline HTML), emphasis, code, links and
    table pipes made literal, and no block syntax at the start."""
    escaped = re.sub(r"([\\`*_\[\]|~])", r"\\\1", html.escape(text, quote=True)).replace("\n", " ")
    return "\\" + escaped if escaped[:1] in ("#", "+", "-", "=", "!") else escaped


def _md_link(label: str, url: str | None) -> str:
    if not url:
        return ""
    target = url.replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")
    return f"[{label}](<{target}>)"


def _md_metric(row: dict[str, Any], key: str) -> str:
    mean, std = row["metrics"][key], row["std"][key]
    if mean is None:
        return ""
    return f"{mean:.4f} ± {std:.4f}" if row["n"] > 1 and std is not None else f"{mean:.4f}"


def _data_block(board: dict[str, Any]) -> dict[str, Any] | None:
    data = official_data(board)
    if data is None:
        return None
    return {"identity": data["identity"], "fixed_by": data["fixed_by"], "raw_files": sorted(data["raw_files"].items())}


def render_markdown(boards: dict[str, dict[str, Any]]) -> str:
    """``leaderboards/README.md``: one table per dataset, its data identity above it."""
    lines = [
        "# Leaderboards",
        "",
        "Generated by `python -m benchmark leaderboard render` from the JSON files in this folder; do not edit by hand.",
        "Every number was recomputed by the suite from the submitted top-K lists (`python -m benchmark submit`) on the",
        "official split: default preparation, per-user leave-one-out split, full ranking over all items, seen items",
        "masked. Rows are ordered by NDCG@10; with several seeds a cell is the mean ± sample std over seeds (the seeds",
        "column is n). Each board takes one data identity: the SHA-256 of its raw files and the protocol. Reproduce an",
        f"entry with `{REPRODUCE.format(id='<id>')}` (its id column). Definitions of the metrics: DESIGN.md.",
        "",
    ]
    header = ["#", "model", "authors"] + [label for _, label, _ in TABLE_METRICS] + ["seeds", "links", "date", "suite", "config", "fingerprint", "id"]
    first_metric, last_metric = 3, 3 + len(TABLE_METRICS)
    for dataset, board in boards.items():
        spec = get_dataset(dataset)
        lines += [f"## {_md(dataset)}", "", _md(spec.description), ""]
        data = _data_block(board)
        if data is not None:
            files = ", ".join(f"{_md(name)} `{digest[:16]}`" for name, digest in data["raw_files"])
            lines += [f"Data identity `{data['identity'][:16]}` ({_md(data['fixed_by'])}); raw files (SHA-256): {files}.", ""]
        rows = _rows(board)
        if not rows:
            lines += ["No verified entries yet.", ""]
            continue
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---:" if i == 0 or first_metric <= i <= last_metric else "---" for i in range(len(header))) + "|")
        for row in rows:
            cells = [str(row["rank"]), _md(row["model"]), _md(row["authors"])]
            cells += [_md_metric(row, key) for key, _, _ in TABLE_METRICS]
            links = " ".join(x for x in (_md_link("code", row["code_url"]), _md_link("paper", row["paper_url"])) if x)
            suite = _md(row["suite"]) + (" (dirty)" if row["suite_dirty"] else "")
            cells += [str(row["n"]), links, _md(row["date"]), suite, f"`{_md(row['config_hash'])}`" if row["config_hash"] else "",
                      _md(row["fingerprint"]), f"`{_md(row['id'])}`" if row["id"] else ""]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        commands = [f"- {row['rank']} {_md(row['model'])}: `{row['reproduce']}`" for row in rows if row["reproduce"]]
        if commands:
            lines += ["Reproduce an entry:", "", *commands, ""]
    return "\n".join(lines)


def embed_json(payload: Any) -> str:
    """JSON for a ``<script type="application/json">`` block: ``<``, ``>`` and ``&`` as
    ``\\u003c`` etc., so no string can close the element or start markup."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, sort_keys=True)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def page_asset(name: str) -> str:
    """The text of a static page file shipped in the package (``page.js``/``.css``)."""
    return resources.files("benchmark.leaderboard").joinpath(name).read_text(encoding="utf-8")


def page_columns() -> list[dict[str, Any]]:
    """The page's table columns, in order (the provenance ones are marked ``prov``)."""
    cols: list[dict[str, Any]] = [
        {"key": "rank", "label": "#", "numeric": True, "metric": False},
        {"key": "model", "label": "model", "numeric": False, "metric": False},
        {"key": "authors", "label": "authors", "numeric": False, "metric": False},
    ]
    cols += [{"key": key, "label": label, "numeric": True, "metric": True, "higher": higher} for key, label, higher in TABLE_METRICS]
    cols += [
        {"key": "n", "label": "seeds", "numeric": True, "metric": False, "title": "number of seeds; metric cells are mean and ± sample std"},
        {"key": "links", "label": "links", "numeric": False, "metric": False},
        {"key": "suite", "label": "suite", "numeric": False, "metric": False, "prov": True, "title": "suite version and git sha that scored the lists"},
        {"key": "config_hash", "label": "config", "numeric": False, "metric": False, "prov": True, "title": "config hash; click one to see the config"},
        {"key": "fingerprint", "label": "fingerprint", "numeric": False, "metric": False, "prov": True, "title": "preparation fingerprint of the split"},
    ]  # fmt: skip
    return cols


def _csp_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def render_html(boards: dict[str, dict[str, Any]]) -> str:
    """The self-contained ``index.html``."""
    script, style = page_asset("page.js"), page_asset("page.css")
    payload = {
        "columns": page_columns(),
        "datasets": [
            {"name": name, "description": get_dataset(name).description, "data": _data_block(board), "rows": _rows(board)}
            for name, board in boards.items()
        ],
    }
    # Only this exact script and style may run (defence in depth on top of escaping and textContent).
    csp = f"default-src 'none'; style-src '{_csp_hash(style)}'; script-src '{_csp_hash(script)}'; base-uri 'none'; form-action 'none'"
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{html.escape(csp, quote=False)}\">\n"  # no double quotes in csp
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>llm4rec-bench leaderboards</title>\n"
        f"<style>{style}</style>\n</head>\n<body>\n"
        "<h1>llm4rec-bench leaderboards</h1>\n"
        "<p class=\"lead\">Verified entries: every metric was recomputed by the suite from the submitted top-K lists on the "
        "official split (default preparation, leave-one-out, full ranking over all items); with several seeds a cell is the "
        "mean \u00b1 sample std. Click a column header to sort, a config hash for the config, the reproduce command and the "
        f"provenance. Rows are ordered by {SORT_METRIC.upper()}.</p>\n"
        "<nav id=\"tabs\" role=\"tablist\"></nav>\n<main id=\"panels\"></main>\n"
        "<noscript><p>The tables need JavaScript; the same data is in README.md and the JSON files beside this page.</p></noscript>\n"
        f"<script type=\"application/json\" id=\"leaderboard-data\">{embed_json(payload)}</script>\n"
        f"<script>{script}</script>\n</body>\n</html>\n"
    )


def render(directory: str | Path = DEFAULT_DIR) -> dict[str, Any]:
    """Write ``README.md`` and ``index.html`` in ``directory`` from its leaderboard files."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BenchmarkError(f"leaderboard folder {directory} not found")
    boards = {name: load_board(directory, name) for name in real_datasets()}
    atomic_write_text(directory / "README.md", render_markdown(boards))  # published files: 0644
    atomic_write_text(directory / "index.html", render_html(boards))
    return {name: len(board["entries"]) for name, board in boards.items()}
