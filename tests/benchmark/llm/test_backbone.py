"""The backbone loader: modes, truncation, errors, and the offline SmolLM2 default."""

from __future__ import annotations

import pytest
import torch

from benchmark.errors import BenchmarkError
from benchmark.llm.backbone import TINY, BackboneConfig, load_backbone


def _trainable_names(model: torch.nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]


def test_lora_trains_only_the_adapters_on_attention_projections() -> None:
    backbone = load_backbone(BackboneConfig(name=TINY, lora_r=4), seed=0)
    names = _trainable_names(backbone.model)
    assert names and all("lora_" in n for n in names)
    # r=4 adapters on q, k, v, o of 2 layers: A is [4, 64], B is [out, 4]
    assert {n.split(".")[-4] for n in names} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    config = backbone.model.config
    kv_out = config.num_key_value_heads * (config.hidden_size // config.num_attention_heads)
    per_layer = sum(4 * 64 + out * 4 for out in (64, kv_out, kv_out, 64))
    assert backbone.n_trainable == 2 * per_layer
    assert backbone.hidden_size == 64


def test_frozen_and_full_modes() -> None:
    frozen = load_backbone(BackboneConfig(name=TINY, mode="frozen"), seed=0)
    assert frozen.n_trainable == 0
    full = load_backbone(BackboneConfig(name=TINY, mode="full"), seed=0)
    assert full.n_trainable == full.n_parameters > 0


def test_same_seed_same_weights_and_truncation() -> None:
    a = load_backbone(BackboneConfig(name=TINY, mode="full"), seed=3)
    b = load_backbone(BackboneConfig(name=TINY, mode="full"), seed=3)
    for (name, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters(), strict=True):
        assert torch.equal(p, q), name
    one = load_backbone(BackboneConfig(name=TINY, mode="full", num_layers=1), seed=3)
    assert len(one.model.model.layers) == 1 and one.model.config.num_hidden_layers == 1
    ids = one.tokenizer("a user who liked", return_tensors="pt")
    assert one.model(**ids).logits.shape == (1, ids["input_ids"].shape[1], len(one.tokenizer))


def test_lora_gradients_flow_and_base_weights_stay() -> None:
    backbone = load_backbone(BackboneConfig(name=TINY, lora_r=4), seed=0)
    model, tokenizer = backbone.model, backbone.tokenizer
    base = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    ids = tokenizer(["recommend a movie"], return_tensors="pt")
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        loss = model(**ids, labels=ids["input_ids"]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if not p.requires_grad)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # B starts at zero; training moved it


def test_bad_inputs_give_clear_errors(tmp_path) -> None:
    with pytest.raises(BenchmarkError, match="lora, full or frozen"):
        load_backbone(BackboneConfig(name=TINY, mode="adapters"), seed=0)  # type: ignore[arg-type]
    with pytest.raises(BenchmarkError, match="num_layers"):
        load_backbone(BackboneConfig(name=TINY, num_layers=5), seed=0)
    with pytest.raises((BenchmarkError, OSError)):
        load_backbone(BackboneConfig(name=str(tmp_path / "no-such-model")))


@pytest.mark.slow
def test_offline_smollm2_default_loads() -> None:
    backbone = load_backbone(BackboneConfig())
    assert backbone.hidden_size == 576
    assert backbone.model.config.num_hidden_layers == 30
    assert 130e6 < backbone.n_parameters < 140e6
    ids = backbone.tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = backbone.model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in backbone.tokenizer.decode(out[0, ids["input_ids"].shape[1]:])
