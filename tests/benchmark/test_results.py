"""`collect`: tables and plots from run records (real short runs and hand-written records)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark.cli import main
from benchmark.compare import write_per_user
from benchmark.records import PER_USER_FILE
from benchmark.stats import paired_tests
from benchmark.data.datasets import load_dataset
from benchmark.errors import BenchmarkError
from benchmark.metrics import BEYOND_METRICS
from benchmark.results import (
    ABS_LOWER_IS_BETTER,
    LOWER_IS_BETTER,
    POPULARITY_COLUMN,
    collect,
    make_plots,
    plot_ndcg_by_popularity,
    render,
    streaming_windows,
)
from benchmark.runner import resolve, run

FP_A, FP_B = "a" * 64, "b" * 64
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- helpers ----------------------------------------------------------------------------


def write_record(
    root: Path, run_id: str, model: str, metrics: dict[str, float], *, seed: int = 0, per_user: dict[str, Any] | None = None,
    dataset: str = "synthetic-ml", source: str = "synthetic", fingerprint: str = FP_A, split: str = "loo", protocol: str = "full",
    ks: tuple[int, ...] = (5, 10, 20), status: str = "completed", config_hash: str = "cfg0", finished: str = "2026-01-01T00:00:00",
    extra: dict[str, Any] | None = None,
) -> Path:  # fmt: skip
    """A run folder as `run` writes it, with controlled numbers."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    record = {
        "run_id": run_id, "model": model, "dataset": dataset, "data_source": source, "dataset_fingerprint": fingerprint,
        "split": split, "eval_protocol": protocol, "config": {"train_config": {"ks": list(ks)}}, "config_hash": config_hash,
        "seed": seed, "metrics": {"valid": {}, "test": metrics}, "status": status, "finished": finished, **(extra or {}),
    }  # fmt: skip
    if protocol == "sampled":
        record["eval_sampling"] = {"negatives": 100, "sampler": "uniform", "seed": seed}
    (run_dir / "result.json").write_text(json.dumps(record))
    if per_user is not None:
        frame = pd.DataFrame(per_user)
        frame.insert(0, "raw_user_id", [str(u) for u in range(len(frame))])
        write_per_user(frame, run_dir / PER_USER_FILE, protocol)
    return run_dir


def table_of(collection: Any, kind: str = "comparison", index: int = 0) -> Any:
    return [t for t in collection.tables if t.kind == kind][index]


def row_of(table: Any, label: str) -> Any:
    (row,) = [r for r in table.rows if r.label == label]
    return row


def assert_png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()


# --- real short runs --------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_runs(tiny_ml: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pop and bpr, two seeds each, on tiny simulated MovieLens data (runner.run)."""
    out = tmp_path_factory.mktemp("collect")
    for model in ("pop", "bpr"):
        for seed in (0, 1):
            os.environ.pop("BENCHMARK_RUN_ID", None)  # one run id per run
            cfg = resolve(model, "synthetic-ml", {"max_epochs": 2, "eval_item_group": "year"}, seed=seed, raw_dir=str(tiny_ml))
            run(cfg, out, progress=False)
    os.environ.pop("BENCHMARK_RUN_ID", None)
    return out / "runs"


def _records(runs_dir: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for file in sorted(runs_dir.glob("*/result.json")):
        record = json.loads(file.read_text())
        out.setdefault(record["model"], []).append(record)
    return out


def _averaged(runs_dir: Path, records: list[dict[str, Any]], column: str) -> pd.Series:
    frames = [pd.read_parquet(runs_dir / r["run_id"] / PER_USER_FILE) for r in records]
    return pd.concat(frames).groupby("raw_user_id")[column].mean()


def test_per_user_file_holds_the_test_item_popularity(real_runs: Path, tiny_ml: Path) -> None:
    record = _records(real_runs)["bpr"][0]
    per_user = pd.read_parquet(real_runs / record["run_id"] / PER_USER_FILE)
    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    counts = np.bincount(data.train.item, minlength=data.n_items)
    for row in per_user.head(25).itertuples():
        u = row.user
        seen = set(data.train.item[data.train.user == u]) | set(data.valid.item[data.valid.user == u])
        test_items = [i for i in data.test.item[data.test.user == u] if i not in seen]
        assert row.n_test_items == len(test_items) == 1  # leave-one-out
        assert getattr(row, POPULARITY_COLUMN) == counts[test_items[0]]


def test_collect_real_runs_mean_std_and_significance(real_runs: Path) -> None:
    records = _records(real_runs)
    collection = collect(real_runs)
    assert len(collection.tables) == 1 and not collection.skipped
    table = table_of(collection)
    assert table.protocol.synthetic and table.protocol.split == "loo" and table.protocol.ks == (5, 10, 20)
    assert [r.label for r in table.rows] == ["bpr", "pop"]
    for model in ("bpr", "pop"):
        for metric in ("ndcg@10", "coverage@10", "usergap-ndcg@10", "groupdisparity@10"):
            values = [r["metrics"]["test"][metric] for r in records[model]]
            cell = row_of(table, model).cells[metric]
            assert cell.n == 2 and cell.mean == pytest.approx(np.mean(values)) and cell.std == pytest.approx(np.std(values, ddof=1))
    best = max(("bpr", "pop"), key=lambda m: np.mean([r["metrics"]["test"]["ndcg@10"] for r in records[m]]))
    other = "pop" if best == "bpr" else "bpr"
    assert table.reference == best
    for metric in ("ndcg@10", "hr@10", "novelty@10"):
        ref, mine = _averaged(real_runs, records[best], metric), _averaged(real_runs, records[other], metric)
        t_p, _ = paired_tests(ref.to_numpy(), mine.loc[ref.index].to_numpy())
        assert row_of(table, other).cells[metric].p_value == pytest.approx(t_p)
    assert row_of(table, best).cells["ndcg@10"].p_value is None
    assert row_of(table, other).cells["coverage@10"].p_value is None  # no per-user values: never tested


def test_plots_from_real_runs(real_runs: Path, tmp_path: Path) -> None:
    records = _records(real_runs)
    collection = collect(real_runs)
    plots = {p.kind: p for p in make_plots(collection, tmp_path / "plots")}
    assert set(plots) == {"accuracy-fairness", "ndcg-by-popularity"}  # no llm4rec, no streaming runs
    for plot in plots.values():
        assert_png(plot.path)
    points = plots["accuracy-fairness"].data["points"]
    for model in ("bpr", "pop"):
        for metric in ("ndcg@10", "tailshare@10", "usergap-ndcg@10"):
            assert points[model][metric][0] == pytest.approx(np.mean([r["metrics"]["test"][metric] for r in records[model]]))
    pop_plot = plots["ndcg-by-popularity"].data
    popularity = _averaged(real_runs, records["bpr"], POPULARITY_COLUMN)
    buckets = pd.qcut(popularity, q=5, duplicates="drop")
    assert pop_plot["n_users"] == buckets.value_counts(sort=False).tolist() and sum(pop_plot["n_users"]) == len(popularity)
    assert pop_plot["edges"][0] == popularity.min() and pop_plot["edges"][-1] == popularity.max()
    for model in ("bpr", "pop"):
        ndcg = _averaged(real_runs, records[model], "ndcg@10")
        expected = ndcg.groupby(buckets, observed=False).mean().to_numpy()
        assert np.allclose(pop_plot["ndcg"][model], expected)
    # Pop finds only popular test items: nothing in the least popular bucket, the most in the top one
    assert pop_plot["ndcg"]["pop"][0] == 0.0 and pop_plot["ndcg"]["pop"][-1] == max(pop_plot["ndcg"]["pop"])


def test_cli_collect_formats_and_errors(real_runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.csv"
    argv = ["collect", "--runs", str(real_runs), "--no-progress"]
    assert main([*argv, "--format", "csv", "--output", str(out), "--plots", str(tmp_path / "p")]) == 0
    printed = capsys.readouterr().out
    assert "| model | seeds |" in printed and "SYNTHETIC data" in printed and "plot (accuracy-fairness)" in printed
    frame = pd.read_csv(out)
    assert len(frame) == 2 * 12 and set(frame["label"]) == {"bpr", "pop"}
    records = _records(real_runs)
    got = frame[(frame.label == "bpr") & (frame.metric == "hr@10")].iloc[0]
    assert got["mean"] == pytest.approx(np.mean([r["metrics"]["test"]["hr@10"] for r in records["bpr"]]))
    assert main([*argv, "--output", str(tmp_path / "t.json")]) == 0
    saved = json.loads((tmp_path / "t.json").read_text())
    assert saved["tables"][0]["rows"][0]["cells"]["ndcg@10"]["n"] == 2
    assert main([*argv, "--data", "ml-latest-small"]) == 2  # no run of that dataset
    assert "no completed run for dataset ml-latest-small" in capsys.readouterr().err
    assert main(["collect", "--runs", str(tmp_path / "missing")]) == 2
    assert main([*argv, "--k", "7"]) == 2  # not among the runs' cut-offs
    assert "K = 7" in capsys.readouterr().err


# --- hand-written records ---------------------------------------------------------------


def test_mean_std_bold_underline_and_directions(tmp_path: Path) -> None:
    values = {  # model -> per-seed metrics
        "alpha": [{"ndcg@10": 0.30, "gini@10": 0.5, "usergap-ndcg@10": -0.01, "groupdisparity@10": 0.2},
                  {"ndcg@10": 0.34, "gini@10": 0.7, "usergap-ndcg@10": -0.03, "groupdisparity@10": 0.2}],
        "beta": [{"ndcg@10": 0.20, "gini@10": 0.2, "usergap-ndcg@10": 0.10, "groupdisparity@10": 0.1},
                 {"ndcg@10": 0.22, "gini@10": 0.4, "usergap-ndcg@10": 0.10, "groupdisparity@10": 0.1}],
        "gamma": [{"ndcg@10": 0.25, "gini@10": 0.45, "usergap-ndcg@10": 0.05, "groupdisparity@10": 0.3}],
    }  # fmt: skip
    for model, seeds in values.items():
        for seed, metrics in enumerate(seeds):
            write_record(tmp_path, f"{model}-{seed}", model, metrics, seed=seed)
    table = table_of(collect(tmp_path))
    assert table.metrics == ["ndcg@10", "gini@10", "usergap-ndcg@10", "groupdisparity@10"]
    alpha, beta, gamma = (row_of(table, m) for m in ("alpha", "beta", "gamma"))
    assert alpha.cells["ndcg@10"].mean == pytest.approx(0.32) and alpha.cells["ndcg@10"].std == pytest.approx(0.02 * 2**0.5)
    assert gamma.cells["ndcg@10"].std is None  # one run: no spread
    ranks = {m: {r.label: r.cells[m].rank for r in table.rows} for m in table.metrics}
    assert ranks["ndcg@10"] == {"alpha": 1, "gamma": 2, "beta": None}
    assert ranks["gini@10"] == {"beta": 1, "gamma": 2, "alpha": None}  # lower is better
    assert ranks["usergap-ndcg@10"] == {"alpha": 1, "gamma": 2, "beta": None}  # |-0.02| < |0.05| < |0.10|
    assert ranks["groupdisparity@10"] == {"beta": 1, "alpha": 2, "gamma": None}
    md = render(collect(tmp_path))
    assert "| alpha | 2 | **0.3200 ± 0.0283** | 0.6000 ± 0.1414 | **-0.0200 ± 0.0141** | <ins>0.2000 ± 0.0000</ins> |" in md
    assert "| gamma | 1 | <ins>0.2500</ins> |" in md
    assert "gini@10 ↓" in md and "usergap-ndcg@10 ↓" in md and "ndcg@10 ↑" in md
    assert "|usergap-ndcg@10| (closest to 0)" in md.replace("\\|", "|")
    latex = render(collect(tmp_path), "latex")
    assert r"\textbf{0.3200 $\pm$ 0.0283}" in latex and r"\underline{0.2500}" in latex and r"\toprule" in latex


def test_direction_constants_agree_with_the_metrics() -> None:
    lower = {name for name, (cls, _) in BEYOND_METRICS.items() if not cls.higher_is_better}
    assert lower == LOWER_IS_BETTER | ABS_LOWER_IS_BETTER


def _per_user_rows(tmp_path: Path) -> dict[str, np.ndarray]:
    """Per-user NDCG of a baseline, a clearly better model (two seeds whose average is better)
    and a baseline indistinguishable from the first; written as records."""
    rng = np.random.default_rng(0)
    n = 60
    base = rng.uniform(0.0, 0.5, n)
    wiggle = np.where(np.arange(n) % 2 == 0, 0.05, -0.05)
    series = {
        ("base", 0): base,
        ("same", 0): base + wiggle - 0.001,  # mean 0.001 lower, differences ±0.05: not significant
        ("llm4rec", 0): base + 0.2 + rng.normal(0, 0.02, n),
        ("llm4rec", 1): base - 0.05 + rng.normal(0, 0.02, n),  # worse alone; the seed average is better
        ("llm4rec-no-rag", 0): base + 0.02 + rng.normal(0, 0.03, n),
    }
    for (model, seed), ndcg in series.items():
        write_record(tmp_path, f"{model}-{seed}", model, {"ndcg@10": float(ndcg.mean()), "coverage@10": 0.5}, seed=seed,
                     per_user={"user": np.arange(n), "ndcg@10": ndcg})  # fmt: skip
    return {"base": base, "same": series[("same", 0)], "llm4rec": (series[("llm4rec", 0)] + series[("llm4rec", 1)]) / 2,
            "llm4rec-no-rag": series[("llm4rec-no-rag", 0)]}  # fmt: skip


def test_significance_marker_from_per_user_values(tmp_path: Path) -> None:
    values = _per_user_rows(tmp_path)
    collection = collect(tmp_path)
    table = table_of(collection)
    assert [r.label for r in table.rows] == ["base", "llm4rec", "same"]  # ablations are not compared here
    assert table.reference == "base"  # the best non-LLM4Rec row by NDCG@10
    better, same = row_of(table, "llm4rec").cells["ndcg@10"], row_of(table, "same").cells["ndcg@10"]
    assert better.p_value == pytest.approx(paired_tests(values["base"], values["llm4rec"])[0]) and better.p_value < 1e-6
    assert same.p_value == pytest.approx(paired_tests(values["base"], values["same"])[0]) and same.p_value > 0.5
    assert better.significant and not same.significant
    md = render(collection)
    assert f"| llm4rec | 2 | **{values['llm4rec'].mean():.4f} ± " in md and "†" in md.split("| llm4rec | 2 |")[1].split("\n")[0]
    assert "†" not in md.split("| same | 1 |")[1].split("\n")[0]
    wilcoxon = table_of(collect(tmp_path, test="wilcoxon"))
    assert row_of(wilcoxon, "llm4rec").cells["ndcg@10"].p_value == pytest.approx(paired_tests(values["base"], values["llm4rec"])[1])


def test_ablation_table_deltas_and_plot(tmp_path: Path) -> None:
    values = _per_user_rows(tmp_path)
    write_record(tmp_path, "llm4rec-no-debias-0", "llm4rec-no-debias", {"ndcg@10": 0.1, "coverage@10": 0.7})
    collection = collect(tmp_path)
    ablation = table_of(collection, "ablation")
    assert [r.label for r in ablation.rows] == ["llm4rec", "llm4rec-no-debias", "llm4rec-no-rag"]
    assert ablation.reference == "llm4rec"
    full_mean = values["llm4rec"].mean()
    no_rag = row_of(ablation, "llm4rec-no-rag").cells
    assert no_rag["ndcg@10"].delta == pytest.approx(values["llm4rec-no-rag"].mean() - full_mean)
    assert no_rag["ndcg@10"].p_value == pytest.approx(paired_tests(values["llm4rec"], values["llm4rec-no-rag"])[0])
    assert row_of(ablation, "llm4rec-no-debias").cells["coverage@10"].delta == pytest.approx(0.2)
    assert row_of(ablation, "llm4rec-no-debias").note.startswith("no per_user_test.parquet")
    assert row_of(ablation, "llm4rec").cells["ndcg@10"].delta is None
    assert f"(Δ {0.1 - full_mean:+.4f})" in render(collection)
    not_drawn: list[str] = []
    plots = {p.kind: p for p in make_plots(collection, tmp_path / "plots", not_drawn)}
    assert_png(plots["ablation"].path)
    bars = plots["ablation"].data["bars"]
    assert bars["llm4rec"]["n"] == 2 and bars["llm4rec"]["mean"] == pytest.approx(full_mean)
    per_seed = [json.loads((tmp_path / f"llm4rec-{s}" / "result.json").read_text())["metrics"]["test"]["ndcg@10"] for s in (0, 1)]
    assert bars["llm4rec"]["std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert bars["llm4rec-no-debias"] == {"mean": 0.1, "std": 0.0, "n": 1}
    # these records carry no test-item popularity (as records written before the column existed)
    assert "ndcg-by-popularity" not in plots and plot_ndcg_by_popularity(table_of(collection), tmp_path / "x.png") is None
    assert [line.split(": ", 1)[1] for line in not_drawn] == [
        "no run has ndcg@10 with tailshare@10 or usergap-ndcg@10",
        f"no per-user file has {POPULARITY_COLUMN} (records written before it existed)",
    ]


def test_protocols_and_fingerprints_are_never_mixed(tmp_path: Path) -> None:
    m = {"ndcg@10": 0.1}
    write_record(tmp_path, "r1", "bpr", m)
    write_record(tmp_path, "r2", "pop", m)
    write_record(tmp_path, "r3", "bpr", m, fingerprint=FP_B)
    write_record(tmp_path, "r4", "bpr", m, split="temporal")
    write_record(tmp_path, "r5", "bpr", m, protocol="sampled")
    write_record(tmp_path, "r6", "bpr", m, ks=(5, 10))
    write_record(tmp_path, "r7", "bpr", m, dataset="ml-latest-small", source="real", fingerprint="c" * 64)
    collection = collect(tmp_path)
    tables = collection.tables
    assert len(tables) == 6
    assert {tuple(sorted(run.run_id for row in t.rows for run in row.runs)) for t in tables} == {
        ("r1", "r2"), ("r3",), ("r4",), ("r5",), ("r6",), ("r7",)
    }
    md = render(collection)
    assert md.count("## ") == 6 and "fingerprint bbbbbbbbbbbb" in md and "split temporal" in md and "K = 5, 10 ·" in md
    assert "SAMPLED evaluation (100 uniform negatives per user)" in md
    assert md.count("SYNTHETIC data (simulator)") == 5 and "## ml-latest-small, real data: Comparison" in md
    only = collect(tmp_path, dataset="ml-latest-small")
    assert len(only.tables) == 1 and only.tables[0].protocol.dataset == "ml-latest-small"


def test_only_completed_runs_count_and_skips_are_explained(tmp_path: Path) -> None:
    write_record(tmp_path, "ok", "bpr", {"ndcg@10": 0.2}, finished="2026-01-02T00:00:00")
    write_record(tmp_path, "old", "bpr", {"ndcg@10": 0.9}, finished="2026-01-01T00:00:00")  # same model, config, seed
    write_record(tmp_path, "failed", "pop", {"ndcg@10": 0.5}, status="failed")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "result.json").write_text("{not json")
    write_record(tmp_path, "other-config", "bpr", {"ndcg@10": 0.4}, config_hash="cfg1abcdef")
    collection = collect(tmp_path)
    table = table_of(collection)
    assert sorted(r.label for r in table.rows) == ["bpr [cfg0]", "bpr [cfg1ab]"]
    assert row_of(table, "bpr [cfg0]").cells["ndcg@10"].mean == 0.2
    reasons = {Path(s.path).name: s.reason for s in collection.skipped}
    assert reasons == {
        "old": "superseded by ok (same model, config and seed)",
        "failed": "status is 'failed', not 'completed'",
        "broken": "result.json is unreadable (JSONDecodeError)",
    }
    assert "Skipped runs (3):" in render(collection)
    # a model under several configurations: rows named by the settings that differ
    for run_id, lr in (("lr1", 0.01), ("lr2", 0.1)):
        config = {"train_config": {"ks": [5, 10, 20], "max_epochs": 5}, "model_config": {"lr": lr, "embedding_dim": 64}}
        write_record(tmp_path / "configs", run_id, "bpr", {"ndcg@10": lr}, config_hash=run_id, extra={"config": config})
    assert [r.label for r in table_of(collect(tmp_path / "configs")).rows] == ["bpr [lr=0.01]", "bpr [lr=0.1]"]
    with pytest.raises(BenchmarkError, match="no run records"):
        collect(tmp_path / "failed")  # a run folder itself is not a folder of runs
    write_record(tmp_path / "only-failed", "f", "pop", {"ndcg@10": 0.5}, status="failed")
    with pytest.raises(BenchmarkError, match=r"no completed run \(1 skipped\)"):
        collect(tmp_path / "only-failed")


def test_escaping_in_every_format(tmp_path: Path) -> None:
    name = "<script>alert('x'),\"1\"</script>&_%|*"
    write_record(tmp_path, "evil", name, {"ndcg@10": 0.3})
    write_record(tmp_path, "bpr", "bpr", {"ndcg@10": 0.2})
    collection = collect(tmp_path)
    page = render(collection, "html")
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;),&quot;1&quot;&lt;/script&gt;&amp;_%|*" in page
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "<b>0.3000</b>" in page and "<u>0.2000</u>" in page
    latex = render(collection, "latex")
    assert "\\textless{}script\\textgreater{}alert('x'),\"1\"\\textless{}/script\\textgreater{}\\&\\_\\%\\textbar{}*" in latex
    md = render(collection)
    assert "<script>" not in md and "&lt;script&gt;alert('x'),\"1\"&lt;/script&gt;&amp;\\_%\\|\\*" in md
    frame = pd.read_csv(io.StringIO(render(collection, "csv")))
    assert name in set(frame["model"]) and frame[frame.model == name]["rank"].iloc[0] == 1


def test_streaming_windows_plot(tmp_path: Path) -> None:
    def stream(adaptive: list[float], frozen: list[float], p50: float) -> dict[str, Any]:
        windows = [{"window": w, "start": 100 * w, "end": 100 * w + 99, "n_events": 50,
                    "adaptive": {"ndcg@10": a, "hr@10": 2 * a}, "frozen": {"ndcg@10": f, "hr@10": 2 * f}}
                   for w, (a, f) in enumerate(zip(adaptive, frozen))]  # fmt: skip
        return {"windows": windows, "update_latency_ms": {"p50": p50, "p99": 3 * p50}}

    write_record(tmp_path, "s0", "sasrec", {"ndcg@10": 0.1}, extra={"streaming": stream([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], 2.0)})
    write_record(tmp_path, "s1", "sasrec", {"ndcg@10": 0.1}, seed=1, extra={"streaming": stream([0.3, 0.4, 0.5], [0.1, 0.0, 0.1], 4.0)})
    write_record(tmp_path, "offline", "sasrec", {"ndcg@10": 0.1}, seed=2)
    frozen_only = stream([0.1, 0.1, 0.1], [0.1, 0.1, 0.1], 0.0)
    frozen_only["update_latency_ms"] = {"p50": None, "p99": None, "n_batches": 0}  # a model that never updates
    write_record(tmp_path, "pop", "pop", {"ndcg@10": 0.1}, extra={"streaming": frozen_only})
    collection = collect(tmp_path)
    assert len(collection.tables) == 2  # streaming runs form their own group
    assert sum("streaming protocol" in t.protocol.description() for t in collection.tables) == 1
    plots = [p for p in make_plots(collection, tmp_path / "plots") if p.kind == "streaming"]
    assert len(plots) == 1
    assert_png(plots[0].path)
    series = plots[0].data["series"]["sasrec"]
    assert series["window"] == [0, 1, 2] and series["n_runs"] == 2
    assert np.allclose(series["adaptive"], [0.2, 0.3, 0.4]) and np.allclose(series["frozen"], [0.1, 0.05, 0.1])
    assert series["update_latency_ms"] == {"p50": 3.0, "p99": 9.0}
    assert plots[0].data["series"]["pop"]["update_latency_ms"] == {}
    runs = next(r for p, r in collection.groups.items() if p.streaming)
    assert np.allclose(streaming_windows(runs, "hr@10")["sasrec"]["adaptive"], [0.4, 0.6, 0.8])
