"""`python -m benchmark ablation`: a model and each of its registered ablations, over seeds.

``python -m benchmark ablation --model llm4rec --data D --seeds 3`` runs ``llm4rec`` and
every registered ``llm4rec-no-*`` name (each a config of the same class) with seeds
0..N-1 through ``runner.run`` -- the same training, early stopping, test pass and run
record as ``run`` -- and prints one row per variant: mean and standard deviation over
seeds of the test metrics, the per-seed NDCG@10, the change of NDCG@10 against the full
model (relative, in %), and two tests whose unit is the seed (DESIGN.md, validity rules):
a paired t-test over the per-seed means (seed i of the variant against seed i of the full
model) and a hierarchical bootstrap (seeds, then users within each seed) with its 95%
interval of the NDCG@10 difference; both p-values also Holm-adjusted over the variants
compared. Then training time and test users ranked per second. On simulated
data it adds ``ndcg-true@10`` (unbiased, from the simulator's true relevance) and the
agreement of the debiasing module's propensity models with the simulator's true
exposure propensities.

``--reuse`` skips a (variant, seed) whose completed record with the same configuration
hash already exists under ``--out`` (an interrupted grid resumes where it stopped).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import BenchmarkError
from benchmark.records import RecordError, RunRecord

SUMMARY_METRICS = ("ndcg@10", "hr@10", "ild@10", "tailshare@10", "usergap-ndcg@10", "coverage@10", "ndcg-true@10")
EXPLANATION_METRICS = ("bleu4", "rouge_l", "feature_match")


def variants(model: str) -> list[str]:
    """``model`` and its registered ablations (names ``<model>-no-*``), in registry order."""
    from benchmark.registry import MODELS, get_model

    spec = get_model(model)
    found = [name for name, other in MODELS.items() if name.startswith(f"{model}-no-") and other.cls is spec.cls]
    if not found:
        raise BenchmarkError(f"model {model!r} has no registered ablations (names {model}-no-*)")
    return [model, *found]


def run_ablation(
    model: str, data: str, *, seeds: int = 3, raw_dir: str | None = None, overrides: dict[str, Any] | None = None,
    out: str | Path = ".", names: list[str] | None = None, reuse: bool = False, progress: bool = True, on_run: Any = None,
) -> dict[str, Any]:
    """Run every (variant, seed) as one ``Experiment``; returns {"variants": {name: [RunRecord, ...]}}.
    ``on_run``: the experiment's progress callback (the CLI prints from it)."""
    from benchmark.experiment import Experiment

    if seeds < 1:
        raise BenchmarkError(f"--seeds must be >= 1, got {seeds}")
    every = variants(model)
    chosen = every if not names else [model] + [n if n.startswith(f"{model}-") else f"{model}-{n}" for n in names if n != model]
    unknown = [n for n in chosen if n not in every]
    if unknown:
        raise BenchmarkError(f"unknown ablation(s) {unknown}; {model} has: {', '.join(every[1:])}")
    experiment = Experiment(
        data=data, models=list(dict.fromkeys(chosen)), config=dict(overrides or {}), seeds=list(range(seeds)), raw_dir=raw_dir,
        out=out, progress=progress, tags={"ablation": model}, reuse=reuse,
    )  # fmt: skip
    records: dict[str, list[RunRecord]] = {}
    for record in experiment.run(on_run):
        records.setdefault(record.model, []).append(record)
    return {"variants": records}


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _per_user(record: RunRecord, metric: str) -> dict[str, float]:
    try:
        frame = record.per_user()
    except RecordError:
        return {}
    if metric not in frame or "raw_user_id" not in frame:
        return {}
    return dict(zip(frame["raw_user_id"].astype(str), frame[metric].astype(float)))


def seed_statistics(full: list[RunRecord], other: list[RunRecord], metric: str = "ndcg@10") -> dict[str, float]:
    """Tests of ``other`` against ``full`` over the seeds both ran:
    ``p_seeds`` (paired t-test of per-seed means) and the hierarchical bootstrap's ``p_bootstrap``,
    ``ci_low``, ``ci_high`` of the mean difference (other - full); users are paired within a seed."""
    from benchmark.stats import hierarchical_bootstrap, seed_test

    by_seed = {r.seed: r for r in full}
    means_a, means_b, differences = [], [], []
    for record in other:
        if record.seed not in by_seed:
            continue
        ua, ub = _per_user(by_seed[record.seed], metric), _per_user(record, metric)
        shared = sorted(set(ua) & set(ub))
        x, y = np.array([ua[u] for u in shared]), np.array([ub[u] for u in shared])
        keep = ~(np.isnan(x) | np.isnan(y))
        if keep.sum() < 2:
            continue
        means_a.append(float(x[keep].mean()))
        means_b.append(float(y[keep].mean()))
        differences.append(y[keep] - x[keep])
    if not differences:
        return {}
    out = {"p_seeds": seed_test(means_a, means_b)}
    boot = hierarchical_bootstrap(differences)
    out.update(p_bootstrap=boot["p"], ci_low=boot["ci_low"], ci_high=boot["ci_high"], n_seeds=float(len(differences)))
    return out


def summarise(result: dict[str, Any], model: str) -> dict[str, dict[str, Any]]:
    """Per variant: n runs, mean/std of the summary metrics, per-seed NDCG@10, Δ NDCG@10 vs the
    full model (%), the seed-level tests (raw and Holm-adjusted over the variants), explanation
    metrics, train seconds, test users ranked per second."""
    from benchmark.stats import holm

    records = result["variants"]
    full = records.get(model, [])
    full_ndcg = _mean_std([r.metrics["test"].get("ndcg@10", math.nan) for r in full])[0] if full else math.nan
    summary: dict[str, dict[str, Any]] = {}
    for name, runs in records.items():
        row: dict[str, Any] = {"runs": len(runs), "run_ids": [r.run_id for r in runs]}
        row["seeds"] = [r.seed for r in runs]
        row["ndcg@10 per seed"] = [r.metrics["test"].get("ndcg@10", math.nan) for r in runs]
        for metric in SUMMARY_METRICS:
            mean, std = _mean_std([r.metrics["test"].get(metric, math.nan) for r in runs])
            if not math.isnan(mean):
                row[metric], row[f"{metric} std"] = mean, std
        for metric in EXPLANATION_METRICS:
            values = [(r.explanations or {}).get("metrics", {}).get(metric) for r in runs]
            if any(v is not None for v in values):
                row[f"explanation/{metric}"] = _mean_std([v for v in values if v is not None])[0]
        if name != model and "ndcg@10" in row and full_ndcg and not math.isnan(full_ndcg):
            row["delta ndcg@10 %"] = 100.0 * (row["ndcg@10"] - full_ndcg) / full_ndcg
            tests = seed_statistics(full, runs)
            row.update({f"{k} vs full": v for k, v in tests.items()})
        row["train_seconds"] = _mean_std([r.timings["train_seconds"] for r in runs])[0]
        users = [len(_per_user(r, "ndcg@10")) for r in runs]
        rates = [u / r.timings["eval_seconds"] for u, r in zip(users, runs) if u and r.timings.get("eval_seconds")]
        if rates:
            row["test_users_per_s"] = statistics.fmean(rates)
        summary[name] = row
    for kind in ("p_seeds", "p_bootstrap"):  # the family: every variant compared with the full model
        names = [n for n, row in summary.items() if f"{kind} vs full" in row]
        for name, adjusted in zip(names, holm([summary[n][f"{kind} vs full"] for n in names])):
            summary[name][f"{kind} holm vs full"] = adjusted
    return summary


def summary_rows(summary: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """The summary as table rows (header first)."""
    metrics = [m for m in SUMMARY_METRICS if any(m in row for row in summary.values())]
    explained = [m for m in EXPLANATION_METRICS if any(f"explanation/{m}" in row for row in summary.values())]
    header = ["variant", "runs", *metrics, "ndcg@10 per seed", "Δ ndcg@10 %", "p seeds (Holm)", "p boot (Holm)", "95% CI Δ",
              *[f"exp {m}" for m in explained], "train s", "users/s"]  # fmt: skip

    def p(row: dict[str, Any], kind: str) -> str:
        raw, adjusted = row.get(f"{kind} vs full"), row.get(f"{kind} holm vs full")
        return "" if raw is None or math.isnan(raw) else f"{raw:.3g} ({adjusted:.3g})"

    rows: list[list[Any]] = [header]
    for name, row in summary.items():
        cells: list[Any] = [name, row["runs"]]
        cells += [f"{row[m]:.4f} ± {row[f'{m} std']:.4f}" if m in row else "" for m in metrics]
        cells.append(" / ".join(f"{v:.4f}" for v in row["ndcg@10 per seed"]))
        cells += [f"{row['delta ndcg@10 %']:+.1f}" if "delta ndcg@10 %" in row else "", p(row, "p_seeds"), p(row, "p_bootstrap"),
                  f"[{row['ci_low vs full']:+.4f}, {row['ci_high vs full']:+.4f}]" if "ci_low vs full" in row else ""]  # fmt: skip
        cells += [row.get(f"explanation/{m}", "") for m in explained]
        cells += [round(row["train_seconds"], 1), round(row["test_users_per_s"], 1) if "test_users_per_s" in row else ""]
        rows.append(cells)
    return rows


def propensity_agreement_for(data: str, raw_dir: str | None, overrides: dict[str, Any]) -> dict[str, dict[str, float]] | None:
    """The debiasing module's propensity models against the simulator's truth (synthetic data only).
    ``raw_dir`` locates the raw files for preparation; the truth itself comes with the prepared data."""
    from benchmark.config import DataConfig, apply_overrides
    from benchmark.data.datasets import get_dataset, load_dataset
    from llm4rec.debias import simulator_propensity_report

    if get_dataset(data).source != "synthetic":
        return None
    data_keys = {k: v for k, v in overrides.items() if k in DataConfig.__dataclass_fields__}
    prepared = load_dataset(data, apply_overrides({DataConfig: DataConfig()}, data_keys)[DataConfig], raw_dir)
    power = overrides.get("propensity_power", 0.5)
    return simulator_propensity_report(prepared, power=float(power))
