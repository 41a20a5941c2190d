"""The features cache: ``$BENCHMARK_CACHE/features/<dataset>/<fingerprint[:20]>/<part>/``,
each part an ``arrays.npz`` and a ``meta.json``, written into a temporary folder and renamed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.data.prepare import cache_root
from benchmark.files import atomic_dir

if TYPE_CHECKING:
    from benchmark.data.prepare import PreparedData

FEATURES_VERSION = 1


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name).strip("-") or "default"


def features_dir(data: PreparedData) -> Path:
    return cache_root() / "features" / data.name / data.fingerprint[:20]


def save_part(target: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    def write(tmp: Path) -> None:
        np.savez(tmp / "arrays.npz", **arrays)
        (tmp / "meta.json").write_text(json.dumps({**meta, "version": FEATURES_VERSION}, indent=1))

    atomic_dir(target, write, replace=True)  # a stale part (e.g. images changed) is replaced


def load_part(target: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    try:
        meta = json.loads((target / "meta.json").read_text())
        if meta.get("version") != FEATURES_VERSION:
            return None
        with np.load(target / "arrays.npz") as npz:
            return {k: npz[k] for k in npz.files}, meta
    except (OSError, ValueError):
        return None

