"""`python -m benchmark collect`: comparison and ablation tables, and plots, from run records.

Only run records are read (``<runs>/<run_id>/result.json`` and ``per_user_test.parquet``
beside it). Runs are grouped by everything that makes their numbers comparable: dataset,
data source, dataset fingerprint, split, evaluation protocol (full / sampled with its
negatives and sampler / streaming) and K set. Each group gives

- a comparison table: one row per model (per model and config hash where a model was run
  with several configurations), one column per metric at ``@K``, mean ± sample standard
  deviation (ddof = 1) over the row's runs (seeds); the best value per column in bold, the
  second underlined (gini and groupdisparity: lower is better; usergap-ndcg: lower absolute
  value is better; every other metric: higher is better), and ``†`` where the row differs
  from the best baseline (the best non-LLM4Rec row by NDCG@K) in a paired test over test
  users (``benchmark.stats.paired_tests``; per-user values averaged over each row's seeds
  first, users paired by raw id). Only metrics with per-user values can be tested (ndcg, hr,
  recall, mrr, ild, novelty); catalogue-level ones (coverage, gini, entropy, tailshare,
  usergap-ndcg, groupdisparity) never carry a marker.
- an ablation table (when the group has ``llm4rec`` or ``llm4rec-*`` runs): those rows only,
  each cell with its difference to full LLM4Rec and ``†`` where that difference is
  significant.

LLM4Rec's ablations (``llm4rec-*``) appear in the ablation table, not in the comparison
table. Runs whose status is not "completed", unreadable records and runs superseded by a
later run of the same model, config hash and seed are listed as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import html
import io
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.records import PER_USER_FILE
from benchmark.stats import paired_tests
from benchmark.errors import BenchmarkError

ACCURACY = ("ndcg", "hr", "recall", "mrr")
DIVERSITY = ("ild", "coverage", "gini", "entropy", "novelty")
FAIRNESS = ("tailshare", "usergap-ndcg", "groupdisparity")
METRICS = ACCURACY + DIVERSITY + FAIRNESS
LOWER_IS_BETTER = frozenset({"gini", "groupdisparity"})
ABS_LOWER_IS_BETTER = frozenset({"usergap-ndcg"})  # signed gap; closest to 0 is fairest
FORMATS = ("md", "csv", "latex", "html")
TESTS = ("ttest", "wilcoxon")
POPULARITY_COLUMN = "test_item_popularity"  # written by benchmark.runner since the collector exists
DAGGER = "†"


# --- records ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """What must be equal for two runs' numbers to share a table."""

    dataset: str
    data_source: str
    fingerprint: str
    split: str
    eval_protocol: str
    sampling: tuple[Any, ...] | None  # (negatives, sampler) under the sampled protocol
    ks: tuple[int, ...]
    streaming: bool

    @classmethod
    def of(cls, record: dict[str, Any]) -> Protocol:
        ks = record.get("config", {}).get("train_config", {}).get("ks")
        if not ks:  # older or foreign records: the K set is what the test metrics were cut at
            ks = {int(key.rsplit("@", 1)[1]) for key in record["metrics"]["test"] if "@" in key}
        sampling = record.get("eval_sampling")
        return cls(
            dataset=str(record["dataset"]),
            data_source=str(record.get("data_source", "unknown")),
            fingerprint=str(record["dataset_fingerprint"]),
            split=str(record.get("split", "unknown")),
            eval_protocol=str(record.get("eval_protocol", "full")),
            sampling=(sampling.get("negatives"), sampling.get("sampler")) if sampling else None,
            ks=tuple(sorted(int(k) for k in ks)),
            streaming="streaming" in record,
        )

    @property
    def synthetic(self) -> bool:
        return self.data_source == "synthetic"

    def title(self) -> str:
        source = "SYNTHETIC data (simulator)" if self.synthetic else f"{self.data_source} data"
        return f"{self.dataset}, {source}"

    def description(self) -> str:
        if self.eval_protocol == "sampled" and self.sampling:
            evaluation = f"SAMPLED evaluation ({self.sampling[0]} {self.sampling[1]} negatives per user)"
        elif self.eval_protocol == "full":
            evaluation = "full ranking"
        else:
            evaluation = f"{self.eval_protocol} evaluation"
        parts = [f"split {self.split}", evaluation, "K = " + ", ".join(map(str, self.ks)), f"fingerprint {self.fingerprint[:12]}"]
        if self.streaming:
            parts.insert(2, "streaming protocol")
        return " · ".join(parts)

    def slug(self) -> str:
        evaluation = self.eval_protocol + ("".join(str(s) for s in self.sampling) if self.sampling else "")
        text = f"{self.dataset}-{self.split}-{evaluation}-{self.fingerprint[:8]}-k{'_'.join(map(str, self.ks))}"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text + ("-streaming" if self.streaming else ""))

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "sampling": list(self.sampling) if self.sampling else None, "ks": list(self.ks)}


@dataclass
class Run:
    """One completed run record and its folder; the per-user frame is read on first use."""

    path: Path
    record: dict[str, Any]
    _per_user: pd.DataFrame | None = field(default=None, repr=False)
    _per_user_read: bool = field(default=False, repr=False)

    @property
    def model(self) -> str:
        return str(self.record["model"])

    @property
    def run_id(self) -> str:
        return str(self.record.get("run_id", self.path.name))

    def metric(self, key: str) -> float | None:
        value = self.record["metrics"]["test"].get(key)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)

    def per_user(self) -> pd.DataFrame | None:
        """The per-user test values (None when the file is missing, e.g. a run from elsewhere)."""
        if not self._per_user_read:
            file = self.path / PER_USER_FILE
            self._per_user = pd.read_parquet(file) if file.is_file() else None
            self._per_user_read = True
        return self._per_user


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def load_runs(runs_dir: str | Path, dataset: str | None = None, *, progress: bool = False) -> tuple[list[Run], list[Skipped]]:
    """Completed runs under ``runs_dir`` (``<run_id>/result.json``; a folder holding ``runs/``
    works too), optionally of one dataset, and the runs left out with their reasons."""
    from tqdm import tqdm

    root = Path(runs_dir)
    if not root.is_dir():
        raise BenchmarkError(f"--runs {runs_dir}: no such folder (expected the runs/ folder that `run` writes)")
    if not any(root.glob("*/result.json")) and (root / "runs").is_dir():
        root = root / "runs"
    files = sorted(root.glob("*/result.json"))
    if not files:
        raise BenchmarkError(f"--runs {runs_dir}: no run records (<run_id>/result.json) found")
    runs: list[Run] = []
    skipped: list[Skipped] = []
    for file in tqdm(files, desc="run records", unit="run", disable=not progress, file=sys.stderr):
        try:
            record = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            skipped.append(Skipped(str(file.parent), f"result.json is unreadable ({type(exc).__name__})"))
            continue
        if not isinstance(record, dict):
            skipped.append(Skipped(str(file.parent), "result.json is not a JSON object"))
            continue
        if dataset is not None and record.get("dataset") != dataset:
            continue
        status = record.get("status")
        if status != "completed":
            skipped.append(Skipped(str(file.parent), f"status is {status!r}, not 'completed'"))
            continue
        missing = [k for k in ("model", "dataset", "dataset_fingerprint") if not record.get(k)]
        if not isinstance(record.get("metrics"), dict) or not isinstance(record["metrics"].get("test"), dict):
            missing.append("metrics.test")
        if missing:
            skipped.append(Skipped(str(file.parent), f"record lacks {', '.join(missing)}"))
            continue
        runs.append(Run(file.parent, record))
    return _drop_superseded(runs, skipped)


def _drop_superseded(runs: list[Run], skipped: list[Skipped]) -> tuple[list[Run], list[Skipped]]:
    """A rerun of the same model, config and seed on the same protocol replaces the earlier one,
    so that a repeated seed is not counted twice in mean ± std."""
    latest: dict[tuple[Any, ...], Run] = {}
    for run in sorted(runs, key=lambda r: (str(r.record.get("finished", "")), r.run_id)):
        key = (Protocol.of(run.record), run.model, run.record.get("config_hash"), run.record.get("seed"))
        if key in latest:
            skipped.append(Skipped(str(latest[key].path), f"superseded by {run.run_id} (same model, config and seed)"))
        latest[key] = run
    kept = set(map(id, latest.values()))
    return [r for r in runs if id(r) in kept], skipped


# --- tables -----------------------------------------------------------------------------


def is_llm4rec(model: str) -> bool:
    return model == "llm4rec" or model.startswith("llm4rec-")


def higher_is_better(metric: str) -> bool:
    return metric.split("@")[0] not in LOWER_IS_BETTER | ABS_LOWER_IS_BETTER


def _score(metric: str, value: float) -> float:
    """Larger is better, whatever the metric's direction."""
    name = metric.split("@")[0]
    if name in ABS_LOWER_IS_BETTER:
        return -abs(value)
    return -value if name in LOWER_IS_BETTER else value


@dataclass
class Cell:
    mean: float | None = None
    std: float | None = None  # None for a single run
    n: int = 0
    rank: int | None = None  # 1 = best (bold), 2 = second (underlined)
    p_value: float | None = None  # paired test against the table's reference row
    delta: float | None = None  # ablation tables: mean - full LLM4Rec's mean
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < self.alpha


@dataclass
class Row:
    label: str
    model: str
    config_hash: str | None
    runs: list[Run]
    cells: dict[str, Cell] = field(default_factory=dict)
    note: str = ""

    @property
    def seeds(self) -> list[Any]:
        return [r.record.get("seed") for r in self.runs]  # runs are kept in seed order

    def per_user(self, metrics: Sequence[str]) -> pd.DataFrame | None:
        """Per-user values averaged over this row's runs (index: raw user id); None when any
        run lacks its per-user file, so that a test never silently drops seeds."""
        frames = [run.per_user() for run in self.runs]
        if any(f is None for f in frames):
            return None
        columns = [m for m in metrics if all(m in f for f in frames)]
        if not columns:
            return None
        stacked = pd.concat([f[["raw_user_id", *columns]].astype({"raw_user_id": str}) for f in frames])
        return stacked.groupby("raw_user_id")[columns].mean()  # NaN-skipping: a user left out by one seed keeps the others


@dataclass
class Table:
    kind: str  # "comparison" | "ablation"
    protocol: Protocol
    metrics: list[str]
    rows: list[Row]
    reference: str | None  # label of the row the tests and deltas compare with
    test: str = "ttest"
    alpha: float = 0.05
    notes: list[tuple[str, str]] = field(default_factory=list)  # (text with "{label}", the row label it names)

    def legend(self, label: Any = str) -> str:
        """The table's legend; ``label`` escapes the row label it names (user-supplied text)."""
        lower = [m for m in self.metrics if m.split("@")[0] in LOWER_IS_BETTER]
        absolute = [m for m in self.metrics if m.split("@")[0] in ABS_LOWER_IS_BETTER]
        directions = "↑ higher is better, ↓ lower is better"
        if lower or absolute:
            directions += f" ({', '.join(lower + [f'|{m}| (closest to 0)' for m in absolute])})"
        test = "paired t-test" if self.test == "ttest" else "Wilcoxon signed-rank test"
        parts = [
            "Mean ± sample std (ddof = 1) over the seeds of each row (std omitted for a single run).",
            f"Bold: best per column; underlined: second. {directions}.",
        ]
        if self.reference is None:
            parts.append("No significance markers: " + ("this table has no baseline." if self.kind == "comparison" else "no full llm4rec run."))
        else:
            against = "the best baseline by NDCG" if self.kind == "comparison" else "full LLM4Rec"
            parts.append(
                f"{DAGGER}: differs from {against} ({label(self.reference)}) with p < {self.alpha:g}, two-sided {test} over test users "
                "on per-user values averaged over seeds; only ndcg/hr/recall/mrr/ild/novelty have per-user values."
            )
        if self.kind == "ablation" and self.reference is not None:
            parts.append(f"(Δ …): difference of the mean to {label(self.reference)}.")
        return " ".join(parts + [text.format(label=label(name)) for text, name in self.notes])

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "protocol": self.protocol.as_dict(),
            "heading": self.protocol.title(),
            "description": self.protocol.description(),
            "metrics": self.metrics,
            "reference": self.reference,
            "test": self.test,
            "alpha": self.alpha,
            "legend": self.legend(),
            "rows": [
                {
                    "label": row.label, "model": row.model, "config_hash": row.config_hash, "seeds": row.seeds,
                    "runs": [run.run_id for run in row.runs], "note": row.note,
                    "cells": {m: {k: v for k, v in dataclasses.asdict(c).items() if k != "alpha"} | {"significant": c.significant}
                              for m, c in row.cells.items()},
                }
                for row in self.rows
            ],
        }  # fmt: skip


@dataclass
class Collection:
    tables: list[Table]
    skipped: list[Skipped]
    groups: dict[Protocol, list[Run]]
    k: int = 10

    def as_dict(self) -> dict[str, Any]:
        return {"k": self.k, "tables": [t.as_dict() for t in self.tables], "skipped": [dataclasses.asdict(s) for s in self.skipped]}


def group_runs(runs: Iterable[Run]) -> dict[Protocol, list[Run]]:
    groups: dict[Protocol, list[Run]] = {}
    for run in runs:
        groups.setdefault(Protocol.of(run.record), []).append(run)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0].dataset, kv[0].synthetic, kv[0].split, kv[0].eval_protocol, kv[0].fingerprint)))


def _rows(runs: list[Run]) -> list[Row]:
    """One row per model; per (model, config hash) where a model has several configurations."""
    by_model: dict[str, dict[str | None, list[Run]]] = {}
    for run in runs:
        by_model.setdefault(run.model, {}).setdefault(run.record.get("config_hash"), []).append(run)
    rows = []
    for model, configs in sorted(by_model.items()):
        differing = _differing_settings({h: members[0].record.get("config") for h, members in configs.items()})
        for config_hash, members in configs.items():
            label = model if len(configs) == 1 else f"{model} [{differing.get(config_hash) or str(config_hash)[:6]}]"
            rows.append(Row(label, model, config_hash, sorted(members, key=lambda r: (r.record.get("seed", 0), r.run_id))))
    return rows


def _differing_settings(configs: dict[Any, Any], limit: int = 3) -> dict[Any, str]:
    """Per config hash, the settings in which a model's configurations differ ("lr=0.01, ..."),
    so that rows of one model under several configurations say what sets them apart."""
    flat: dict[Any, dict[str, Any]] = {}
    for key, config in configs.items():
        if not isinstance(config, dict):
            return {}
        flat[key] = {name: value for group, values in config.items() if isinstance(values, dict) for name, value in values.items()}
    names = sorted({n for values in flat.values() for n in values})
    differ = [n for n in names if len({json.dumps(values.get(n), sort_keys=True, default=str) for values in flat.values()}) > 1]
    if not differ:
        return {}
    shown = differ[:limit]
    more = ", …" if len(differ) > limit else ""
    return {key: ", ".join(f"{n}={values.get(n)}" for n in shown) + more for key, values in flat.items()}


def _fill_cells(rows: list[Row], metrics: list[str], alpha: float) -> None:
    for row in rows:
        for metric in metrics:
            values = [v for v in (run.metric(metric) for run in row.runs) if v is not None]
            cell = Cell(n=len(values), alpha=alpha)
            if values:
                cell.mean = float(np.mean(values))
                cell.std = float(np.std(values, ddof=1)) if len(values) > 1 else None
            row.cells[metric] = cell
    for metric in metrics:
        scored = sorted({_score(metric, r.cells[metric].mean) for r in rows if r.cells[metric].mean is not None}, reverse=True)
        for row in rows:
            cell = row.cells[metric]
            if cell.mean is not None and _score(metric, cell.mean) in scored[:2]:
                cell.rank = scored.index(_score(metric, cell.mean)) + 1  # ties share a mark


def _significance(rows: list[Row], reference: Row, metrics: list[str], test: str) -> list[tuple[str, str]]:
    """Fill each row's p-values against ``reference``; returns notes on rows that could not be tested."""
    notes: list[tuple[str, str]] = []
    ref = reference.per_user(metrics)
    if ref is None:
        return [(f"No tests: {{label}} lacks per-user values ({PER_USER_FILE}).", reference.label)]
    for row in rows:
        if row is reference:
            continue
        mine = row.per_user(metrics)
        if mine is None:
            row.note = f"no {PER_USER_FILE}: not tested"
            notes.append((f"{{label}}: not tested (a run lacks {PER_USER_FILE}).", row.label))
            continue
        paired = mine.join(ref, how="inner", lsuffix="/row", rsuffix="/ref")  # users both evaluated
        for metric in metrics:
            if f"{metric}/row" not in paired or f"{metric}/ref" not in paired:
                continue
            ref_values, row_values = paired[f"{metric}/ref"].to_numpy(np.float64), paired[f"{metric}/row"].to_numpy(np.float64)
            both = ~(np.isnan(ref_values) | np.isnan(row_values))
            t_p, w_p = paired_tests(ref_values[both], row_values[both])
            row.cells[metric].p_value = t_p if test == "ttest" else w_p
    return notes


def build_tables(runs: list[Run], protocol: Protocol, *, k: int = 10, alpha: float = 0.05, test: str = "ttest") -> list[Table]:
    """The comparison table and (if there are LLM4Rec runs) the ablation table of one group."""
    if k not in protocol.ks:
        return []
    present = {key for run in runs for key in run.record["metrics"]["test"]}
    metrics = [f"{name}@{k}" for name in METRICS if f"{name}@{k}" in present]
    ndcg = f"ndcg@{k}"
    tables = []
    rows = _rows([r for r in runs if not (is_llm4rec(r.model) and r.model != "llm4rec")])
    if rows:
        _fill_cells(rows, metrics, alpha)
        baselines = [r for r in rows if not is_llm4rec(r.model) and r.cells.get(ndcg, Cell()).mean is not None]
        best = max(baselines, key=lambda r: r.cells[ndcg].mean) if baselines else None  # type: ignore[arg-type, return-value]
        notes = _significance(rows, best, metrics, test) if best else []
        tables.append(Table("comparison", protocol, metrics, rows, best.label if best else None, test, alpha, notes))
    ablation_rows = _rows([r for r in runs if is_llm4rec(r.model)])
    if ablation_rows:
        _fill_cells(ablation_rows, metrics, alpha)
        full = next((r for r in ablation_rows if r.model == "llm4rec"), None)
        notes: list[tuple[str, str]] = []
        if full is not None:
            notes = _significance(ablation_rows, full, metrics, test)
            for row in ablation_rows:
                for metric in metrics:
                    cell, ref = row.cells[metric], full.cells[metric]
                    if row is not full and cell.mean is not None and ref.mean is not None:
                        cell.delta = cell.mean - ref.mean
        tables.append(Table("ablation", protocol, metrics, ablation_rows, full.label if full else None, test, alpha, notes))
    return tables


def collect(
    runs_dir: str | Path, dataset: str | None = None, *, k: int = 10, alpha: float = 0.05, test: str = "ttest", progress: bool = False
) -> Collection:
    """Every table of the runs under ``runs_dir`` (see the module docstring)."""
    if test not in TESTS:
        raise BenchmarkError(f"--test must be one of {TESTS}, got {test!r}")
    if not 0 < alpha < 1:
        raise BenchmarkError(f"--alpha must lie in (0, 1), got {alpha}")
    runs, skipped = load_runs(runs_dir, dataset, progress=progress)
    if not runs:
        where = f" for dataset {dataset}" if dataset else ""
        raise BenchmarkError(f"--runs {runs_dir}: no completed run{where}" + (f" ({len(skipped)} skipped)" if skipped else ""))
    groups = group_runs(runs)
    tables = []
    for protocol, members in groups.items():
        built = build_tables(members, protocol, k=k, alpha=alpha, test=test)
        if not built:
            skipped.extend(Skipped(str(r.path), f"K = {k} not among the run's cut-offs {list(protocol.ks)}") for r in members)
        tables.extend(built)
    if not tables:
        raise BenchmarkError(f"no run was evaluated at K = {k}")
    return Collection(tables, skipped, groups, k)


# --- rendering --------------------------------------------------------------------------


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _cell_text(cell: Cell, kind: str, pm: str = "±") -> tuple[str, str]:
    """(value text, suffix): the suffix (marker, delta) stays outside bold/underline."""
    if cell.mean is None:
        return "–", ""
    text = _number(cell.mean) + (f" {pm} {_number(cell.std)}" if cell.std is not None else "")
    suffix = DAGGER if cell.significant else ""
    if kind == "ablation" and cell.delta is not None:
        suffix += f" (Δ {cell.delta:+.4f})"
    return text, suffix


def _header(metric: str) -> str:
    return f"{metric} {'↑' if higher_is_better(metric) else '↓'}"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]|#])")


def _md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def render_markdown(collection: Collection) -> str:
    out = []
    for table in collection.tables:
        name = "Comparison" if table.kind == "comparison" else "Ablation (LLM4Rec)"
        out.append(f"## {_md_escape(table.protocol.title())}: {name}\n\n{_md_escape(table.protocol.description())}\n")
        out.append("| model | seeds | " + " | ".join(_header(m) for m in table.metrics) + " |")
        out.append("|---|---:|" + "---:|" * len(table.metrics))
        for row in table.rows:
            cells = []
            for metric in table.metrics:
                cell = row.cells[metric]
                text, suffix = _cell_text(cell, table.kind)
                if cell.rank == 1:
                    text = f"**{text}**"
                elif cell.rank == 2:
                    text = f"<ins>{text}</ins>"  # GitHub Markdown has no underline syntax
                cells.append(text + suffix)
            out.append(f"| {_md_escape(row.label)} | {len(row.runs)} | " + " | ".join(cells) + " |")
        out.append(f"\n{table.legend(_md_escape)}\n")
    out.extend(_skipped_lines(collection.skipped, _md_escape))
    return "\n".join(out).rstrip() + "\n"


def _skipped_lines(skipped: list[Skipped], escape: Any) -> list[str]:
    if not skipped:
        return []
    return [f"Skipped runs ({len(skipped)}):\n"] + [f"- {escape(s.path)}: {escape(s.reason)}" for s in skipped] + [""]


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}  # fmt: skip
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))


def latex_escape(text: str) -> str:
    text = _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], text)
    return text.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$").replace(DAGGER, r"$^\dagger$").replace("·", r"$\cdot$").replace("–", "--")


def render_latex(collection: Collection) -> str:
    out = ["% generated by `python -m benchmark collect`; needs \\usepackage{booktabs}"]
    for table in collection.tables:
        name = "comparison" if table.kind == "comparison" else "ablation (LLM4Rec)"
        caption = f"{table.protocol.title()}: {name}. {table.protocol.description()}. {table.legend()}"
        out += [r"\begin{table}[ht]", r"\centering", r"\small", rf"\caption{{{latex_escape(caption)}}}",
                r"\begin{tabular}{lr" + "r" * len(table.metrics) + "}", r"\toprule",
                "Model & Seeds & " + " & ".join(latex_escape(_header(m)) for m in table.metrics) + r" \\", r"\midrule"]  # fmt: skip
        for row in table.rows:
            cells = []
            for metric in table.metrics:
                cell = row.cells[metric]
                text, suffix = (latex_escape(s) for s in _cell_text(cell, table.kind))
                if cell.rank == 1:
                    text = rf"\textbf{{{text}}}"
                elif cell.rank == 2:
                    text = rf"\underline{{{text}}}"
                cells.append(text + suffix)
            out.append(f"{latex_escape(row.label)} & {len(row.runs)} & " + " & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    for s in collection.skipped:
        out.append(f"% skipped {s.path}: {s.reason}".replace("\n", " "))
    return "\n".join(out).rstrip() + "\n"


_HTML_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 0.3em}th,td{padding:0.25em 0.6em;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}thead th{border-bottom:2px solid #444}tbody tr:last-child td{border-bottom:2px solid #444}
p.legend{font-size:0.85em;color:#555;max-width:70em}p.protocol{color:#444}"""


def render_html(collection: Collection) -> str:
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>llm4rec-bench results</title>',
           f"<style>{_HTML_STYLE}</style></head><body>", "<h1>llm4rec-bench results</h1>"]  # fmt: skip
    for table in collection.tables:
        name = "Comparison" if table.kind == "comparison" else "Ablation (LLM4Rec)"
        out.append(f"<h2>{esc(table.protocol.title())}: {name}</h2>")
        out.append(f'<p class="protocol">{esc(table.protocol.description())}</p>')
        out.append("<table><thead><tr><th>model</th><th>seeds</th>" + "".join(f"<th>{esc(_header(m))}</th>" for m in table.metrics) + "</tr></thead><tbody>")
        for row in table.rows:
            cells = []
            for metric in table.metrics:
                cell = row.cells[metric]
                text, suffix = (esc(s) for s in _cell_text(cell, table.kind))
                if cell.rank == 1:
                    text = f"<b>{text}</b>"
                elif cell.rank == 2:
                    text = f"<u>{text}</u>"
                cells.append(f"<td>{text}{suffix}</td>")
            out.append(f"<tr><td>{esc(row.label)}</td><td>{len(row.runs)}</td>{''.join(cells)}</tr>")
        out.append(f'</tbody></table><p class="legend">{esc(table.legend())}</p>')
    if collection.skipped:
        out.append(f"<h2>Skipped runs ({len(collection.skipped)})</h2><ul>")
        out += [f"<li>{esc(s.path)}: {esc(s.reason)}</li>" for s in collection.skipped]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


CSV_COLUMNS = [
    "table", "dataset", "data_source", "split", "eval_protocol", "sampling", "ks", "streaming", "fingerprint", "model",
    "label", "config_hash", "n_runs", "metric", "higher_is_better", "mean", "std", "n", "rank", "reference", "test", "p_value",
    "significant", "delta",
]  # fmt: skip


def render_csv(collection: Collection) -> str:
    """Long form: one line per (table, row, metric), so it loads straight into a data frame."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for table in collection.tables:
        p = table.protocol
        base = {"table": table.kind, "dataset": p.dataset, "data_source": p.data_source, "split": p.split, "eval_protocol": p.eval_protocol,
                "sampling": " ".join(map(str, p.sampling)) if p.sampling else "", "ks": " ".join(map(str, p.ks)),
                "streaming": p.streaming, "fingerprint": p.fingerprint, "reference": table.reference or "", "test": table.test}  # fmt: skip
        for row in table.rows:
            for metric in table.metrics:
                c = row.cells[metric]
                writer.writerow({**base, "model": row.model, "label": row.label, "config_hash": row.config_hash or "", "n_runs": len(row.runs),
                                 "metric": metric, "higher_is_better": higher_is_better(metric), "mean": _raw(c.mean), "std": _raw(c.std),
                                 "n": c.n, "rank": c.rank or "", "p_value": _raw(c.p_value), "significant": c.significant,
                                 "delta": _raw(c.delta)})  # fmt: skip
    return buffer.getvalue()


def _raw(value: float | None) -> str:
    return "" if value is None else repr(float(value))


RENDERERS = {"md": render_markdown, "csv": render_csv, "latex": render_latex, "html": render_html}


def render(collection: Collection, fmt: str = "md") -> str:
    if fmt not in RENDERERS:
        raise BenchmarkError(f"--format must be one of {FORMATS}, got {fmt!r}")
    return RENDERERS[fmt](collection)


# --- plots ------------------------------------------------------------------------------


@dataclass
class Plot:
    kind: str  # "accuracy-fairness" | "ndcg-by-popularity" | "ablation" | "streaming"
    path: Path
    data: dict[str, Any]  # the numbers drawn, for checking and re-use


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def plot_accuracy_fairness(table: Table, path: Path, k: int = 10) -> Plot | None:
    """NDCG@K against TailShare@K and UserGap-NDCG@K, one point per row (error bars: std)."""
    ndcg = f"ndcg@{k}"
    fairness = [m for m in (f"tailshare@{k}", f"usergap-ndcg@{k}") if m in table.metrics]
    points = {
        row.label: {m: [row.cells[m].mean, row.cells[m].std or 0.0] for m in (ndcg, *fairness)}
        for row in table.rows
        if row.cells.get(ndcg, Cell()).mean is not None and any(row.cells[m].mean is not None for m in fairness)
    }
    if not points:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(fairness), figsize=(5.5 * len(fairness), 4.2), squeeze=False)
    markers = "osD^vP*Xhp<>"  # coinciding points (e.g. one model under two configs) stay distinguishable
    for ax, metric in zip(axes[0], fairness):
        for i, (label, values) in enumerate(points.items()):
            if values[metric][0] is None:
                continue
            ax.errorbar(values[ndcg][0], values[metric][0], xerr=values[ndcg][1], yerr=values[metric][1],
                        fmt=markers[i % len(markers)], color=f"C{i % 10}", capsize=3, label=label, alpha=0.85)  # fmt: skip
        if metric.startswith("usergap"):
            ax.axhline(0.0, color="grey", lw=0.8, ls=":")  # the fair value
        ax.set_xlabel(f"NDCG@{k} (higher is better)")
        ax.set_ylabel(f"{metric} ({'higher' if higher_is_better(metric) else 'closer to 0'} is fairer)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"{table.protocol.title()}\n{table.protocol.description()}", fontsize=9)
    return Plot("accuracy-fairness", _save(fig, path), {"metrics": [ndcg, *fairness], "points": points})


def plot_ndcg_by_popularity(table: Table, path: Path, k: int = 10, n_buckets: int = 5) -> Plot | None:
    """Mean NDCG@K of the test users in each quantile bucket of their test item's training
    popularity (``test_item_popularity`` in the per-user file), per row; rows whose runs
    predate that column are left out (named in ``data["missing"]``)."""
    ndcg = f"ndcg@{k}"
    frames: dict[str, pd.DataFrame] = {}
    missing = []
    for row in table.rows:
        per_user = row.per_user([ndcg, POPULARITY_COLUMN])
        if per_user is None or ndcg not in per_user or POPULARITY_COLUMN not in per_user:
            missing.append(row.label)
        else:
            frames[row.label] = per_user
    if not frames:
        return None
    # the popularity of a user's test item is a property of the data, the same in every run
    popularity = pd.concat([f[POPULARITY_COLUMN] for f in frames.values()]).groupby(level=0).first()
    buckets = pd.qcut(popularity, q=n_buckets, duplicates="drop")
    # qcut widens the first interval slightly below the minimum; show the true minimum
    edges = [float(popularity.min())] + [float(iv.right) for iv in buckets.cat.categories]
    labels = [f"{'[' if i == 0 else '('}{lo:.4g}, {hi:.4g}]" for i, (lo, hi) in enumerate(zip(edges, edges[1:]))]
    n_users = buckets.value_counts(sort=False).to_numpy().tolist()
    means = {label: f[ndcg].groupby(buckets.reindex(f.index), observed=False).mean().tolist() for label, f in frames.items()}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(labels) * max(1, len(means)) ** 0.5), 4.2))
    width = 0.8 / len(means)
    x = np.arange(len(labels))
    for i, (label, values) in enumerate(means.items()):
        ax.bar(x + (i - (len(means) - 1) / 2) * width, np.nan_to_num(values), width, label=label)
    ax.set_xticks(x, [f"{lab}\n({n} users)" for lab, n in zip(labels, n_users)], fontsize=8)
    ax.set_xlabel("training interactions of the test item (quantile buckets)")
    ax.set_ylabel(f"NDCG@{k}")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{table.protocol.title()}\n{table.protocol.description()}", fontsize=9)
    data = {"buckets": labels, "edges": edges, "n_users": n_users, "ndcg": means, "missing": missing}
    return Plot("ndcg-by-popularity", _save(fig, path), data)


def plot_ablation(table: Table, path: Path, k: int = 10) -> Plot | None:
    """NDCG@K per LLM4Rec variant, error bars: std over seeds."""
    ndcg = f"ndcg@{k}"
    bars = {row.label: {"mean": row.cells[ndcg].mean, "std": row.cells[ndcg].std or 0.0, "n": row.cells[ndcg].n}
            for row in table.rows if row.cells.get(ndcg, Cell()).mean is not None}  # fmt: skip
    if not bars:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(bars) + 2), 4.2))
    names = list(bars)
    colours = ["tab:blue" if name == table.reference else "tab:gray" for name in names]
    ax.bar(names, [bars[n]["mean"] for n in names], yerr=[bars[n]["std"] for n in names], capsize=4, color=colours)
    ax.set_ylabel(f"NDCG@{k} (mean ± std over seeds)")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"LLM4Rec ablations: {table.protocol.title()}\n{table.protocol.description()}", fontsize=9)
    return Plot("ablation", _save(fig, path), {"metric": ndcg, "bars": bars})


def streaming_windows(runs: list[Run], metric: str = "ndcg@10") -> dict[str, dict[str, Any]]:
    """Per model: adaptive and frozen ``metric`` per window, averaged over the model's runs
    (windows that every run has), and the mean update latency percentiles."""
    out: dict[str, dict[str, Any]] = {}
    by_model: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        stream = run.record.get("streaming")
        if isinstance(stream, dict) and stream.get("windows"):
            by_model.setdefault(run.model, []).append(stream)
    for model, streams in sorted(by_model.items()):
        tables = [{int(w["window"]): w for w in s["windows"]} for s in streams]
        common = sorted(set.intersection(*(set(t) for t in tables)))
        entry: dict[str, Any] = {"window": common, "n_runs": len(streams)}
        for mode in ("adaptive", "frozen"):
            entry[mode] = [float(np.mean([t[w][mode][metric] for t in tables])) if all(metric in t[w].get(mode, {}) for t in tables) else None for w in common]
        latencies = [s["update_latency_ms"] for s in streams if isinstance(s.get("update_latency_ms"), dict)]
        # a model that does not adapt records no update, hence no latency (None)
        entry["update_latency_ms"] = {
            q: float(np.mean([lat[q] for lat in latencies]))
            for q in ("p50", "p99")
            if latencies and all(isinstance(lat.get(q), (int, float)) for lat in latencies)
        }
        out[model] = entry
    return out


def plot_streaming(runs: list[Run], protocol: Protocol, path: Path, k: int = 10) -> Plot | None:
    """Adaptive (solid) vs frozen (dashed) NDCG@K per time window of the streaming protocol."""
    series = streaming_windows(runs, f"ndcg@{k}")
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for i, (model, entry) in enumerate(series.items()):
        colour = f"C{i % 10}"
        latency = entry["update_latency_ms"]
        suffix = f", update p50 {latency['p50']:.1f} ms / p99 {latency['p99']:.1f} ms" if {"p50", "p99"} <= set(latency) else ""
        for mode, style in (("adaptive", "-"), ("frozen", "--")):
            values = [np.nan if v is None else v for v in entry[mode]]
            ax.plot(entry["window"], values, style, marker="o", ms=3, color=colour, label=f"{model} {mode}{suffix if mode == 'adaptive' else ''}")
    ax.set_xlabel("window")
    ax.set_ylabel(f"NDCG@{k}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"Streaming: adaptive vs frozen, {protocol.title()}\n{protocol.description()}", fontsize=9)
    return Plot("streaming", _save(fig, path), {"metric": f"ndcg@{k}", "series": series})


def make_plots(collection: Collection, out_dir: str | Path, not_drawn: list[str] | None = None) -> list[Plot]:
    """Every plot the collection supports, as PNG files under ``out_dir``; ``not_drawn``
    receives one line per plot the records cannot support, with the reason."""
    out = Path(out_dir)
    k = collection.k
    plots: list[Plot] = []

    def add(plot: Plot | None, what: str, why: str) -> None:
        if plot is not None:
            plots.append(plot)
        elif not_drawn is not None:
            not_drawn.append(f"{what}: {why}")

    for table in collection.tables:
        slug = table.protocol.slug()
        if table.kind == "comparison":
            add(plot_accuracy_fairness(table, out / f"{slug}-accuracy-fairness.png", k), f"{slug} accuracy-fairness",
                f"no run has ndcg@{k} with tailshare@{k} or usergap-ndcg@{k}")
            add(plot_ndcg_by_popularity(table, out / f"{slug}-ndcg-by-popularity.png", k), f"{slug} ndcg-by-popularity",
                f"no per-user file has {POPULARITY_COLUMN} (records written before it existed)")
        else:
            add(plot_ablation(table, out / f"{slug}-ablation.png", k), f"{slug} ablation", f"no ndcg@{k}")
    for protocol, runs in collection.groups.items():
        if protocol.streaming:
            add(plot_streaming(runs, protocol, out / f"{protocol.slug()}-streaming.png", k), f"{protocol.slug()} streaming", "no windows")
    return plots


# --- command line -----------------------------------------------------------------------


def add_collect_parser(commands: argparse._SubParsersAction) -> None:
    from benchmark.data.datasets import DATASET_NAMES, canonical_name

    text = "comparison and ablation tables (mean ± std over seeds, significance markers) and plots from run records"
    parser = commands.add_parser(
        "collect", help=text,
        description=f"{text}. Runs are never mixed across datasets, data fingerprints, splits, evaluation protocols or K sets: "
        "each combination gets its own tables. Only runs with status 'completed' count; the others are listed as skipped.",
    )  # fmt: skip
    parser.add_argument("--runs", default="runs", metavar="DIR", help="folder of run folders <run_id>/result.json (default: runs)")
    parser.add_argument("--data", type=canonical_name, choices=DATASET_NAMES, help="only this dataset's runs (default: all)")
    parser.add_argument("--format", choices=FORMATS, default="md", help="md (default), csv (long form: one line per model and metric), latex (booktabs) or html (self-contained page)")
    parser.add_argument("--plots", metavar="DIR", help="also write PNG plots here: accuracy vs fairness, NDCG by test-item popularity, ablations, streaming windows")
    parser.add_argument("--output", metavar="FILE", help="write the tables in --format to FILE (FILE.json: as JSON) and print the Markdown tables")
    parser.add_argument("--k", type=int, default=10, help="cut-off of every column (default 10)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level of the † marker (default 0.05)")
    parser.add_argument("--test", choices=TESTS, default="ttest", help="paired test over users for the † marker (default ttest)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def cmd_collect(args: argparse.Namespace) -> None:
    collection = collect(args.runs, args.data, k=args.k, alpha=args.alpha, test=args.test, progress=not args.no_progress)
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        content = json.dumps(collection.as_dict(), indent=2, default=str) + "\n" if path.suffix == ".json" else render(collection, args.format)
        path.write_text(content, encoding="utf-8")
        print(render_markdown(collection))
        print(f"wrote {path}")
    else:
        print(render(collection, args.format), end="")
    if args.plots:
        not_drawn: list[str] = []
        for plot in make_plots(collection, args.plots, not_drawn):
            print(f"plot ({plot.kind}): {plot.path}")
        for line in not_drawn:
            print(f"no plot {line}")
