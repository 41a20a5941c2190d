"""The prepared-data cache: keyed by the fingerprint, written atomically, reloaded identically;
orphans of killed preparations removed; the checksum memo and --rehash; permission errors."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.config import DataConfig
from benchmark.data import prepare
from benchmark.data.datasets import load_dataset
from tests.benchmark.data.unprivileged import ChildRaised, call_unprivileged, cli_unprivileged


@pytest.fixture()
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("BENCHMARK_CACHE", str(cache))
    return cache


def test_fingerprint_depends_on_files_and_config(tiny_ml: Path, tmp_path: Path, own_cache: Path) -> None:
    files = sorted(tiny_ml.glob("*.csv"))
    base = prepare.fingerprint("synthetic-ml", files, DataConfig())
    assert prepare.fingerprint("synthetic-ml", files, DataConfig()) == base
    assert prepare.fingerprint("synthetic-ml", files, DataConfig(split="temporal")) != base
    assert prepare.fingerprint("synthetic-ml", files, DataConfig(kcore=5)) != base
    changed = tmp_path / "changed"
    shutil.copytree(tiny_ml, changed)
    with open(changed / "ratings.csv", "a") as fh:
        fh.write("1,1,5.0,1600000000\n")
    assert prepare.fingerprint("synthetic-ml", sorted(changed.glob("*.csv")), DataConfig()) != base


def test_cache_reload_is_identical(tiny_ml: Path, own_cache: Path) -> None:
    fresh = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    cached_dir = prepare.cache_dir("synthetic-ml", fresh.fingerprint)
    assert (cached_dir / "meta.json").is_file()
    again = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    assert again.fingerprint == fresh.fingerprint and again.n_items == fresh.n_items
    for part in ("train", "valid", "test"):
        for col in ("user", "item", "timestamp"):
            np.testing.assert_array_equal(getattr(getattr(again, part), col), getattr(getattr(fresh, part), col))
    np.testing.assert_array_equal(again.item_ids, fresh.item_ids)
    assert again.items["title"].tolist() == fresh.items["title"].tolist()


def test_crash_while_writing_leaves_no_cache(tiny_ml: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(prepare.pd.DataFrame, "to_parquet", crash)
    with pytest.raises(OSError, match="disk full"):
        load_dataset("synthetic-ml", raw_dir=tiny_ml)
    prepared = own_cache / "prepared" / "synthetic-ml"
    assert not list(prepared.iterdir())  # neither a final nor a temporary folder


def test_synthetic_data_is_generated_deterministically(own_cache: Path, tmp_path: Path) -> None:
    from benchmark.data.simulator import SimulationConfig, write_movielens

    write_movielens(SimulationConfig(n_users=50, n_items=40, seed=7), tmp_path / "a")
    write_movielens(SimulationConfig(n_users=50, n_items=40, seed=7), tmp_path / "b")
    for name in ("ratings.csv", "movies.csv", "tags.csv", "links.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    write_movielens(SimulationConfig(n_users=50, n_items=40, seed=8), tmp_path / "c")
    assert (tmp_path / "a" / "ratings.csv").read_bytes() != (tmp_path / "c" / "ratings.csv").read_bytes()
    data = load_dataset("synthetic-ml", raw_dir=tmp_path / "a")
    assert data.source == "synthetic" and data.n_users == 50


# --- temporary folders of killed preparations ------------------------------------------

_KILLED_WHILE_WRITING = """
import os, signal, sys
from benchmark.data import prepare
from benchmark.data.datasets import load_dataset

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer or a closed terminal would

prepare.pd.DataFrame.to_parquet = killed
load_dataset("synthetic-ml", raw_dir=sys.argv[1])
"""


def test_a_killed_preparation_leaves_no_orphan_after_the_next_one(tiny_ml: Path, own_cache: Path) -> None:
    repo = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", _KILLED_WHILE_WRITING, str(tiny_ml)], cwd=repo, env=dict(os.environ),
                          capture_output=True, timeout=120)  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    prepared = own_cache / "prepared" / "synthetic-ml"
    orphans = [p for p in prepared.iterdir() if p.name.startswith(".")]
    assert len(orphans) == 1 and (orphans[0] / "interactions.npz").is_file()  # killed mid-write
    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)  # the next preparation of the dataset
    assert [p.name for p in prepared.iterdir()] == [data.fingerprint[:20]]


def test_orphan_rules_dead_owner_or_older_than_an_hour(own_cache: Path) -> None:
    folder = own_cache / "prepared" / "some-data"
    host = socket.gethostname()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    made = {
        "dead owner": f".abc.tmp+{host}+{dead_pid}+x1",
        "live owner": f".abc.tmp+{host}+{os.getpid()}+x2",
        "other host, recent": f".abc.tmp+elsewhere.example+{dead_pid}+x3",
        "other host, old": f".abc.tmp+elsewhere.example+{os.getpid()}+x4",
        "older name format, old": ".abc.k2j3h4",
        "older name format, recent": ".abc.q9w8e7",
        "a prepared cache": "0123456789abcdef0123",
    }
    for name in made.values():
        (folder / name).mkdir(parents=True)
    two_hours_ago = time.time() - 2 * 3600
    for key in ("other host, old", "older name format, old", "a prepared cache"):
        os.utime(folder / made[key], (two_hours_ago, two_hours_ago))
    removed = {p.name for p in prepare.remove_orphans(folder)}
    assert removed == {made["dead owner"], made["other host, old"], made["older name format, old"]}
    assert sorted(p.name for p in folder.iterdir()) == sorted(set(made.values()) - removed)


# --- the checksum memo and --rehash ------------------------------------------------------


def _edit_in_place_keeping_size_and_mtime(path: Path) -> None:
    """Change one rating digit; restore the modification time (as `touch -r` or some copies do)."""
    before = path.stat()
    content = path.read_bytes()
    first_rating = content.index(b"\n") + 1
    line_end = content.index(b"\n", first_rating)
    fields = content[first_rating:line_end].split(b",")
    fields[2] = b"1.0" if fields[2] != b"1.0" else b"2.0"
    edited = content[:first_rating] + b",".join(fields) + content[line_end:]
    assert len(edited) == len(content) and edited != content
    path.write_bytes(edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_size == before.st_size


def test_memo_trusts_size_and_mtime_and_rehash_does_not(tiny_ml: Path, tmp_path: Path, own_cache: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    raw = tmp_path / "raw"
    shutil.copytree(tiny_ml, raw)
    before = load_dataset("synthetic-ml", raw_dir=raw)
    old_sha = prepare.file_sha256(raw / "ratings.csv")
    _edit_in_place_keeping_size_and_mtime(raw / "ratings.csv")
    fresh_sha = hashlib.sha256((raw / "ratings.csv").read_bytes()).hexdigest()
    assert fresh_sha != old_sha
    # the shortcut: same size and mtime, so the memo answers and the old cache is reused
    assert prepare.file_sha256(raw / "ratings.csv") == old_sha
    assert load_dataset("synthetic-ml", raw_dir=raw).fingerprint == before.fingerprint
    # --rehash reads the file again, prepares anew and refreshes the memo
    assert prepare.file_sha256(raw / "ratings.csv", rehash=True) == fresh_sha
    assert prepare.file_sha256(raw / "ratings.csv") == fresh_sha
    _edit_in_place_keeping_size_and_mtime(raw / "ratings.csv")  # edit again: the memo is stale once more
    assert main(["data", "prepare", "--data", "synthetic-ml", "--raw-dir", str(raw)]) == 0
    stale = capsys.readouterr().out
    assert main(["data", "prepare", "--data", "synthetic-ml", "--raw-dir", str(raw), "--rehash"]) == 0
    rehashed = capsys.readouterr().out
    expected = prepare.fingerprint("synthetic-ml", [raw / f for f in ("ratings.csv", "movies.csv", "tags.csv", "links.csv")],
                                   DataConfig(), rehash=True)  # fmt: skip
    assert f"fingerprint {expected[:16]}" in rehashed and f"fingerprint {expected[:16]}" not in stale


def test_run_rehash_refreshes_the_memo_before_the_run(tiny_ml: Path, tmp_path: Path, own_cache: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from benchmark import runner
    from benchmark.errors import BenchmarkError

    raw = tmp_path / "raw"
    shutil.copytree(tiny_ml, raw)
    load_dataset("synthetic-ml", raw_dir=raw)
    _edit_in_place_keeping_size_and_mtime(raw / "ratings.csv")
    seen: list[str] = []

    def stop(cfg: object, *args: object, **kwargs: object) -> None:
        seen.append(load_dataset("synthetic-ml", raw_dir=raw).fingerprint)  # what the run would read
        raise BenchmarkError("stopped before training")

    monkeypatch.setattr(runner, "run", stop)
    argv = ["run", "--model", "pop", "--data", "synthetic-ml", "--raw-dir", str(raw), "--no-progress"]
    assert main(argv) == 2 and main(argv + ["--rehash"]) == 2
    fresh = hashlib.sha256((raw / "ratings.csv").read_bytes()).hexdigest()
    assert seen[0] != seen[1] and prepare.file_sha256(raw / "ratings.csv") == fresh


# --- permissions -------------------------------------------------------------------------


def test_read_only_cache_folder_is_one_paragraph(tiny_ml: Path, own_cache: Path) -> None:
    own_cache.mkdir()
    own_cache.chmod(0o555)
    try:
        code, err = cli_unprivileged(["data", "prepare", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml)])
    finally:
        own_cache.chmod(0o755)
    assert code == 2 and err.count("\n") == 1
    assert f"{own_cache / 'prepared'}: cannot write the prepared data there (Permission denied)" in err
    assert "BENCHMARK_CACHE" in err and not (own_cache / "prepared").exists()


def test_read_only_cache_still_serves_what_it_holds(tiny_ml: Path, own_cache: Path) -> None:
    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    (own_cache / "checksums.json").unlink()  # the memo must be rewritten, and cannot be
    for folder in (own_cache, *own_cache.rglob("*")):
        if folder.is_dir():
            folder.chmod(0o555)
    try:
        loaded = call_unprivileged(lambda: load_dataset("synthetic-ml", raw_dir=tiny_ml).fingerprint)
    finally:
        for folder in (own_cache, *own_cache.rglob("*")):
            if folder.is_dir():
                folder.chmod(0o755)
    assert loaded == data.fingerprint


def test_unreadable_prepared_cache_is_one_paragraph(tiny_ml: Path, own_cache: Path) -> None:
    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    cached = prepare.cache_dir("synthetic-ml", data.fingerprint)
    (cached / "interactions.npz").chmod(0)
    with pytest.raises(ChildRaised) as info:
        call_unprivileged(lambda: load_dataset("synthetic-ml", raw_dir=tiny_ml))
    assert info.value.kind == "BenchmarkError"
    assert f"{cached / 'interactions.npz'}: cannot read the prepared data (Permission denied)" in info.value.message
