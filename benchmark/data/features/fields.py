"""Item fields as model inputs: the encoder text of each item, categorical fields (CSR index
lists over a vocabulary) and numerical fields standardised on the training items."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.files import atomic_file

TEXT_LIST_LIMIT = 30  # categories/tags per item in the text (the encoder truncates long inputs anyway)
TEXT_CHAR_LIMIT = 2000
DESCRIPTION_COLUMNS = ("description", "features")  # free item text (Amazon), appended after title/categories/tags
# Label-like string columns treated as categorical, beside every list-of-strings column.
CATEGORICAL_COLUMNS = ("categories", "tags", "brand", "city", "state", "main_category", "main_cat")
IMAGE_PATH_COLUMNS = ("image_path", "image_paths")
IMAGE_URL_COLUMNS = ("image_url", "image_urls", "imageURL", "imageURLHighRes")
# Never categorical: text, identifiers and image references.
NOT_CATEGORICAL = (
    "title", "raw_id", "attributes", "postal_code", "photo_ids",
    *DESCRIPTION_COLUMNS, *IMAGE_PATH_COLUMNS, *IMAGE_URL_COLUMNS,
)  # fmt: skip


@dataclass
class Categorical:
    """One categorical field: item i has the vocabulary entries ``index[ptr[i]:ptr[i+1]]``."""

    vocab: list[str]
    ptr: np.ndarray  # int64 [n_items + 1]
    index: np.ndarray  # int64 [nnz]

    @property
    def mask(self) -> np.ndarray:
        return np.diff(self.ptr) > 0

    def lists(self) -> list[np.ndarray]:
        return [self.index[a:b] for a, b in zip(self.ptr[:-1], self.ptr[1:])]

    def multi_hot(self, dtype: Any = np.float32) -> np.ndarray:
        out = np.zeros((len(self.ptr) - 1, len(self.vocab)), dtype=dtype)
        out[np.repeat(np.arange(len(self.ptr) - 1), np.diff(self.ptr)), self.index] = 1
        return out



def cell_values(value: Any) -> list[str]:
    """A cell as a list of non-empty strings (lists, arrays, scalars, missing)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if v is not None and not (isinstance(v, float) and np.isnan(v)) and str(v).strip()]
    if isinstance(value, float) and np.isnan(value):
        return []
    if value is pd.NA:
        return []
    text = str(value).strip()
    return [text] if text else []


def item_texts(items: pd.DataFrame) -> list[str]:
    """The encoder input of every item ('' when it has no text): title, categories, tags, description."""
    columns = {c: items[c].tolist() if c in items.columns else [None] * len(items) for c in ("title", "categories", "tags")}
    descriptions = [items[c].tolist() for c in DESCRIPTION_COLUMNS if c in items.columns]
    out = []
    for i in range(len(items)):
        parts = []
        title = " ".join(cell_values(columns["title"][i]))
        if title:
            parts.append(title.rstrip(".") + ".")
        for label, key in (("Categories", "categories"), ("Tags", "tags")):
            values = cell_values(columns[key][i])[:TEXT_LIST_LIMIT]
            if values:
                parts.append(f"{label}: {', '.join(values)}.")
        for column in descriptions:
            text = " ".join(cell_values(column[i]))
            if text:
                parts.append(text)
        out.append(" ".join(parts)[:TEXT_CHAR_LIMIT])
    return out


def categorical_columns(items: pd.DataFrame) -> list[str]:
    out = []
    for column in items.columns:
        if column in NOT_CATEGORICAL or column.endswith("_id"):
            continue
        if column in CATEGORICAL_COLUMNS:
            out.append(column)
            continue
        sample = items[column].dropna().head(100)
        if items[column].dtype == object and len(sample) and all(isinstance(v, (list, tuple, np.ndarray)) for v in sample):
            out.append(column)
    return out


def categorical_feature(cells: Iterable[Any]) -> Categorical:
    per_item = [list(dict.fromkeys(cell_values(v))) for v in cells]
    counts = Counter(v for values in per_item for v in values)
    vocab = sorted(counts, key=lambda v: (-counts[v], v))
    code = {v: i for i, v in enumerate(vocab)}
    lengths = np.array([len(v) for v in per_item], dtype=np.int64)
    ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    index = np.fromiter((code[v] for values in per_item for v in values), dtype=np.int64, count=int(ptr[-1]))
    return Categorical(vocab, ptr, index)


def item_attributes(items: pd.DataFrame) -> list[list[str]]:
    """Every item's attribute words (row i = internal item i): categories, word-like tags (not
    Yelp's "WiFi=free" values) and brand, distinct, in that order."""
    n = len(items)
    column = lambda name: items[name].tolist() if name in items.columns else [None] * n  # noqa: E731
    out = []
    for cats, tags, brand in zip(column("categories"), column("tags"), column("brand")):
        values = cell_values(cats) + [t for t in cell_values(tags) if "=" not in t] + cell_values(brand)
        out.append(list(dict.fromkeys(values)))
    return out


def item_inputs(items: pd.DataFrame) -> pd.DataFrame:
    """What every item gives a model, one row per internal item: ``item``, ``raw_id``, ``text``
    (the text encoder's input, also the basis of titles in prompts) and one column per
    categorical field (its values joined by " | "). The audit trail of ``features --dump-text``."""
    out = pd.DataFrame({"item": np.arange(len(items)), "raw_id": items["raw_id"].astype(str).to_numpy(), "text": item_texts(items)})
    for column in categorical_columns(items):
        out[column] = [" | ".join(dict.fromkeys(cell_values(v))) for v in items[column].tolist()]
    return out


def write_item_inputs(items: pd.DataFrame, path: str | Path) -> Path:
    """``item_inputs`` as a TSV (tabs and newlines inside values become spaces), written atomically."""
    table = item_inputs(items).replace({r"[\t\r\n]+": " "}, regex=True)
    return atomic_file(path, lambda tmp: table.to_csv(tmp, sep="\t", index=False))


def numerical_columns(items: pd.DataFrame) -> list[str]:
    return [
        c for c in items.columns
        if c != "raw_id" and not c.endswith("_id") and (pd.api.types.is_numeric_dtype(items[c]) or pd.api.types.is_bool_dtype(items[c]))
    ]  # fmt: skip


def numerical_features(items: pd.DataFrame, train_items: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    """Standardised numeric columns; mean/std from the items of the training split only."""
    names = numerical_columns(items)
    raw = np.zeros((len(items), len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        raw[:, j] = pd.to_numeric(items[name], errors="coerce").astype("float64").to_numpy(na_value=np.nan)
    mask = np.isfinite(raw)
    in_train = np.zeros(len(items), dtype=bool)
    in_train[np.asarray(train_items, dtype=np.int64)] = True
    stats: dict[str, Any] = {}
    out = np.zeros_like(raw, dtype=np.float32)
    for j, name in enumerate(names):
        fit = raw[in_train & mask[:, j], j]
        mean = float(fit.mean()) if len(fit) else 0.0
        std = float(fit.std()) if len(fit) else 1.0
        std = std if std > 0 else 1.0
        out[:, j] = np.where(mask[:, j], (np.nan_to_num(raw[:, j]) - mean) / std, 0.0)
        stats[name] = {"mean": mean, "std": std, "n_fit_items": int(len(fit))}
    return out, mask, names, stats

