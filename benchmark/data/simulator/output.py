"""Writing the simulated files: JSON lines in batches, timestamps as text, gzip, atomic folders."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from benchmark.files import atomic_dir


def atomic_output(out_dir: Path, write: Callable[[Path], None]) -> None:
    atomic_dir(out_dir, write, replace=True)


def json_strings(values: Iterable[str]) -> list[str]:
    dumps = json.dumps
    return [dumps(v, ensure_ascii=False) for v in values]


def write_lines(path: Path, lines: Iterable[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 200_000:
                fh.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            fh.write("\n".join(batch) + "\n")


def iso_times(timestamps: np.ndarray) -> list[str]:
    """'YYYY-MM-DDTHH:MM:SS' per timestamp (vectorised)."""
    return np.datetime_as_string(np.asarray(timestamps).astype("datetime64[s]")).tolist()


def gzip_file(path: Path) -> None:
    """Compress ``path`` to ``path.gz`` and remove it; the header's time is 0, so the same
    input gives the same bytes."""
    import gzip

    with open(path, "rb") as src, gzip.GzipFile(path.with_name(path.name + ".gz"), "wb", compresslevel=3, mtime=0) as dst:
        shutil.copyfileobj(src, dst, 16 << 20)
    path.unlink()

