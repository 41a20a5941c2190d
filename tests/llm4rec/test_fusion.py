import numpy as np
import pytest
import torch

from benchmark.errors import BenchmarkError
from llm4rec.fusion import MultimodalFusion, fusion_summary
from tests.llm4rec.conftest import N_ITEMS, make_features


def _fusion(features=None, **kwargs) -> MultimodalFusion:
    torch.manual_seed(0)
    module = MultimodalFusion(N_ITEMS, make_features() if features is None else features, dim=16, heads=2, **kwargs)
    return module.eval()  # no dropout: outputs are deterministic


def test_shapes_modalities_and_gates() -> None:
    fusion = _fusion(make_features(text_missing=(2, 5)))
    fused, alpha = fusion(return_gates=True)
    assert fused.shape == (N_ITEMS, 16) and alpha.shape == (N_ITEMS, 4)
    assert fusion.names == ["id", "text", "categorical", "numerical"]  # no image extracted: dropped
    torch.testing.assert_close(alpha.sum(1), torch.ones(N_ITEMS))
    assert torch.all(alpha[[2, 5], 1] == 0) and torch.all(alpha[[0, 1, 3], 1] > 0)
    summary = fusion_summary(fusion)
    assert set(summary) == {"alpha_id", "alpha_text", "alpha_categorical", "alpha_numerical"}


def test_image_modality_when_extracted() -> None:
    fusion = _fusion(make_features(with_image=True))
    assert fusion.names[-1] == "image" and fusion(return_gates=True)[1].shape == (N_ITEMS, 5)


def test_a_missing_modality_is_masked_not_zero_filled() -> None:
    features = make_features(text_missing=(4,))
    base = _fusion(features)
    changed_features = make_features(text_missing=(4,))
    changed_features.text[4] = 100.0 * np.random.default_rng(1).standard_normal(16)  # garbage behind the mask
    changed = _fusion(changed_features)
    out_base, out_changed = base(), changed()
    torch.testing.assert_close(out_base, out_changed, rtol=0, atol=0)  # every item, the masked one included
    out_base = _fusion(features, center=False)()  # uncentred: one item's change stays in that item
    # unmasking the same values changes the item: the mask, not the zeros, hid them
    changed_features.text_mask[4] = True
    unmasked = _fusion(changed_features, center=False)()
    assert not torch.allclose(unmasked[4], out_base[4])
    torch.testing.assert_close(unmasked[0], out_base[0])  # items never mix


def test_masked_modality_gets_no_cross_attention() -> None:
    fusion = _fusion(make_features(text_missing=(3,)))
    h = fusion.modality_vectors()
    _, weights = fusion.cross(h, fusion.present)  # [N, heads, M(query), M(key)]
    assert torch.all(weights[3, :, :, 1] == 0)  # nobody attends to item 3's missing text
    assert torch.all(weights[:, :, torch.arange(4), torch.arange(4)] == 0)  # never to itself
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(2, 4))
    # an item with no other present modality (id alone) gets a zero update, not NaN
    lonely = fusion.present.clone()
    lonely[7, 1:] = False
    out, w = fusion.cross(h, lonely)
    assert torch.isfinite(out).all() and torch.all(w[7, :, 0] == 0)


def test_numerical_columns_can_be_excluded() -> None:
    assert _fusion().num_x.shape == (N_ITEMS, 2)  # year and its presence bit
    assert "numerical" not in _fusion(numerical_exclude=("year",)).names


def test_categorical_bag_is_the_mean_of_the_item_values() -> None:
    fusion = _fusion()
    enc = fusion.encoders["categorical"]
    vectors = fusion.modality_vectors()[:, fusion.names.index("categorical")]
    weight = enc["bag"].weight
    # item 4 has values 1 and 2 (Sushi, Tacos); item 5 only value 2
    torch.testing.assert_close(vectors[4], enc["norm"]((weight[1] + weight[2]) / 2))
    torch.testing.assert_close(vectors[5], enc["norm"](weight[2]))


def test_mean_fusion_is_the_plain_mean_of_present_modalities() -> None:
    fusion = _fusion(make_features(text_missing=(1,)), modalities=["id", "text"], cross_attention=False, fusion="mean", center=False)
    assert fusion.cross is None and fusion.names == ["id", "text"]
    h = fusion.modality_vectors()
    fused = fusion()
    torch.testing.assert_close(fused[0], (h[0, 0] + h[0, 1]) / 2)
    torch.testing.assert_close(fused[1], h[1, 0])  # text missing: the id vector alone


def test_centring_removes_the_catalogue_mean_and_keeps_every_ranking() -> None:
    centred, raw = _fusion(), _fusion(center=False)  # same seed: same weights
    torch.testing.assert_close(centred(), raw() - raw().mean(0, keepdim=True))
    torch.testing.assert_close(centred().mean(0), torch.zeros(16), atol=1e-6, rtol=0)
    # a shared shift adds the same logit to every item: the softmax over items is unchanged
    user = torch.randn(3, 16)
    torch.testing.assert_close(torch.softmax(user @ centred().T, 1), torch.softmax(user @ raw().T, 1), atol=1e-6, rtol=0)


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(BenchmarkError, match="unknown modalities"):
        MultimodalFusion(N_ITEMS, make_features(), modalities=["id", "audio"])
    with pytest.raises(BenchmarkError, match="describe 12 items"):
        MultimodalFusion(N_ITEMS + 1, make_features())
    with pytest.raises(BenchmarkError, match="none of the modalities"):
        MultimodalFusion(N_ITEMS, None, modalities=["text"])
    with pytest.raises(BenchmarkError, match="multiple of fusion_heads"):
        MultimodalFusion(N_ITEMS, make_features(), dim=10, heads=4)
