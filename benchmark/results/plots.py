"""PNG plots of a ``Collection`` (matplotlib, Agg backend: files only, never a display).

Each plot function returns a ``Plot`` with the numbers it drew (``data``), or None when the
records cannot support it; ``make_plots`` draws every plot a collection supports.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.records import RunRecord
from benchmark.results.loading import Protocol
from benchmark.results.tables import (
    POPULARITY_COLUMN,
    Cell,
    Collection,
    CrossTable,
    Table,
    arrow,
    direction,
)


@dataclass
class Plot:
    kind: str  # "accuracy-fairness" | "ndcg-by-popularity" | "ablation" | "streaming" | "across-datasets"
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
        ax.set_ylabel(f"{metric} ({ {'higher': 'higher', 'lower': 'lower', 'zero': 'closer to 0'}[direction(metric)]} is fairer)")
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
    labels = [f"{'[' if i == 0 else '('}{lo:.4g}, {hi:.4g}]" for i, (lo, hi) in enumerate(itertools.pairwise(edges))]
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


def streaming_windows(runs: list[RunRecord], metric: str = "ndcg@10") -> dict[str, dict[str, Any]]:
    """Per model: adaptive and frozen ``metric`` per window, averaged over the model's runs
    (windows that every run has), and the mean update latency percentiles."""
    out: dict[str, dict[str, Any]] = {}
    by_model: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        stream = run.streaming
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


def plot_streaming(runs: list[RunRecord], protocol: Protocol, path: Path, k: int = 10) -> Plot | None:
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


def plot_across_datasets(table: CrossTable, path: Path) -> Plot | None:
    """One panel per dataset: a group of bars per metric, one bar per model (mean; error bar:
    std over seeds), the table's marker above a bar that has one; a model keeps its colour
    in every panel."""
    panels: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for name, part in table.datasets:
        panels[name] = {
            row.label: {m: {"mean": c.mean, "std": c.std or 0.0, "marker": c.marker} for m in table.metrics if (c := row.cells[m]).mean is not None}
            for row in part.rows
        }
    if not any(values for panel in panels.values() for values in panel.values()):
        return None
    plt = _pyplot()
    from matplotlib.patches import Patch

    labels, metrics = table.rows, table.metrics
    width = 0.8 / len(labels)
    x = np.arange(len(metrics))
    fig, axes = plt.subplots(1, len(panels), figsize=(max(3.5, 0.35 * len(labels) * len(metrics) + 1.5) * len(panels), 4.2), squeeze=False)
    for ax, (name, panel) in zip(axes[0], panels.items()):
        for i, label in enumerate(labels):
            values = panel.get(label, {})
            drawn = [(j, values[m]) for j, m in enumerate(metrics) if m in values]  # a model not run on this dataset: no bar
            if not drawn:
                continue
            pos = np.array([x[j] for j, _ in drawn]) + (i - (len(labels) - 1) / 2) * width
            ax.bar(pos, [v["mean"] for _, v in drawn], width, yerr=[v["std"] for _, v in drawn], capsize=2, color=f"C{i % 10}")
            for p, (_, v) in zip(pos, drawn):
                if v["marker"]:
                    ax.annotate(v["marker"], (p, v["mean"] + v["std"]), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, [f"{m} {arrow(m)}" for m in metrics], fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("mean ± std over seeds")
    handles = [Patch(color=f"C{i % 10}", label=label) for i, label in enumerate(labels)]
    axes[0][-1].legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"Across datasets: {table.setting.description()}\n▲ / ▼ better / worse than the dataset's best baseline (Holm-adjusted)", fontsize=9)
    return Plot("across-datasets", _save(fig, path), {"metrics": metrics, "datasets": list(panels), "bars": panels})


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

    if any(isinstance(t, CrossTable) for t in collection.tables):  # a cross-dataset collection: its own plots only
        for cross in collection.tables:
            slug = f"across-datasets-{cross.setting.slug()}"
            add(plot_across_datasets(cross, out / f"{slug}.png"), slug, "no model has a value")
        return plots
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
