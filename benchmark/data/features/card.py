"""The dataset card (``data info``) and the summary of extracted features (``features``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from benchmark.data.features.fields import DESCRIPTION_COLUMNS, cell_values, numerical_columns
from benchmark.data.features.images import image_sources
from benchmark.data.prepare import PreparedData

if TYPE_CHECKING:
    from benchmark.data.features.extract import ItemFeatures



def gini(counts: np.ndarray) -> float:
    """Gini of non-negative counts (DESIGN.md formula): 0 = equal, -> 1 = concentrated."""
    c = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(c), c.sum()
    if n == 0 or total == 0:
        return 0.0
    j = np.arange(1, n + 1)
    return float(np.sum((2 * j - n - 1) * c) / (n * total))


def _quantiles(prefix: str, counts: np.ndarray) -> dict[str, float]:
    q = np.quantile(counts, [0, 0.25, 0.5, 0.75, 1.0]) if len(counts) else np.zeros(5)
    return {f"{prefix}_{k}": float(v) for k, v in zip(("min", "p25", "p50", "p75", "max"), q)}


def modality_coverage(items: pd.DataFrame, raw_dir: Path | None = None) -> dict[str, float]:
    """Share of items with a title, categories, tags, a description, each numeric field, an image."""
    n = len(items)
    share = lambda m: float(np.mean(m)) if n else 0.0  # noqa: E731
    out = {}
    for column in ("title", "categories", "tags", *DESCRIPTION_COLUMNS):
        if column in items.columns:
            out[f"coverage_{column}"] = share([bool(cell_values(v)) for v in items[column].tolist()])
    names = numerical_columns(items)
    if names:
        present = np.stack([pd.to_numeric(items[c], errors="coerce").notna().to_numpy() for c in names], axis=1)
        out["coverage_numerical"] = share(present.any(axis=1))
        out.update({f"coverage_{c}": share(present[:, j]) for j, c in enumerate(names)})
    paths, urls = image_sources(items, raw_dir)
    out["coverage_image"] = share([p is not None for p in paths])
    if any(u is not None for u in urls):
        out["coverage_image_url"] = share([u is not None for u in urls])
    return out


def dataset_card(data: PreparedData, raw_dir: str | Path | None = None) -> dict[str, Any]:
    """Popularity Gini (training item counts), per-user/per-item interaction quantiles, coverage."""
    users = np.concatenate([data.train.user, data.valid.user, data.test.user])
    items = np.concatenate([data.train.item, data.valid.item, data.test.item])
    card: dict[str, Any] = {"popularity_gini": gini(np.bincount(data.train.item, minlength=data.n_items))}
    card.update(_quantiles("interactions_per_user", np.bincount(users, minlength=data.n_users)))
    card.update(_quantiles("interactions_per_item", np.bincount(items, minlength=data.n_items)))
    if raw_dir is None:
        from benchmark.data.datasets import default_raw_dir

        raw_dir = default_raw_dir(data.name)
    card.update(modality_coverage(data.items, Path(raw_dir)))
    return card


def features_summary(feats: ItemFeatures) -> dict[str, Any]:
    """A flat map for ``python -m benchmark features``: encoders, dimensions, coverage, timings."""
    out: dict[str, Any] = {"dataset": feats.dataset, "n_items": feats.n_items, "fingerprint": feats.fingerprint}
    if feats.text is not None:
        out.update(text_encoder=feats.meta["text"]["encoder"], text_dim=int(feats.text.shape[1]), text_seconds=feats.meta["text"]["seconds"])
    if feats.image is not None:
        meta = feats.meta["image"]
        out.update(image_encoder=meta["encoder"], image_dim=int(feats.image.shape[1]), image_seconds=meta["seconds"])
        out["image_for_testing_only"] = bool(meta["for_testing_only"])
    out.update({f"categorical_{c}_vocab": len(cat.vocab) for c, cat in feats.categorical.items()})
    out["numerical_fields"] = ",".join(feats.numerical_names)
    out.update({f"coverage_{k}": v for k, v in feats.coverage.items()})
    return out
