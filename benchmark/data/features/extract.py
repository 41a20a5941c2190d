"""``item_features``: every modality of a prepared dataset, from the cache or extracted now."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data.features.cache import features_dir, load_part, save_part, slug
from benchmark.data.features.fields import Categorical, categorical_columns, categorical_feature, item_texts, numerical_features
from benchmark.data.features.images import encode_images, fetch_images, image_manifest, image_sources, load_image_encoder
from benchmark.data.features.text import DEFAULT_TEXT_ENCODER, encode_texts, load_text_encoder
from benchmark.data.prepare import PreparedData

LOG = logging.getLogger(__name__)  # progress and notes: the CLI shows them on stderr


@dataclass
class ItemFeatures:
    """Per-modality arrays aligned with internal item ids, with presence masks."""

    dataset: str
    fingerprint: str
    n_items: int
    text: np.ndarray | None = None  # float32 [n_items, d], zeros where text_mask is False
    text_mask: np.ndarray | None = None  # bool [n_items]
    categorical: dict[str, Categorical] = field(default_factory=dict)
    numerical: np.ndarray | None = None  # float32 [n_items, n_num], standardised (train items), 0 if missing
    numerical_names: list[str] = field(default_factory=list)
    numerical_mask: np.ndarray | None = None  # bool [n_items, n_num]
    image: np.ndarray | None = None  # float32 [n_items, d_img]
    image_mask: np.ndarray | None = None  # bool [n_items]
    coverage: dict[str, float] = field(default_factory=dict)  # modality -> share of items having it
    encoders: dict[str, str | None] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # per part: encoder, dims, seconds, for_testing_only


def item_features(
    data: PreparedData,
    *,
    text_encoder: str | None = DEFAULT_TEXT_ENCODER,
    image_encoder: str | None = None,
    raw_dir: str | Path | None = None,
    allow_image_download: bool = False,
    batch_size: int = 64,
    progress: bool = True,
) -> ItemFeatures:
    """The item features of ``data``: from the cache, or extracted now and cached.

    ``text_encoder=None`` skips text; ``image_encoder=None`` skips images (the image
    coverage then counts items with an available local image file).
    """
    base = features_dir(data)
    feats = ItemFeatures(data.name, data.fingerprint, data.n_items, encoders={"text": text_encoder, "image": image_encoder})
    items = data.items
    if raw_dir is None:
        from benchmark.data.datasets import default_raw_dir

        raw_dir = default_raw_dir(data.name)
    raw_dir = Path(raw_dir)

    # categorical + numerical
    part = base / "tabular"
    loaded = load_part(part)
    if loaded is None:
        start = time.perf_counter()
        cats = {c: categorical_feature(items[c].tolist()) for c in categorical_columns(items)}
        values, mask, names, stats = numerical_features(items, data.train.item)
        arrays = {"numerical": values, "numerical_mask": mask}
        for c, cat in cats.items():
            arrays[f"cat_ptr/{c}"], arrays[f"cat_index/{c}"] = cat.ptr, cat.index
        meta = {"numerical_names": names, "numerical_stats": stats, "vocab": {c: cat.vocab for c, cat in cats.items()},
                "seconds": round(time.perf_counter() - start, 3)}  # fmt: skip
        save_part(part, arrays, meta)
        loaded = (arrays, meta)
    arrays, meta = loaded
    feats.numerical, feats.numerical_mask = arrays["numerical"], arrays["numerical_mask"]
    feats.numerical_names = list(meta["numerical_names"])
    feats.categorical = {c: Categorical(list(v), arrays[f"cat_ptr/{c}"], arrays[f"cat_index/{c}"]) for c, v in meta["vocab"].items()}
    feats.meta["tabular"] = {k: meta[k] for k in ("numerical_stats", "seconds")}

    if text_encoder is not None:
        part = base / f"text-{slug(text_encoder)}"
        loaded = load_part(part)
        if loaded is None:
            start = time.perf_counter()
            texts = item_texts(items)
            model = load_text_encoder(text_encoder)
            LOG.info(f"{data.name}: encoding the text of {sum(map(bool, texts))} items with {text_encoder}")
            vectors, mask = encode_texts(texts, model, batch_size=batch_size, progress=progress)
            meta = {"encoder": text_encoder, "dim": int(vectors.shape[1]), "seconds": round(time.perf_counter() - start, 3)}
            save_part(part, {"features": vectors, "mask": mask}, meta)
            loaded = ({"features": vectors, "mask": mask}, meta)
        feats.text, feats.text_mask = loaded[0]["features"], loaded[0]["mask"]
        feats.meta["text"] = loaded[1]

    paths, urls = image_sources(items, raw_dir)
    if allow_image_download and any(u is not None for u in urls):
        need = [u if p is None else None for p, u in zip(paths, urls)]
        fetched = fetch_images(need, data.name, progress=progress)
        paths = [p if p is not None else f for p, f in zip(paths, fetched)]
    if image_encoder is not None:
        part = base / f"image-{slug(image_encoder)}"
        manifest = image_manifest(paths)
        loaded = load_part(part)
        if loaded is None or loaded[1].get("manifest") != manifest:
            start = time.perf_counter()
            encoder = load_image_encoder(image_encoder)
            if encoder.for_testing_only:
                LOG.warning(f"note: {encoder.name} is a random-init encoder for tests only; never report results with it")
            vectors, mask = encode_images(paths, encoder, batch_size=batch_size, progress=progress)
            meta = {"encoder": encoder.name, "dim": encoder.dim, "for_testing_only": encoder.for_testing_only,
                    "manifest": manifest, "seconds": round(time.perf_counter() - start, 3)}  # fmt: skip
            save_part(part, {"features": vectors, "mask": mask}, meta)
            loaded = ({"features": vectors, "mask": mask}, meta)
        feats.image, feats.image_mask = loaded[0]["features"], loaded[0]["mask"]
        feats.meta["image"] = loaded[1]
        image_share = float(feats.image_mask.mean()) if data.n_items else 0.0
    else:
        feats.image_mask = np.array([p is not None for p in paths], dtype=bool)
        image_share = float(feats.image_mask.mean()) if data.n_items else 0.0

    share = lambda m: float(np.mean(m)) if data.n_items else 0.0  # noqa: E731
    if feats.text_mask is not None:
        feats.coverage["text"] = share(feats.text_mask)
    for c, cat in feats.categorical.items():
        feats.coverage[c] = share(cat.mask)
    if feats.numerical_names:
        feats.coverage["numerical"] = share(feats.numerical_mask.any(axis=1))
    feats.coverage["image"] = image_share
    return feats

