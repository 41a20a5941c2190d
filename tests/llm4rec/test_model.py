import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from benchmark.data.datasets import load_dataset
from benchmark.errors import BenchmarkError
from benchmark.model import BatchSpec
from llm4rec.model import LLM4Rec, LLM4RecConfig, LLM4RecGenerative, ablation_config
from tests.baselines.helpers import eval_batch, eval_scores, fit, sequential_batches
from tests.llm4rec.conftest import N_ITEMS, N_USERS, cycle, cycle_sequences, make_features, make_items, train_pairs

CONFIG = LLM4RecConfig(
    backbone="tiny-llama", max_seq_length=8, dim=32, batch_size=16, lr=1e-2, backbone_lr=1e-2, dropout=0.0,
    train_windows_per_epoch=0, rag_top_r=3,
)  # fmt: skip


def _model(config: LLM4RecConfig = CONFIG, cls: type[LLM4Rec] = LLM4Rec, seed: int = 0) -> LLM4Rec:
    torch.manual_seed(seed)
    return cls(N_USERS, N_ITEMS, config, features=make_features(), train_pairs=train_pairs(cycle_sequences()), items=make_items())


@pytest.fixture(scope="module")
def trained() -> tuple[LLM4Rec, list[float]]:
    model = _model()
    losses = fit(model, sequential_batches(cycle_sequences(), N_ITEMS, CONFIG.max_seq_length, CONFIG.batch_size), epochs=25)
    return model, losses


def test_learns_the_next_item_of_a_cycle(trained) -> None:
    model, losses = trained
    assert sum(losses[-3:]) < 0.3 * sum(losses[:3])
    histories = [cycle((last - length + 1) % N_ITEMS, length) for last in range(N_ITEMS) for length in (1, 4, 8)]
    scores = eval_scores(model, eval_batch([0] * len(histories), histories, N_ITEMS, CONFIG.max_seq_length))
    expected = torch.tensor([(h[-1] + 1) % N_ITEMS for h in histories])
    assert (scores.argmax(1) == expected).float().mean() >= 0.9


def test_score_contract(trained) -> None:
    model, _ = trained
    scores = eval_scores(model, eval_batch([0, 1, 2], [[4, 5, 6], [7], []], N_ITEMS, CONFIG.max_seq_length))
    assert scores.dtype == torch.float32 and scores.shape == (3, N_ITEMS)
    assert torch.isfinite(scores).all()  # also for the empty history
    assert scores._base is None and not scores.requires_grad  # the harness masks it in place
    assert model.batch_spec() == BatchSpec(kind="sequential", batch_size=16, num_negatives=1, history_length=8)
    assert type(model).is_generative() is False


def test_no_position_sees_the_future(trained) -> None:
    """Changing the items after position t changes nothing at positions <= t (soft tokens,
    retrieved context and the causal LLM), so one pass trains all L predictions honestly."""
    model, _ = trained
    model.eval()
    with torch.no_grad():
        fused = model.item_table()
        a = model.user_states(torch.tensor([[12, 12, 1, 2, 3, 4, 5, 6]]), fused)
        b = model.user_states(torch.tensor([[12, 12, 1, 2, 3, 9, 0, 11]]), fused)
    torch.testing.assert_close(a[0, :5], b[0, :5], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a[0, 5:], b[0, 5:])


def test_state_dict_round_trip_keeps_only_trained_weights(trained, tmp_path) -> None:
    model, _ = trained
    state = model.state_dict()
    assert not any(k.startswith("lm.") and "lora_" not in k for k in state)  # frozen LLM weights reload from their source
    assert any("lora_" in k for k in state) and any(k.startswith("fusion.") for k in state)
    torch.save(state, tmp_path / "m.pt")
    restored = _model(seed=1)
    restored.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    batch = eval_batch([0, 1], [[1, 2, 3], [5]], N_ITEMS, CONFIG.max_seq_length)
    torch.testing.assert_close(eval_scores(restored, batch), eval_scores(model, batch))
    broken = {k: v for k, v in state.items() if not k.startswith("fusion.")}
    with pytest.raises(RuntimeError, match="missing keys"):
        _model().load_state_dict(broken)


@pytest.mark.parametrize("cosine_scores", [True, False])
def test_loss_is_the_weighted_ranking_loss(cosine_scores: bool) -> None:
    """With every extra term off, the loss is sum(w * CE) / sum(w) over the window's targets;
    IPS multiplies w by clipped, self-normalised inverse propensities. Both scoring modes."""
    config = dataclasses.replace(CONFIG, explain=False, debias=False, rag=False, cosine_scores=cosine_scores)
    model = _model(config).eval()
    batch = sequential_batches(cycle_sequences(), N_ITEMS, 8, 4)[0]
    batch["weights"] = torch.rand(batch["target_seq"].shape)
    with torch.no_grad():
        loss = model.training_step(batch, 1)
        fused = model.fusion()
        states = model.user_states(batch["input_seq"], fused)
    has = batch["target_seq"] != N_ITEMS
    items = F.normalize(fused, dim=-1) if cosine_scores else fused  # cosine: the scale is in the user state
    ce = F.cross_entropy(states[has] @ items.T, batch["target_seq"][has], reduction="none")
    w = batch["weights"][has]
    torch.testing.assert_close(loss, (w * ce).sum() / w.sum())

    debiased = _model(dataclasses.replace(config, debias=True, propensity="popularity", adversarial_weight=0.0, parity_weight=0.0)).eval()
    with torch.no_grad():
        loss = debiased.training_step(batch, 1)
    target = batch["target_seq"][has]
    counts = debiased.item_counts[target]
    ips = 1 / torch.clamp(torch.sqrt(counts / debiased.item_counts.max()), min=0.05)
    w2 = w * ips / ips.mean()
    torch.testing.assert_close(loss, (w2 * ce).sum() / w2.sum())


def test_sampled_negatives_loss_runs_and_learns() -> None:
    model = _model(dataclasses.replace(CONFIG, num_negatives=5, explain=False))
    losses = fit(model, sequential_batches(cycle_sequences(), N_ITEMS, 8, 16), epochs=6)
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_cosine_scores_are_scaled_cosines_and_learn() -> None:
    """cosine_scores: score(u, i) = exp(log_scale) * cos(user state, fused item), the scale
    starting at 1 / score_temperature; training and evaluation score the same way."""
    config = dataclasses.replace(CONFIG, cosine_scores=True, score_temperature=0.2, explain=False, debias=False)
    model = _model(config).eval()
    assert math.exp(model.log_scale.item()) == pytest.approx(5.0)
    train_batch = sequential_batches(cycle_sequences(), N_ITEMS, 8, 4)[0]
    with torch.no_grad():
        loss = model.training_step(train_batch, 1)
        states = model.user_states(train_batch["input_seq"], model.fusion())
    has = train_batch["target_seq"] != N_ITEMS
    torch.testing.assert_close(loss, F.cross_entropy(states[has] @ F.normalize(model.fusion(), dim=-1).T, train_batch["target_seq"][has]))
    batch = eval_batch([0, 1], [[1, 2, 3], [5]], N_ITEMS, CONFIG.max_seq_length)
    scores = eval_scores(model, batch)
    with torch.no_grad():
        fused = model.item_table()
        raw = model.user_out(model._run(*model._prompt(batch["history"][:, -config.max_seq_length :], fused)[:2], model.depth))[:, -1]
    expected = 5.0 * F.normalize(raw, dim=-1) @ F.normalize(fused, dim=-1).T
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-4)
    assert scores.abs().max() <= 5.0 + 1e-4

    model = _model(config)
    losses = fit(model, sequential_batches(cycle_sequences(), N_ITEMS, 8, 16), epochs=8)
    assert losses[-1] < 0.5 * losses[0]
    assert math.exp(model.log_scale.item()) != pytest.approx(5.0)  # the scale is trained


def test_item_bias_is_added_to_every_score_and_learns_popularity() -> None:
    """item_bias: score(u, i) = cosine score + b_i, b starting at zero; trained on sequences
    whose items are drawn independently with item 7 as likely as all others together, b_7
    becomes the largest bias (slowly: the user states learn popularity too)."""
    config = dataclasses.replace(CONFIG, item_bias=True, explain=False, debias=False)
    plain, model = _model(dataclasses.replace(config, item_bias=False)).eval(), _model(config).eval()
    batch = eval_batch([0, 1], [[1, 2, 3], [5]], N_ITEMS, CONFIG.max_seq_length)
    torch.testing.assert_close(eval_scores(model, batch), eval_scores(plain, batch))  # zero at the start
    with torch.no_grad():
        model.item_bias.copy_(torch.arange(N_ITEMS, dtype=torch.float32))
    torch.testing.assert_close(eval_scores(model, batch), eval_scores(plain, batch) + torch.arange(N_ITEMS, dtype=torch.float32))

    rng = np.random.default_rng(0)
    others = [i for i in range(N_ITEMS) if i != 7]
    sequences = {u: [7 if rng.random() < 0.5 else int(rng.choice(others)) for _ in range(40)] for u in range(N_USERS)}
    model = _model(dataclasses.replace(config, warmup_steps=0))
    losses = fit(model, sequential_batches(sequences, N_ITEMS, 8, 16), epochs=30)
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    bias = model.item_bias.detach()
    assert int(bias.argmax()) == 7 and float(bias[7] - bias[others].max()) > 0.03


def test_history_titles_interleave_text_before_each_soft_token() -> None:
    model = _model(dataclasses.replace(CONFIG, history_titles=True, title_tokens=4, explain=False)).eval()
    seq = torch.tensor([[12, 3, 4]])
    with torch.no_grad():
        embeds, mask, positions = model._prompt(seq, model.fusion())
    n_instruction = len(model.instruction_ids)
    assert embeds.shape[1] == n_instruction + 3 * 5
    assert positions.tolist() == [n_instruction + 4, n_instruction + 9, n_instruction + 14]
    assert not mask[0, n_instruction : n_instruction + 5].any()  # the padded slot: title and soft token masked
    title = model.tokenizer(" Place 3", add_special_tokens=False)["input_ids"]
    assert model.title_table[3, -len(title) :].tolist() == title
    scores = eval_scores(model, eval_batch([0], [[3, 4]], N_ITEMS, 8))
    assert torch.isfinite(scores).all()


def test_adaptation_parameters_and_the_no_adaptive_ablation(trained) -> None:
    model, _ = trained
    params = {id(p) for p in model.adaptation_parameters()}
    lora = [p for n, p in model.lm.named_parameters() if "lora_" in n]
    assert lora and all(id(p) in params for p in lora)
    assert all(id(p) in params for p in model.fusion.parameters())
    assert not any(id(p) in params for p in model.adversary.parameters())
    assert all(p.requires_grad for p in model.adaptation_parameters())
    assert model.supports_adaptation is True and model.supports_sample_weights is True
    frozen = _model(ablation_config("no-adaptive", CONFIG))
    assert frozen.supports_adaptation is False


def test_no_llm_is_a_scratch_transformer_of_the_same_width() -> None:
    model = _model(ablation_config("no-llm", CONFIG))
    assert model.decoder.config.num_hidden_layers == 2 and model.hidden_size == 64
    assert all(p.requires_grad for p in model.lm.parameters())
    assert not any("lora_" in n for n, _ in model.lm.named_parameters())
    batch = eval_batch([0], [[1, 2]], N_ITEMS, 8)
    assert torch.isfinite(eval_scores(model, batch)).all()


def test_generation_is_constrained_to_the_catalogue() -> None:
    model = _model(dataclasses.replace(CONFIG, explain=False), cls=LLM4RecGenerative)
    assert LLM4RecGenerative.is_generative() is True
    fit(model, sequential_batches(cycle_sequences(), N_ITEMS, 8, 16), epochs=1)
    batch = eval_batch([0, 1, 2], [[1, 2, 3], [5], []], N_ITEMS, 8)
    batch["seen_rows"], batch["seen_items"] = torch.tensor([0, 0, 0, 1]), torch.tensor([1, 2, 3, 5])
    model.eval()
    items = model.recommend(batch, 5)
    assert items.shape == (3, 5) and items.dtype == torch.long
    assert ((items >= 0) & (items < N_ITEMS)).all()  # every decoded title is a catalogue item
    assert all(len(set(row)) == 5 for row in items.tolist())
    assert not {1, 2, 3} & set(items[0].tolist()) and 5 not in items[1].tolist()


def test_explanations_train_and_generate(tiny_ml) -> None:
    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    config = dataclasses.replace(CONFIG, explain_every=1, explain_batch=2, explain_new_tokens=6)
    torch.manual_seed(0)
    model = LLM4Rec(data.n_users, data.n_items, config, train_pairs=(data.train.user, data.train.item), items=data.items)
    assert model.generates_explanations and len(model.snippets) == data.n_items
    # no reviews: the target of a training pair is its item's attribute sentence
    item = int(data.train.item[0])
    assert model.target_text(int(data.train.user[0]), item).startswith(list(data.items["categories"].iloc[item])[0])
    sequences = {u: data.train.item[data.train.user == u].tolist() for u in range(6)}
    batch = sequential_batches(sequences, data.n_items, 8, 6)[0]
    model.train()
    loss = model.training_step(batch, 0)
    loss.backward()
    lora = [p for n, p in model.lm.named_parameters() if "lora_" in n and p.grad is not None]
    assert lora and any(p.grad.abs().sum() > 0 for p in lora)  # the explanation loss reaches the adapters
    texts = model.explain(eval_batch([0, 1], [[1, 2, 3], [4]], data.n_items, 8), torch.tensor([5, 6]))
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    prompt = model._explain_prompt([1, 2, 3], 5, [5, 7])
    assert model.titles[5] in prompt and "Explanation:" in prompt
    assert model.snippets.texts[5] not in prompt.split("Related information:")[1]  # no own snippet as evidence
    reviews = pd.DataFrame({"user": [0], "item": [3], "timestamp": [1], "text": ["Loved the soundtrack."]})
    with_reviews = LLM4Rec(data.n_users, data.n_items, config, train_pairs=(data.train.user, data.train.item), items=data.items, texts=reviews)
    assert with_reviews.target_text(0, 3) == "Loved the soundtrack." and with_reviews.target_text(0, 4) is None
    off = LLM4Rec(data.n_users, data.n_items, ablation_config("no-explain", CONFIG), train_pairs=(data.train.user, data.train.item), items=data.items)
    assert not off.generates_explanations


def test_bad_configs_are_clear_errors() -> None:
    for change, message in (({"max_seq_length": 0}, "max_seq_length"), ({"rag_temperature": 0.0}, "rag_temperature"),
                            ({"dropout": 1.0}, "dropout"), ({"parity_weight": -1.0}, "parity_weight"),
                            ({"score_temperature": 0.0}, "score_temperature")):  # fmt: skip
        with pytest.raises(BenchmarkError, match=message):
            _model(dataclasses.replace(CONFIG, **change))


def test_streaming_protocol_adapts_llm4rec_and_not_its_no_adaptive_ablation(tiny_ml) -> None:
    """Module 5 through the harness's streaming protocol: the adaptive model's adapters move,
    the frozen copy and the no-adaptive ablation stay as trained."""
    from benchmark.config import TrainConfig
    from benchmark.streaming import run_stream

    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    train = TrainConfig.from_flat(dict(stream_windows=1, stream_steps_per_window=1, stream_replay_size=0, eval_batch_size=256))
    results = {}
    for name in ("full", "no-adaptive"):
        config = dataclasses.replace(CONFIG if name == "full" else ablation_config("no-adaptive", CONFIG), explain=False)
        torch.manual_seed(0)
        model = LLM4Rec(data.n_users, data.n_items, config, train_pairs=(data.train.user, data.train.item), items=data.items)
        before = [p.detach().clone() for p in model.adaptation_parameters()]
        record = run_stream(model, data, train, seed=0)
        moved = any(not torch.equal(b, p) for b, p in zip(before, model.adaptation_parameters()))
        results[name] = (record, moved)
    record, moved = results["full"]
    assert moved and record["config"]["adapted"] and len(record["windows"]) == 1
    record, moved = results["no-adaptive"]
    assert not moved and not record["config"]["adapted"]
