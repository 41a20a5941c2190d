"""Per-user test metrics of runs and paired significance tests between two runs.

``python -m benchmark compare RUN_A RUN_B`` pairs the two runs' test users (by raw user
id), and for every metric both runs have per-user values for, reports the means, their
difference, and the p-values of a paired t-test and a Wilcoxon signed-rank test (two-sided,
scipy; zero differences dropped as in Wilcoxon's original test; p = 1 when every difference
is 0), each also Holm-adjusted over all the metrics compared (one family; the raw p-values
are kept beside). Users a metric leaves out (NaN) are dropped for that metric only. The
unit is the user within one run; a claim over seeds needs several runs per model
(``ablation``, ``collect``; ``benchmark.stats``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.errors import BenchmarkError
from benchmark.records import RunRecord
from benchmark.stats import holm, paired_tests



def write_per_user(per_user: pd.DataFrame, path: Path, eval_protocol: str) -> None:
    """One row per test user (``raw_user_id``, ``user``, one float64 column per metric),
    zstd-compressed; the evaluation protocol is kept in the file's metadata."""
    table = pa.Table.from_pandas(per_user, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), b"eval_protocol": eval_protocol.encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(metadata), path, compression="zstd")


def load_run(run: str | Path) -> RunRecord:
    """The completed record of a run folder (or its result.json, or a run id under ./runs),
    with readable per-user values; refused with the reason otherwise."""
    path = Path(run)
    if not path.exists() and (Path("runs") / path).is_dir():
        path = Path("runs") / path
    record = RunRecord.read(path)
    if not record.completed:
        raise BenchmarkError(f"{run}: the run did not complete (status {record.status!r}); its figures cannot be compared")
    record.per_user()  # raises if missing or unreadable
    return record


def compare_runs(run_a: str | Path, run_b: str | Path) -> dict[str, Any]:
    """Figures per metric: ``<metric>/a``, ``/b``, ``/diff`` (b - a), ``/p_ttest``, ``/p_wilcoxon``,
    their Holm adjustments over the metrics ``/p_ttest_holm``, ``/p_wilcoxon_holm``, ``/n``
    (paired users); plus ``n_users`` (shared test users), ``a`` / ``b``: model, dataset,
    seed and run id of each run, ``torch_threads`` of both and a ``warning`` when they differ."""
    record_a, record_b = load_run(run_a), load_run(run_b)
    users_a, users_b = record_a.per_user(), record_b.per_user()
    for field in ("dataset_fingerprint", "eval_protocol"):
        if getattr(record_a, field) != getattr(record_b, field):
            raise BenchmarkError(
                f"the runs differ in {field} ({getattr(record_a, field)} vs {getattr(record_b, field)}): their test users cannot be paired"
            )
    merged = users_a.merge(users_b, on="raw_user_id", suffixes=("/a", "/b"))
    if merged.empty:
        raise BenchmarkError("the two runs share no test user")
    metrics = [c for c in users_a.columns if "@" in c and c in users_b.columns]
    out: dict[str, Any] = {"n_users": int(len(merged)), "eval_protocol": record_a.eval_protocol}
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
    for kind in ("ttest", "wilcoxon"):
        keys = [f"{m}/p_{kind}" for m in metrics]
        for key, adjusted in zip(keys, holm([out[k] for k in keys])):
            out[f"{key}_holm"] = adjusted
    out["run_a"], out["run_b"] = record_a.run_id, record_b.run_id
    threads = [r.hardware.get("torch_threads") for r in (record_a, record_b)]
    out["torch_threads"] = threads
    if threads[0] != threads[1]:
        out["warning"] = (f"the runs trained at different CPU thread counts ({threads[0]} vs {threads[1]}); the count changes "
                          "the trained model, so part of the difference may come from it (docs/protocol.md)")
    out["a"], out["b"] = ({"model": r.model, "dataset": r.dataset, "seed": r.seed, "run_id": r.run_id} for r in (record_a, record_b))
    return out


def comparison_rows(result: dict[str, Any]) -> list[list[Any]]:
    metrics = list(dict.fromkeys(key.rsplit("/", 1)[0] for key in result if key.endswith("/p_ttest")))
    return [
        [m, result[f"{m}/a"], result[f"{m}/b"], result[f"{m}/diff"], result[f"{m}/p_ttest"], result[f"{m}/p_ttest_holm"],
         result[f"{m}/p_wilcoxon"], result[f"{m}/p_wilcoxon_holm"], result[f"{m}/n"]]
        for m in metrics
    ]
