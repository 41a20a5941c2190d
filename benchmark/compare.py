"""Per-user test metrics of runs and paired significance tests between two runs.

``python -m benchmark compare RUN_A RUN_B`` pairs the two runs' test users (by raw user
id), and for every metric both runs have per-user values for, reports the means, their
difference, and the p-values of a paired t-test and a Wilcoxon signed-rank test (two-sided,
scipy; zero differences dropped as in Wilcoxon's original test; p = 1 when every difference
is 0). Users a metric leaves out (NaN) are dropped for that metric only.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.errors import BenchmarkError

PER_USER_FILE = "per_user_test.parquet"


def write_per_user(per_user: pd.DataFrame, path: Path, eval_protocol: str) -> None:
    """One row per test user (``raw_user_id``, ``user``, one float64 column per metric),
    zstd-compressed; the evaluation protocol is kept in the file's metadata."""
    table = pa.Table.from_pandas(per_user, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), b"eval_protocol": eval_protocol.encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(metadata), path, compression="zstd")


def _run_dir(run: str | Path) -> Path:
    path = Path(run)
    if path.is_file() and path.name == "result.json":
        path = path.parent
    if not path.is_dir() and (Path("runs") / path).is_dir():
        path = Path("runs") / path
    if not (path / "result.json").is_file():
        raise BenchmarkError(f"{run}: not a run folder (expected runs/<run_id>/ with result.json)")
    if not (path / PER_USER_FILE).is_file():
        raise BenchmarkError(f"{run}: {PER_USER_FILE} is missing, so per-user values cannot be compared")
    return path


def load_run(run: str | Path) -> tuple[dict[str, Any], pd.DataFrame]:
    path = _run_dir(run)
    return json.loads((path / "result.json").read_text()), pd.read_parquet(path / PER_USER_FILE)


def paired_tests(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(paired t-test p, Wilcoxon signed-rank p), two-sided; 1.0 where the runs do not differ."""
    from scipy import stats

    diff = b - a
    if len(diff) < 2 or np.all(diff == 0):
        return 1.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_p = float(stats.ttest_rel(b, a).pvalue)
        w_p = float(stats.wilcoxon(b, a, zero_method="wilcox").pvalue)
    return (1.0 if math.isnan(t_p) else t_p), (1.0 if math.isnan(w_p) else w_p)


def compare_runs(run_a: str | Path, run_b: str | Path) -> dict[str, Any]:
    """Figures per metric: ``<metric>/a``, ``/b``, ``/diff`` (b - a), ``/p_ttest``, ``/p_wilcoxon``,
    ``/n`` (paired users), plus ``n_users`` (shared test users)."""
    record_a, users_a = load_run(run_a)
    record_b, users_b = load_run(run_b)
    for field in ("dataset_fingerprint", "eval_protocol"):
        if record_a.get(field) != record_b.get(field):
            raise BenchmarkError(
                f"the runs differ in {field} ({record_a.get(field)} vs {record_b.get(field)}): their test users cannot be paired"
            )
    merged = users_a.merge(users_b, on="raw_user_id", suffixes=("/a", "/b"))
    if merged.empty:
        raise BenchmarkError("the two runs share no test user")
    metrics = [c for c in users_a.columns if "@" in c and c in users_b.columns]
    out: dict[str, Any] = {"n_users": int(len(merged)), "eval_protocol": record_a.get("eval_protocol", "full")}
    for metric in metrics:
        a, b = merged[f"{metric}/a"].to_numpy(np.float64), merged[f"{metric}/b"].to_numpy(np.float64)
        both = ~(np.isnan(a) | np.isnan(b))
        a, b = a[both], b[both]
        t_p, w_p = paired_tests(a, b)
        out.update({
            f"{metric}/a": float(a.mean()) if len(a) else 0.0,
            f"{metric}/b": float(b.mean()) if len(b) else 0.0,
            f"{metric}/diff": float((b - a).mean()) if len(a) else 0.0,
            f"{metric}/p_ttest": t_p,
            f"{metric}/p_wilcoxon": w_p,
            f"{metric}/n": int(both.sum()),
        })  # fmt: skip
    out["run_a"], out["run_b"] = record_a.get("run_id"), record_b.get("run_id")
    return out


def comparison_rows(result: dict[str, Any]) -> list[list[Any]]:
    metrics = list(dict.fromkeys(key.rsplit("/", 1)[0] for key in result if key.endswith("/p_ttest")))
    return [
        [m, result[f"{m}/a"], result[f"{m}/b"], result[f"{m}/diff"], result[f"{m}/p_ttest"], result[f"{m}/p_wilcoxon"], result[f"{m}/n"]]
        for m in metrics
    ]
