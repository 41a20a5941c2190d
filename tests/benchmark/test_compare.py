"""`compare RUN_A RUN_B`: paired t-test and Wilcoxon signed-rank p-values per metric; and the
sampled protocol's labelling and persisted negatives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import stats

from benchmark.cli import main
from benchmark.stats import paired_tests
from tests.benchmark.eval_runs import bpr_run, odd_ml, pop_run, run_model  # noqa: F401


def test_compare_two_runs(bpr_run, pop_run, tmp_path: Path, capsys) -> None:  # noqa: F811
    (record_a, dir_a), (_, dir_b) = bpr_run, pop_run
    out = tmp_path / "c.json"
    assert main(["compare", str(dir_a), str(dir_b / "result.json"), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "p (Wilcoxon)" in printed and "Holm" in printed
    result = json.loads(out.read_text())
    assert f"A = bpr on synthetic-ml, seed {record_a['seed']}" in printed and result["b"]["model"] == "pop"
    a, b = pd.read_parquet(dir_a / "per_user_test.parquet"), pd.read_parquet(dir_b / "per_user_test.parquet")
    assert result["n_users"] == len(a) == len(b)
    assert pq.read_schema(dir_a / "per_user_test.parquet").metadata[b"eval_protocol"] == b"full"
    for metric in ("ndcg@10", "hr@20", "ild@10", "novelty@5"):
        x, y = a[metric].to_numpy(), b[metric].to_numpy()
        keep = ~(np.isnan(x) | np.isnan(y))
        assert result[f"{metric}/a"] == pytest.approx(record_a["metrics"]["test"][metric], abs=1e-12)
        assert result[f"{metric}/diff"] == pytest.approx(y[keep].mean() - x[keep].mean())
        assert result[f"{metric}/p_ttest"] == pytest.approx(stats.ttest_rel(y[keep], x[keep]).pvalue)
        assert result[f"{metric}/p_wilcoxon"] == pytest.approx(stats.wilcoxon(y[keep], x[keep]).pvalue)
    assert "coverage@10/p_ttest" not in result  # no per-user value for catalogue-level metrics
    metrics = [key.removesuffix("/p_ttest") for key in result if key.endswith("/p_ttest")]
    raw = [result[f"{m}/p_ttest"] for m in metrics]
    order = np.argsort(raw, kind="stable")  # Holm over the family of every metric compared
    expected = np.maximum.accumulate([min(1.0, (len(raw) - r) * raw[i]) for r, i in enumerate(order)])
    assert [result[f"{metrics[i]}/p_ttest_holm"] for i in order] == pytest.approx(expected.tolist())


def test_paired_tests_edge_cases() -> None:
    same = np.array([0.1, 0.5, 0.0])
    assert paired_tests(same, same) == (1.0, 1.0)
    assert paired_tests(np.array([1.0]), np.array([0.0])) == (1.0, 1.0)
    t_p, w_p = paired_tests(np.zeros(30), np.linspace(0.1, 1, 30))
    assert t_p < 1e-6 and w_p < 1e-6


def test_compare_refuses_runs_on_different_protocols(bpr_run, odd_ml: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    record, run_dir = run_model(odd_ml, tmp_path / "s", "pop", "--eval-protocol", "sampled", "--set", "eval_negatives=30", "--output", str(tmp_path / "s.json"))
    printed = capsys.readouterr().out
    assert "SAMPLED evaluation: 30 uniform negatives per user, seed 0" in printed
    assert record["eval_protocol"] == "sampled" and record["eval_sampling"] == {"negatives": 30, "sampler": "uniform", "seed": 0}
    assert json.loads((tmp_path / "s.json").read_text())["eval_protocol"] == "sampled"
    assert "ild@10" not in record["metrics"]["test"]  # sampled lists say nothing about the catalogue
    with np.load(run_dir / "sampled_negatives.npz") as saved:
        assert saved["negatives"].shape == (record["dataset_stats"]["n_users"], 30) and int(saved["seed"]) == 0
    again = tmp_path / "again.json"
    assert main(["evaluate", "--checkpoint", str(run_dir / "checkpoints" / "best.ckpt"), "--output", str(again)]) == 0
    assert json.loads(again.read_text())["ndcg@10"] == record["metrics"]["test"]["ndcg@10"]
    assert main(["compare", str(bpr_run[1]), str(run_dir)]) == 2
    assert "differ in eval_protocol" in capsys.readouterr().err


def test_compare_warns_when_the_thread_counts_differ(bpr_run, pop_run, tmp_path: Path, capsys) -> None:  # noqa: F811
    import shutil

    (_, dir_a), (_, dir_b) = bpr_run, pop_run
    other = tmp_path / "other"
    shutil.copytree(dir_b, other)
    record = json.loads((other / "result.json").read_text())
    threads = json.loads((dir_a / "result.json").read_text())["hardware"]["torch_threads"]
    assert main(["compare", str(dir_a), str(other), "--output", str(tmp_path / "same.json")]) == 0
    assert "warning" not in capsys.readouterr().out and "warning" not in json.loads((tmp_path / "same.json").read_text())
    record["hardware"]["torch_threads"] = threads + 1
    (other / "result.json").write_text(json.dumps(record))
    assert main(["compare", str(dir_a), str(other), "--output", str(tmp_path / "c.json")]) == 0
    assert f"different CPU thread counts ({threads} vs {threads + 1})" in capsys.readouterr().out
    assert json.loads((tmp_path / "c.json").read_text())["torch_threads"] == [threads, threads + 1]
