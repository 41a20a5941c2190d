"""Item images: local files or URLs per item, downloads into the cache (opt-in), and the
image encoders (open-clip, or a random CNN for tests only)."""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data.features.fields import IMAGE_PATH_COLUMNS, IMAGE_URL_COLUMNS, cell_values
from benchmark.data.prepare import cache_root
from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_bytes

LOG = logging.getLogger(__name__)  # progress and notes: the CLI shows them on stderr

RANDOM_CNN = "random-cnn"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


def _first(value: Any) -> str | None:
    values = cell_values(value)
    return values[0] if values else None


def image_sources(items: pd.DataFrame, raw_dir: Path | None) -> tuple[list[Path | None], list[str | None]]:
    """Per item: an existing local image file (or None) and an image URL (or None)."""
    paths: list[Path | None] = [None] * len(items)
    for column in IMAGE_PATH_COLUMNS:
        if column not in items.columns:
            continue
        for i, value in enumerate(items[column].tolist()):
            for p in cell_values(value) if paths[i] is None else ():
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


def image_manifest(paths: list[Path | None]) -> str:
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

