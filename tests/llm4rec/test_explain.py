"""Explanations: attribute targets, prompts, the loss, decoding, and the harness hook that
explains held-out pairs and scores them (text metrics: tests/benchmark/test_metrics.py;
review alignment: tests/benchmark/data/test_reviews.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from baselines.bpr import BPR, BPRConfig
from benchmark.cli import main
from benchmark.config import DataConfig
from benchmark.data.datasets import load_dataset
from benchmark.data.features import item_attributes
from benchmark.data.reviews import interaction_texts
from benchmark.data.simulator import SimulationConfig, write_yelp
from benchmark.metrics import text_metrics
from benchmark.registry import MODELS, ModelSpec
from llm4rec.backbone import TINY, BackboneConfig, load_backbone
from llm4rec.explain import DEFAULT_TEMPLATE, attribute_sentence, attribute_targets, build_prompt, explanation_loss, generate_explanations

SHORT = "Item: {item}. Likes: {history}. Evidence: {evidence}.\nExplanation:"


# --- supervision ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_yelp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "tiny-yelp"
    write_yelp(SimulationConfig(n_users=80, n_items=40, mean_interactions=12, seed=5), out)
    return out


def test_movielens_targets_are_attribute_sentences(tiny_ml: Path) -> None:
    data = load_dataset("synthetic-ml", DataConfig(), tiny_ml)
    targets = attribute_targets(data.items)
    categories, tags = list(data.items["categories"].iloc[0]), list(data.items["tags"].iloc[0])
    assert len(targets) == data.n_items and targets[0] == attribute_sentence(categories, tags)
    assert all(targets)  # every simulated movie has genres


def test_attribute_sentences_by_hand() -> None:
    assert attribute_sentence(["Comedy", "Romance"], ["quirky", "funny"]) == "Comedy and Romance, tagged quirky and funny."
    assert attribute_sentence(["Drama"], []) == "Drama."
    assert attribute_sentence([], ["dark"]) == "Tagged dark."
    assert attribute_sentence([], []) == ""


def test_prompt_never_holds_the_items_attributes() -> None:
    prompt = build_prompt(["Pizza Place", "Taco Bar"], "Sushi Go", ["often visited with sushi lovers"])
    assert prompt.startswith("The user recently enjoyed: Pizza Place; Taco Bar.\nRecommended item: Sushi Go.\n")
    assert "Related information: often visited with sushi lovers." in prompt and "attributes" not in prompt.lower()
    assert prompt.endswith("Explanation:") and DEFAULT_TEMPLATE.endswith("Explanation:")
    assert build_prompt([], "X", [], template=SHORT) == "Item: X. Likes: none. Evidence: none.\nExplanation:"
    with pytest.raises(ValueError, match="fields"):
        build_prompt([], "X", [], template="{attributes} of {item}")


# --- loss and decoding ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> tuple:
    backbone = load_backbone(BackboneConfig(name=TINY, mode="full"), seed=0)
    return backbone.model, backbone.tokenizer


def test_loss_counts_target_tokens_only(tiny: tuple) -> None:
    lm, tok = tiny
    prompts = [build_prompt(["A"], "Sushi Go", [], template=SHORT), "Explanation:"]
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
    prompts = ["Explanation:", build_prompt(["Pizza Place", "Gym"], "Cafe Roma", [], template=SHORT)]
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
    prompts = [build_prompt(["Pizza Place"], "Sushi Bar", [], template=SHORT), build_prompt(["Gym"], "Cafe Roma", [], template=SHORT)]
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


# --- the harness hook --------------------------------------------------------------------------


class ExplainingBPR(BPR):
    """BPR with a template explainer: "Because you enjoy <the item's genres and tags>."."""

    generates_explanations = True
    asked: list[tuple[list[int], list[int]]] = []

    def explain(self, batch: dict[str, torch.Tensor], items: torch.Tensor) -> list[str]:
        ExplainingBPR.asked.append((batch["users"].tolist(), items.tolist()))
        return ["Because you enjoy " + " ".join(self.attributes[int(i)]) for i in items]


def _run_explaining(data: str, raw: Path, out: Path, monkeypatch: pytest.MonkeyPatch, attributes: list[list[str]]) -> dict:
    class Model(ExplainingBPR):
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            super().__init__(*args, **kwargs)
            self.attributes = attributes

    monkeypatch.setitem(MODELS, "bpr-explain", ModelSpec("bpr-explain", Model, BPRConfig(), "test model with explanations"))
    ExplainingBPR.asked = []
    argv = ["run", "--model", "bpr-explain", "--data", data, "--raw-dir", str(raw), "--out", str(out), "--no-progress",
            "--max-epochs", "1", "--set", "explanation_users=30", "--set", "explanation_samples=4", "--output", str(out / "f.json")]  # fmt: skip
    assert main(argv) == 0
    (path,) = out.glob("runs/*/result.json")
    return json.loads(path.read_text())


def test_run_scores_explanations_of_held_out_pairs_against_their_reviews(tiny_yelp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_dataset("synthetic-yelp", DataConfig(), tiny_yelp)
    attributes = item_attributes(data.items)
    record = _run_explaining("synthetic-yelp", tiny_yelp, tmp_path / "out", monkeypatch, attributes)
    explained = record["explanations"]
    assert explained["reference"] == "reviews" and explained["n_users"] == 30
    users, items = ExplainingBPR.asked[0]
    assert len(users) == 30
    # the harness asked for each sampled test user's held-out test item, and scored against their review
    test = dict(zip(data.test.user.tolist(), data.test.item.tolist()))
    assert all(test[u] == i for u, i in zip(users, items))
    reviews = interaction_texts(data, tiny_yelp).test
    lookup = dict(zip(zip(reviews["user"], reviews["item"]), reviews["text"]))
    expected = text_metrics(["Because you enjoy " + " ".join(attributes[i]) for i in items], [lookup[(u, i)] for u, i in zip(users, items)],
                            [attributes[i] for i in items])  # fmt: skip
    metrics = explained["metrics"]
    assert {k: metrics[k] for k in expected} == pytest.approx(expected) and set(expected) == {"bleu4", "rouge_l", "feature_match", "distinct_2"}
    assert metrics["feature_match"] == 1.0 and 0 < metrics["rouge_l"] < 1
    lines = [json.loads(line) for line in (tmp_path / "out" / "runs" / record["run_id"] / "explanations.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["test item"] * 4 + ["top-1 recommendation"] * 4
    assert lines[0]["reference"] == lookup[(users[0], items[0])]


def test_without_review_text_there_is_no_bleu_or_rouge(tiny_ml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = load_dataset("synthetic-ml", DataConfig(), tiny_ml)
    record = _run_explaining("synthetic-ml", tiny_ml, tmp_path / "out", monkeypatch, item_attributes(data.items))
    explained = record["explanations"]
    assert explained["reference"] == "none" and set(explained["metrics"]) == {"feature_match", "distinct_2", "seconds_per_explanation"}
    assert "no reference text" in capsys.readouterr().out
