import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmark import ablation
from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.records import RunRecord
from benchmark.registry import MODELS
from llm4rec.model import ABLATIONS, LLM4Rec, LLM4RecConfig

SWITCHED = {  # the LLM4RecConfig fields of each module
    "no-fusion": {"modalities", "cross_attention", "fusion"},
    "no-rag": {"rag"},
    "no-debias": {"debias"},
    "no-explain": {"explain"},
    "no-adaptive": {"adaptive"},
    "no-llm": {"llm"},
}


def _diff(a: LLM4RecConfig, b: LLM4RecConfig) -> set[str]:
    return {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}


def test_ablations_are_configs_of_the_same_class_differing_in_one_module() -> None:
    full = MODELS["llm4rec"]
    assert full.cls is LLM4Rec and full.config == LLM4RecConfig()
    assert ablation.variants("llm4rec") == ["llm4rec", *(f"llm4rec-{name}" for name in ABLATIONS)]
    for name in ABLATIONS:
        spec = MODELS[f"llm4rec-{name}"]
        assert spec.cls is LLM4Rec and spec.train_defaults == full.train_defaults
        assert _diff(spec.config, full.config) == SWITCHED[name]
    assert MODELS["llm4rec-generative"].cls.is_generative() and MODELS["llm4rec-generative"].config == LLM4RecConfig()


def test_sweep_spaces_of_the_variants_share_llm4recs_parameters() -> None:
    root = Path(__file__).resolve().parents[2] / "sweeps"
    base = yaml.safe_load((root / "llm4rec.yaml").read_text())["params"]
    for name in [*ABLATIONS, "generative"]:
        params = yaml.safe_load((root / f"llm4rec-{name}.yaml").read_text())["params"]
        assert all(base[key] == value for key, value in params.items())
        assert set(base) - set(params) <= {"rag_top_r", "rag_query_items", "rag_temperature", "propensity", "propensity_power",
                                           "ips_clip", "adversary", "adversarial_weight", "parity_weight", "explain_weight", "lora_r", "rank_layers"}  # fmt: skip


def _fake_run(tmp: Path, calls: list[tuple[str, int]]):  # noqa: ANN202
    """Stands in for runner.run: a record and per-user NDCG@10 without training (user u,
    seed s: (u + 1 + offset * (1 + u / 10) + s / 10) / 100, offset by variant)."""
    offsets = {"llm4rec": 0.0, "llm4rec-no-rag": -0.5, "llm4rec-no-llm": 1.0}
    counter = iter(range(1000))

    def run(cfg, out, *, progress=True, tags=None):  # noqa: ANN001, ANN202
        calls.append((cfg.model, cfg.seed))
        run_id = f"{cfg.model}-s{cfg.seed}-{next(counter)}"
        folder = Path(out) / "runs" / run_id
        folder.mkdir(parents=True)
        u = np.arange(4)
        values = (u + 1 + offsets[cfg.model] * (1 + u / 10) + cfg.seed / 10) / 100
        pd.DataFrame({"raw_user_id": [f"u{i}" for i in range(4)], "ndcg@10": values}).to_parquet(folder / "per_user_test.parquet")
        record = {"run_id": run_id, "model": cfg.model, "dataset": cfg.data, "config_hash": cfg.hash, "seed": cfg.seed,
                  "status": "completed", "metrics": {"test": {"ndcg@10": float(values.mean()), "hr@10": 0.5}},
                  "timings": {"train_seconds": 10.0, "eval_seconds": 2.0}, "data_source": "synthetic", "split": "loo",
                  "eval_protocol": "full", "tags": tags}  # fmt: skip
        (folder / "result.json").write_text(json.dumps({**record, "dataset_fingerprint": "f" * 64}))
        return RunRecord.read(folder)

    return run


def test_grid_summary_and_reuse(tmp_path, monkeypatch) -> None:
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr("benchmark.runner.run", _fake_run(tmp_path, calls))
    monkeypatch.delenv("BENCHMARK_RUN_ID", raising=False)
    result = ablation.run_ablation("llm4rec", "synthetic-yelp", seeds=2, out=tmp_path, names=["no-rag", "llm4rec-no-llm"])
    assert calls == [("llm4rec", 0), ("llm4rec", 1), ("llm4rec-no-rag", 0), ("llm4rec-no-rag", 1), ("llm4rec-no-llm", 0), ("llm4rec-no-llm", 1)]
    assert all(r.tags == {"ablation": "llm4rec"} for runs in result["variants"].values() for r in runs)
    summary = ablation.summarise(result, "llm4rec")
    full = summary["llm4rec"]
    assert full["runs"] == 2 and full["ndcg@10"] == pytest.approx(0.0255)  # means 0.025 and 0.026
    assert full["ndcg@10 std"] == pytest.approx(np.std([0.025, 0.026], ddof=1))
    no_rag = (0.0255 - 0.005 * 1.15)  # offset -0.5 times the mean of 1 + u / 10
    assert summary["llm4rec-no-rag"]["delta ndcg@10 %"] == pytest.approx(100 * (no_rag - 0.0255) / 0.0255)
    row = summary["llm4rec-no-rag"]
    assert row["ndcg@10 per seed"] == pytest.approx([no_rag - 0.0005, no_rag + 0.0005]) and row["seeds"] == [0, 1]
    # the seed is the unit: the difference is the same on both seeds, every user lower on each
    assert row["p_seeds vs full"] < 1e-10 and row["p_bootstrap vs full"] == pytest.approx(1e-4)
    assert row["ci_low vs full"] < row["ci_high vs full"] < 0 and row["n_seeds vs full"] == 2
    assert row["p_bootstrap holm vs full"] == pytest.approx(2e-4)  # two variants in the family
    header, *rows = ablation.summary_rows(summary)
    assert "p seeds (Holm)" in header and any("0.0250 / 0.0260" in str(c) for c in rows[0])
    assert full["test_users_per_s"] == pytest.approx(2.0)  # 4 users in 2 s
    # a second grid reuses every completed (variant, seed) with the same configuration
    calls.clear()
    again = ablation.run_ablation("llm4rec", "synthetic-yelp", seeds=2, out=tmp_path, names=["no-rag"], reuse=True)
    assert calls == [] and len(again["variants"]["llm4rec-no-rag"]) == 2
    ablation.run_ablation("llm4rec", "synthetic-yelp", seeds=1, out=tmp_path, names=["no-rag"], reuse=True, overrides={"lr": 0.01})
    assert calls == [("llm4rec", 0), ("llm4rec-no-rag", 0)]  # another config hash: run again


def test_bad_requests_are_clear_errors(tmp_path) -> None:
    with pytest.raises(BenchmarkError, match="unknown ablation"):
        ablation.run_ablation("llm4rec", "synthetic-yelp", out=tmp_path, names=["no-magic"])
    with pytest.raises(BenchmarkError, match="no registered ablations"):
        ablation.variants("sasrec")
    with pytest.raises(BenchmarkError, match="seeds"):
        ablation.run_ablation("llm4rec", "synthetic-yelp", seeds=0, out=tmp_path)
    assert main(["ablation", "--model", "sasrec", "--data", "synthetic-yelp", "--out", str(tmp_path)]) == 2


@pytest.mark.slow
def test_ablation_command_end_to_end(tiny_ml, tmp_path, capsys) -> None:
    """Two variants of a tiny LLM4Rec on tiny simulated data: records, table, JSON, propensity agreement."""
    code = main([
        "ablation", "--model", "llm4rec", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--seeds", "1",
        "--variants", "no-rag", "--out", str(tmp_path), "--no-progress", "--max-epochs", "1", "--output", str(tmp_path / "a.json"),
        "--set", "backbone=tiny-llama", "--set", "train_windows_per_epoch=64", "--set", "text_encoder=null",
        "--set", "explanation_users=4", "--set", "explanation_samples=1",
    ])  # fmt: skip
    assert code == 0
    out = json.loads((tmp_path / "a.json").read_text())
    assert set(out["variants"]) == {"llm4rec", "llm4rec-no-rag"}
    assert 0 <= out["variants"]["llm4rec"]["ndcg@10"] <= 1 and "ndcg-true@10" in out["variants"]["llm4rec"]
    assert set(out["propensity_agreement"]) == {"popularity", "logistic"}
    assert len(list((tmp_path / "runs").glob("*/result.json"))) == 2
    assert "llm4rec-no-rag" in capsys.readouterr().out
