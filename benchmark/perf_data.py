"""`python -m benchmark data synth` and `python -m benchmark perf data`: simulated raw files
and the data-preparation scale check (time and peak memory, median of N fresh processes).

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

import argparse
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


def add_synth_parser(data_commands: argparse._SubParsersAction) -> None:
    text = "write simulated raw files in a real dataset's format, with ground truth (factors, exposure, true relevance)"
    synth = data_commands.add_parser("synth", help=text, description=text + "; see benchmark/data/simulator.py for the generative process.")
    synth.add_argument("--like", required=True, choices=["ml", "yelp", "amazon"], help="format: MovieLens CSV, Yelp JSON, Amazon JSON")
    synth.add_argument("--users", type=int, default=2000)
    synth.add_argument("--items", type=int, default=1000)
    synth.add_argument("--interactions", type=int, help="total interactions (default: 40 per user)")
    synth.add_argument("--min-interactions", type=int, default=5, help="per user (default 5)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--layout", choices=["2018", "2023"], default="2018", help="amazon: published layout (default 2018)")
    synth.add_argument("--gzip", action="store_true", help="amazon: write .gz files")
    synth.add_argument("--out", required=True, metavar="DIR", help="folder to write (replaced atomically)")


def add_perf_data_parser(perf_commands: argparse._SubParsersAction) -> None:
    text = "data preparation at scale: time and peak memory to prepare and to reload simulated files of a real dataset's size"
    perf = perf_commands.add_parser("data", help=text, description=text)
    perf.add_argument("--like", required=True, choices=["ml", "yelp", "amazon"])
    perf.add_argument("--full", action="store_true", help="the real dataset's size (else --users/--items/--interactions)")
    perf.add_argument("--users", type=int, default=20_000)
    perf.add_argument("--items", type=int, default=5_000)
    perf.add_argument("--interactions", type=int, default=500_000)
    perf.add_argument("--repeats", type=int, default=3, help="fresh-process preparations (median reported; default 3)")
    perf.add_argument("--workdir", help="where the raw files and caches go (default: a temporary folder, deleted afterwards)")
    perf.add_argument("--keep", action="store_true", help="keep the raw files and caches")
    perf.add_argument("--output", metavar="FILE.json", help="also write the figures as a flat JSON map")


def _config(like: str, users: int, items: int, interactions: int | None, min_interactions: int, seed: int = 0) -> Any:
    from benchmark.data.simulator import SimulationConfig

    return SimulationConfig(
        n_users=users, n_items=items, n_interactions=interactions, min_interactions=min_interactions, seed=seed,
        mean_interactions=max(interactions // users, min_interactions + 1) if interactions else 40,
    )  # fmt: skip


def cmd_synth(args: argparse.Namespace) -> None:
    from benchmark.data.simulator import write_amazon, write_movielens, write_yelp

    cfg = _config(args.like, args.users, args.items, args.interactions, args.min_interactions, args.seed)
    start = time.perf_counter()
    if args.like == "amazon":
        write_amazon(cfg, Path(args.out), layout=args.layout, compress=args.gzip)
    else:
        (write_yelp if args.like == "yelp" else write_movielens)(cfg, Path(args.out))
    files = sorted(p for p in Path(args.out).iterdir() if p.is_file())
    print(f"wrote {args.like}-format simulated data to {args.out} in {time.perf_counter() - start:.1f} s:")
    for path in files:
        print(f"  {path.name:45s} {path.stat().st_size / 1e6:10.1f} MB")
    print(f"use it with: python -m benchmark data info --data {DATASET[args.like]} --raw-dir {args.out}")


def _child(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "benchmark.perf_data", *argv], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        from benchmark.errors import BenchmarkError

        raise BenchmarkError(f"perf data: the measuring process failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cmd_perf_data(args: argparse.Namespace) -> None:
    from benchmark.cli import print_table, write_output

    like = args.like
    size = FULL[like] if args.full else {"users": args.users, "items": args.items, "interactions": args.interactions, "min_interactions": 5 if like != "yelp" else 1}
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix=f"perf-data-{like}-"))
    raw = work / "raw"
    try:
        start = time.perf_counter()
        if not (raw / "ground_truth.npz").is_file():
            argv = ["data", "synth", "--like", like, "--users", str(size["users"]), "--items", str(size["items"]),
                    "--interactions", str(size["interactions"]), "--min-interactions", str(size["min_interactions"]), "--out", str(raw)]  # fmt: skip
            from benchmark.cli import main

            if main(argv) != 0:
                return
        generate_s = time.perf_counter() - start
        raw_mb = sum(p.stat().st_size for p in raw.iterdir() if p.is_file()) / 1e6
        prepare, reload = [], []
        for r in range(args.repeats):
            cache = work / f"cache-{r}"
            shutil.rmtree(cache, ignore_errors=True)
            env = dict(os.environ, BENCHMARK_CACHE=str(cache))
            prepare.append(_child(["_measure", DATASET[like], str(raw)], env))
            reload.append(_child(["_measure", DATASET[like], str(raw)], env))
            if not args.keep:
                shutil.rmtree(cache, ignore_errors=True)
            print(f"  run {r + 1}: prepare {prepare[-1]['seconds']:.1f} s (CPU {prepare[-1]['cpu_seconds']:.1f} s), {prepare[-1]['peak_rss_gb']:.2f} GB; "
                  f"reload {reload[-1]['seconds']:.2f} s, {reload[-1]['peak_rss_gb']:.2f} GB", flush=True)  # fmt: skip
        med = lambda rows, key: statistics.median(row[key] for row in rows)  # noqa: E731
        seconds_target, gb_target = TARGETS[like] if args.full else (float("nan"), float("nan"))
        result = {
            "dataset": DATASET[like], "format": like, "full_size": args.full, "repeats": args.repeats,
            "raw_users": size["users"], "raw_items": size["items"], "raw_interactions": prepare[0]["raw_interactions"],
            "raw_mb": round(raw_mb, 1), "generate_seconds": round(generate_s, 1),
            "n_users": prepare[0]["n_users"], "n_items": prepare[0]["n_items"], "n_interactions": prepare[0]["n_interactions"],
            "prepare_seconds": round(med(prepare, "seconds"), 2), "prepare_peak_rss_gb": round(med(prepare, "peak_rss_gb"), 2),
            "read_seconds": round(med(prepare, "read_seconds"), 2), "prepare_cpu_seconds": round(med(prepare, "cpu_seconds"), 2),
            "reload_cpu_seconds": round(med(reload, "cpu_seconds"), 2),
            "reload_seconds": round(med(reload, "seconds"), 2), "reload_peak_rss_gb": round(med(reload, "peak_rss_gb"), 2),
            "prepare_seconds_all": [round(p["seconds"], 2) for p in prepare], "reload_seconds_all": [round(p["seconds"], 2) for p in reload],
            "target_prepare_seconds": seconds_target, "target_peak_rss_gb": gb_target, "target_reload_seconds": 5.0,
        }  # fmt: skip
        print(f"\n{DATASET[like]} ({like} format{', full size' if args.full else ''}): {result['raw_interactions']:,} raw interactions, "
              f"{raw_mb:,.0f} MB raw files (generated in {generate_s:.0f} s); median of {args.repeats} fresh processes")  # fmt: skip
        rows = [
            ["prepare (parse+checksum+filter+split+cache)", result["prepare_seconds"], result["prepare_cpu_seconds"], result["prepare_peak_rss_gb"], seconds_target, gb_target],
            ["  of which reading the raw files", result["read_seconds"], "", "", "", ""],
            ["reload the prepared cache", result["reload_seconds"], result["reload_cpu_seconds"], result["reload_peak_rss_gb"], 5.0, ""],
        ]
        print_table(rows, ["step", "wall s", "CPU s", "peak RSS GB", "target s", "target GB"])
        print(f"load average during the measurement: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times grow with other load)")
        write_output(args.output, result)
    finally:
        if not args.keep and not args.workdir:
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
