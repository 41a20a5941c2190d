"""Comparison, ablation and cross-dataset tables from run records.

Runs are grouped by everything that makes their numbers comparable (``Protocol``: dataset,
data source, fingerprint, split, evaluation protocol, K set, streaming). Each group gives

- a comparison table: one row per model (per model and config hash where a model was run
  under several configurations), one column per metric at ``@K`` in ``metric_catalogue``
  order, mean ± sample std (ddof = 1) over the row's runs (seeds), ranks 1 and 2 per column by
  the metric's direction, and ▲ / ▼ where the row is better / worse than the best baseline
  (the best non-LLM4Rec row by NDCG@K) in a paired test over test users, Holm-adjusted over
  the rows tested against it (per metric). Per-user values are averaged over each row's seeds
  first and users are paired by raw id, so the user is the test unit.
- an ablation table (when the group has ``llm4rec`` or ``llm4rec-*`` runs): those rows only,
  each cell with its difference to full LLM4Rec and the same markers against full LLM4Rec.

``collect_across_datasets`` puts the comparison tables of several datasets side by side: one
table per ``Setting`` (split, evaluation protocol, K set), datasets as column groups.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.metrics import Direction, metric_catalogue, metric_info
from benchmark.records import PER_USER_FILE, RunRecord, Skipped
from benchmark.results.loading import Progress, Protocol, Setting, group_runs, load_runs
from benchmark.stats import holm, paired_tests

TESTS = ("ttest", "wilcoxon")
BETTER, WORSE = "▲", "▼"
POPULARITY_COLUMN = "test_item_popularity"  # per-user file: training interactions of the user's test items
DEFAULT_ACROSS = ("ndcg", "hr")  # columns per dataset of the cross-dataset table
# With one held-out item per user, Recall@K = HR@K and MAP@K = MRR@K (DESIGN.md definitions):
# the first of each pair is then left out of the default columns.
DUPLICATES = {"recall": "hr", "map": "mrr"}


def is_llm4rec(model: str) -> bool:
    return model == "llm4rec" or model.startswith("llm4rec-")


def direction(metric: str) -> Direction:
    info = metric_info(metric)
    if info is None:
        raise BenchmarkError(f"unknown metric {metric!r}; known: {', '.join(i.name for i in metric_catalogue())}")
    return info.direction


def score(metric: str, value: float) -> float:
    """Larger is better, whatever the metric's direction."""
    d = direction(metric)
    return value if d == "higher" else -value if d == "lower" else -abs(value)


def arrow(metric: str) -> str:
    return "↑" if direction(metric) == "higher" else "↓"  # "zero": ↓ on |x|, said in the legend


def metric_columns(requested: Sequence[str], k: int) -> list[str]:
    """Column keys for ``--metrics`` names (``ndcg`` means ``ndcg@K``; ``ndcg@20`` is kept)."""
    keys = []
    for item in requested:
        name, _, cut = item.strip().lower().partition("@")
        if metric_info(name) is None:
            raise BenchmarkError(f"--metrics: unknown metric {name!r}; known: {', '.join(i.name for i in metric_catalogue())}")
        if cut and not (cut.isdigit() and int(cut) > 0):
            raise BenchmarkError(f"--metrics: {item!r} is not name@K with a positive K")
        keys.append(f"{name}@{cut or k}")
    if not keys:
        raise BenchmarkError("--metrics: no metric given")
    return list(dict.fromkeys(keys))


@dataclass
class Cell:
    mean: float | None = None
    std: float | None = None  # None for a single run
    n: int = 0
    rank: int | None = None  # 1 = best (bold), 2 = second (underlined)
    p_value: float | None = None  # raw two-sided p of the paired test against the table's reference row
    p_holm: float | None = None  # Holm-adjusted over the rows tested against the reference, this metric
    diff: float | None = None  # paired mean difference row - reference, over the users both evaluated
    better: bool | None = None  # on those users, the row is better than the reference
    delta: float | None = None  # ablation tables: mean - full LLM4Rec's mean
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        return self.p_holm is not None and self.p_holm < self.alpha

    @property
    def marker(self) -> str:
        return (BETTER if self.better else WORSE) if self.significant else ""

    def as_dict(self) -> dict[str, Any]:
        values = {k: v for k, v in dataclasses.asdict(self).items() if k != "alpha"}
        return values | {"significant": self.significant, "marker": self.marker}


@dataclass
class Row:
    label: str
    model: str
    config_hash: str | None
    runs: list[RunRecord]
    cells: dict[str, Cell] = field(default_factory=dict)
    note: str = ""

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]  # runs are kept in seed order

    def mean(self, metric: str) -> float | None:
        values = [v for v in (run.metric(metric) for run in self.runs) if v is not None]
        return float(np.mean(values)) if values else None

    def per_user(self, columns: Sequence[str]) -> pd.DataFrame | None:
        """Per-user values averaged over this row's runs (index: raw user id); None when any
        run lacks its per-user file, so that a test never silently drops seeds."""
        if any(run.path is None or not (run.path / PER_USER_FILE).is_file() for run in self.runs):
            return None
        frames = [run.per_user() for run in self.runs]  # readable: checked when loaded
        present = [c for c in columns if all(c in f for f in frames)]
        if not present:
            return None
        stacked = pd.concat([f[["raw_user_id", *present]].astype({"raw_user_id": str}) for f in frames])
        return stacked.groupby("raw_user_id")[present].mean()  # NaN-skipping: a user left out by one seed keeps the others


Notes = list[tuple[str, "str | None"]]  # (text with "{label}", the row label it names)


def _directions_text(metrics: Sequence[str]) -> str:
    zero = [m for m in metrics if direction(m) == "zero"]
    text = "↑ higher is better, ↓ lower is better"
    if zero:
        text += "; " + ", ".join(f"{m} ↓" for m in zero) + " means |x| closest to 0 is best (the value is signed)"
    return text


def _test_name(test: str) -> str:
    return "paired t-test" if test == "ttest" else "Wilcoxon signed-rank test"


def _tested_text(metrics: Sequence[str]) -> str:
    tested = [m for m in metrics if (info := metric_info(m)) is not None and info.per_user]
    untested = [m for m in metrics if m not in tested]
    text = f"Only columns with per-user values can carry a marker ({', '.join(tested) or 'none here'})"
    return text + (f"; catalogue-level columns ({', '.join(untested)}) never do." if untested else ".")


def _holm_family(sizes: set[int]) -> str:
    if not sizes:
        return "the rows tested against it"
    if len(sizes) == 1:
        (n,) = sizes
        return f"the {n} row{'s' if n != 1 else ''} tested against it"
    return f"the rows tested against it ({min(sizes)} to {max(sizes)})"


def _common_legend(metrics: Sequence[str], split: str) -> list[str]:
    parts = [
        "Mean ± sample std (ddof = 1) over the seeds of each row (std omitted for a single run).",
        f"Bold: best per column; underlined: second. {_directions_text(metrics)}.",
    ]
    if split == "loo":
        parts.append("Split loo: other users' later interactions still shape shared item embeddings (the global timeline is not "
                     "causal); temporal is the causal protocol.")  # fmt: skip
    return parts


def _marker_legend(against: str, family: str, test: str, alpha: float, metrics: Sequence[str]) -> str:
    return (
        f"{BETTER} / {WORSE}: better / worse than {against}, two-sided {_test_name(test)} with Holm-adjusted p < {alpha:g} "
        f"(Holm over {family}, per metric; metrics are not corrected against each other). The test unit is the test user: "
        "each row's per-user values are averaged over its seeds first, and users are paired by raw id. Raw and adjusted "
        f"p-values are in the JSON and CSV output. {_tested_text(metrics)}"
    )


@dataclass
class Table:
    kind: str  # "comparison" | "ablation"
    protocol: Protocol
    metrics: list[str]
    rows: list[Row]
    reference: str | None  # label of the row the tests and deltas compare with
    test: str = "ttest"
    alpha: float = 0.05
    notes: Notes = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # left-out column -> the column it equals
    k: int = 10

    def row(self, label: str) -> Row | None:
        return next((r for r in self.rows if r.label == label), None)

    def family_sizes(self) -> set[int]:
        return {n for m in self.metrics if (n := sum(r.cells[m].p_holm is not None for r in self.rows))}

    def legend(self, label: Callable[[str], str] = str) -> str:
        """The table's legend; ``label`` escapes the row labels it names (user-supplied text)."""
        parts = _common_legend(self.metrics, self.protocol.split)
        if self.reference is None:
            why = f"this table has no baseline with ndcg@{self.k}." if self.kind == "comparison" else "no full llm4rec run."
            parts.append(f"No significance markers: {why}")
        else:
            against = f"the best baseline by ndcg@{self.k}" if self.kind == "comparison" else "full LLM4Rec"
            parts.append(_marker_legend(f"{against} ({label(self.reference)})", _holm_family(self.family_sizes()), self.test, self.alpha, self.metrics))
        if self.kind == "ablation" and self.reference is not None:
            parts.append(f"(Δ …): difference of the mean to {label(self.reference)}.")
        if self.dropped:
            pairs = ", ".join(f"{d} = {kept}" for d, kept in self.dropped.items())
            parts.append(f"Not shown: {', '.join(self.dropped)}, because every test user has one held-out item, so {pairs}.")
        return " ".join(parts + [text.format(label=label(name)) if name else text for text, name in self.notes])

    def heading(self) -> str:
        return f"{self.protocol.title()}: " + ("Comparison" if self.kind == "comparison" else "Ablation (LLM4Rec)")

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "protocol": self.protocol.as_dict(), "heading": self.protocol.title(),
            "description": self.protocol.description(), "metrics": self.metrics, "dropped": self.dropped,
            "reference": self.reference, "test": self.test, "alpha": self.alpha, "legend": self.legend(),
            "rows": [
                {"label": row.label, "model": row.model, "config_hash": row.config_hash, "seeds": row.seeds,
                 "runs": [run.run_id for run in row.runs], "note": row.note, "cells": {m: c.as_dict() for m, c in row.cells.items()}}
                for row in self.rows
            ],
        }  # fmt: skip


@dataclass
class CrossTable:
    """Comparison tables of several datasets under one setting, side by side."""

    setting: Setting
    metrics: list[str]
    datasets: list[tuple[str, Table]]  # (column-group label, that dataset's comparison table)
    rows: list[str]  # row labels over all datasets
    test: str = "ttest"
    alpha: float = 0.05
    k: int = 10
    kind: str = "across-datasets"

    def cell(self, label: str, group: str, metric: str) -> Cell | None:
        table = dict(self.datasets)[group]
        row = table.row(label)
        return row.cells[metric] if row is not None else None

    def seeds(self, label: str) -> list[int | None]:
        """Runs per dataset (None where the row has none)."""
        return [len(row.runs) if (row := t.row(label)) is not None else None for _, t in self.datasets]

    def heading(self) -> str:
        return "Across datasets: Comparison"

    def description(self) -> str:
        return f"{self.setting.description()} · datasets " + ", ".join(
            f"{name} ({t.protocol.data_source}, fingerprint {t.protocol.fingerprint[:12]})" for name, t in self.datasets
        )

    def legend(self, label: Callable[[str], str] = str) -> str:
        parts = _common_legend(self.metrics, self.setting.split)
        parts.append("Seeds: runs per dataset, in column order.")
        references = [(name, t.reference) for name, t in self.datasets]
        with_ref = [(name, ref) for name, ref in references if ref is not None]
        if with_ref:
            against = f"the best baseline by ndcg@{self.k} of each dataset (" + "; ".join(f"{label(name)}: {label(ref)}" for name, ref in with_ref) + ")"
            sizes = set().union(*(t.family_sizes() for _, t in self.datasets))
            family = _holm_family(sizes) + " within each dataset"
            parts.append(_marker_legend(against, family, self.test, self.alpha, self.metrics))
        missing = [name for name, ref in references if ref is None]
        if missing:
            parts.append(f"No markers for {', '.join(map(label, missing))}: no baseline with ndcg@{self.k}.")
        for name, table in self.datasets:
            parts += [f"{label(name)}: " + (text.format(label=label(who)) if who else text) for text, who in table.notes]
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "setting": {**dataclasses.asdict(self.setting), "ks": list(self.setting.ks)},
            "heading": self.heading(), "description": self.description(), "metrics": self.metrics, "test": self.test,
            "alpha": self.alpha, "legend": self.legend(),
            "datasets": [{"label": name, "protocol": t.protocol.as_dict(), "reference": t.reference} for name, t in self.datasets],
            "rows": [
                {"label": label, "seeds": dict(zip((n for n, _ in self.datasets), self.seeds(label))),
                 "cells": {name: {m: c.as_dict() for m, c in row.cells.items()} for name, t in self.datasets if (row := t.row(label))}}
                for label in self.rows
            ],
        }  # fmt: skip


@dataclass
class Collection:
    tables: list[Any]  # Table | CrossTable
    skipped: list[Skipped]
    groups: dict[Protocol, list[RunRecord]]
    k: int = 10
    notes: list[str] = field(default_factory=list)  # about the whole collection (e.g. datasets left out)

    def as_dict(self) -> dict[str, Any]:
        return {"k": self.k, "tables": [t.as_dict() for t in self.tables], "notes": self.notes,
                "skipped": [dataclasses.asdict(s) for s in self.skipped]}  # fmt: skip


# --- building ---------------------------------------------------------------------------


def _rows(runs: list[RunRecord]) -> list[Row]:
    """One row per model; per (model, config hash) where a model has several configurations."""
    by_model: dict[str, dict[str | None, list[RunRecord]]] = {}
    for run in runs:
        by_model.setdefault(run.model, {}).setdefault(run.config_hash, []).append(run)
    rows = []
    for model, configs in sorted(by_model.items()):
        differing = _differing_settings({h: members[0].config for h, members in configs.items()})
        for config_hash, members in configs.items():
            label = model if len(configs) == 1 else f"{model} [{differing.get(config_hash) or str(config_hash)[:6]}]"
            rows.append(Row(label, model, config_hash, sorted(members, key=lambda r: (r.seed, r.run_id))))
    return rows


def _differing_settings(configs: dict[Any, dict[str, Any]], limit: int = 3) -> dict[Any, str]:
    """Per config hash, the settings in which a model's configurations differ ("lr=0.01, ..."),
    so that rows of one model under several configurations say what sets them apart."""
    flat = {key: {n: v for values in config.values() if isinstance(values, dict) for n, v in values.items()} for key, config in configs.items()}
    names = sorted({n for values in flat.values() for n in values})
    differ = [n for n in names if len({json.dumps(values.get(n), sort_keys=True, default=str) for values in flat.values()}) > 1]
    if not differ:
        return {}
    more = ", …" if len(differ) > limit else ""
    return {key: ", ".join(f"{n}={values.get(n)}" for n in differ[:limit]) + more for key, values in flat.items()}


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
        scored = sorted({score(metric, r.cells[metric].mean) for r in rows if r.cells[metric].mean is not None}, reverse=True)
        for row in rows:
            cell = row.cells[metric]
            if cell.mean is not None and score(metric, cell.mean) in scored[:2]:
                cell.rank = scored.index(score(metric, cell.mean)) + 1  # ties share a mark


def _significance(rows: list[Row], reference: Row, metrics: list[str], test: str) -> Notes:
    """Each row's raw and Holm-adjusted p against ``reference``; notes on rows that could not be tested."""
    tested = [m for m in metrics if (info := metric_info(m)) is not None and info.per_user]
    ref = reference.per_user(tested)
    if ref is None:
        return [(f"No tests: {{label}} lacks per-user values ({PER_USER_FILE}).", reference.label)] if tested else []
    notes: Notes = []
    for row in rows:
        if row is reference:
            continue
        mine = row.per_user(tested)
        if mine is None:
            row.note = f"no {PER_USER_FILE}: not tested"
            notes.append((f"{{label}}: not tested (a run lacks {PER_USER_FILE}).", row.label))
            continue
        paired = mine.join(ref, how="inner", lsuffix="/row", rsuffix="/ref")  # users both evaluated
        for metric in tested:
            if f"{metric}/row" not in paired or f"{metric}/ref" not in paired:
                continue
            ref_values, row_values = paired[f"{metric}/ref"].to_numpy(np.float64), paired[f"{metric}/row"].to_numpy(np.float64)
            both = ~(np.isnan(ref_values) | np.isnan(row_values))
            if not both.any():
                continue
            t_p, w_p = paired_tests(ref_values[both], row_values[both])
            cell = row.cells[metric]
            cell.p_value = t_p if test == "ttest" else w_p
            cell.diff = float((row_values[both] - ref_values[both]).mean())
            cell.better = score(metric, float(row_values[both].mean())) > score(metric, float(ref_values[both].mean()))
    for metric in tested:  # one Holm family per metric: the rows tested against the reference
        cells = [row.cells[metric] for row in rows if row.cells[metric].p_value is not None]
        for cell, adjusted in zip(cells, holm([c.p_value for c in cells])):  # type: ignore[misc]
            cell.p_holm = adjusted
    return notes


def _single_heldout(run: RunRecord) -> bool:
    """Every test user of the run has at most one held-out item: from the per-user
    ``n_test_items`` where the file has it, else from the split (leave-one-out)."""
    if run.path is not None and (run.path / PER_USER_FILE).is_file() and "n_test_items" in run.per_user():
        counts = run.per_user()["n_test_items"]
        return bool(counts.isna().all() or counts.max() <= 1)
    return run.split == "loo"


def duplicate_columns(runs: list[RunRecord], k: int) -> dict[str, str]:
    """{column: the column it equals} for recall@K (= hr@K) and map@K (= mrr@K) when every
    test user of every run has one held-out item; the records' values must agree too, so a
    record from elsewhere with other definitions keeps its columns."""
    if not runs or not all(_single_heldout(run) for run in runs):
        return {}
    out = {}
    for dup, kept in DUPLICATES.items():
        pairs = [(run.metric(f"{dup}@{k}"), run.metric(f"{kept}@{k}")) for run in runs]
        shown = [(d, v) for d, v in pairs if d is not None]
        if shown and all(v is not None and math.isclose(d, v, rel_tol=1e-9, abs_tol=1e-12) for d, v in shown):
            out[f"{dup}@{k}"] = f"{kept}@{k}"
    return out


def _reference(rows: list[Row], k: int) -> Row | None:
    """The best baseline: the non-LLM4Rec row with the highest mean ndcg@K (shown or not)."""
    scored = [(mean, row) for row in rows if not is_llm4rec(row.model) and (mean := row.mean(f"ndcg@{k}")) is not None]
    return max(scored, key=lambda pair: pair[0])[1] if scored else None


def build_tables(
    runs: list[RunRecord], protocol: Protocol, *, k: int = 10, alpha: float = 0.05, test: str = "ttest",
    metrics: Sequence[str] | None = None, ablation: bool = True,
) -> list[Table]:  # fmt: skip
    """The comparison table and (with ``ablation`` and LLM4Rec runs) the ablation table of one
    group. ``metrics``: these columns, each shown even where no run has it; default: every
    catalogue metric at ``@k`` that some run has, less duplicate columns."""
    if k not in protocol.ks:
        return []
    present = {key for run in runs for key in run.metrics.get("test", {})}
    if metrics is None:
        dropped = duplicate_columns(runs, k)
        columns = [f"{i.name}@{k}" for i in metric_catalogue() if f"{i.name}@{k}" in present and f"{i.name}@{k}" not in dropped]
    else:
        dropped, columns = {}, list(metrics)
    tables = []
    rows = _rows([r for r in runs if not (is_llm4rec(r.model) and r.model != "llm4rec")])
    if rows:
        _fill_cells(rows, columns, alpha)
        best = _reference(rows, k)
        notes = _significance(rows, best, columns, test) if best else []
        tables.append(Table("comparison", protocol, columns, rows, best.label if best else None, test, alpha, notes, dropped, k))
    ablation_rows = _rows([r for r in runs if is_llm4rec(r.model)]) if ablation else []
    if ablation_rows:
        _fill_cells(ablation_rows, columns, alpha)
        full = next((r for r in ablation_rows if r.model == "llm4rec"), None)
        notes = []
        if full is not None:
            notes = _significance(ablation_rows, full, columns, test)
            for row in ablation_rows:
                for metric in columns:
                    cell, ref = row.cells[metric], full.cells[metric]
                    if row is not full and cell.mean is not None and ref.mean is not None:
                        cell.delta = cell.mean - ref.mean
        tables.append(Table("ablation", protocol, columns, ablation_rows, full.label if full else None, test, alpha, notes, dropped, k))
    for table in tables:
        table.notes += _thread_notes([run for row in table.rows for run in row.runs])
    return tables


def _thread_notes(runs: list[RunRecord]) -> Notes:
    """A note when the table's runs trained at different CPU thread counts: the count changes
    floating-point reduction order and so the trained model (docs/protocol.md)."""
    threads = sorted({t for run in runs if isinstance(t := run.hardware.get("torch_threads"), int)})
    if len(threads) < 2:
        return []
    return [(f"Runs in this table trained at different CPU thread counts ({', '.join(map(str, threads))}): "
             "differences between rows include that effect.", None)]


def _check_options(k: int, alpha: float, test: str) -> None:
    if test not in TESTS:
        raise BenchmarkError(f"--test must be one of {TESTS}, got {test!r}")
    if not 0 < alpha < 1:
        raise BenchmarkError(f"--alpha must lie in (0, 1), got {alpha}")
    if k < 1:
        raise BenchmarkError(f"--k must be >= 1, got {k}")


def _loaded(runs_dir: str | Path, dataset: str | None, progress: Progress | None) -> tuple[list[RunRecord], list[Skipped]]:
    runs, skipped = load_runs(runs_dir, dataset, progress=progress)
    if not runs:
        where = f" for dataset {dataset}" if dataset else ""
        raise BenchmarkError(f"--runs {runs_dir}: no completed run{where}" + (f" ({len(skipped)} skipped)" if skipped else ""))
    return runs, skipped


def collect(
    runs_dir: str | Path, dataset: str | None = None, *, k: int = 10, alpha: float = 0.05, test: str = "ttest",
    metrics: Sequence[str] | None = None, progress: Progress | None = None,
) -> Collection:  # fmt: skip
    """Every table of the runs under ``runs_dir`` (see the module docstring); ``metrics``:
    ``--metrics`` names instead of every metric the runs have."""
    _check_options(k, alpha, test)
    columns = metric_columns(metrics, k) if metrics is not None else None
    runs, skipped = _loaded(runs_dir, dataset, progress)
    groups = group_runs(runs)
    tables = []
    for protocol, members in groups.items():
        built = build_tables(members, protocol, k=k, alpha=alpha, test=test, metrics=columns)
        if not built:
            skipped.extend(Skipped(str(r.path), f"K = {k} not among the run's cut-offs {list(protocol.ks)}") for r in members)
        tables.extend(built)
    if not tables:
        raise BenchmarkError(f"no run was evaluated at K = {k}")
    return Collection(tables, skipped, groups, k)


def collect_across_datasets(
    runs_dir: str | Path, *, k: int = 10, alpha: float = 0.05, test: str = "ttest", metrics: Sequence[str] | None = None,
    include_synthetic: bool = False, progress: Progress | None = None,
) -> Collection:  # fmt: skip
    """One comparison table per setting (split, evaluation protocol, K set) with every real
    dataset as a column group (``metrics`` per dataset, default ndcg and hr at ``@k``).
    Synthetic datasets are left out (named in ``notes``) unless ``include_synthetic``, then
    labelled SYNTHETIC. Markers compare with each dataset's best baseline, as in ``collect``."""
    _check_options(k, alpha, test)
    columns = metric_columns(metrics if metrics is not None else DEFAULT_ACROSS, k)
    runs, skipped = _loaded(runs_dir, None, progress)
    groups = group_runs(runs)
    notes: list[str] = []
    by_setting: dict[Setting, list[tuple[Protocol, Table]]] = {}
    for protocol, members in groups.items():
        if protocol.synthetic and not include_synthetic:
            notes.append(f"{protocol.dataset} ({protocol.setting.description()}): SYNTHETIC data, left out (include it with --include-synthetic)")
            continue
        built = build_tables(members, protocol, k=k, alpha=alpha, test=test, metrics=columns, ablation=False)
        if not built:
            why = f"K = {k} not among the run's cut-offs {list(protocol.ks)}" if k not in protocol.ks else "only LLM4Rec ablation runs"
            skipped.extend(Skipped(str(r.path), why) for r in members)
            continue
        by_setting.setdefault(protocol.setting, []).append((protocol, built[0]))
    tables = []
    for setting, members in by_setting.items():
        names = [p.dataset for p, _ in members]
        datasets = []
        for protocol, table in members:
            name = protocol.dataset if names.count(protocol.dataset) == 1 else f"{protocol.dataset} ({protocol.fingerprint[:8]})"
            datasets.append((name + (" (SYNTHETIC)" if protocol.synthetic else ""), table))
        labels = sorted({row.label for _, table in datasets for row in table.rows})
        tables.append(CrossTable(setting, columns, datasets, labels, test, alpha, k))
    if not tables:
        raise BenchmarkError(f"no real-data run evaluated at K = {k} to put across datasets" + ("" if include_synthetic else
                             "; synthetic datasets are left out unless --include-synthetic"))  # fmt: skip
    return Collection(tables, skipped, groups, k, notes)
