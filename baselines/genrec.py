"""GenRec: an LLM with LoRA generates the next item's title from the titles of the history.

Reference: Ji et al., "GenRec: Large Language Model for Generative Recommendation" (ECIR
2024): the user's recent item titles form the prompt, the LLM (LoRA-tuned) generates the
next item's title. Here decoding is constrained to the catalogue (benchmark/llm/decoding.py): a
beam search over the prefix tree of all item titles, so every generated title is exactly
one item, never an item the user has already seen; the top-k list is the k best titles.

Prompt (one training window = one sequence; the evaluation prompt is its first part)::

    <instruction>\\n<title 1>\\n<title 2>\\n ... <title L>\\n<title L+1>\\n

Teacher-forced loss on the titles 2..L+1 (each is the target of the titles before it,
so one forward pass trains L next-item predictions; the instruction and the first title
are context only). The evaluation prompt is the instruction and the last
``max_seq_length`` titles of the history; the model then generates one title. Titles are
tokenised one by one and joined as token ids, so training sequences and the decoding
trie use identical tokens; duplicate titles get their raw item id appended (see
``catalogue_sequences``). The softmax of the loss runs over the catalogue's token
vocabulary (the distinct tokens of all titles and the terminator: 7,933 of SmolLM2's
49,152 tokens on ml-latest-small), which is all decoding can ever emit: the output
layer over the whole vocabulary was 60% of a forward pass of the 8-block backbone
(3.2 of 5.1 s for 640 tokens, measured on the shared 2-core CPU).

Backbone: ``benchmark.llm.backbone.load_backbone`` (the same loader as LLM4Rec), offline
SmolLM2-135M-Instruct by default, LoRA r=8 on the attention projections; the frozen
backbone weights are not stored in checkpoints (they are reloaded from their source),
only LoRA's.

CPU budget of the defaults (2 cores; SmolLM2 forward+backward costs ~1 s per 100 tokens
at full depth): ``num_layers=8`` keeps the first 8 of 30 blocks; ``max_seq_length=5``
titles of history (~70 tokens per window on MovieLens); ``train_windows_per_epoch=1024``
windows per epoch (a random sample, fresh each epoch); 3 epochs at most with patience 1
(registry ``train_defaults``); beams = max k of the evaluation (20); early stopping
validates on a fixed sample of 1,000 users (``valid_users``; decoding costs about a second
per user on one CPU thread; the test ranks for every user). Measured timings are in the
sweep file ``sweeps/genrec.yaml``. Raise ``num_layers`` (0 = all 30),
``train_windows_per_epoch`` (0 = every window) and ``max_epochs`` on a GPU.

At this budget GenRec does not learn the catalogue's item distribution; its results are
far below Pop's (3 seeds, one shared CPU thread; baselines/README.md). On ml-latest-small
test NDCG@10 was 0.0015 / 0.0000 / 0.0000 (Pop 0.0188); seed 0's 3 epochs (3,072 windows,
38 min) gave validation NDCG@10 0.0000 / 0.0007 / 0.0008, and the top-10 lists covered
about 80 of 9,724 items. On synthetic-amazon (``--set max_epochs=2 valid_users=500``)
test NDCG@10 was 0.0058 / 0.0091 / 0.0102 (Pop 0.0381). The
token-level training loss was still falling (ml-latest-small: 3.8 after epoch 1, 3.3
after epoch 3). Decoding ran at 0.7-0.8 s per user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import pandas as pd
import torch
import torch.nn.functional as F

from benchmark.errors import BenchmarkError
from benchmark.model import RecModule, TrainBatchKind
from benchmark.llm.checkpoints import TrainedWeightsOnly
from benchmark.llm.backbone import SMOLLM2, BackboneConfig, load_backbone
from benchmark.llm.decoding import CatalogueTrie, catalogue_sequences, constrained_beam_search, item_titles

INSTRUCTION = "Items a user chose, oldest first, one per line; the next line is the item they choose next:\n"
TERMINATOR = "\n"


def window_items(input_seq: torch.Tensor, target_seq: torch.Tensor, pad: int) -> list[list[int]]:
    """The items of each training window in order: its real inputs, then the last input's target.

    (``target_seq[:, t]`` is the item after ``input_seq[:, t]``; windows are left-padded.)
    """
    out = []
    for inputs, targets in zip(input_seq.tolist(), target_seq.tolist()):
        real = [(i, t) for i, t in zip(inputs, targets) if i != pad]
        items = [i for i, _ in real]
        if real and real[-1][1] != pad:
            items.append(real[-1][1])
        out.append(items)
    return out


def history_items(history: torch.Tensor, pad: int, length: int) -> list[list[int]]:
    """The last ``length`` real items of each left-padded history row, oldest first."""
    return [[i for i in row if i != pad][-length:] if length else [] for row in history.tolist()]


class LLMBaseline(TrainedWeightsOnly, RecModule):
    """What GenRec and P5 share: the LoRA backbone, slim checkpoints, a window budget per epoch.

    Subclasses set ``self.config`` with at least ``backbone``, ``num_layers``, ``lora_r``,
    ``lora_alpha``, ``lora_dropout``, ``lr``, ``weight_decay``, ``batch_size``,
    ``max_seq_length`` and ``train_windows_per_epoch``.
    """

    train_batches: ClassVar[TrainBatchKind] = "sequential"

    def _load_backbone(self) -> None:
        cfg = self.config
        for name in ("max_seq_length", "batch_size"):
            if getattr(cfg, name) < 1:
                raise BenchmarkError(f"{name} must be >= 1, got {getattr(cfg, name)}")
        if cfg.finetune not in ("lora", "full"):
            raise BenchmarkError(f"finetune must be 'lora' or 'full', got {cfg.finetune!r}")
        if cfg.train_windows_per_epoch < 0:
            raise BenchmarkError(f"train_windows_per_epoch must be >= 0 (0 = all), got {cfg.train_windows_per_epoch}")
        # seed 0 fixes tiny-llama's random frozen weights (not stored in checkpoints); the
        # fork keeps that seeding from resetting the run's RNG stream
        with torch.random.fork_rng():
            backbone = load_backbone(
                BackboneConfig(
                    name=cfg.backbone, mode=cfg.finetune, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                    lora_dropout=cfg.lora_dropout, num_layers=cfg.num_layers,
                ),
                seed=0,
            )  # fmt: skip
        # from_pretrained returns the model in eval mode and Lightning keeps submodules' modes:
        # without this, LoRA dropout would stay off in training
        self.backbone = backbone.model.train()
        self.tokenizer = backbone.tokenizer
        self.hidden_size = backbone.hidden_size

    # --- the per-epoch window budget ----------------------------------------------------
    def setup(self, stage: str) -> None:
        cap = self.config.train_windows_per_epoch
        trainer = self._trainer
        if stage == "fit" and cap and trainer is not None:
            # Lightning's own epoch limit: the first ceil(cap / batch_size) batches of each
            # epoch's shuffled order, then validation runs as after a full epoch
            n_batches = -(-cap // self.config.batch_size)
            limit = trainer.limit_train_batches
            if not isinstance(limit, int) or limit > n_batches:  # a fraction (1.0 = all) or a larger count
                trainer.limit_train_batches = n_batches

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)


@dataclass
class GenRecConfig:
    """Hyper-parameters of GenRec (CPU-budget defaults: see the module docstring)."""

    backbone: str = SMOLLM2
    """Backbone name: smollm2-135m (offline), tiny-llama (tests only), a hub name or a local path."""
    num_layers: int = 8
    """Keep the first N transformer blocks of the backbone (0 = all)."""
    finetune: Literal["lora", "full"] = "lora"
    """How the backbone trains: LoRA adapters on the attention projections (default) or full fine-tuning."""
    lora_r: int = 8
    """LoRA rank (attention projections)."""
    lora_alpha: int = 16
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on LoRA's input."""
    max_seq_length: int = 5
    """Titles of history in a prompt (training windows hold this many + the target)."""
    max_title_tokens: int = 24
    """Titles are cut to this many tokens (then made unique); bounds prompt length and decoding depth."""
    num_beams: int = 20
    """Beam width of the constrained search; raised to k when the evaluation asks for more items."""
    lr: float = 1e-3
    """AdamW learning rate of the LoRA weights."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    batch_size: int = 8
    """Training windows per batch."""
    train_windows_per_epoch: int = 1024
    """Training windows per epoch (a fresh random sample each epoch); 0 = every window."""
    decode_batch_size: int = 32
    """Users decoded together (bounds the beams' KV-cache memory whatever eval_batch_size is)."""


class GenRec(LLMBaseline):
    """Title generation with catalogue-constrained beam search over a LoRA-tuned LLM."""

    #: the harness passes the item table (``items=``): titles come from it
    needs_item_table: ClassVar[bool] = True

    def __init__(self, n_users: int, n_items: int, config: GenRecConfig, *, items: pd.DataFrame | None = None) -> None:
        super().__init__(n_users, n_items)
        self.config = config
        self.pad = n_items
        if items is None:
            raise BenchmarkError("GenRec needs the dataset's item table (items=...) for the titles")
        if len(items) != n_items:
            raise BenchmarkError(f"GenRec: the item table has {len(items)} rows for {n_items} items")
        if config.max_title_tokens < 1 or config.num_beams < 1 or config.decode_batch_size < 1:
            raise BenchmarkError("max_title_tokens, num_beams and decode_batch_size must be >= 1")
        try:
            self.titles = item_titles(items)
        except ValueError as err:
            raise BenchmarkError(f"GenRec: {err}") from None
        self._load_backbone()
        tok = self.tokenizer
        keys = items["raw_id"].astype(str).tolist() if "raw_id" in items.columns else [str(i) for i in range(n_items)]
        self.sequences = catalogue_sequences(self.titles, keys, tok, max_tokens=config.max_title_tokens, terminator=TERMINATOR)
        self.trie = CatalogueTrie(self.sequences)
        self.instruction = tok(INSTRUCTION).input_ids  # with the model's BOS if it uses one
        # the softmax of the loss runs over the catalogue's tokens: position of each token id in it
        vocab = torch.as_tensor(self.trie.tokens, dtype=torch.long)
        self.register_buffer("vocab", vocab, persistent=False)
        index = torch.full((int(vocab.max()) + 1,), -1, dtype=torch.long)
        index[vocab] = torch.arange(len(vocab))
        self.register_buffer("vocab_index", index, persistent=False)

    # --- training ---------------------------------------------------------------------------
    def _sequences(self, windows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded token ids, attention mask and labels (-100 = no loss) of training windows."""
        rows, labels = [], []
        for items in windows:
            ids, lab = list(self.instruction), [-100] * len(self.instruction)
            for j, item in enumerate(items):
                seq = self.sequences[item]
                ids += seq
                lab += seq if j else [-100] * len(seq)
            rows.append(ids)
            labels.append(lab)
        length = max(len(r) for r in rows)
        pad_id = self.tokenizer.pad_token_id
        ids = torch.tensor([r + [pad_id] * (length - len(r)) for r in rows], device=self.device)
        mask = torch.tensor([[1] * len(r) + [0] * (length - len(r)) for r in rows], device=self.device)
        lab = torch.tensor([r + [-100] * (length - len(r)) for r in labels], device=self.device)
        return ids, mask, lab

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        windows = [w for w in window_items(batch["input_seq"], batch["target_seq"], self.pad) if len(w) >= 2]
        if not windows:  # nothing to predict: a zero loss that still reaches the LoRA weights
            return sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)
        ids, mask, labels = self._sequences(windows)
        hidden = self.backbone.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        target = labels[:, 1:] != -100  # the state at position t predicts the token at t + 1
        states = hidden[:, :-1][target]
        weight, bias = self.backbone.get_output_embeddings().weight, self.backbone.get_output_embeddings().bias
        logits = states @ weight[self.vocab].T
        if bias is not None:
            logits = logits + bias[self.vocab]
        loss = F.cross_entropy(logits.float(), self.vocab_index[labels[:, 1:][target]])
        self.log_train_loss(loss, len(windows))
        return loss

    # --- generation ----------------------------------------------------------------------------
    def prompt(self, history: list[int]) -> list[int]:
        """Token ids of the evaluation prompt for a history (item ids, oldest first)."""
        ids = list(self.instruction)
        for item in history[-self.config.max_seq_length :]:
            ids += self.sequences[item]
        return ids

    def prompt_text(self, history: list[int]) -> str:
        """The evaluation prompt as text (for inspection)."""
        return self.tokenizer.decode(self.prompt(history))

    @torch.no_grad()
    def recommend(self, batch: dict[str, torch.Tensor], k: int) -> torch.Tensor:
        histories = history_items(batch["history"], self.pad, self.config.max_seq_length)
        seen_rows, seen_items = batch.get("seen_rows"), batch.get("seen_items")
        out = []
        step = self.config.decode_batch_size
        for start in range(0, len(histories), step):
            chunk = histories[start : start + step]
            exclude = None
            if seen_rows is not None and seen_items is not None:
                inside = (seen_rows >= start) & (seen_rows < start + len(chunk))
                exclude = (seen_rows[inside] - start, seen_items[inside])
            result = constrained_beam_search(
                self.backbone, self.trie, k, prompts=[self.prompt(h) for h in chunk], exclude=exclude,
                num_beams=self.config.num_beams, pad_token_id=self.tokenizer.pad_token_id,
            )  # fmt: skip
            out.append(result.items)
        return torch.cat(out).to(batch["users"].device)
