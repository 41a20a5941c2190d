"""`collect`: tables and plots from run records (real short runs and hand-written records)."""

from __future__ import annotations

import html
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark.cli import main
from benchmark.compare import write_per_user
from benchmark.data.datasets import load_dataset
from benchmark.errors import BenchmarkError
from benchmark.metrics import (
    ACCURACY_METRICS,
    BEYOND_METRICS,
    MAP,
    NDCG,
    Gini,
    TrueNDCG,
    UserGapNDCG,
    metric_catalogue,
    metric_directions,
)
from benchmark.records import PER_USER_FILE
from benchmark.results import (
    POPULARITY_COLUMN,
    collect,
    collect_across_datasets,
    make_plots,
    output_format,
    plot_ndcg_by_popularity,
    render,
    streaming_windows,
)
from benchmark.runner import resolve, run
from benchmark.stats import paired_tests

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
    # leave-one-out: every per-user n_test_items is 1, so recall = hr and map = mrr are not shown twice
    assert table.dropped == {"recall@10": "hr@10", "map@10": "mrr@10"}
    assert "Split loo: other users' later interactions still shape shared item embeddings" in table.legend()
    assert table.metrics == ["ndcg@10", "hr@10", "mrr@10", "ndcg-true@10", "ild@10", "coverage@10", "gini@10", "entropy@10",
                             "novelty@10", "tailshare@10", "usergap-ndcg@10", "groupdisparity@10"]  # fmt: skip
    for model in ("bpr", "pop"):
        for record in records[model]:
            assert record["metrics"]["test"]["recall@10"] == pytest.approx(record["metrics"]["test"]["hr@10"])
            assert record["metrics"]["test"]["map@10"] == pytest.approx(record["metrics"]["test"]["mrr@10"])
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
        cell = row_of(table, other).cells[metric]
        assert cell.p_value == pytest.approx(t_p) and cell.p_holm == pytest.approx(t_p)  # one row tested: Holm leaves p as it is
        assert cell.diff == pytest.approx((mine.loc[ref.index] - ref).mean())
        assert cell.marker == ("" if t_p >= 0.05 else "▲" if cell.diff > 0 else "▼")
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
    assert f"wrote {out} (csv)" in printed
    frame = pd.read_csv(out)
    assert len(frame) == 2 * 12 and set(frame["label"]) == {"bpr", "pop"}
    assert "map@10" not in set(frame["metric"]) and "ndcg-true@10" in set(frame["metric"])
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
    alpha, _beta, gamma = (row_of(table, m) for m in ("alpha", "beta", "gamma"))
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
    assert "usergap-ndcg@10 ↓ means |x| closest to 0 is best" in md
    assert "No significance markers: this table has no baseline" not in md  # alpha is a baseline; it lacks per-user values
    assert "No tests: alpha lacks per-user values" in md
    latex = render(collect(tmp_path), "latex")
    assert r"\textbf{0.3200 $\pm$ 0.0283}" in latex and r"\underline{0.2500}" in latex and r"\toprule" in latex


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
    # Holm over the two rows tested against base: the smaller p doubled, the larger kept (monotone)
    assert better.p_holm == pytest.approx(2 * better.p_value) and same.p_holm == pytest.approx(max(same.p_value, 2 * better.p_value))
    assert better.significant and not same.significant and better.better and better.marker == "▲" and same.marker == ""
    md = render(collection)
    assert f"| llm4rec | 2 | **{values['llm4rec'].mean():.4f} ± " in md and md.split("| llm4rec | 2 |")[1].split("\n")[0].endswith("▲ | **0.5000 ± 0.0000** |")
    assert "▲" not in md.split("| same | 1 |")[1].split("\n")[0] and "▼" not in md.split("| same | 1 |")[1].split("\n")[0]
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
        "failed": "failed",
        "broken": "not valid JSON (truncated or corrupt)",
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
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    # rows sort "<script>..." before "bpr"; the best cell gets class best (bold), the second class second (underlined)
    assert re.search(r'<td id="T_t0_row0_col2" class="data row0 col2 best" >0.3000</td>', page)
    assert re.search(r'<td id="T_t0_row1_col2" class="data row1 col2 second" >0.2000</td>', page)
    assert "td.best{font-weight:bold}" in page and "td.second{text-decoration:underline}" in page
    latex = render(collection, "latex")
    assert "\\textless{}script\\textgreater{}alert('x'),\"1\"\\textless{}/script\\textgreater{}\\&\\_\\%\\textbar{}*" in latex
    md = render(collection)
    assert "<script>" not in md and "&lt;script&gt;alert('x'),\"1\"&lt;/script&gt;&amp;\\_%\\|\\*" in md
    frame = pd.read_csv(io.StringIO(render(collection, "csv")))
    assert name in set(frame["model"]) and frame[frame.model == name]["rank"].iloc[0] == 1
    # a dataset name from a record is user text too
    write_record(tmp_path / "cross", "a", "bpr", {"ndcg@10": 0.2, "hr@10": 0.3}, dataset="<i>x</i>_%", source="real")
    cross = collect_across_datasets(tmp_path / "cross")
    assert 'colspan="2">&lt;i&gt;x&lt;/i&gt;_%</th>' in render(cross, "html") and "<i>x</i>" not in render(cross, "html")
    assert r"\multicolumn{2}{c}{\textless{}i\textgreater{}x\textless{}/i\textgreater{}\_\%}" in render(cross, "latex")
    assert "&lt;i&gt;x&lt;/i&gt;\\_% hr@10 ↑" in render(cross)


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


# --- metric metadata: one source for names, families and directions ----------------------


def test_metric_catalogue_is_the_one_source_of_directions(tmp_path: Path) -> None:
    assert metric_directions() == {
        "ndcg": "higher", "hr": "higher", "recall": "higher", "mrr": "higher", "map": "higher", "ndcg-true": "higher",
        "ild": "higher", "coverage": "higher", "gini": "lower", "entropy": "higher", "novelty": "higher",
        "tailshare": "higher", "usergap-ndcg": "zero", "groupdisparity": "lower",
    }  # fmt: skip
    families = {info.name: info.family for info in metric_catalogue()}
    assert [n for n, f in families.items() if f == "fairness"] == ["tailshare", "usergap-ndcg", "groupdisparity"]
    registered = {*ACCURACY_METRICS, *BEYOND_METRICS, TrueNDCG.name}
    assert set(families) == registered
    # torchmetrics' own flag follows the direction; "closest to 0" is neither
    assert (NDCG.higher_is_better, MAP.higher_is_better, Gini.higher_is_better, UserGapNDCG.higher_is_better) == (True, True, False, None)
    # collect shows every catalogue metric a record has, map included, in catalogue order (temporal split: no duplicates)
    everything = {f"{name}@10": 0.1 + i / 100 for i, name in enumerate(families)}
    write_record(tmp_path, "a", "bpr", everything, split="temporal")
    write_record(tmp_path, "b", "pop", {**everything, "map@10": 0.5, "gini@10": 0.9, "usergap-ndcg@10": -0.01}, split="temporal")
    table = table_of(collect(tmp_path))
    assert table.metrics == [f"{name}@10" for name in families] and "map@10" in table.metrics and not table.dropped
    assert "Split loo" not in table.legend()  # the loo caveat is for loo tables only
    ranks = {m: {r.label: r.cells[m].rank for r in table.rows} for m in ("map@10", "gini@10", "usergap-ndcg@10")}
    assert ranks == {"map@10": {"pop": 1, "bpr": 2}, "gini@10": {"bpr": 1, "pop": 2}, "usergap-ndcg@10": {"pop": 1, "bpr": 2}}
    frame = pd.read_csv(io.StringIO(render(collect(tmp_path), "csv")))
    assert dict(zip(frame.metric, frame.direction)) == {f"{n}@10": d for n, d in metric_directions().items()}


# --- hostile input: one bad record never aborts a table -----------------------------------


def _users(n: int, offset: float, **extra: Any) -> dict[str, Any]:
    rng = np.random.default_rng(int(offset * 1000) + n)
    return {"user": np.arange(n), "ndcg@10": np.clip(rng.uniform(0, 0.5, n) + offset, 0, 1), **extra}


def test_bad_records_are_skipped_with_their_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_record(tmp_path, "good-bpr", "bpr", {"ndcg@10": 0.2, "hr@10": 0.4}, per_user=_users(30, 0.1))
    write_record(tmp_path, "good-pop", "pop", {"ndcg@10": 0.1, "hr@10": 0.3}, per_user=_users(30, 0.0))
    write_record(tmp_path, "nonnumeric", "sasrec", {"ndcg@10": "0.3x"})
    truncated = write_record(tmp_path, "truncated", "sasrec", {"ndcg@10": 0.3}, seed=1) / "result.json"
    truncated.write_text(truncated.read_text()[:70])
    corrupt = write_record(tmp_path, "corrupt", "sasrec", {"ndcg@10": 0.3}, seed=2, per_user=_users(30, 0.2)) / PER_USER_FILE
    corrupt.write_bytes(corrupt.read_bytes()[:40])  # cut short, as by a full disk
    write_record(tmp_path, "failed", "sasrec", {}, seed=3, status="failed", extra={"error": "RuntimeError: CUDA out of memory"})
    write_record(tmp_path, "running", "sasrec", {}, seed=4, status="running")  # killed: the start record was never replaced
    write_record(tmp_path, "interrupted", "sasrec", {}, seed=5, status="interrupted")
    # designed cases: an infinite metric, fields of the wrong type, per-user files that cannot be paired
    write_record(tmp_path, "infinite", "sasrec", {"ndcg@10": float("inf")}, seed=6)
    write_record(tmp_path, "config", "sasrec", {"ndcg@10": 0.3}, seed=7, extra={"config": "lr=0.1"})
    write_record(tmp_path, "model-number", "x", {"ndcg@10": 0.3}, seed=8, extra={"model": 42})
    no_ids = write_record(tmp_path, "no-raw-id", "sasrec", {"ndcg@10": 0.3}, seed=9, per_user=_users(30, 0.2)) / PER_USER_FILE
    pd.read_parquet(no_ids).drop(columns="raw_user_id").to_parquet(no_ids)
    repeated = write_record(tmp_path, "repeated", "sasrec", {"ndcg@10": 0.3}, seed=10, per_user=_users(30, 0.2)) / PER_USER_FILE
    frame = pd.read_parquet(repeated)
    frame.loc[:2, "raw_user_id"] = "7"
    frame.to_parquet(repeated)
    text_metric = write_record(tmp_path, "text-column", "sasrec", {"ndcg@10": 0.3}, seed=11, per_user=_users(30, 0.2)) / PER_USER_FILE
    pd.read_parquet(text_metric).astype({"ndcg@10": str}).to_parquet(text_metric)

    collection = collect(tmp_path)
    reasons = {Path(s.path).name: s.reason for s in collection.skipped}
    corrupt_reason = reasons.pop("corrupt")
    assert corrupt_reason.startswith(f"{PER_USER_FILE}: unreadable (")
    assert reasons == {
        "nonnumeric": "metrics.test.ndcg@10 is not a number ('0.3x')",
        "truncated": "not valid JSON (truncated or corrupt)",
        "failed": "failed (RuntimeError: CUDA out of memory)",
        "running": "did not finish (status 'running': the run was killed, or is still going)",
        "interrupted": "interrupted before it finished",
        "infinite": "metrics.test.ndcg@10 is not finite (inf)",
        "config": "config is not a mapping of config sections",
        "model-number": "model is not a non-empty string (42)",
        "no-raw-id": f"{PER_USER_FILE} has no raw_user_id column, so its users cannot be paired with other runs'",
        "repeated": f"{PER_USER_FILE}: 3 raw user ids appear more than once",
        "text-column": f"{PER_USER_FILE}: column ndcg@10 is not numeric (str)",
    }
    # the rest of the table is built as if the bad records were not there
    table = table_of(collection)
    assert [r.label for r in table.rows] == ["bpr", "pop"] and table.reference == "bpr"
    assert row_of(table, "bpr").cells["ndcg@10"].mean == 0.2 and row_of(table, "pop").cells["hr@10"].mean == 0.3
    bpr_users, pop_users = _users(30, 0.1)["ndcg@10"], _users(30, 0.0)["ndcg@10"]
    assert row_of(table, "pop").cells["ndcg@10"].p_value == pytest.approx(paired_tests(bpr_users, pop_users)[0])
    for fmt in ("md", "csv", "latex", "html", "json"):
        assert "did not finish" in render(collection, fmt) or fmt == "csv"  # csv holds figures only
    assert "Skipped runs (12):" in render(collection)
    assert main(["collect", "--runs", str(tmp_path), "--no-progress"]) == 0
    assert "/running: did not finish (status 'running'" in capsys.readouterr().out


# --- output format follows the file name ----------------------------------------------------


def test_output_format_is_inferred_and_conflicts_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert output_format(None, None) == "md" and output_format(None, "latex") == "latex"
    assert {ext: output_format(f"t{ext}", None) for ext in (".md", ".csv", ".tex", ".html", ".json")} == {
        ".md": "md", ".csv": "csv", ".tex": "latex", ".html": "html", ".json": "json"}
    assert output_format("T.TEX", "latex") == "latex"
    with pytest.raises(BenchmarkError, match=r"--output t.txt: unknown extension '.txt'; the format follows the extension: .md \(md\)"):
        output_format("t.txt", None)
    with pytest.raises(BenchmarkError, match="unknown extension '\\(none\\)'"):
        output_format("table", "md")
    with pytest.raises(BenchmarkError, match="--format csv conflicts with --output t.tex, whose extension .tex means latex"):
        output_format("t.tex", "csv")
    write_record(tmp_path / "runs", "a", "bpr", {"ndcg@10": 0.2})
    write_record(tmp_path / "runs", "b", "pop", {"ndcg@10": 0.1})
    argv = ["collect", "--runs", str(tmp_path / "runs"), "--no-progress"]
    starts = {"t.tex": "% generated by `python -m benchmark collect`", "t.html": "<!DOCTYPE html>", "t.csv": "table,dataset,",
              "t.md": "## synthetic-ml", "t.json": "{"}  # fmt: skip
    for name, start in starts.items():
        assert main([*argv, "--output", str(tmp_path / name)]) == 0
        assert (tmp_path / name).read_text().startswith(start), name
    assert "\\begin{tabular}" in (tmp_path / "t.tex").read_text()
    assert json.loads((tmp_path / "t.json").read_text())["tables"][0]["rows"][0]["cells"]["ndcg@10"]["mean"] == 0.2
    capsys.readouterr()
    assert main([*argv, "--output", str(tmp_path / "t.txt")]) == 2 and not (tmp_path / "t.txt").exists()
    assert "unknown extension '.txt'" in capsys.readouterr().err
    assert main([*argv, "--format", "md", "--output", str(tmp_path / "u.tex")]) == 2 and not (tmp_path / "u.tex").exists()
    assert "--format md conflicts with --output" in capsys.readouterr().err
    assert main([*argv, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["k"] == 10


# --- leave-one-out duplicates -------------------------------------------------------------------


def test_duplicate_columns_under_one_held_out_item(tmp_path: Path) -> None:
    n = 20
    same = {"ndcg@10": 0.3, "hr@10": 0.5, "recall@10": 0.5, "mrr@10": 0.25, "map@10": 0.25}
    other = {"ndcg@10": 0.2, "hr@10": 0.4, "recall@10": 0.4, "mrr@10": 0.2, "map@10": 0.2}

    def write(root: Path, n_test: np.ndarray | None, split: str = "loo", values: tuple[dict[str, float], ...] = (same, other)) -> Any:
        for model, metrics in zip(("bpr", "pop"), values):
            per_user = None if n_test is None else _users(n, 0.1, n_test_items=n_test)
            write_record(root, model, model, metrics, split=split, per_user=per_user)
        return table_of(collect(root))

    one = write(tmp_path / "one", np.ones(n, dtype=np.int64))
    assert one.metrics == ["ndcg@10", "hr@10", "mrr@10"] and one.dropped == {"recall@10": "hr@10", "map@10": "mrr@10"}
    assert "Not shown: recall@10, map@10, because every test user has one held-out item, so recall@10 = hr@10, map@10 = mrr@10." in one.legend()
    assert "recall@10 ↑" not in render(collect(tmp_path / "one")) and "hr@10 ↑" in render(collect(tmp_path / "one"))
    # one user with two held-out items keeps both columns, whatever the split is called
    two = write(tmp_path / "two", np.r_[np.ones(n - 1, dtype=np.int64), 2])
    assert two.metrics == ["ndcg@10", "hr@10", "recall@10", "mrr@10", "map@10"] and not two.dropped and "Not shown" not in two.legend()
    # no per-user file: the split decides (loo: one held-out item per user)
    assert write(tmp_path / "loo", None).dropped == {"recall@10": "hr@10", "map@10": "mrr@10"}
    assert write(tmp_path / "temporal", None, "temporal").dropped == {}
    # a record whose values disagree is not a duplicate, whatever it says about its users
    differing = write(tmp_path / "differ", None, "loo", (same, {**other, "map@10": 0.19}))
    assert differing.dropped == {"recall@10": "hr@10"} and "map@10" in differing.metrics
    # asked for by name, a column is shown
    assert table_of(collect(tmp_path / "one", metrics=["hr", "recall"])).metrics == ["hr@10", "recall@10"]


# --- markers: direction, Holm, legend ----------------------------------------------------------


def _marker_runs(root: Path, n: int = 80) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    base = rng.uniform(0.1, 0.5, n)
    series = {
        "base": base,
        "llm4rec": base + 0.1 + rng.normal(0, 0.02, n),  # clearly better
        "worse": base - 0.1 + rng.normal(0, 0.02, n),  # a baseline, clearly worse
        "same": base + np.where(np.arange(n) % 2 == 0, 0.04, -0.04),  # no difference
    }
    for model, ndcg in series.items():
        write_record(root, model, model, {"ndcg@10": float(ndcg.mean()), "usergap-ndcg@10": -0.02, "coverage@10": 0.3},
                     per_user={"user": np.arange(n), "ndcg@10": ndcg})  # fmt: skip
    return series


def _holm(p: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out: sorted p times (m, m-1, ...), running maximum, capped at 1."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def test_markers_say_better_or_worse_on_holm_adjusted_p(tmp_path: Path) -> None:
    series = _marker_runs(tmp_path)
    collection = collect(tmp_path)
    table = table_of(collection)
    assert table.reference == "base"
    tested = ["llm4rec", "same", "worse"]
    raw = [paired_tests(series["base"], series[m])[0] for m in tested]
    cells = {m: row_of(table, m).cells["ndcg@10"] for m in tested}
    assert [cells[m].p_value for m in tested] == pytest.approx(raw)
    assert [cells[m].p_holm for m in tested] == pytest.approx(_holm(raw))
    assert {m: cells[m].marker for m in tested} == {"llm4rec": "▲", "same": "", "worse": "▼"}
    assert cells["worse"].diff == pytest.approx((series["worse"] - series["base"]).mean()) and cells["worse"].better is False
    assert row_of(table, "llm4rec").cells["coverage@10"].p_value is None  # catalogue-level: never tested
    legend = table.legend()
    assert "▲ / ▼: better / worse than the best baseline by ndcg@10 (base), two-sided paired t-test with Holm-adjusted p < 0.05" in legend
    assert "Holm over the 3 rows tested against it, per metric" in legend
    assert "The test unit is the test user: each row's per-user values are averaged over its seeds first" in legend
    assert "usergap-ndcg@10 ↓ means |x| closest to 0 is best" in legend
    assert legend in render(collection) and html.escape(legend) in render(collection, "html")  # the legend under every table
    assert r"$^{\blacktriangle}$ / $^{\blacktriangledown}$: better / worse than the best baseline" in render(collection, "latex")
    md = render(collection)
    assert md.split("| worse | 1 |")[1].split("|")[0].strip().endswith("▼")
    # the raw p stays in the machine-readable outputs beside the adjusted one
    saved = json.loads(render(collection, "json"))["tables"][0]["rows"]
    worse = next(r for r in saved if r["label"] == "worse")["cells"]["ndcg@10"]
    assert worse["p_value"] == pytest.approx(raw[2]) and worse["p_holm"] == pytest.approx(_holm(raw)[2]) and worse["marker"] == "▼"
    frame = pd.read_csv(io.StringIO(render(collection, "csv")))
    got = frame[(frame.label == "same") & (frame.metric == "ndcg@10")].iloc[0]
    assert got.p_value == pytest.approx(raw[1]) and got.p_holm == pytest.approx(_holm(raw)[1]) and pd.isna(got.marker)


def test_marker_uses_the_adjusted_p_not_the_raw_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    n = 60
    base = rng.uniform(0.1, 0.5, n)
    for model, shift in (("base", 0.0), ("llm4rec", 0.012), ("llm4rec-x", 0.0)):
        ndcg = base + shift + rng.normal(0, 0.03, n) * (model != "base")
        write_record(tmp_path, model, "llm4rec" if model != "base" else "base", {"ndcg@10": float(ndcg.mean())},
                     config_hash=model, per_user={"user": np.arange(n), "ndcg@10": ndcg})  # fmt: skip
    probe = table_of(collect(tmp_path))
    cells = [r.cells["ndcg@10"] for r in probe.rows if r.label != "base"]
    smallest = min(cells, key=lambda c: c.p_value)
    assert smallest.p_holm == pytest.approx(2 * smallest.p_value) and smallest.p_holm < 1
    alpha = 1.5 * smallest.p_value  # raw p below it, adjusted p above it
    table = table_of(collect(tmp_path, alpha=alpha))
    adjusted = [r.cells["ndcg@10"] for r in table.rows if r.label != "base"]
    assert any(c.p_value < alpha for c in adjusted) and not any(c.marker for c in adjusted)


# --- paper-ready LaTeX ---------------------------------------------------------------------------


def assert_latex_well_formed(latex: str) -> None:
    """What a LaTeX compiler would choke on first: unbalanced braces or environments, bare
    special characters, odd math shifts, rows whose cells do not fill the column spec."""
    body = "\n".join(line for line in latex.splitlines() if not line.startswith("%"))
    bare = re.sub(r"\\[{}%_&$#]", "", body)  # escaped specials are plain text
    depth = 0
    for char in bare:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0, "a } closes nothing"
    assert depth == 0, "unclosed {"
    assert "%" not in bare and "_" not in bare and "#" not in bare
    assert all(line.count("$") % 2 == 0 for line in bare.splitlines())
    assert sorted(re.findall(r"\\begin\{(\w+)\}", body)) == sorted(re.findall(r"\\end\{(\w+)\}", body))
    for spec, content in re.findall(r"\\begin\{tabular\}\{([lrc]+)\}(.*?)\\end\{tabular\}", body, re.DOTALL):
        for line in content.strip().splitlines():
            if line.endswith("\\\\"):
                cells = re.split(r"(?<!\\)&", line[:-2])
                spans = [int(m.group(1)) if (m := re.match(r"\s*\\multicolumn\{(\d+)\}", c)) else 1 for c in cells]
                assert sum(spans) == len(spec), line


def test_latex_is_paper_ready(tmp_path: Path) -> None:
    for seed, (a, b) in enumerate(((0.30, 0.20), (0.34, 0.22))):
        write_record(tmp_path, f"mine-{seed}", "my_model 100%", {"ndcg@10": a, "gini@10": 0.4}, seed=seed)
        write_record(tmp_path, f"bpr-{seed}", "bpr", {"ndcg@10": b, "gini@10": 0.5}, seed=seed)
    write_record(tmp_path, "pop", "[pop]#1", {"ndcg@10": 0.1, "gini@10": 0.9})
    latex = render(collect(tmp_path), "latex")
    assert_latex_well_formed(latex)
    assert r"\begin{tabular}{lrrr}" in latex and r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    assert r"my\_model 100\% & 2 & \textbf{0.3200 $\pm$ 0.0283} & \textbf{0.4000 $\pm$ 0.0000} \\" in latex  # gini: lower is better
    assert r"bpr & 2 & \underline{0.2100 $\pm$ 0.0141} & \underline{0.5000 $\pm$ 0.0000} \\" in latex
    assert r"{[}pop{]}\#1 & 1 & 0.1000 & 0.9000 \\" in latex  # a leading [ is not read as \\'s optional argument
    assert r"Model & Seeds & ndcg@10 $\uparrow$ & gini@10 $\downarrow$ \\" in latex
    assert "\\caption{synthetic-ml, SYNTHETIC data (simulator): Comparison." in latex


# --- across datasets -----------------------------------------------------------------------------


CROSS_OFFSETS = {"pop": 0.0, "bpr": 0.05, "sasrec": 0.08, "llm4rec": 0.15, "llm4rec-no-rag": 0.1}


def _cross_runs(root: Path) -> dict[tuple[str, str], list[dict[str, np.ndarray]]]:
    """Per-user ndcg@10 and hr@10 of five models (two seeds) on three real datasets (sasrec not
    on amazon-electronics), one synthetic dataset, yelp under a temporal split and ml-25m
    under another K set; written as records. Returns {(dataset, model): [per seed values]} of
    the loo, K = 5, 10, 20 setting."""
    out: dict[tuple[str, str], list[dict[str, np.ndarray]]] = {}
    datasets = [("ml-25m", "real", "loo", (5, 10, 20)), ("yelp", "real", "loo", (5, 10, 20)), ("amazon-electronics", "real", "loo", (5, 10, 20)),
                ("synthetic-yelp", "synthetic", "loo", (5, 10, 20)), ("yelp", "real", "temporal", (5, 10, 20)), ("ml-25m", "real", "loo", (5, 10))]  # fmt: skip
    for d, (dataset, source, split, ks) in enumerate(datasets):
        rng = np.random.default_rng(d)
        n = 40 + 10 * d
        base = rng.uniform(0.05, 0.4, n)
        for model, offset in CROSS_OFFSETS.items():
            if model == "sasrec" and dataset == "amazon-electronics":
                continue
            for seed in (0, 1):
                ndcg = np.clip(base + offset * (1 + d / 10) + rng.normal(0, 0.03, n), 0, 1)
                hr = (ndcg > 0.3).astype(np.float64)
                write_record(root, f"{dataset}-{split}-{len(ks)}-{model}-{seed}", model, {"ndcg@10": float(ndcg.mean()), "hr@10": float(hr.mean())},
                             seed=seed, dataset=dataset, source=source, fingerprint=f"{d:x}" * 64, split=split, ks=ks,
                             per_user={"user": np.arange(n), "ndcg@10": ndcg, "hr@10": hr})  # fmt: skip
                if split == "loo" and len(ks) == 3:
                    out.setdefault((dataset, model), []).append({"ndcg@10": ndcg, "hr@10": hr})
    return out


def test_table_across_datasets(tmp_path: Path) -> None:
    values = _cross_runs(tmp_path)
    collection = collect_across_datasets(tmp_path)
    assert all(t.kind == "across-datasets" for t in collection.tables) and len(collection.tables) == 3  # one per setting
    settings = {(t.setting.split, t.setting.ks): t for t in collection.tables}
    main_table = settings[("loo", (5, 10, 20))]
    assert [name for name, _ in main_table.datasets] == ["amazon-electronics", "ml-25m", "yelp"]  # synthetic-yelp left out
    assert [name for name, _ in settings[("temporal", (5, 10, 20))].datasets] == ["yelp"]
    assert [name for name, _ in settings[("loo", (5, 10))].datasets] == ["ml-25m"]
    assert collection.notes == ["synthetic-yelp (split loo · full ranking · K = 5, 10, 20): SYNTHETIC data, left out (include it with --include-synthetic)"]
    assert main_table.metrics == ["ndcg@10", "hr@10"] and main_table.rows == ["bpr", "llm4rec", "pop", "sasrec"]  # ablations stay out
    for (dataset, model), seeds in values.items():
        if dataset == "synthetic-yelp" or model == "llm4rec-no-rag":
            continue
        cell = main_table.cell(model, dataset, "ndcg@10")
        means = [s["ndcg@10"].mean() for s in seeds]
        assert cell.mean == pytest.approx(np.mean(means)) and cell.std == pytest.approx(np.std(means, ddof=1)) and cell.n == 2
    assert main_table.cell("sasrec", "amazon-electronics", "ndcg@10") is None and main_table.seeds("sasrec") == [None, 2, 2]
    # markers against each dataset's best baseline (sasrec, or bpr where sasrec did not run), Holm within the dataset
    for dataset, reference in (("amazon-electronics", "bpr"), ("ml-25m", "sasrec"), ("yelp", "sasrec")):
        table = dict(main_table.datasets)[dataset]
        assert table.reference == reference
        ref = np.mean([s["ndcg@10"] for s in values[(dataset, reference)]], axis=0)
        others = [m for m in main_table.rows if m != reference and (dataset, m) in values]
        raw = [paired_tests(ref, np.mean([s["ndcg@10"] for s in values[(dataset, m)]], axis=0))[0] for m in others]
        assert [main_table.cell(m, dataset, "ndcg@10").p_holm for m in others] == pytest.approx(_holm(raw))
        assert main_table.cell("llm4rec", dataset, "ndcg@10").marker == "▲" and main_table.cell("pop", dataset, "ndcg@10").marker == "▼"
    # the same cells as the per-dataset comparison tables with these columns
    per_dataset = collect(tmp_path, "yelp", metrics=["ndcg", "hr"])
    loo = next(t for t in per_dataset.tables if t.kind == "comparison" and t.protocol.split == "loo")
    for row in loo.rows:
        for metric in ("ndcg@10", "hr@10"):
            assert main_table.cell(row.label, "yelp", metric) == row.cells[metric]
    legend = main_table.legend()
    assert "the best baseline by ndcg@10 of each dataset (amazon-electronics: bpr; ml-25m: sasrec; yelp: sasrec)" in legend
    # amazon-electronics has no sasrec run: two rows tested there, three elsewhere
    assert "Holm over the rows tested against it (2 to 3) within each dataset, per metric" in legend and "The test unit is the test user" in legend


def test_across_datasets_renderers_plot_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _cross_runs(tmp_path / "runs")
    collection = collect_across_datasets(tmp_path / "runs", metrics=["ndcg", "hr", "mrr"], include_synthetic=True)
    main_table = next(t for t in collection.tables if t.setting.split == "loo" and t.setting.ks == (5, 10, 20))
    assert [n for n, _ in main_table.datasets] == ["amazon-electronics", "ml-25m", "synthetic-yelp (SYNTHETIC)", "yelp"]
    assert main_table.metrics == ["ndcg@10", "hr@10", "mrr@10"] and not collection.notes
    assert main_table.cell("bpr", "ml-25m", "mrr@10").mean is None  # asked for, not recorded: shown as a gap
    md = render(collection)
    header = "| model | seeds | amazon-electronics ndcg@10 ↑ | amazon-electronics hr@10 ↑ | amazon-electronics mrr@10 ↑ | ml-25m ndcg@10 ↑ |"
    assert header in md
    sasrec = md.split("| sasrec | –/2/2/2 | – | – | – | ")[1].split("\n")[0]
    ml = main_table.cell("sasrec", "ml-25m", "ndcg@10")
    assert sasrec.startswith((f"**{ml.mean:.4f} ± {ml.std:.4f}**", f"<ins>{ml.mean:.4f} ± {ml.std:.4f}</ins>"))
    latex = render(collection, "latex")
    assert_latex_well_formed(latex)
    assert r"\multicolumn{2}{c}{} & \multicolumn{3}{c}{amazon-electronics} & \multicolumn{3}{c}{ml-25m} & \multicolumn{3}{c}{synthetic-yelp (SYNTHETIC)}" in latex
    page = render(collection, "html")
    assert 'colspan="3">ml-25m</th>' in page and "synthetic-yelp (SYNTHETIC)" in page
    frame = pd.read_csv(io.StringIO(render(collection, "csv")))
    cross = frame[frame.table == "across-datasets"]
    assert len(cross) == 3 * (4 * 4 - 1 + 4 + 4)  # main setting: 4 datasets x 4 models less sasrec on amazon; 2 one-dataset settings
    got = cross[(cross.dataset == "yelp") & (cross.split == "loo") & (cross.label == "llm4rec") & (cross.metric == "ndcg@10")].iloc[0]
    cell = main_table.cell("llm4rec", "yelp", "ndcg@10")
    assert got["mean"] == pytest.approx(cell.mean) and got.p_holm == pytest.approx(cell.p_holm) and got.marker == "▲"
    plots = make_plots(collection, tmp_path / "plots")
    assert [p.kind for p in plots] == ["across-datasets"] * 3
    plot = next(p for p in plots if p.data["datasets"] == [n for n, _ in main_table.datasets])
    assert_png(plot.path)
    assert plot.data["bars"]["yelp"]["llm4rec"]["ndcg@10"] == {"mean": cell.mean, "std": cell.std, "marker": "▲"}
    assert "sasrec" not in plot.data["bars"]["amazon-electronics"] and "mrr@10" not in plot.data["bars"]["yelp"]["bpr"]
    # the command line
    argv = ["collect", "--runs", str(tmp_path / "runs"), "--no-progress", "--across-datasets"]
    assert main([*argv, "--output", str(tmp_path / "cross.tex"), "--plots", str(tmp_path / "p")]) == 0
    printed = capsys.readouterr().out
    assert "## Across datasets: Comparison" in printed and "plot (across-datasets)" in printed and "SYNTHETIC data, left out" in printed
    assert_latex_well_formed((tmp_path / "cross.tex").read_text())
    assert main([*argv, "--metrics", "ndcg,hr@20", "--format", "csv"]) == 0
    assert set(pd.read_csv(io.StringIO(capsys.readouterr().out)).metric) == {"ndcg@10", "hr@20"}
    assert main([*argv, "--data", "yelp"]) == 2 and "--data keeps one" in capsys.readouterr().err
    assert main([*argv[:-1], "--include-synthetic"]) == 2 and "only applies to --across-datasets" in capsys.readouterr().err
    assert main([*argv, "--metrics", "ndcg,precision"]) == 2 and "unknown metric 'precision'" in capsys.readouterr().err
    only_synthetic = tmp_path / "synthetic"
    write_record(only_synthetic, "a", "bpr", {"ndcg@10": 0.1})
    assert main(["collect", "--runs", str(only_synthetic), "--no-progress", "--across-datasets"]) == 2
    assert "synthetic datasets are left out unless --include-synthetic" in capsys.readouterr().err


def test_one_dataset_under_two_fingerprints_is_two_column_groups(tmp_path: Path) -> None:
    for fingerprint in (FP_A, FP_B):
        for model, value in (("bpr", 0.2), ("pop", 0.1)):
            write_record(tmp_path, f"{model}-{fingerprint[0]}", model, {"ndcg@10": value, "hr@10": 2 * value}, dataset="yelp",
                         source="real", fingerprint=fingerprint)  # fmt: skip
    (table,) = collect_across_datasets(tmp_path).tables
    assert [name for name, _ in table.datasets] == ["yelp (aaaaaaaa)", "yelp (bbbbbbbb)"]
    assert table.cell("bpr", "yelp (bbbbbbbb)", "hr@10").mean == 0.4


def test_a_table_says_when_its_runs_used_different_thread_counts(tmp_path: Path) -> None:
    write_record(tmp_path / "same", "a", "alpha", {"ndcg@10": 0.3}, extra={"hardware": {"torch_threads": 2}})
    write_record(tmp_path / "same", "b", "beta", {"ndcg@10": 0.2}, extra={"hardware": {"torch_threads": 2}})
    assert "thread counts" not in render(collect(tmp_path / "same"))
    write_record(tmp_path / "mixed", "a", "alpha", {"ndcg@10": 0.3}, extra={"hardware": {"torch_threads": 1}})
    write_record(tmp_path / "mixed", "b", "beta", {"ndcg@10": 0.2}, extra={"hardware": {"torch_threads": 2}})
    assert "Runs in this table trained at different CPU thread counts (1, 2)" in render(collect(tmp_path / "mixed"))
