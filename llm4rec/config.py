"""LLM4Rec's configuration: every hyper-parameter of the five modules and the backbone, with
its default and why (llm4rec/README.md has the measurements behind the defaults).

A light module (no torch): the registry, ``--help`` and ``--print-config`` read it without
loading the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from benchmark.llm import SMOLLM2

INSTRUCTION = "Recommend the next item after this history:"
MODALITIES = ("id", "text", "categorical", "numerical", "image")


@dataclass
class LLM4RecConfig:
    """Hyper-parameters of LLM4Rec (each choice is documented in llm4rec/README.md)."""

    # --- backbone -------------------------------------------------------------------------
    backbone: str = SMOLLM2
    """LLM: smollm2-135m (offline), tiny-llama (tests only), or a hub name / local path."""
    llm: Literal["pretrained", "scratch"] = "pretrained"
    """scratch (the llm4rec-no-llm ablation): a randomly initialised transformer of the
    backbone's width with ``scratch_layers`` layers, fully trained, instead of the LLM."""
    scratch_layers: int = 2
    """Layers of the scratch transformer."""
    backbone_mode: Literal["lora", "full", "frozen"] = "lora"
    """How the pretrained backbone trains (scratch always trains fully)."""
    lora_r: int = 8
    """LoRA rank on the attention projections."""
    lora_alpha: int = 16
    """LoRA scaling numerator."""
    lora_dropout: float = 0.05
    """Dropout on LoRA's input."""
    rank_layers: int = 4
    """Ranking reads the hidden state after the first N transformer blocks (0, or more than
    the LLM has = all); explanations and the generative head always use the whole LLM. The CPU budget knob."""
    backbone_dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights and activations of the backbone (bfloat16 halves memory on GPUs)."""
    instruction: str = INSTRUCTION
    """Text before the history's soft tokens."""
    history_titles: bool = False
    """Also put each history item's title tokens before its soft token (costly on CPU)."""
    title_tokens: int = 8
    """Title tokens per history item when ``history_titles`` is on."""
    max_seq_length: int = 20
    """History items per prompt (training windows and evaluation histories)."""
    # --- module 1: fusion -------------------------------------------------------------------
    dim: int = 64
    """Item-space width: fused item embeddings and the projected user state."""
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    """Fused modalities (id, text, categorical, numerical, image); absent ones are dropped."""
    cross_attention: bool = True
    """Pairwise cross-modal attention before the fusion."""
    fusion: Literal["adaptive", "mean"] = "adaptive"
    """adaptive: gated sum + beta * MLP of the concatenation; mean: plain mean."""
    fusion_heads: int = 2
    """Heads of the cross-modal attention (must divide ``dim``)."""
    numerical_exclude: list[str] = field(default_factory=list)
    """Numeric item columns not used. (Whole-period fields such as Yelp's stars never reach the
    model: the readers drop them, DESIGN.md validity rules.)"""
    dropout: float = 0.1
    """Dropout in the fusion module and on the soft tokens."""
    center_items: bool = True
    """Subtract the catalogue's mean fused vector (llm4rec/fusion.py: uncentred item vectors
    collapse to one shared direction and the soft tokens become indistinguishable)."""
    cosine_scores: bool = True
    """Score by the cosine of user and item vectors times a learned scale (initially
    1 / ``score_temperature``); off: their dot product (llm4rec/README.md: cosine scores
    raised test NDCG@10 on every one of 3 seeds on both datasets)."""
    score_temperature: float = 0.1
    """Initial temperature of the cosine scores (the scale is learned from there)."""
    item_bias: bool = False
    """Add a learned per-item bias to every score (zero at the start). Unit-length cosine
    scores carry no item prior, while a dot product can learn popularity in the item norms;
    the bias gives it back explicitly, trained under the same IPS weights as the rest."""
    # --- module 2: retrieval ----------------------------------------------------------------
    rag: bool = True
    """Retrieval-augmented context (off: the llm4rec-no-rag ablation)."""
    rag_top_r: int = 5
    """Items retrieved per query."""
    rag_query_items: int = 3
    """Most recent items whose mean fused embedding is the query."""
    rag_temperature: float = 0.1
    """Softmax temperature over the retrieved items' cosine similarities."""
    rag_index: Literal["flat", "ivf", "hnsw"] = "flat"
    """FAISS index: exact inner product, IVF or HNSW."""
    rag_nlist: int = 64
    """IVF cells."""
    rag_nprobe: int = 8
    """IVF cells probed per query."""
    rag_hnsw_m: int = 32
    """HNSW links per node."""
    rag_snippets: int = 3
    """Retrieved snippets given as text evidence in explanation prompts."""
    # --- module 3: debiasing ----------------------------------------------------------------
    debias: bool = True
    """IPS weights, adversary and parity penalty (off: the llm4rec-no-debias ablation)."""
    propensity: Literal["popularity", "logistic"] = "logistic"
    """Propensity model of an observed interaction (logistic: item and user activity)."""
    propensity_power: float = 0.5
    """Exponent of the popularity power law."""
    ips_clip: float = 0.05
    """Propensities below this are clipped (weights at most 1 / clip)."""
    ips_self_normalise: bool = True
    """Self-normalised IPS (SNIPS): the loss is sum(w l) / sum(w)."""
    adversary: Literal["prior", "grl"] = "prior"
    """How the encoder is made popularity-blind (llm4rec/debias.py): ``grl``, the paper's
    gradient-reversal layer; ``prior``, prior matching (the head's prediction pulled to P(S))."""
    adversarial_weight: float = 0.1
    """lambda: weight of the encoder's adversarial side (prior: the prior-matching term; grl:
    the reversed gradient, ramped up by Ganin's schedule); the head trains at full rate."""
    popularity_groups: int = 2
    """Popularity groups the adversary predicts (2: head = top 20% of items, tail)."""
    parity_weight: float = 0.01
    """Weight of the head/tail exposure-parity penalty."""
    parity_k: int = 10
    """The parity's top-K cut (tau = K-th highest score)."""
    parity_temperature: float = 1.0
    """Temperature of the soft top-K indicator."""
    parity_epsilon: float = 0.0
    """Tolerated exposure gap before the penalty applies."""
    # --- module 4: explanations ---------------------------------------------------------------
    explain: bool = True
    """Explanation training and generation (off: the llm4rec-no-explain ablation)."""
    explain_weight: float = 0.1
    """lambda_exp: weight of the explanation loss."""
    explain_every: int = 8
    """Add the explanation loss every N training steps (full-depth LLM passes are costly)."""
    explain_batch: int = 2
    """(user, item) pairs explained per such step."""
    explain_max_length: int = 160
    """Tokens of prompt + target in explanation training."""
    explain_new_tokens: int = 32
    """Tokens generated per explanation."""
    explain_history: int = 5
    """History titles in an explanation prompt."""
    explain_soft_prefix: bool = True
    """Prepend [h_u; h_i] (projected soft tokens) to the explanation prompt, as in the paper."""
    # --- module 5: adaptation -----------------------------------------------------------------
    adaptive: bool = True
    """Take part in the streaming protocol's updates (off: the llm4rec-no-adaptive ablation)."""
    # --- training -------------------------------------------------------------------------------
    num_negatives: int = 0
    """0: softmax over all items; N > 0: over the target and N shared uniform negatives."""
    lr: float = 5e-3
    """AdamW learning rate of the fusion, projection and debiasing layers."""
    backbone_lr: float = 1e-3
    """AdamW learning rate of the backbone's trainable weights (LoRA, or all for scratch)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_steps: int = 20
    """Linear learning-rate warm-up over the first N optimizer steps (0 = none)."""
    batch_size: int = 32
    """Training windows per step."""
    train_windows_per_epoch: int = 3072
    """Windows per epoch (a fresh random sample each epoch; 0 = all)."""
    # --- generative head (llm4rec-generative) ------------------------------------------------
    generative_weight: float = 1.0
    """Weight of the title-generation loss (LLM4RecGenerative only)."""
    generative_title_tokens: int = 16
    """Title tokens per catalogue entry in the generative trie."""
    generative_beams: int = 20
    """Beam width of the constrained beam search (at least the evaluation's largest K)."""
