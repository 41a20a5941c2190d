"""Simulated raw files (`data synth`) and the data-preparation scale check (`perf data`:
time and peak memory, median of N fresh processes).

``perf data --like ml|yelp|amazon --full`` writes simulator files of the real dataset's
size (MovieLens-25M: 25,000,095 ratings, 162,541 users, 62,423 movies; Yelp: 6,990,280
reviews, 150,346 businesses, 1,987,897 users; Amazon-2018 Electronics 5-core: 6,739,590
reviews, 728,719 users, 160,052 items) in the real formats, then, ``--repeats`` times,
prepares them from scratch (parse, checksum, filter, split, cache) in a fresh process
with a fresh cache, and reloads the prepared cache in another fresh process. Each child
reports its wall time and its peak resident memory (``ru_maxrss``, interpreter and
imports included); the medians are printed and, with ``--output``, written as JSON.
Targets: ml <= 60 s and <= 4 GB; yelp and amazon <= 300 s and <= 8 GB; reload <= 5 s.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FULL = {
    "ml": {"users": 162_541, "items": 62_423, "interactions": 25_000_095, "min_interactions": 20},
    "yelp": {"users": 1_987_897, "items": 150_346, "interactions": 6_990_280, "min_interactions": 1},
    "amazon": {"users": 728_719, "items": 160_052, "interactions": 6_739_590, "min_interactions": 5},
}
DATASET = {"ml": "synthetic-ml", "yelp": "synthetic-yelp", "amazon": "synthetic-amazon"}
TARGETS = {"ml": (60.0, 4.0), "yelp": (300.0, 8.0), "amazon": (300.0, 8.0)}


def _config(like: str, users: int, items: int, interactions: int | None, min_interactions: int, seed: int = 0) -> Any:
    from benchmark.data.simulator import SimulationConfig

    return SimulationConfig(
        n_users=users, n_items=items, n_interactions=interactions, min_interactions=min_interactions, seed=seed,
        mean_interactions=max(interactions // users, min_interactions + 1) if interactions else 40,
    )  # fmt: skip


def write_simulated(
    like: str, out: Path, *, users: int, items: int, interactions: int | None, min_interactions: int, seed: int = 0,
    layout: str = "2018", compress: bool = False,
) -> list[Path]:
    """Simulated raw files in the format of ``like`` (ml, yelp, amazon) under ``out``; the files written."""
    from benchmark.data.simulator import write_amazon, write_movielens, write_yelp

    cfg = _config(like, users, items, interactions, min_interactions, seed)
    if like == "amazon":
        write_amazon(cfg, Path(out), layout=layout, compress=compress)
    else:
        (write_yelp if like == "yelp" else write_movielens)(cfg, Path(out))
    return sorted(p for p in Path(out).iterdir() if p.is_file())


def _child(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "benchmark.perf_data", *argv], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        from benchmark.errors import BenchmarkError

        raise BenchmarkError(f"perf data: the measuring process failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def perf_data(
    like: str, *, full: bool, users: int, items: int, interactions: int, repeats: int = 3, workdir: str | None = None,
    keep: bool = False, report: Any = lambda line: None,
) -> dict[str, Any]:
    """Generate (once) simulated files of ``like``'s format and size, then prepare them
    ``repeats`` times in fresh processes with fresh caches, and reload each cache in another;
    the medians. ``report`` receives one line per repeat."""
    size = FULL[like] if full else {"users": users, "items": items, "interactions": interactions, "min_interactions": 5 if like != "yelp" else 1}
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"perf-data-{like}-"))
    raw = work / "raw"
    try:
        start = time.perf_counter()
        if not (raw / "ground_truth.npz").is_file():
            write_simulated(like, raw, users=size["users"], items=size["items"], interactions=size["interactions"],
                            min_interactions=size["min_interactions"])  # fmt: skip
        generate_s = time.perf_counter() - start
        raw_mb = sum(p.stat().st_size for p in raw.iterdir() if p.is_file()) / 1e6
        prepare, reload = [], []
        for r in range(repeats):
            cache = work / f"cache-{r}"
            shutil.rmtree(cache, ignore_errors=True)
            env = dict(os.environ, BENCHMARK_CACHE=str(cache))
            prepare.append(_child(["_measure", DATASET[like], str(raw)], env))
            reload.append(_child(["_measure", DATASET[like], str(raw)], env))
            if not keep:
                shutil.rmtree(cache, ignore_errors=True)
            report(f"  run {r + 1}: prepare {prepare[-1]['seconds']:.1f} s (CPU {prepare[-1]['cpu_seconds']:.1f} s), {prepare[-1]['peak_rss_gb']:.2f} GB; "
                   f"reload {reload[-1]['seconds']:.2f} s, {reload[-1]['peak_rss_gb']:.2f} GB")  # fmt: skip
        med = lambda rows, key: statistics.median(row[key] for row in rows)  # noqa: E731
        seconds_target, gb_target = TARGETS[like] if full else (float("nan"), float("nan"))
        return {
            "dataset": DATASET[like], "format": like, "full_size": full, "repeats": repeats,
            "raw_users": size["users"], "raw_items": size["items"], "raw_interactions": prepare[0]["raw_interactions"],
            "raw_mb": round(raw_mb, 1), "generate_seconds": round(generate_s, 1),
            "n_users": prepare[0]["n_users"], "n_items": prepare[0]["n_items"], "n_interactions": prepare[0]["n_interactions"],
            "prepare_seconds": round(med(prepare, "seconds"), 2), "prepare_peak_rss_gb": round(med(prepare, "peak_rss_gb"), 2),
            "read_seconds": round(med(prepare, "read_seconds"), 2), "prepare_cpu_seconds": round(med(prepare, "cpu_seconds"), 2),
            "reload_cpu_seconds": round(med(reload, "cpu_seconds"), 2),
            "reload_seconds": round(med(reload, "seconds"), 2), "reload_peak_rss_gb": round(med(reload, "peak_rss_gb"), 2),
            "prepare_seconds_all": [round(p["seconds"], 2) for p in prepare], "reload_seconds_all": [round(p["seconds"], 2) for p in reload],
            "target_prepare_seconds": seconds_target, "target_peak_rss_gb": gb_target, "target_reload_seconds": 5.0,
            "load_average": round(os.getloadavg()[0], 1), "cpu_count": os.cpu_count(),
        }  # fmt: skip
    finally:
        if not keep and not workdir:
            shutil.rmtree(work, ignore_errors=True)


def _measure(name: str, raw_dir: str) -> None:
    """Child process: load (prepare or reload) one dataset; print one JSON line of figures."""
    import resource

    from benchmark.data import datasets

    read_seconds: list[float] = []
    spec = datasets.DATASETS[name]
    original = spec.read

    def timed_read(path: Path, on_bad_line: str) -> Any:
        t = time.perf_counter()
        raw = original(path, on_bad_line)
        read_seconds.append(time.perf_counter() - t)
        read_seconds.append(len(raw))
        return raw

    object.__setattr__(spec, "read", timed_read)
    start = time.perf_counter()
    data = datasets.load_dataset(name, raw_dir=raw_dir)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_kb = _peak_rss_kb() or usage.ru_maxrss
    print(json.dumps({
        "seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_gb": peak_kb / 1024**2, "read_seconds": read_seconds[0] if read_seconds else 0.0,
        "raw_interactions": int(read_seconds[1]) if read_seconds else 0,
        "n_users": data.n_users, "n_items": data.n_items, "n_interactions": data.n_interactions,
    }))  # fmt: skip


def _peak_rss_kb() -> int | None:
    """This process's own peak RSS (VmHWM). ``ru_maxrss`` is not used: on Linux it keeps the
    parent's peak across fork+exec, so a child of a big process would report the parent's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_measure":
        _measure(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: python -m benchmark perf data --like ml|yelp|amazon [--full]")
