"""Environment facts of the run record: the weight files a run uses, with their SHA-256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from benchmark.config import TrainConfig
from benchmark.provenance import weight_digests, weight_files
from benchmark.registry import get_model


def test_weight_digests_hash_every_weight_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "encoder"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "sub" / "head.bin").write_bytes(b"head")
    (folder / "config.json").write_text("{}")  # not a weight file
    digests = weight_digests({"text_encoder:mine": folder, "backbone:hub/name": None})
    assert digests == {
        "text_encoder:mine": {"model.safetensors": hashlib.sha256(b"weights").hexdigest(), "sub/head.bin": hashlib.sha256(b"head").hexdigest()},
        "backbone:hub/name": None,
    }


def test_the_default_llm4rec_run_names_both_pretrained_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    spec = get_model("llm4rec")
    used = weight_files(spec.config, TrainConfig(), spec.cls.needs_item_features)
    assert set(used) == {"text_encoder:all-MiniLM-L6-v2", "backbone:smollm2-135m"}
    digests = weight_digests(used)
    assert list(digests["backbone:smollm2-135m"]) == ["SmolLM2-135M-Instruct.Q4_1.gguf"]
    assert "model.safetensors" in digests["text_encoder:all-MiniLM-L6-v2"]
    assert all(len(v) == 64 for d in digests.values() for v in d.values())
    bpr = get_model("bpr")
    assert weight_files(bpr.config, TrainConfig(), bpr.cls.needs_item_features) == {}
