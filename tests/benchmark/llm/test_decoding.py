"""Catalogue trie, unique title sequences and the constrained beam search (benchmark/llm/decoding.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig, LlamaForCausalLM

from benchmark.llm.backbone import load_tokenizer
from benchmark.llm.decoding import CatalogueTrie, catalogue_sequences, constrained_beam_search, item_titles

VOCAB = 40


def tiny_lm(seed: int) -> LlamaForCausalLM:
    """A random 1-layer Llama over a 40-token vocabulary: its logits are random but fixed."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64, initializer_range=1.0, tie_word_embeddings=False,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def brute_force(lm: LlamaForCausalLM, prompt: list[int], trie: CatalogueTrie, excluded: set[int], normalize_over=None) -> dict[int, float]:
    """log P(title | prompt) of every admissible item by teacher forcing one sequence at a
    time: the sum of its tokens' log-softmax, the softmax over the catalogue's tokens."""
    over = torch.as_tensor(trie.tokens if normalize_over is None else normalize_over)
    out = {}
    for item in (i for i in range(trie.n_items) if i not in excluded):
        seq = list(trie.sequences[item])
        with torch.no_grad():
            logits = lm(input_ids=torch.tensor([prompt + seq])).logits[0, len(prompt) - 1 : -1].double()
        log_p = logits.gather(1, torch.tensor(seq).unsqueeze(1)).squeeze(1) - torch.logsumexp(logits[:, over], dim=1)
        out[item] = float(log_p.sum())
    return out


# --- titles -> sequences ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-llama")


def test_item_titles_clean_whitespace_and_fill_missing() -> None:
    items = pd.DataFrame({"raw_id": ["a", "b", "c"], "title": ["Heat\n(1995) ", None, "  "]})
    assert item_titles(items) == ["Heat (1995)", "item b", "item c"]
    with pytest.raises(ValueError, match="no 'title' column"):
        item_titles(pd.DataFrame({"raw_id": ["a"]}))


def test_duplicate_titles_map_to_distinct_items(tokenizer) -> None:
    titles = ["Heat (1995)", "Toy Story (1995)", "Heat (1995)"]
    seqs = catalogue_sequences(titles, ["6", "1", "99"], tokenizer)
    newline = tokenizer("\n", add_special_tokens=False).input_ids
    assert all(s[-len(newline) :] == newline for s in seqs)
    assert tokenizer.decode(seqs[1]) == "Toy Story (1995)\n"  # unique titles are left alone
    assert tokenizer.decode(seqs[0]) == "Heat (1995) [6]\n" and tokenizer.decode(seqs[2]) == "Heat (1995) [99]\n"
    trie = CatalogueTrie(seqs)
    assert [trie.lookup(s) for s in seqs] == [0, 1, 2]


def test_titles_equal_after_the_cut_are_disambiguated_within_the_budget(tokenizer) -> None:
    base = "The Lord of the Rings: The Fellowship of the Ring"
    titles = [base + " (extended)", base + " (theatrical)", "Up"]
    seqs = catalogue_sequences(titles, ["10", "11", "12"], tokenizer, max_tokens=6)
    end = len(tokenizer("\n", add_special_tokens=False).input_ids)
    assert len(set(map(tuple, seqs))) == 3
    assert all(len(s) - end <= 6 for s in seqs)
    assert tokenizer.decode(seqs[0]).endswith("[10]\n") and tokenizer.decode(seqs[1]).endswith("[11]\n")
    with pytest.raises(ValueError, match="same token sequence"):
        catalogue_sequences(["Heat", "Heat"], ["x", "x"], tokenizer)


# --- the trie --------------------------------------------------------------------------------


def test_trie_structure() -> None:
    seqs = [[5, 1, 9], [5, 2, 9], [7, 9], [5, 1, 3, 9]]
    trie = CatalogueTrie(seqs)
    assert trie.n_below[0] == 4 and trie.allowed([]) == [5, 7]
    assert trie.allowed([5]) == [1, 2] and trie.allowed([5, 1]) == [3, 9] and trie.allowed([5, 1, 9]) == []
    assert trie.allowed([6]) == []  # off the catalogue
    assert sorted(trie.items_below(trie.walk([5])).tolist()) == [0, 1, 3]
    assert [trie.lookup(s) for s in seqs] == [0, 1, 2, 3]
    assert trie.lookup([5, 1]) == -1 and trie.lookup([8]) == -1
    assert trie.tokens.tolist() == [1, 2, 3, 5, 7, 9]
    for item, seq in enumerate(seqs):  # item_path: the node after each token
        assert trie.item_path[item, : len(seq)].tolist() == [trie.walk(seq[: j + 1]) for j in range(len(seq))]


def test_trie_rejects_ambiguous_catalogues() -> None:
    with pytest.raises(ValueError, match="same token sequence as item 0"):
        CatalogueTrie([[1, 2], [1, 2]])
    with pytest.raises(ValueError, match="extends"):
        CatalogueTrie([[1, 2], [1, 2, 3]])
    with pytest.raises(ValueError, match="empty"):
        CatalogueTrie([[1], []])
    with pytest.raises(ValueError, match="at least one"):
        CatalogueTrie([])


# --- beam search -----------------------------------------------------------------------------

CATALOGUE = [[3, 4, 9], [3, 5, 9], [3, 5, 6, 9], [7, 9], [8, 4, 4, 9], [8, 4, 5, 9], [2, 9], [3, 4, 6, 9]]


@pytest.mark.parametrize("max_chain", [1, 2, 100])
def test_exhaustive_beam_equals_brute_force_scores(max_chain: int) -> None:
    lm, trie = tiny_lm(0), CatalogueTrie(CATALOGUE)
    prompts, exclude = [[1, 10, 11], [12]], [{1, 6}, set()]
    result = constrained_beam_search(lm, trie, len(CATALOGUE), prompts=prompts, exclude=exclude, max_chain=max_chain)
    for row, (prompt, excluded) in enumerate(zip(prompts, exclude)):
        expected = brute_force(lm, prompt, trie, excluded)
        ranked = sorted(expected, key=lambda i: (-expected[i], i))
        n = len(ranked)
        assert result.items[row, :n].tolist() == ranked
        assert result.items[row, n:].tolist() == [-1] * (len(CATALOGUE) - n)  # only the admissible exist
        torch.testing.assert_close(result.scores[row, :n], torch.tensor([expected[i] for i in ranked], dtype=torch.float32), atol=1e-4, rtol=0)
        assert float(result.scores[row, :n].double().exp().sum()) < 1.0  # a part of the LM's mass over sequences


def test_normalising_over_the_whole_vocabulary() -> None:
    lm, trie = tiny_lm(3), CatalogueTrie(CATALOGUE)
    result = constrained_beam_search(lm, trie, len(CATALOGUE), prompts=[[5, 6]], normalize_over=range(VOCAB))
    expected = brute_force(lm, [5, 6], trie, set(), normalize_over=list(range(VOCAB)))
    ranked = sorted(expected, key=lambda i: (-expected[i], i))
    assert result.items[0].tolist() == ranked
    torch.testing.assert_close(result.scores[0], torch.tensor([expected[i] for i in ranked], dtype=torch.float32), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="every token of the catalogue"):
        constrained_beam_search(lm, trie, 2, prompts=[[5]], normalize_over=[1, 2])


def test_left_padding_and_soft_prompts_do_not_change_the_result() -> None:
    lm, trie = tiny_lm(1), CatalogueTrie(CATALOGUE)
    prompts = [[1, 10, 11, 12, 13], [12], [14, 15]]
    batched = constrained_beam_search(lm, trie, 3, prompts=prompts, num_beams=4)
    for row, prompt in enumerate(prompts):
        alone = constrained_beam_search(lm, trie, 3, prompts=[prompt], num_beams=4)
        assert torch.equal(alone.items[0], batched.items[row])
        torch.testing.assert_close(alone.scores[0], batched.scores[row], atol=1e-5, rtol=0)
    ids = torch.tensor([[0, 0, 0, 0, 12], [1, 10, 11, 12, 13]])
    mask = torch.tensor([[0, 0, 0, 0, 1], [1, 1, 1, 1, 1]])
    soft = constrained_beam_search(lm, trie, 3, inputs_embeds=lm.get_input_embeddings()(ids), attention_mask=mask, num_beams=4)
    assert torch.equal(soft.items, batched.items[[1, 0]])


def test_exclusions_as_flat_pairs_equal_exclusions_as_sets() -> None:
    lm, trie = tiny_lm(2), CatalogueTrie(CATALOGUE)
    prompts = [[1], [2], [3]]
    as_sets = constrained_beam_search(lm, trie, 4, prompts=prompts, exclude=[{0, 4}, set(), {7}])
    as_pairs = constrained_beam_search(lm, trie, 4, prompts=prompts, exclude=(torch.tensor([0, 0, 2, 0]), torch.tensor([0, 4, 7, 4])))
    assert torch.equal(as_sets.items, as_pairs.items)


def test_bad_arguments_are_rejected() -> None:
    lm, trie = tiny_lm(0), CatalogueTrie(CATALOGUE)
    with pytest.raises(ValueError, match="k must be"):
        constrained_beam_search(lm, trie, 0, prompts=[[1]])
    with pytest.raises(ValueError, match="exactly one"):
        constrained_beam_search(lm, trie, 2)
    with pytest.raises(ValueError, match="at least one token"):
        constrained_beam_search(lm, trie, 2, prompts=[[]])
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        constrained_beam_search(lm, trie, 2, prompts=[[1]], exclude=[{8}])
    with pytest.raises(ValueError, match="left-padded"):
        constrained_beam_search(lm, trie, 2, inputs_embeds=torch.zeros(1, 2, 16), attention_mask=torch.tensor([[1, 0]]))
    with pytest.raises(ValueError, match="max_chain"):
        constrained_beam_search(lm, trie, 2, prompts=[[1]], max_chain=0)


def test_shared_key_value_heads_give_the_same_result_and_restore_the_environment(monkeypatch) -> None:
    import contextlib
    import os

    import benchmark.llm.decoding as decoding

    lm, trie = tiny_lm(4), CatalogueTrie(CATALOGUE)  # 2 query heads share 1 key/value head
    prompts, exclude = [[1, 10, 11], [12], [3, 4]], [{2}, set(), {0, 5}]
    monkeypatch.delenv(decoding._FORCE_GQA, raising=False)
    shared = constrained_beam_search(lm, trie, 3, prompts=prompts, exclude=exclude, num_beams=4)
    assert decoding._FORCE_GQA not in os.environ
    monkeypatch.setattr(decoding, "_sdpa_gqa", lambda device: contextlib.nullcontext())
    copied = constrained_beam_search(lm, trie, 3, prompts=prompts, exclude=exclude, num_beams=4)
    assert torch.equal(shared.items, copied.items)
    torch.testing.assert_close(shared.scores, copied.scores, atol=1e-5, rtol=0)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    catalogue=st.lists(st.lists(st.integers(1, VOCAB - 2), min_size=1, max_size=4), min_size=1, max_size=12),
    k=st.integers(1, 6),
    extra_beams=st.integers(0, 3),
    max_chain=st.sampled_from([1, 2, 3, 100]),
    data=st.data(),
)
def test_returns_only_admissible_catalogue_items(seed, catalogue, k, extra_beams, max_chain, data) -> None:
    seqs = [list(s) + [VOCAB - 1] for s in dict.fromkeys(map(tuple, catalogue))]  # unique, terminated: prefix-free
    trie, lm = CatalogueTrie(seqs), tiny_lm(seed)
    n = len(seqs)
    exclude = [set(data.draw(st.lists(st.integers(0, n - 1), max_size=n))) for _ in range(2)]
    result = constrained_beam_search(lm, trie, k, prompts=[[1, 2], [3]], exclude=exclude, num_beams=k + extra_beams, max_chain=max_chain)
    assert result.items.shape == (2, k) and result.items.dtype == torch.long
    for row in range(2):
        items = result.items[row].tolist()
        admissible = n - len(exclude[row])
        got = [i for i in items if i >= 0]
        assert len(got) == min(k, admissible) and items[len(got) :] == [-1] * (k - len(got))  # -1 only when none are left
        assert len(set(got)) == len(got) and not set(got) & exclude[row]
        scores = result.scores[row, : len(got)]
        assert bool((scores[1:] <= scores[:-1]).all()) and bool((scores <= 1e-6).all())
        if k + extra_beams >= admissible:  # the beam holds every admissible item: the search is exact
            expected = brute_force(lm, [1, 2] if row == 0 else [3], trie, exclude[row])
            best = sorted(expected, key=lambda i: (-expected[i], i))[:k]
            assert np.allclose(sorted(expected[i] for i in got), sorted(expected[i] for i in best), atol=1e-4)
