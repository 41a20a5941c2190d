"""Explanations: supervision from reviews/attributes, prompts, the loss, decoding, metrics, and
the harness hook that writes a run's explanations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.bpr import BPR, BPRConfig
from benchmark.cli import main
from benchmark.config import DataConfig
from benchmark.data.amazon import read_review_texts as amazon_texts
from benchmark.data.datasets import load_dataset
from benchmark.data.prepare import PreparedData
from benchmark.data.simulator import SimulationConfig, write_amazon, write_yelp
from benchmark.data.yelp import read_review_texts as yelp_texts
from benchmark.registry import MODELS, ModelSpec
from llm4rec.backbone import TINY, BackboneConfig, load_backbone
from llm4rec.explain import (
    DEFAULT_TEMPLATE, ExplanationData, attribute_sentence, build_prompt, distinct_n, explanation_loss, explanation_metrics,
    feature_match, generate_explanations, item_attributes,
)  # fmt: skip

SHORT = "Item: {item}. Likes: {history}. Attributes: {attributes}. Evidence: {evidence}.\nExplanation:"


# --- supervision ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_yelp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "tiny-yelp"
    write_yelp(SimulationConfig(n_users=80, n_items=40, mean_interactions=12, seed=5), out)
    return out


def _check_reviews(data: PreparedData, explain: ExplanationData, texts) -> None:  # noqa: ANN001
    assert explain.source == "reviews"
    # the simulator writes one review per interaction: every prepared pair has its own text
    assert (len(explain.train), len(explain.valid), len(explain.test)) == (len(data.train), len(data.valid), len(data.test))
    by_pair = {(u, i, t): x for u, i, t, x in zip(texts["user"], texts["item"], texts["timestamp"], texts["text"])}
    for part in ("train", "test"):
        frame = explain.pairs(part)
        for row in frame.head(20).itertuples():
            raw = by_pair[(data.user_ids[row.user], data.item_ids[row.item], row.timestamp)]
            assert row.text == " ".join(raw.split()) and len(row.text) <= 200  # simulated reviews are short
    # training targets are training interactions only: no held-out pair is trained on
    train_pairs = set(zip(explain.train["user"], explain.train["item"]))
    assert not train_pairs & set(zip(data.test.user.tolist(), data.test.item.tolist()))


def test_yelp_reviews_are_the_targets_and_held_out_reviews_the_references(tiny_yelp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_dataset("synthetic-yelp", DataConfig(split="temporal"), tiny_yelp)
    explain = ExplanationData.build(data, raw_dir=tiny_yelp)
    _check_reviews(data, explain, yelp_texts(tiny_yelp))
    first = explain.train.iloc[0]
    assert "\n" not in first["text"] and first["text"] == " ".join(first["text"].split())
    assert len(explain.titles) == len(explain.attributes) == data.n_items
    short = ExplanationData.build(data, raw_dir=tiny_yelp, max_chars=30)  # another length: another cache entry
    assert short.train["text"].str.len().max() <= 30 and len(short.train) == len(explain.train)
    assert all(long.startswith(cut) for long, cut in zip(explain.train["text"], short.train["text"]))  # cut at a word
    # a second build reads the cache, not the raw files
    monkeypatch.setattr("benchmark.data.yelp.read_review_texts", lambda *a, **k: pytest.fail("raw reviews read again"))
    again = ExplanationData.build(data, raw_dir=tiny_yelp)
    assert again.test.equals(explain.test)


def test_amazon_reviews(tmp_path: Path) -> None:
    raw = tmp_path / "amazon"
    write_amazon(SimulationConfig(n_users=60, n_items=30, mean_interactions=10, seed=2), raw)
    data = load_dataset("synthetic-amazon", DataConfig(kcore=0), raw)
    explain = ExplanationData.build(data, raw_dir=raw)
    _check_reviews(data, explain, amazon_texts(raw))
    assert any(explain.attributes)  # categories and brands


def test_movielens_targets_are_attribute_sentences(tiny_ml: Path) -> None:
    data = load_dataset("synthetic-ml", DataConfig(), tiny_ml)
    explain = ExplanationData.build(data)
    assert explain.source == "attributes"
    row = explain.train.iloc[0]
    categories, tags = list(data.items["categories"].iloc[row["item"]]), list(data.items["tags"].iloc[row["item"]])
    assert row["text"] == attribute_sentence(categories, tags) and row["text"].startswith(" and ".join(categories[:1]))
    assert len(explain.test) == len(data.test)  # every simulated movie has genres


def test_attribute_helpers_by_hand() -> None:
    assert attribute_sentence(["Comedy", "Romance"], ["quirky", "funny"]) == "Comedy and Romance, tagged quirky and funny."
    assert attribute_sentence(["Drama"], []) == "Drama."
    assert attribute_sentence([], ["dark"]) == "Tagged dark."
    assert attribute_sentence([], []) == ""
    import pandas as pd

    items = pd.DataFrame({"categories": [["Pizza", "Italian"], []], "tags": [["BikeParking", "WiFi=free"], None], "brand": ["", "Sonix"]})
    assert item_attributes(items) == [["Pizza", "Italian", "BikeParking"], ["Sonix"]]


def test_prompt() -> None:
    prompt = build_prompt(["Pizza Place", "Taco Bar"], "Sushi Go", ["Sushi Bars", "Japanese"], ["often visited with sushi lovers"])
    assert prompt.startswith("The user recently enjoyed: Pizza Place; Taco Bar.\nRecommended item: Sushi Go.\n")
    assert "Item attributes: Sushi Bars, Japanese." in prompt and "Related information: often visited with sushi lovers." in prompt
    assert prompt.endswith("Explanation:") and DEFAULT_TEMPLATE.endswith("Explanation:")
    assert build_prompt([], "X", [], [], template=SHORT) == "Item: X. Likes: none. Attributes: none. Evidence: none.\nExplanation:"
    with pytest.raises(ValueError, match="fields"):
        build_prompt([], "X", [], [], template="{user} likes {item}")


# --- loss and decoding ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> tuple:
    backbone = load_backbone(BackboneConfig(name=TINY, mode="full"), seed=0)
    return backbone.model, backbone.tokenizer


def test_loss_counts_target_tokens_only(tiny: tuple) -> None:
    lm, tok = tiny
    prompts = [build_prompt(["A"], "Sushi Go", [], [], template=SHORT), "Explanation:"]
    targets = ["Fresh fish.", "Cheap and cheerful tacos with salsa."]
    loss = explanation_loss(lm, tok, prompts, targets, max_length=64)
    # by hand: each pair alone, unpadded; mean of the target tokens' cross-entropy over both pairs
    total, count = 0.0, 0
    with torch.no_grad():
        for prompt, target in zip(prompts, targets):
            p = tok(prompt, add_special_tokens=False)["input_ids"]
            t = tok(" " + target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            logits = lm(input_ids=torch.tensor([p + t])).logits[0]
            log_probs = torch.log_softmax(logits[len(p) - 1 : len(p) + len(t) - 1], -1)
            total -= float(log_probs[torch.arange(len(t)), torch.tensor(t)].sum())
            count += len(t)
    assert loss.item() == pytest.approx(total / count, rel=1e-4)
    # soft inputs before the prompt change the loss but not what it counts
    prefix = torch.randn(2, 3, lm.config.hidden_size)
    with_prefix = explanation_loss(lm, tok, prompts, targets, max_length=64, prefix_embeds=prefix)
    assert math.isfinite(float(with_prefix)) and float(with_prefix) != pytest.approx(float(loss))
    with pytest.raises(ValueError, match="as many prompts"):
        explanation_loss(lm, tok, prompts, targets[:1], max_length=64)


def test_batched_greedy_decoding_matches_one_by_one_and_soft_prefixes(tiny: tuple) -> None:
    lm, tok = tiny
    prompts = ["Explanation:", build_prompt(["Pizza Place", "Gym"], "Cafe Roma", ["Coffee & Tea"], [], template=SHORT)]
    batched = generate_explanations(lm, tok, prompts, max_new_tokens=6)
    assert batched == [generate_explanations(lm, tok, [p], max_new_tokens=6)[0] for p in prompts]  # left padding is exact
    # the first tokens of a prompt passed as embeddings give the same greedy text
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    heads = torch.stack([lm.get_input_embeddings()(torch.tensor(i[:2])) for i in ids]).detach()
    rests = [tok.decode(i[2:]) for i in ids]
    assert [tok(r, add_special_tokens=False)["input_ids"] for r in rests] == [i[2:] for i in ids]
    assert generate_explanations(lm, tok, rests, max_new_tokens=6, prefix_embeds=heads) == batched


def test_training_on_explanations_lowers_the_loss_and_greedy_decoding_reproduces_them() -> None:
    backbone = load_backbone(BackboneConfig(name=TINY, mode="full"), seed=0)
    lm, tok = backbone.model, backbone.tokenizer
    prompts = [build_prompt(["Pizza Place"], "Sushi Bar", ["Sushi Bars"], [], template=SHORT),
               build_prompt(["Gym"], "Cafe Roma", ["Coffee & Tea"], [], template=SHORT)]  # fmt: skip
    targets = ["Fresh sushi and friendly staff.", "Great espresso and pastries."]
    optimizer = torch.optim.Adam(lm.parameters(), lr=5e-3)
    losses = []
    for _ in range(40):
        loss = explanation_loss(lm, tok, prompts, targets, max_length=64)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.1 * losses[0]
    assert generate_explanations(lm, tok, prompts, max_new_tokens=12) == targets


def test_lora_wrapped_backbone_trains_through_the_loss() -> None:
    backbone = load_backbone(BackboneConfig(name=TINY, lora_r=4), seed=0)
    lm, tok = backbone.model, backbone.tokenizer
    loss = explanation_loss(lm, tok, ["Explanation:"], ["Good food."], max_length=32)
    loss.backward()
    grads = {n: p.grad for n, p in lm.named_parameters() if p.requires_grad}
    assert grads and all("lora_" in n for n in grads) and any(g is not None and g.abs().sum() > 0 for g in grads.values())
    assert isinstance(generate_explanations(lm, tok, ["Explanation:"], max_new_tokens=3)[0], str)


# --- metrics -----------------------------------------------------------------------------------


def test_bleu4_by_hand() -> None:
    # n-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths, so no brevity penalty
    expected = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    metrics = explanation_metrics(["The cat sat on the mat."], ["the cat sat on a mat"], [[]])
    assert metrics["bleu4"] == pytest.approx(expected, rel=1e-5)
    # every n-gram matches but the candidate is 4 words against 6: brevity penalty exp(1 - 6/4)
    short = explanation_metrics(["the cat sat on"], ["the cat sat on the mat"], [[]])
    assert short["bleu4"] == pytest.approx(math.exp(-0.5), rel=1e-5)


def test_rouge_l_feature_match_distinct_by_hand() -> None:
    explanations = ["the cat sat on the mat", "Great pizza here!"]
    references = ["the cat is on the mat", "The pizza was great"]
    metrics = explanation_metrics(explanations, references, [["Cat"], ["Pizza"]])
    # LCS 5 of 6 and 6 words: F = 5/6; LCS 1 of 3 and 4 words: P 1/3, R 1/4, F = 2/7
    assert metrics["rouge_l"] == pytest.approx((5 / 6 + 2 / 7) / 2, rel=1e-5)
    assert metrics["feature_match"] == 1.0
    assert set(metrics) == {"bleu4", "rouge_l", "feature_match", "distinct_2"}
    texts = ["Best Pizza in town!", "Nice pizzas", "good Coffee & Tea spot", "the Barstool was fine"]
    assert feature_match(texts, [["pizza"], ["Pizza"], ["coffee & tea"], ["Bars"]]) == 0.5  # whole words only
    assert distinct_n(["a b a b", "a b c"], 2) == pytest.approx(3 / 5)  # ab, ba, ab | ab, bc
    assert distinct_n(["one"], 2) == 0.0
    with pytest.raises(ValueError, match="1 explanations, 2 references"):
        explanation_metrics(["x"], ["a", "b"], [[]])


# --- the harness hook --------------------------------------------------------------------------


class ExplainingBPR(BPR):
    """BPR with a template explainer: "Because you enjoy <the item's genres and tags>."."""

    received: dict[int, list[int]] = {}

    def explanation_report(self, data: PreparedData, top_k: dict[int, list[int]], n_samples: int) -> tuple[dict[str, float], list[dict]]:
        ExplainingBPR.received = top_k
        explain = ExplanationData.build(data)
        row = lambda item: data.items.iloc[item]  # noqa: E731
        say = lambda item: "Because you enjoy " + attribute_sentence(list(row(item)["categories"]), list(row(item)["tags"]))  # noqa: E731
        test = explain.test
        metrics = explanation_metrics([say(i) for i in test["item"]], list(test["text"]), [explain.attributes[i] for i in test["item"]])
        users = sorted(top_k)[:n_samples]
        samples = [{"user": u, "item": top_k[u][0], "title": explain.titles[top_k[u][0]], "explanation": say(top_k[u][0]), "reference": None}
                   for u in users]  # fmt: skip
        return metrics, samples


def test_run_writes_explanations(tiny_ml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(MODELS, "bpr-explain", ModelSpec("bpr-explain", ExplainingBPR, BPRConfig(), "test model with explanations"))
    out = tmp_path / "out"
    argv = ["run", "--model", "bpr-explain", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--out", str(out), "--no-progress",
            "--max-epochs", "1", "--set", "explanation_users=50", "--set", "explanation_samples=4", "--output", str(tmp_path / "f.json")]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    (path,) = out.glob("runs/*/result.json")
    record = json.loads(path.read_text())
    metrics = record["explanations"]["metrics"]
    assert set(metrics) == {"bleu4", "rouge_l", "feature_match", "distinct_2"}
    explain = ExplanationData.build(load_dataset("synthetic-ml", DataConfig(), tiny_ml))
    say = ["Because you enjoy " + text for text in explain.test["text"]]  # references: the attribute sentences
    assert metrics == pytest.approx(explanation_metrics(say, list(explain.test["text"]), [explain.attributes[i] for i in explain.test["item"]]))
    assert metrics["feature_match"] == 1.0 and 0 < metrics["rouge_l"] < 1
    lines = [json.loads(line) for line in (path.parent / "explanations.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and set(lines[0]) == {"user", "item", "title", "explanation", "reference"}
    assert "explanations (50 test users)" in printed and lines[0]["explanation"] in printed
    assert json.loads((tmp_path / "f.json").read_text())["explanation/feature_match"] == 1.0
    # the model got top-10 lists of 50 test users, seen items excluded
    data = load_dataset("synthetic-ml", DataConfig(), tiny_ml)
    top_k = ExplainingBPR.received
    assert len(top_k) == 50 and all(len(items) == 10 for items in top_k.values())
    seen = set(zip(np.concatenate([data.train.user, data.valid.user]).tolist(), np.concatenate([data.train.item, data.valid.item]).tolist()))
    assert not any((u, i) in seen for u, items in top_k.items() for i in items)
    assert set(top_k) <= set(data.test.user.tolist())
