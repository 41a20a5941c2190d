"""The run record: one typed class that the runner writes and every consumer reads.

A run folder ``<out>/runs/<run_id>/`` holds ``result.json`` (``RunRecord.write``, atomic),
``per_user_test.parquet`` (every test user's metric values), ``checkpoints/`` and the
experiment logger's folder (``tb/`` by default; ``benchmark.loggers``).
``RunRecord.read`` checks what it reads: a truncated or corrupt file, a missing field or a
metric that is not a number is a ``RecordError`` naming the file, so a consumer can skip
that one record with its reason instead of failing as a whole (``load_records``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_json

RESULT_FILE = "result.json"
PER_USER_FILE = "per_user_test.parquet"
REQUIRED = ("run_id", "model", "dataset", "dataset_fingerprint", "status", "metrics")


class RecordError(BenchmarkError):
    """A run record that cannot be used, with the reason."""


@dataclass
class RunRecord:
    """What ``run`` writes to ``result.json`` (README, "The run record")."""

    run_id: str
    model: str
    dataset: str
    dataset_fingerprint: str
    status: str
    metrics: dict[str, dict[str, float]]  # {"valid": {...}, "test": {...}}
    data_source: str = "real"
    dataset_stats: dict[str, Any] = field(default_factory=dict)
    split: str = "loo"
    eval_protocol: str = "full"
    eval_sampling: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    seed: int = 0
    code: dict[str, Any] = field(default_factory=dict)
    packages: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    valid_curve: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    timings: dict[str, Any] = field(default_factory=dict)
    started: str | None = None
    finished: str | None = None
    protocol: str = "offline"
    resumed: dict[str, Any] | None = None
    explanations: dict[str, Any] | None = None
    streaming: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    logging: dict[str, Any] | None = None  # the experiment logger: {"logger": "tensorboard", "dir": "tb", ...} (benchmark.loggers)
    files: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # keys written by other versions, kept as they are
    path: Path | None = field(default=None, compare=False)  # the run folder, when read from or written to disk
    _per_user: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    # --- reading and writing -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, content: Any, source: str = "record") -> RunRecord:
        if not isinstance(content, dict):
            raise RecordError(f"{source}: not a JSON object")
        missing = [k for k in REQUIRED if content.get(k) in (None, "")]
        if missing:
            raise RecordError(f"{source}: lacks {', '.join(missing)}")
        metrics = content["metrics"]
        if not isinstance(metrics, dict) or not isinstance(metrics.get("test", {}), dict):
            raise RecordError(f"{source}: metrics must map stages to {{name: number}}")
        for stage, values in metrics.items():
            if not isinstance(values, dict):
                raise RecordError(f"{source}: metrics.{stage} is not a mapping")
            bad = [k for k, v in values.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
            if bad:
                raise RecordError(f"{source}: metrics.{stage}.{bad[0]} is not a number ({values[bad[0]]!r})")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "path", "_per_user"}
        known = {k: v for k, v in content.items() if k in names}
        try:
            record = cls(**known, extra={k: v for k, v in content.items() if k not in names})
        except TypeError as exc:
            raise RecordError(f"{source}: {exc}") from None
        if not isinstance(record.seed, int) or isinstance(record.seed, bool):
            raise RecordError(f"{source}: seed is not an integer ({record.seed!r})")
        return record

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of ``result.json`` (optional sections only when present)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "path", "_per_user"):
                continue
            value = getattr(self, f.name)
            if value is None and f.name in ("eval_sampling", "resumed", "explanations", "streaming", "tags", "logging"):
                continue
            out[f.name] = value
        return {**out, **self.extra}

    @classmethod
    def read(cls, location: str | Path) -> RunRecord:
        """The record of a run folder (or its ``result.json``)."""
        path = Path(location)
        folder = path.parent if path.name == RESULT_FILE else path
        file = folder / RESULT_FILE
        try:
            content = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecordError(f"{folder}: not a run folder (no {RESULT_FILE})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordError(f"{file}: unreadable ({type(exc).__name__})") from None
        except ValueError:
            raise RecordError(f"{file}: not valid JSON (truncated or corrupt)") from None
        record = cls.from_dict(content, str(file))
        record.path = folder
        return record

    def write(self, folder: str | Path) -> Path:
        self.path = Path(folder)
        return atomic_write_json(self.path / RESULT_FILE, self.to_dict())

    # --- what consumers ask ----------------------------------------------------------------------
    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def metric(self, key: str, stage: str = "test") -> float | None:
        value = self.metrics.get(stage, {}).get(key)
        return None if value is None or math.isnan(float(value)) else float(value)

    def per_user(self) -> pd.DataFrame:
        """The per-user test values; ``RecordError`` when the file is missing or unreadable."""
        if self._per_user is None:
            if self.path is None:
                raise RecordError(f"{self.run_id}: a record not read from disk has no per-user values")
            file = self.path / PER_USER_FILE
            if not file.is_file():
                raise RecordError(f"{self.path}: {PER_USER_FILE} is missing, so per-user values cannot be compared")
            try:
                self._per_user = pd.read_parquet(file)
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
                raise RecordError(f"{file}: unreadable ({type(exc).__name__}: {str(exc)[:80]})") from None
        return self._per_user


@dataclass(frozen=True)
class Skipped:
    """A record a consumer left out, and why."""

    path: str
    reason: str


def record_folders(root: str | Path) -> list[Path]:
    """Run folders under ``root``: its ``<run_id>/`` children with a result.json, or those of
    ``root/runs`` (the folder ``run --out`` writes into)."""
    root = Path(root)
    if not any(root.glob(f"*/{RESULT_FILE}")) and (root / "runs").is_dir():
        root = root / "runs"
    return sorted(p.parent for p in root.glob(f"*/{RESULT_FILE}"))


def load_records(
    root: str | Path, *, dataset: str | None = None, completed_only: bool = True
) -> tuple[list[RunRecord], list[Skipped]]:
    """Every readable record under ``root`` (of ``dataset``, if given), and the folders left
    out with their reasons (unreadable, incomplete fields, not completed)."""
    records: list[RunRecord] = []
    skipped: list[Skipped] = []
    for folder in record_folders(root):
        try:
            record = RunRecord.read(folder)
        except RecordError as exc:
            skipped.append(Skipped(str(folder), str(exc).split(": ", 1)[-1]))
            continue
        if dataset is not None and record.dataset != dataset:
            continue
        if completed_only and not record.completed:
            skipped.append(Skipped(str(folder), f"status is {record.status!r}, not 'completed'"))
            continue
        records.append(record)
    return records, skipped
