"""Review texts as prepared side information: one text per prepared interaction.

``interaction_texts(data)`` aligns each dataset's per-interaction review texts (its
reader's ``read_review_texts``; Yelp and Amazon, real or simulated) with the prepared
interactions on (raw user, raw item, timestamp), first match in file order (the prepared
pair is the first review of the pair in time), collapses whitespace and cuts at a word
boundary to ``max_chars``; Amazon reviews with an empty body use their summary line. The
result is cached per dataset fingerprint under ``$BENCHMARK_CACHE/texts/<dataset>/``.

Who sees what (DESIGN.md, validity rules): the training split's texts are side
information a model may receive (``RecModule.needs_interaction_texts``); the validation
and test texts are held-out references that only the harness reads (explanation
metrics). Datasets without review text (MovieLens, S3-Rec) give None.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.prepare import Interactions, PreparedData, cache_root
from benchmark.errors import BenchmarkError
from benchmark.files import atomic_file

TEXTS_VERSION = 1
PARTS = ("train", "valid", "test")


@dataclass
class InteractionTexts:
    """Per split: a DataFrame (user, item, timestamp, text) of the interactions that have a
    text, in internal ids."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    def part(self, name: str) -> pd.DataFrame:
        if name not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {name!r}")
        return getattr(self, name)


def clean_text(text: object, max_chars: int) -> str:
    """Whitespace collapsed; longer texts cut at the last word boundary within ``max_chars``."""
    text = " ".join(str(text).split())
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1].rsplit(" ", 1)[0]
    return cut if cut else text[:max_chars]


def interaction_texts(data: PreparedData, raw_dir: str | Path | None = None, *, max_chars: int = 200) -> InteractionTexts | None:
    """The review text of every prepared interaction that has one (None: the dataset has none)."""
    from benchmark.data.datasets import default_raw_dir, get_dataset

    if max_chars < 1:
        raise BenchmarkError(f"max_chars must be >= 1, got {max_chars}")
    reader = get_dataset(data.name).read_texts
    if reader is None:
        return None
    path = cache_root() / "texts" / data.name / data.fingerprint[:20] / f"texts-v{TEXTS_VERSION}-{max_chars}.parquet"
    if path.is_file():
        aligned = pd.read_parquet(path)
    else:
        folder = Path(raw_dir) if raw_dir is not None else default_raw_dir(data.name)
        aligned = _align(data, reader(folder, data.config.on_bad_line), max_chars)
        atomic_file(path, lambda tmp: aligned.to_parquet(tmp, index=False))
    parts = {}
    for part in PARTS:
        frame = aligned[(aligned["part"] == part) & (aligned["text"].str.len() > 0)]
        parts[part] = frame[["user", "item", "timestamp", "text"]].reset_index(drop=True)
    return InteractionTexts(**parts)


def _align(data: PreparedData, texts: pd.DataFrame, max_chars: int) -> pd.DataFrame:
    if "summary" in texts.columns:  # Amazon: the body, or the summary line when the body is empty
        body = texts["text"].fillna("").astype(str)
        texts = texts.assign(text=body.where(body.str.strip() != "", texts["summary"].fillna("").astype(str)))
    users = pd.Index(data.user_ids).get_indexer(texts["user"].to_numpy())
    items = pd.Index(data.item_ids).get_indexer(texts["item"].to_numpy())
    known = (users >= 0) & (items >= 0)
    lookup = pd.DataFrame({
        "user": users[known], "item": items[known], "timestamp": texts["timestamp"].to_numpy()[known].astype(np.int64),
        "text": [clean_text(t, max_chars) for t in texts["text"].fillna("").to_numpy()[known]],
    })  # fmt: skip
    lookup = lookup.drop_duplicates(["user", "item", "timestamp"], keep="first")
    frames = []
    for part in PARTS:
        log: Interactions = getattr(data, part)
        frame = pd.DataFrame({"user": log.user, "item": log.item, "timestamp": log.timestamp})
        frames.append(frame.merge(lookup, on=["user", "item", "timestamp"], how="left").assign(part=part))
    aligned = pd.concat(frames, ignore_index=True)
    aligned["text"] = aligned["text"].fillna("")
    return aligned
