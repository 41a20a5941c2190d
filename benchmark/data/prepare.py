"""raw -> filter -> id maps -> split -> cache (DESIGN.md, "Data contract").

The cache is keyed by the dataset fingerprint: a hash of the raw files' SHA-256 and the
preparation config. It is written into a temporary folder and renamed into place, so a
crash or a bad file never leaves a half-written cache; the temporary folder of a process
killed while writing is removed by the next preparation of that dataset (``save``). A
cache folder that cannot be written or read ends in a one-paragraph error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from benchmark.config import DataConfig
from benchmark.data import splits
from benchmark.data.raw import RawData
from benchmark.data.simulator.ground_truth import GroundTruth
from benchmark.data.truth import load_truth, save_truth
from benchmark.errors import ENVIRONMENT_ERRNOS, BenchmarkError, cannot_read, cannot_write

# Bump when preparation logic changes what a cache holds: old caches are then not reused.
PREPARATION_VERSION = 4  # 4: CSV cells "NA", "null", "nan" are text, not missing (MovieLens tags, titles)


def cache_root() -> Path:
    return Path(os.environ.get("BENCHMARK_CACHE", Path.home() / ".cache" / "llm4rec-bench"))


@dataclass
class Interactions:
    """Parallel arrays sorted by (user, timestamp, file order); internal 0-based ids."""

    user: np.ndarray  # int64
    item: np.ndarray  # int64
    timestamp: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.user)

    def take(self, mask: np.ndarray) -> Interactions:
        return Interactions(self.user[mask], self.item[mask], self.timestamp[mask])


@dataclass
class PreparedData:
    """A prepared, split dataset: what every model and the evaluation engine see."""

    name: str
    source: str  # "real" | "synthetic"
    fingerprint: str
    config: DataConfig
    n_users: int
    n_items: int
    train: Interactions
    valid: Interactions
    test: Interactions
    user_ids: np.ndarray  # raw id of each internal user id
    item_ids: np.ndarray  # raw id of each internal item id
    items: pd.DataFrame  # side information, row i = internal item i
    stats: dict[str, Any]
    cache_path: Path | None = None  # the prepared cache folder (None until saved); holds the ground truth of simulated data
    _truth: GroundTruth | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def n_interactions(self) -> int:
        return len(self.train) + len(self.valid) + len(self.test)

    @property
    def truth(self) -> GroundTruth | None:
        """The simulator's ground truth, row i = internal user / item i (``benchmark.data.truth``),
        read from the cache on first use; None for real data and for simulated data without one."""
        if self.source != "synthetic" or self.cache_path is None:
            return None
        if self._truth is None:
            try:
                self._truth = load_truth(self.cache_path, self.user_ids, self.item_ids)
            except OSError as exc:
                if exc.errno not in ENVIRONMENT_ERRNOS:
                    raise
                raise _unreadable_cache(self.cache_path, exc) from None
        return self._truth


# --- fingerprint -----------------------------------------------------------------------


def file_sha256(path: Path, *, rehash: bool = False) -> str:
    """SHA-256 of a file, memoised by (path, size, mtime) so large files are hashed once.

    The memo is a shortcut: a file rewritten in place with its size and mtime preserved
    (a tool that restores mtime, ``touch -r``, some copies) keeps its old checksum, so its
    old prepared cache is reused. ``rehash=True`` (``--rehash`` on ``data prepare`` and
    ``run``) ignores the memo, hashes the file again and updates the memo. The memo saves
    about 1.3 s on every ML-25M load (the fingerprint is computed each time, cache hits
    included): its 720 MB of raw files hash at about 570 MB/s (hashlib with SHA-NI, files
    in the page cache; longer when they are read from disk).
    """
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError as exc:
        raise cannot_read(path, exc) from None
    memo_path = cache_root() / "checksums.json"
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if key in memo and not rehash:
        return memo[key]
    memo[key] = _sha256(path)
    try:
        _atomic_write_text(memo_path, json.dumps(memo, indent=0))
    except OSError as exc:  # a read-only cache still works, only without the memo
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
    return memo[key]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise cannot_read(path, exc) from None
    return digest.hexdigest()


def fingerprint(name: str, files: list[Path], config: DataConfig, *, rehash: bool = False) -> str:
    """Hash of the raw files' SHA-256 (``rehash``: not from the memo) and the preparation config."""
    content = {
        "dataset": name,
        "files": {Path(f).name: file_sha256(f, rehash=rehash) for f in sorted(files)},
        "config": dataclasses.asdict(config),
        "version": PREPARATION_VERSION,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


# --- preparation -----------------------------------------------------------------------


def kcore(user: np.ndarray, item: np.ndarray, k: int) -> np.ndarray:
    """Mask of interactions kept by iterative k-core filtering (every user and item >= k)."""
    keep = np.ones(len(user), dtype=bool)
    if k <= 1:
        return keep
    while True:
        u_counts = np.bincount(user[keep], minlength=user.max() + 1)
        i_counts = np.bincount(item[keep], minlength=item.max() + 1)
        ok = keep & (u_counts[user] >= k) & (i_counts[item] >= k)
        if ok.sum() == keep.sum():
            return keep
        keep = ok


def _codes(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """int32 codes 0..n-1, one per distinct id, and n. The order of the codes is arbitrary:
    preparation numbers the kept ids by first appearance afterwards."""
    if ids.dtype.kind in "iu" and len(ids):
        lo, hi = int(ids.min()), int(ids.max())
        if hi - lo < max(len(ids), 1 << 22):  # dense enough for a small lookup table (MovieLens ids)
            offset = ids - ids.dtype.type(lo) if lo else ids
            present = np.zeros(hi - lo + 1, dtype=bool)
            present[offset] = True
            lookup = np.cumsum(present, dtype=np.int32)
            lookup -= 1
            return lookup[offset], int(lookup[-1]) + 1
    if ids.dtype.kind == "U":  # pyarrow's hash encoding: faster than pd.factorize, no Python str per value
        strings = pa.array(ids)
        strings = strings.combine_chunks() if isinstance(strings, pa.ChunkedArray) else strings
        encoded = pc.dictionary_encode(strings)
        return encoded.indices.to_numpy().astype(np.int32, copy=False), len(encoded.dictionary)
    codes, uniques = pd.factorize(ids)
    return codes.astype(np.int32), len(uniques)


def _index_bits(n: int) -> int:
    return max(int(n - 1).bit_length(), 1)


def _user_time_order(user: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """= np.lexsort((np.arange(n), ts, user)): chronological per user, ties in array order.

    Two ``np.sort`` passes over int64 keys that carry the index in their low bits (by time,
    then by user: a stable LSD order). ``np.sort`` of plain integers is several times faster
    than a stable ``argsort`` at 25M rows."""
    n = len(user)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    bits = _index_bits(n)
    t0, span = int(ts.min()), int(ts.max()) - int(ts.min())
    if int(user.min()) < 0 or span.bit_length() + bits > 63 or int(user.max()).bit_length() + bits > 63:
        return np.lexsort((np.arange(n), ts, user))
    mask = (1 << bits) - 1
    index = np.arange(n, dtype=np.int64)
    key = ts - t0 if ts.dtype == np.int64 else ts.astype(np.int64) - t0
    key <<= bits
    key |= index
    key.sort()
    key &= mask  # the indices in time order
    order = key
    key = user[order].astype(np.int64)
    key <<= bits
    key |= index
    del index
    key.sort()
    key &= mask
    return order[key]


def _first_of_pairs(user: np.ndarray, item: np.ndarray, n_items: int) -> np.ndarray:
    """True where a (user, item) pair occurs for the first time in array order."""
    n = len(user)
    bits = _index_bits(n)
    if ((int(user.max()) + 1) * n_items).bit_length() + bits > 63:
        return ~pd.DataFrame({"u": user, "i": item}).duplicated().to_numpy()
    key = user.astype(np.int64)
    key *= n_items
    key += item
    key <<= bits
    key |= np.arange(n, dtype=np.int64)
    key.sort()  # pairs grouped, each group in array order
    first = np.empty(n, dtype=bool)
    first[0] = True
    pair = key >> bits
    np.not_equal(pair[1:], pair[:-1], out=first[1:])
    del pair
    key &= (1 << bits) - 1
    out = np.zeros(n, dtype=bool)
    out[key[first]] = True
    return out


def build(raw: RawData, config: DataConfig, *, name: str, source: str, fp: str, default_kcore: int,
          default_repeats: str = "first", has_timestamps: bool = True) -> PreparedData:
    """Turn raw interactions into a split ``PreparedData`` (pure function of its inputs).

    Internal ids follow the first appearance of each user and item among the interactions
    kept, in file order (DESIGN.md, group rules). User-generated item text
    (``raw.item_text_events``, e.g. MovieLens tags) is filtered by the split before it
    becomes item side information (``user_item_text``). Integer raw ids are reported as
    int64 whatever width the reader used.

    One sort serves everything: rows ordered by (user, timestamp, file order) give each
    pair's first occurrence in time, then the k-core, then -- by moving whole user blocks
    into the order of the final ids -- the chronological log. No full-size table copies.
    """
    if len(raw) == 0:
        raise BenchmarkError(f"{name}: the raw files contain no interactions")
    if not has_timestamps and config.split != "loo":
        raise BenchmarkError(
            f"{name}: split={config.split!r} needs real timestamps, and this dataset has none (its files give only the "
            "order of each user's items); use split=loo, the protocol its published results use"
        )
    repeats = default_repeats if config.repeats is None else config.repeats
    user_raw, item_raw, ts = raw.user, raw.item, raw.timestamp
    if config.min_rating is not None:
        keep = raw.rating >= config.min_rating
        user_raw, item_raw, ts = user_raw[keep], item_raw[keep], ts[keep]
        del keep
    if ts.dtype != np.int64:
        ts = ts.astype(np.int64)

    user_code, _ = _codes(user_raw)
    item_code, n_item_codes = _codes(item_raw)
    order = _user_time_order(user_code, ts)  # rows by (user, time, file order)
    user_s, item_s = user_code[order], item_code[order]
    del user_code, item_code
    kept = np.ones(len(order), dtype=bool)
    n_duplicates = 0
    if repeats == "first" and len(order):  # implicit feedback: a repeated (user, item) pair counts once, at its first occurrence
        kept = _first_of_pairs(user_s, item_s, n_item_codes)
        n_duplicates = int(len(kept) - np.count_nonzero(kept))

    k = default_kcore if config.kcore is None else config.kcore
    if k > 1:
        sub = np.flatnonzero(kept)
        kept[sub[~kcore(user_s[sub], item_s[sub], k)]] = False
        del sub
    if not kept.any():
        raise BenchmarkError(f"{name}: no interactions left after filtering (min_rating={config.min_rating}, kcore={k})")
    if not kept.all():
        order, user_s, item_s = order[kept], user_s[kept], item_s[kept]
    del kept

    # compact ids in order of first appearance among the kept interactions (file order)
    n = len(order)
    starts = np.flatnonzero(np.concatenate(([True], user_s[1:] != user_s[:-1])))  # one block per user
    del user_s
    user_first = np.minimum.reduceat(order, starts)  # each user's first kept row in the file
    user_rank = np.argsort(user_first)  # user_rank[j]: the block of the user with new id j
    first_row = np.full(n_item_codes, len(ts), dtype=np.int64)  # len(ts): after every row of the file
    np.minimum.at(first_row, item_s, order)
    used_items = np.flatnonzero(first_row < len(ts))
    used_items = used_items[np.argsort(first_row[used_items])]
    new_item = np.zeros(n_item_codes, dtype=np.int64)
    new_item[used_items] = np.arange(len(used_items), dtype=np.int64)
    lengths = np.diff(np.append(starts, n))[user_rank]
    user_ids = user_raw[user_first[user_rank]]
    item_ids = item_raw[first_row[used_items]]
    if user_ids.dtype.kind in "iu":
        user_ids = user_ids.astype(np.int64)
    if item_ids.dtype.kind in "iu":
        item_ids = item_ids.astype(np.int64)
    del first_row, used_items, user_first
    # the chronological log: user blocks moved into the order of their new ids
    position = np.repeat(starts[user_rank] - (np.cumsum(lengths) - lengths), lengths)
    position += np.arange(n, dtype=np.int64)
    del starts, user_rank
    n_users, n_items = len(user_ids), len(item_ids)
    log_user = np.repeat(np.arange(n_users, dtype=np.int64), lengths)
    log_item = new_item[item_s[position]]
    del item_s, new_item
    log_ts = ts[order[position]]
    del order, position, lengths

    stats: dict[str, Any] = {"skipped_lines": raw.skipped_lines, "duplicates_removed": n_duplicates, "kcore": k, "repeats": repeats}
    cut = None
    if config.split == "loo":
        label = splits.leave_one_out(log_user, n_users)
    elif config.split == "ratio":
        label = splits.ratio(log_user, n_users, config.valid_fraction, config.test_fraction)
    else:
        label, t_valid, t_test = splits.temporal(log_ts, config.valid_fraction, config.test_fraction)
        stats.update(valid_cut=t_valid, test_cut=t_test)
        cut = t_valid
    parts: dict[int, list[np.ndarray]] = {part: [] for part in (splits.TRAIN, splits.VALID, splits.TEST)}
    masks = {part: label == part for part in parts}
    del label
    for column in (log_user, log_item, log_ts):  # part by part, so the full log is never held twice
        for part, mask in masks.items():
            parts[part].append(column[mask])
    del log_user, log_item, log_ts, masks
    train, valid, test = (Interactions(*parts[part]) for part in (splits.TRAIN, splits.VALID, splits.TEST))

    items = raw.items.reindex(pd.Index(item_ids, name="raw_id")).reset_index()
    if raw.item_text_events is not None:
        text, counts = user_item_text(raw.item_text_events, train, user_ids, item_ids, valid_cut=cut)
        for column, values in text.items():
            items[column] = values
        stats["user_text_rows"] = counts
    return PreparedData(
        name=name,
        source=source,
        fingerprint=fp,
        config=config,
        n_users=n_users,
        n_items=n_items,
        train=train,
        valid=valid,
        test=test,
        user_ids=user_ids,
        item_ids=item_ids,
        items=items,
        stats=stats,
    )


def user_item_text(
    events: pd.DataFrame, train: Interactions, user_ids: np.ndarray, item_ids: np.ndarray, *, valid_cut: int | None = None
) -> tuple[dict[str, list[list[str]]], dict[str, int]]:
    """Per-item lists of user-generated text (MovieLens tags: ``events`` with columns user, item,
    timestamp, field, value in raw ids) that a model may see (DESIGN.md, validity rules).

    A row counts only if its (user, item) pair is a training interaction and it is dated no
    later than that user's last training event; with a ``valid_cut`` (temporal split) also
    before the cut. Values are distinct per item, in order of first use. Returns
    {field: lists aligned with ``item_ids``} and {"kept": n, "dropped": n}.
    """
    n_items = len(item_ids)
    user = pd.Index(user_ids).get_indexer(events["user"].to_numpy())
    item = pd.Index(item_ids).get_indexer(events["item"].to_numpy())
    stamp = events["timestamp"].to_numpy(np.int64)
    known = (user >= 0) & (item >= 0)
    train_pairs = train.user * n_items + train.item
    train_pairs.sort()  # a sorted search: np.unique/np.isin hash 25M pairs far more slowly
    pair = np.where(known, user * n_items + item, -1)
    at = np.minimum(np.searchsorted(train_pairs, pair), max(len(train_pairs) - 1, 0))
    ok = known & (train_pairs[at] == pair) if len(train_pairs) else np.zeros(len(pair), dtype=bool)
    del train_pairs
    last_train = np.full(len(user_ids), np.iinfo(np.int64).min)
    np.maximum.at(last_train, train.user, train.timestamp)
    ok &= stamp <= last_train[np.maximum(user, 0)]
    if valid_cut is not None:
        ok &= stamp < valid_cut
    kept = events.loc[ok].assign(internal=item[ok])
    out: dict[str, list[list[str]]] = {}
    for column in events["field"].unique():
        rows = kept[kept["field"] == column].drop_duplicates(["internal", "value"])
        lists: list[list[str]] = [[] for _ in range(n_items)]
        for index, value in zip(rows["internal"].to_numpy(), rows["value"].to_numpy()):
            lists[index].append(value)
        out[str(column)] = lists
    return out, {"kept": int(ok.sum()), "dropped": int((~ok).sum())}


# --- cache -----------------------------------------------------------------------------

_PARTS = ("train", "valid", "test")


def cache_dir(name: str, fp: str) -> Path:
    return cache_root() / "prepared" / name / fp[:20]


# A temporary folder is ".<fingerprint>.tmp+<host>+<pid>+<random>": its owner can be checked.
ORPHAN_AGE_SECONDS = 3600  # older temporary folders are orphans, whoever made them
_TMP_OWNER = re.compile(r"\.tmp\+(?P<host>[^+]*)\+(?P<pid>[0-9]+)\+")


def save(data: PreparedData, target: Path, *, truth: GroundTruth | None = None) -> None:
    """Write the prepared data to ``target`` atomically (temporary folder, then rename),
    after removing the temporary folders that killed preparations left beside it; with
    ``truth`` (simulated data: the ground truth aligned with the internal ids) beside it.
    ``data.cache_path`` becomes ``target``."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(target.parent)
        _write_atomically(data, target, truth)
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        raise cannot_write(exc.filename or target.parent, exc, "the prepared data") from None
    data.cache_path = target


def remove_orphans(folder: Path, now: float | None = None) -> list[Path]:
    """Remove temporary folders (``.*``) in ``folder`` whose owning process on this host is
    gone, or that are older than ``ORPHAN_AGE_SECONDS`` (other hosts, older name formats)."""
    now = time.time() if now is None else now
    removed = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") and entry.is_dir() and _is_orphan(entry, now):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _is_orphan(folder: Path, now: float) -> bool:
    try:
        if now - folder.stat().st_mtime > ORPHAN_AGE_SECONDS:
            return True
    except FileNotFoundError:  # its owner just renamed or removed it
        return False
    owner = _TMP_OWNER.search(folder.name)
    return owner is not None and owner["host"] == socket.gethostname() and not _process_alive(int(owner["pid"]))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _write_atomically(data: PreparedData, target: Path, truth: GroundTruth | None = None) -> None:
    owner = f".{target.name}.tmp+{socket.gethostname()}+{os.getpid()}+"
    tmp = Path(tempfile.mkdtemp(prefix=owner, dir=target.parent))
    try:
        arrays = {f"{part}_{col}": getattr(getattr(data, part), col) for part in _PARTS for col in ("user", "item", "timestamp")}
        np.savez(tmp / "interactions.npz", **arrays)
        pd.DataFrame({"raw_id": data.user_ids}).to_parquet(tmp / "users.parquet", index=False)
        data.items.to_parquet(tmp / "items.parquet", index=False)
        if truth is not None:
            save_truth(truth, tmp)
        meta = {
            "name": data.name,
            "source": data.source,
            "fingerprint": data.fingerprint,
            "config": dataclasses.asdict(data.config),
            "n_users": data.n_users,
            "n_items": data.n_items,
            "stats": data.stats,
            "version": PREPARATION_VERSION,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=int))
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: its cache is identical
            if not (target / "meta.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def is_cached(path: Path) -> bool:
    """Whether ``path`` holds a complete prepared cache (its meta.json is written last)."""
    try:
        return (path / "meta.json").is_file()
    except OSError as exc:  # an unreadable cache folder
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        raise _unreadable_cache(path, exc) from None


def load(path: Path) -> PreparedData:
    """The prepared data cached in ``path``."""
    try:
        return _read(path)
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        raise _unreadable_cache(path, exc) from None


def _unreadable_cache(path: Path, exc: OSError) -> BenchmarkError:
    return BenchmarkError(
        f"{exc.filename or path}: cannot read the prepared data ({exc.strerror}). Make the cache folder readable, "
        "or set BENCHMARK_CACHE to another folder to prepare the data again."
    )


def _read(path: Path) -> PreparedData:
    meta = json.loads((path / "meta.json").read_text())
    with np.load(path / "interactions.npz") as npz:
        parts = {p: Interactions(npz[f"{p}_user"], npz[f"{p}_item"], npz[f"{p}_timestamp"]) for p in _PARTS}
    items = pd.read_parquet(path / "items.parquet")
    return PreparedData(
        name=meta["name"],
        source=meta["source"],
        fingerprint=meta["fingerprint"],
        config=DataConfig(**meta["config"]),
        n_users=meta["n_users"],
        n_items=meta["n_items"],
        user_ids=pd.read_parquet(path / "users.parquet")["raw_id"].to_numpy(),
        item_ids=items["raw_id"].to_numpy(),
        items=items,
        stats=meta["stats"],
        cache_path=path,
        **parts,
    )


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
