"""Run records for ``collect``: read through ``benchmark.records``, checked, grouped by protocol.

Every record is read with ``load_records`` (``RunRecord``). A record a table cannot use is
listed as ``Skipped`` with its reason, and the rest are used: an unreadable or truncated
``result.json``, a metric that is not a number (``RunRecord.read``), a run that failed, was
interrupted or did not finish (status ``running``: killed, or still going), a field of the
wrong type, an infinite metric, and a ``per_user_test.parquet`` that cannot be read or
cannot be paired (no ``raw_user_id``, repeated users, non-numeric metric columns). A missing
per-user file is not a reason to skip: the run's means are kept and its row is not tested.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.records import (
    PER_USER_FILE,
    RecordError,
    RunRecord,
    Skipped,
    load_records,
    record_folders,
)

Progress = Callable[[list[RunRecord]], Iterable[RunRecord]]  # e.g. a tqdm wrapper; the library itself never prints

_PER_USER_NUMERIC = ("n_test_items", "test_item_popularity")  # besides the metric columns


@dataclass(frozen=True)
class Setting:
    """The evaluation protocol apart from the data: what a cross-dataset table must share."""

    split: str
    eval_protocol: str
    sampling: tuple[Any, ...] | None  # (negatives, sampler) under the sampled protocol
    ks: tuple[int, ...]
    streaming: bool

    def description(self) -> str:
        if self.eval_protocol == "sampled" and self.sampling:
            evaluation = f"SAMPLED evaluation ({self.sampling[0]} {self.sampling[1]} negatives per user)"
        elif self.eval_protocol == "full":
            evaluation = "full ranking"
        else:
            evaluation = f"{self.eval_protocol} evaluation"
        parts = [f"split {self.split}", evaluation, "K = " + ", ".join(map(str, self.ks))]
        if self.streaming:
            parts.insert(2, "streaming protocol")
        return " · ".join(parts)

    def slug(self) -> str:
        evaluation = self.eval_protocol + ("".join(str(s) for s in self.sampling) if self.sampling else "")
        text = f"{self.split}-{evaluation}-k{'_'.join(map(str, self.ks))}" + ("-streaming" if self.streaming else "")
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


@dataclass(frozen=True)
class Protocol:
    """What must be equal for two runs' numbers to share a table."""

    dataset: str
    data_source: str
    fingerprint: str
    split: str
    eval_protocol: str
    sampling: tuple[Any, ...] | None
    ks: tuple[int, ...]
    streaming: bool

    @classmethod
    def of(cls, record: RunRecord) -> Protocol:
        """The protocol of a record that ``record_problem`` accepted."""
        ks = record.config.get("train_config", {}).get("ks")
        if not ks:  # older or foreign records: the K set is what the test metrics were cut at
            ks = {int(k) for key in record.metrics.get("test", {}) if (k := key.rpartition("@")[2]).isdigit()}
        sampling = record.eval_sampling
        return cls(
            dataset=record.dataset,
            data_source=record.data_source,
            fingerprint=record.dataset_fingerprint,
            split=record.split,
            eval_protocol=record.eval_protocol,
            sampling=(sampling.get("negatives"), sampling.get("sampler")) if sampling else None,
            ks=tuple(sorted(int(k) for k in ks)),
            streaming=record.streaming is not None,
        )

    @property
    def setting(self) -> Setting:
        return Setting(self.split, self.eval_protocol, self.sampling, self.ks, self.streaming)

    @property
    def synthetic(self) -> bool:
        return self.data_source == "synthetic"

    def title(self) -> str:
        source = "SYNTHETIC data (simulator)" if self.synthetic else f"{self.data_source} data"
        return f"{self.dataset}, {source}"

    def description(self) -> str:
        return f"{self.setting.description()} · fingerprint {self.fingerprint[:12]}"

    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.dataset}-{self.fingerprint[:8]}-{self.setting.slug()}")

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "sampling": list(self.sampling) if self.sampling else None, "ks": list(self.ks)}


def status_reason(record: RunRecord) -> str | None:
    """Why a record's status keeps it out of tables (None: completed)."""
    if record.completed:
        return None
    if record.status == "running":  # written at the start and never replaced: the process died
        return "did not finish (status 'running': the run was killed, or is still going)"
    if record.status == "failed":
        error = record.extra.get("error")
        return "failed" + (f" ({str(error)[:200]})" if error else "")
    if record.status == "interrupted":
        return "interrupted before it finished"
    return f"status is {record.status!r}, not 'completed'"


def record_problem(record: RunRecord) -> str | None:
    """What makes a completed record unusable for a table beyond what ``RunRecord.read``
    checks (fields of the wrong type, infinite metrics), or None."""
    for name in ("model", "dataset", "dataset_fingerprint", "data_source", "split", "eval_protocol"):
        value = getattr(record, name)
        if not isinstance(value, str) or not value:
            return f"{name} is not a non-empty string ({value!r})"[:200]
    if record.config_hash is not None and not isinstance(record.config_hash, str):
        return f"config_hash is not a string ({record.config_hash!r})"[:200]
    if not isinstance(record.config, dict) or not isinstance(record.config.get("train_config", {}), dict):
        return "config is not a mapping of config sections"
    ks = record.config.get("train_config", {}).get("ks")
    if ks is not None and (not isinstance(ks, list) or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in ks)):
        return f"config.train_config.ks is not a list of positive cut-offs ({ks!r})"[:200]
    for name in ("eval_sampling", "streaming"):
        if getattr(record, name) is not None and not isinstance(getattr(record, name), dict):
            return f"{name} is not a mapping"
    if record.eval_sampling and not all(isinstance(record.eval_sampling.get(f), (int, str, type(None))) for f in ("negatives", "sampler")):
        return "eval_sampling.negatives / sampler are not plain values"
    for key, value in record.metrics.get("test", {}).items():
        if math.isinf(value):  # NaN is allowed: it means "not defined" and shows as a gap
            return f"metrics.test.{key} is not finite ({value})"
    return None


def per_user_problem(record: RunRecord) -> str | None:
    """What makes a run's per-user file unusable (read now, so that a corrupt file is known
    before any table is built), or None; a missing file is no problem here."""
    if record.path is None or not (record.path / PER_USER_FILE).is_file():
        return None
    try:
        frame = record.per_user()
    except RecordError as exc:
        return f"{PER_USER_FILE}: " + str(exc).rsplit(f"{PER_USER_FILE}: ", 1)[-1]
    if "raw_user_id" not in frame:
        return f"{PER_USER_FILE} has no raw_user_id column, so its users cannot be paired with other runs'"
    repeated = int(frame["raw_user_id"].astype(str).duplicated().sum())
    if repeated:
        return f"{PER_USER_FILE}: {repeated} raw user ids appear more than once"
    for column in frame.columns:
        if ("@" in column or column in _PER_USER_NUMERIC) and not pd.api.types.is_numeric_dtype(frame[column]):
            return f"{PER_USER_FILE}: column {column} is not numeric ({frame[column].dtype})"
    return None


def load_runs(runs_dir: str | Path, dataset: str | None = None, *, progress: Progress | None = None) -> tuple[list[RunRecord], list[Skipped]]:
    """The usable completed runs under ``runs_dir`` (``<run_id>/result.json``; a folder holding
    ``runs/`` works too), optionally of one dataset, and the runs left out with their reasons."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise BenchmarkError(f"--runs {runs_dir}: no such folder (expected the runs/ folder that `run` writes)")
    if not record_folders(root):
        raise BenchmarkError(f"--runs {runs_dir}: no run records (<run_id>/result.json) found")
    records, skipped = load_records(root, dataset=dataset, completed_only=False)
    runs: list[RunRecord] = []
    for record in progress(records) if progress else records:
        reason = status_reason(record) or record_problem(record) or per_user_problem(record)
        if reason:
            skipped.append(Skipped(str(record.path), reason))
        else:
            runs.append(record)
    return drop_superseded(runs, skipped)


def drop_superseded(runs: list[RunRecord], skipped: list[Skipped]) -> tuple[list[RunRecord], list[Skipped]]:
    """A rerun of the same model, config and seed on the same protocol replaces the earlier one,
    so that a repeated seed is not counted twice in mean ± std."""
    latest: dict[tuple[Any, ...], RunRecord] = {}
    for run in sorted(runs, key=lambda r: (str(r.finished or ""), r.run_id)):
        key = (Protocol.of(run), run.model, run.config_hash, run.seed)
        if key in latest:
            skipped.append(Skipped(str(latest[key].path), f"superseded by {run.run_id} (same model, config and seed)"))
        latest[key] = run
    kept = set(map(id, latest.values()))
    return [r for r in runs if id(r) in kept], skipped


def group_runs(runs: Iterable[RunRecord]) -> dict[Protocol, list[RunRecord]]:
    """Runs by protocol, ordered by dataset (real before synthetic), split, evaluation, fingerprint."""
    groups: dict[Protocol, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(Protocol.of(run), []).append(run)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0].dataset, kv[0].synthetic, kv[0].split, kv[0].eval_protocol, kv[0].fingerprint)))
