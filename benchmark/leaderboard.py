"""Verified leaderboards: `submit` recomputes every metric from submitted top-K lists,
`leaderboard render` writes the pages.

A leaderboard is ``leaderboards/<dataset>.json`` (real datasets only), a list of entries:
model, authors, code/paper URLs, config (and its hash), dataset fingerprint, protocol,
the *recomputed* test metrics, the hash of the scored lists, date and suite version.

``python -m benchmark submit --predictions FILE --data D --meta META.yaml`` never trusts a
reported number: it scores the lists on the official split (default preparation, ``loo``
split, full ranking) with the same engine as ``evaluate`` (``benchmark.predictions``, which
refuses unknown users or items, repeated items or ranks, ranks that are not 1..n and items
the user interacted with before the test period). It refuses synthetic data, a meta file
that is not plain YAML data with the required fields and safe names/URLs, a fingerprint or
protocol other than the official one, oversize files and duplicates (same model, authors
and config hash, or the same lists). The entry is appended under a lock and the file
replaced atomically; its name comes from the dataset registry, never from the submission.

``python -m benchmark leaderboard render`` writes ``README.md`` (one Markdown table per
dataset) and ``index.html`` (one tab per dataset, click a header to sort; no external
assets; data embedded as escaped JSON and put into the page with ``textContent`` only).
``python -m benchmark leaderboard remove --data D --model NAME [--id PREFIX]`` withdraws one
entry (exactly one must match), under the same lock.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import html
import json
import math
import os
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from benchmark.config import DataConfig, config_hash
from benchmark.data.datasets import DATASETS, get_dataset, load_dataset
from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_text

SCHEMA_VERSION = 1
DEFAULT_DIR = "leaderboards"
# Limits: the largest real dataset (Yelp, ~300k users after 5-core, 22-character ids) at
# 20 ranks per user is about 300 MB of TSV; a meta file is a few hundred bytes.
MAX_PREDICTIONS_BYTES = 512 * 2**20
MAX_META_BYTES = 64 * 2**10
MAX_NAME_CHARS = 80
MAX_AUTHORS = 30
MAX_URL_CHARS = 300
MAX_CONFIG_STRING_CHARS = 500
MAX_CONFIG_NODES = 2000  # bounds YAML alias expansion ("billion laughs") while walking the config
MAX_CONFIG_DEPTH = 8
# Names: letters/digits of any script, space and . , ' ( ) + - / : (no markup, quotes or controls).
NAME_RE = re.compile(r"\w[\w .,'()+\-/:]*")
CONFIG_KEY_RE = re.compile(r"[\w.\-]{1,100}")
URL_CHARS_RE = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")  # RFC 3986 characters only
FINGERPRINT_RE = re.compile(r"[0-9a-f]{64}")

REQUIRED_FIELDS = ("model", "authors", "config", "dataset_fingerprint", "protocol")
OPTIONAL_FIELDS = ("code_url", "paper_url", "dataset", "metrics")
# The official protocol of every leaderboard: default preparation (part of the fingerprint),
# per-user leave-one-out split, full ranking over all items.
OFFICIAL_PROTOCOL = {"split": "loo", "eval_protocol": "full"}
# Columns of the rendered tables: (metric, label, higher is better).
TABLE_METRICS = (
    ("ndcg@10", "NDCG@10", True),
    ("hr@10", "HR@10", True),
    ("recall@10", "Recall@10", True),
    ("mrr@10", "MRR@10", True),
    ("map@10", "MAP@10", True),
    ("coverage@10", "Coverage@10", True),
    ("gini@10", "Gini@10", False),
    ("novelty@10", "Novelty@10", True),
    ("tailshare@10", "TailShare@10", True),
)
SORT_METRIC = "ndcg@10"


def real_datasets() -> list[str]:
    """Names of the datasets that have leaderboards, in registry order."""
    return [name for name, spec in DATASETS.items() if spec.source == "real"]


# --- the meta file ----------------------------------------------------------------------


@dataclasses.dataclass
class Meta:
    """A validated submission meta file (claimed metrics are kept only to report differences)."""

    model: str
    authors: list[str]
    config: dict[str, Any]
    dataset_fingerprint: str
    protocol: dict[str, str]
    code_url: str | None = None
    paper_url: str | None = None
    dataset: str | None = None
    claimed_metrics: dict[str, float] = dataclasses.field(default_factory=dict)


def _check_name(value: Any, what: str, problems: list[str]) -> str | None:
    if not isinstance(value, str):
        problems.append(f"- {what}: expected a string, got {type(value).__name__}")
        return None
    text = unicodedata.normalize("NFC", value.strip())
    if not 1 <= len(text) <= MAX_NAME_CHARS:
        problems.append(f"- {what}: must be 1 to {MAX_NAME_CHARS} characters (got {len(text)})")
        return None
    if not NAME_RE.fullmatch(text):
        bad = sorted({c for c in text if not re.fullmatch(r"[\w .,'()+\-/:]", c)})
        shown = ", ".join(repr(c) for c in bad[:8]) or "a leading space or punctuation mark"
        problems.append(f"- {what}: only letters, digits, spaces and . , ' ( ) + - / : are allowed, starting with a letter or digit (found {shown})")
        return None
    return text


def check_url(value: Any, what: str, problems: list[str]) -> str | None:
    """An absolute http(s) URL of RFC 3986 characters, without credentials; else a problem."""
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(f"- {what}: expected a URL string, got {type(value).__name__}")
        return None
    url = value.strip()
    if len(url) > MAX_URL_CHARS:
        problems.append(f"- {what}: longer than {MAX_URL_CHARS} characters")
        return None
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in ("http", "https"):
        problems.append(f"- {what}: only http:// and https:// URLs are accepted (got scheme {scheme or 'none'!r})")
        return None
    if not URL_CHARS_RE.fullmatch(url):
        problems.append(f"- {what}: contains characters that are not allowed in a URL (spaces, quotes, < > or non-ASCII: percent-encode them)")
        return None
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or not url.lower().startswith(f"{scheme}://"):
        problems.append(f"- {what}: not an absolute URL with a host")
        return None
    if "@" in parts.netloc:
        problems.append(f"- {what}: URLs with credentials (user@host) are not accepted")
        return None
    return url


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


class _TooLarge(Exception):
    pass


def check_plain_data(value: Any, where: str, problems: list[str]) -> None:
    """Strings, numbers, booleans, null, lists and string-keyed mappings only; bounded in
    size and depth (a YAML alias bomb or a self-referencing list stops here)."""
    budget = [MAX_CONFIG_NODES]
    try:
        _walk(value, where, problems, budget, 0)
    except _TooLarge:
        problems.append(f"- {where}: too large or too deeply nested (at most {MAX_CONFIG_NODES} values, {MAX_CONFIG_DEPTH} levels)")


def _walk(value: Any, where: str, problems: list[str], budget: list[int], depth: int) -> None:
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_CONFIG_DEPTH:
        raise _TooLarge
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            problems.append(f"- {where}: numbers must be finite (got {value})")
    elif isinstance(value, str):
        if len(value) > MAX_CONFIG_STRING_CHARS or _has_control(value):
            problems.append(f"- {where}: strings must have at most {MAX_CONFIG_STRING_CHARS} characters and no control characters")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, f"{where}[{i}]", problems, budget, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not CONFIG_KEY_RE.fullmatch(key):
                problems.append(f"- {where}: keys must be 1-100 letters, digits, '_', '.' or '-' (got {str(key)[:40]!r})")
                continue
            _walk(item, f"{where}.{key}", problems, budget, depth + 1)
    else:
        problems.append(f"- {where}: only strings, numbers, booleans, null, lists and mappings are allowed (got {type(value).__name__})")


def _read_limited(path: Path, limit: int, what: str) -> int:
    """Size of a regular file within ``limit`` bytes, else a refusal (checked before reading)."""
    if not path.is_file():
        raise BenchmarkError(f"{what} {path} not found (or not a regular file)")
    size = path.stat().st_size
    if size > limit:
        raise BenchmarkError(f"{what} {path} is {size:,} bytes; the limit is {limit:,} bytes. Nothing was submitted.")
    if size == 0:
        raise BenchmarkError(f"{what} {path} is empty")
    return size


def load_meta(path: str | Path) -> Meta:
    """Read and validate a submission meta file (YAML data only: ``yaml.safe_load``)."""
    path = Path(path)
    _read_limited(path, MAX_META_BYTES, "meta file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise BenchmarkError(f"meta file {path} is not UTF-8 text") from None
    try:
        content = yaml.safe_load(text)  # plain data only: no tags that build objects, never code
    except yaml.YAMLError as exc:
        raise BenchmarkError(f"meta file {path} is not valid YAML data (tags that construct objects are refused): {exc}") from None
    return validate_meta(content, str(path))


def validate_meta(content: Any, source: str = "meta") -> Meta:
    """Check every field; raise once with the list of all problems found."""
    if not isinstance(content, dict):
        raise BenchmarkError(f"{source}: expected a YAML mapping with the fields {', '.join(REQUIRED_FIELDS)}")
    problems: list[str] = []
    missing = [f for f in REQUIRED_FIELDS if f not in content]
    if missing:
        problems.append(f"- missing required fields: {', '.join(missing)}")
    unknown = [str(k) for k in content if k not in REQUIRED_FIELDS + OPTIONAL_FIELDS]
    if unknown:
        problems.append(f"- unknown fields: {', '.join(unknown[:10])} (allowed: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})")
    model = _check_name(content["model"], "model", problems) if "model" in content else None
    authors: list[str] = []
    if "authors" in content:
        raw_authors = content["authors"]
        raw_authors = [raw_authors] if isinstance(raw_authors, str) else raw_authors
        if not isinstance(raw_authors, list) or not 1 <= len(raw_authors) <= MAX_AUTHORS:
            problems.append(f"- authors: expected a list of 1 to {MAX_AUTHORS} names")
        else:
            checked = [_check_name(a, f"authors[{i}]", problems) for i, a in enumerate(raw_authors)]
            authors = [a for a in checked if a is not None]
    config = content.get("config")
    if "config" in content:
        if not isinstance(config, dict):
            problems.append("- config: expected a mapping of the model's settings (hyperparameters; may be {})")
        else:
            check_plain_data(config, "config", problems)
    fingerprint = content.get("dataset_fingerprint")
    if "dataset_fingerprint" in content and not (isinstance(fingerprint, str) and FINGERPRINT_RE.fullmatch(fingerprint)):
        problems.append("- dataset_fingerprint: expected the 64 hex digits that `data export-split` writes to split.json")
    protocol = content.get("protocol")
    if "protocol" in content:
        if not isinstance(protocol, dict) or set(protocol) != set(OFFICIAL_PROTOCOL) or not all(isinstance(v, str) for v in protocol.values()):
            problems.append(f"- protocol: expected a mapping with exactly the keys {', '.join(OFFICIAL_PROTOCOL)} (e.g. split: loo, eval_protocol: full)")
    urls = {key: check_url(content.get(key), key, problems) for key in ("code_url", "paper_url")}
    dataset = content.get("dataset")
    if dataset is not None and (not isinstance(dataset, str) or dataset not in DATASETS):
        problems.append(f"- dataset: unknown dataset {str(dataset)[:40]!r}")
    claimed = content.get("metrics") or {}
    if not isinstance(claimed, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in claimed.items()
    ):
        problems.append("- metrics: expected a mapping of metric name to number (claims are never trusted: every metric is recomputed)")
        claimed = {}
    if problems:
        raise BenchmarkError(f"{source}: the meta file has problems; nothing was submitted:\n" + "\n".join(problems))
    return Meta(model, authors, config, fingerprint, dict(protocol), urls["code_url"], urls["paper_url"], dataset, dict(claimed))  # type: ignore[arg-type]


# --- leaderboard files ------------------------------------------------------------------


def board_path(directory: str | Path, dataset: str) -> Path:
    """``<directory>/<registry name>.json``: the name comes from the registry only."""
    spec = get_dataset(dataset)
    return Path(directory) / f"{spec.name}.json"


def empty_board(dataset: str) -> dict[str, Any]:
    return {"dataset": dataset, "schema": SCHEMA_VERSION, "protocol": dict(OFFICIAL_PROTOCOL), "entries": []}


def load_board(directory: str | Path, dataset: str) -> dict[str, Any]:
    """The leaderboard of ``dataset`` (empty when its file does not exist yet)."""
    path = board_path(directory, dataset)
    if not path.is_file():
        return empty_board(dataset)
    try:
        board = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"{path} is not a readable leaderboard file: {exc}") from None
    if not isinstance(board, dict) or board.get("dataset") != dataset or not isinstance(board.get("entries"), list) or not all(isinstance(e, dict) for e in board["entries"]):
        raise BenchmarkError(f"{path} is not a leaderboard file of {dataset} (expected dataset: {dataset!r} and a list of entries)")
    return board


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)  # published files: 0644


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise read-check-append between concurrent submissions: a lock on the folder itself,
    so no lock file is left beside the published ones."""
    import fcntl  # POSIX; leaderboards are maintained on Linux

    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _identity(model: str, authors: list[str], cfg_hash: str) -> tuple[str, tuple[str, ...], str]:
    return model.casefold(), tuple(sorted(a.casefold() for a in authors)), cfg_hash


def find_duplicate(board: dict[str, Any], entry: dict[str, Any]) -> str | None:
    """Why ``entry`` duplicates one already on ``board``, or None."""
    mine = _identity(entry["model"], entry["authors"], entry["config_hash"])
    for old in board["entries"]:
        when = f"{old.get('model')!s} by {', '.join(map(str, old.get('authors', [])))} ({old.get('date')})"
        if entry.get("predictions_sha256") and old.get("predictions_sha256") == entry["predictions_sha256"]:
            return f"the same top-K lists are already on the leaderboard: {when}"
        if _identity(str(old.get("model", "")), [str(a) for a in old.get("authors", [])], str(old.get("config_hash"))) == mine:
            return f"the same model, authors and config (hash {entry['config_hash']}) are already on the leaderboard: {when}"
    return None


# --- submit -----------------------------------------------------------------------------


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    """JSON-safe metrics (NaN/inf would make the file unparsable in browsers): None instead."""
    return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}


def predictions_hash(items: Any) -> str:
    """SHA-256 of the scored lists (internal ids per test user, -1 = empty slot): two files that
    differ only in formatting, row order or ranks past the deepest K hash the same."""
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(items, dtype="<i8").tobytes()).hexdigest()


def submit(
    predictions: str | Path, dataset: str, meta_path: str | Path, *, raw_dir: str | Path | None = None,
    directory: str | Path = DEFAULT_DIR,
) -> dict[str, Any]:
    """Verify a submission and append it to ``<directory>/<dataset>.json``; returns
    ``{"entry": ..., "notes": [...]}``. Raises ``BenchmarkError`` on any refusal."""
    spec = get_dataset(dataset)
    if spec.source != "real":
        raise BenchmarkError(
            f"{dataset} is {spec.source} data: leaderboards rank real datasets only ({', '.join(real_datasets())}). Nothing was submitted."
        )
    predictions = Path(predictions)
    _read_limited(predictions, MAX_PREDICTIONS_BYTES, "predictions file")
    meta = load_meta(meta_path)
    if meta.dataset is not None and meta.dataset != spec.name:
        raise BenchmarkError(f"the meta file says the predictions are for {meta.dataset}, but --data is {spec.name}. Nothing was submitted.")
    if meta.protocol != OFFICIAL_PROTOCOL:
        theirs = ", ".join(f"{k} {v!r}" for k, v in meta.protocol.items())
        ours = ", ".join(f"{k} {v!r}" for k, v in OFFICIAL_PROTOCOL.items())
        raise BenchmarkError(f"protocol mismatch: the predictions were made for {theirs}; the leaderboard's protocol is {ours}. Nothing was submitted.")
    cfg_hash = config_hash(meta.config)
    directory = Path(directory)
    identity: dict[str, Any] = {"model": meta.model, "authors": meta.authors, "config_hash": cfg_hash}
    reason = find_duplicate(load_board(directory, spec.name), identity)
    if reason:  # cheap check before scoring; repeated under the lock below
        raise BenchmarkError(f"duplicate submission: {reason}. Nothing was submitted.")

    from benchmark.config import TrainConfig
    from benchmark.evaluation import test_evaluator
    from benchmark.predictions import evaluation_datamodule, read_predictions, score_predictions
    from benchmark.provenance import code_version

    data = load_dataset(spec.name, DataConfig(), raw_dir)  # the official preparation: defaults only
    if data.source != "real":
        raise BenchmarkError(f"{spec.name}: prepared data is {data.source}; leaderboards take real data only")
    if meta.dataset_fingerprint != data.fingerprint:
        raise BenchmarkError(
            f"dataset fingerprint mismatch: the predictions were made for {meta.dataset_fingerprint[:16]}..., the official split of "
            f"{spec.name} here is {data.fingerprint[:16]}... (other raw files, or another preparation: min_rating, kcore, split). "
            f"Export the official split with `python -m benchmark data export-split --data {spec.name}` (split.json has the "
            f"fingerprint), predict on it and submit again. Nothing was submitted."
        )
    train = TrainConfig()  # the official evaluation: full ranking at K = 5, 10, 20, every metric
    dm = evaluation_datamodule(data, train.loop.eval_batch_size)
    lists = read_predictions(predictions, data, dm, max(train.loop.ks))  # refuses bad, leaking or foreign lists
    if lists.n_missing == len(lists.users):
        raise BenchmarkError(f"{predictions}: none of the {len(lists.users)} test users has a list. Nothing was submitted.")
    identity["predictions_sha256"] = predictions_hash(lists.items)
    reason = find_duplicate(load_board(directory, spec.name), identity)
    if reason:  # before the costlier scoring; repeated under the lock below
        raise BenchmarkError(f"duplicate submission: {reason}. Nothing was submitted.")
    evaluator = test_evaluator(dm, train, seed=0)
    metrics = _finite(score_predictions(lists, dm, evaluator, train.loop.eval_batch_size))
    notes = list(lists.notes)
    differing = sorted(k for k, v in meta.claimed_metrics.items() if metrics.get(k) is None or abs(metrics[k] - float(v)) > 1e-6)  # type: ignore[operator]
    if differing:
        notes.append(f"claimed metrics ignored; {len(differing)} differ from the recomputed values: {', '.join(differing[:8])}")
    version = code_version()
    entry = {
        "model": meta.model,
        "authors": meta.authors,
        "code_url": meta.code_url,
        "paper_url": meta.paper_url,
        "config": meta.config,
        "config_hash": cfg_hash,
        "dataset": spec.name,
        "data_source": data.source,
        "dataset_fingerprint": data.fingerprint,
        "protocol": {**OFFICIAL_PROTOCOL, "ks": list(train.loop.ks)},
        "metrics": metrics,
        "n_test_users": int(len(lists.users)),
        "n_users_missing": int(lists.n_missing),
        "predictions_sha256": identity["predictions_sha256"],
        "verified": True,  # every metric recomputed by the suite from the submitted lists
        "date": dt.datetime.now(dt.timezone.utc).date().isoformat(),  # of acceptance (UTC)
        "suite_version": {"version": version.get("version"), "git_sha": version.get("git_sha"), "dirty": version.get("dirty")},
    }
    with _locked(directory):
        board = load_board(directory, spec.name)
        reason = find_duplicate(board, entry)
        if reason:
            raise BenchmarkError(f"duplicate submission: {reason}. Nothing was submitted.")
        board["entries"].append(entry)
        board["entries"].sort(key=_rank_key)
        _atomic_write_text(board_path(directory, spec.name), json.dumps(board, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return {"entry": entry, "notes": notes}


def _describe(entry: dict[str, Any]) -> str:
    ndcg = (entry.get("metrics") or {}).get(SORT_METRIC)
    score = f"{ndcg:.4f}" if isinstance(ndcg, (int, float)) and not isinstance(ndcg, bool) else "-"
    return (f"{entry.get('model')!s} by {', '.join(map(str, entry.get('authors', [])))} ({entry.get('date')}, "
            f"{SORT_METRIC} {score}, id {str(entry.get('predictions_sha256', ''))[:12]})")  # fmt: skip


def remove(dataset: str, *, model: str | None = None, entry_id: str | None = None, directory: str | Path = DEFAULT_DIR) -> dict[str, Any]:
    """Remove one entry from ``<directory>/<dataset>.json`` and return it.

    ``model`` matches the model name (case-insensitive); ``entry_id`` is a prefix (>= 8 hex digits) of the
    entry's ``predictions_sha256``. Exactly one entry must match both given selectors: a withdrawal never
    takes more than the maintainer meant. The pages are not re-rendered (as after ``submit``)."""
    spec = get_dataset(dataset)
    if model is None and entry_id is None:
        raise BenchmarkError("say which entry to remove: --model NAME and/or --id PREFIX (of its predictions_sha256)")
    if entry_id is not None and not re.fullmatch(r"[0-9a-f]{8,64}", entry_id):
        raise BenchmarkError(f"--id {entry_id!r}: expected 8 to 64 lowercase hex digits of the entry's predictions_sha256")
    directory = Path(directory)
    path = board_path(directory, spec.name)
    if not path.is_file():
        raise BenchmarkError(f"{path} not found: {spec.name} has no leaderboard file in {directory}")

    def matches(entry: dict[str, Any]) -> bool:
        return (model is None or str(entry.get("model", "")).casefold() == model.casefold()) and (
            entry_id is None or str(entry.get("predictions_sha256", "")).startswith(entry_id)
        )

    with _locked(directory):
        board = load_board(directory, spec.name)
        found = [e for e in board["entries"] if matches(e)]
        if len(found) != 1:
            listing = "".join(f"\n  {_describe(e)}" for e in (found or board["entries"]))
            what = "matches" if found else "entries on the board"
            raise BenchmarkError(
                f"{len(found)} entries of {spec.name} match; expected exactly one (add --id to choose). Nothing was removed. "
                f"The {what}:{listing or ' none'}"
            )
        board["entries"] = [e for e in board["entries"] if e is not found[0]]
        _atomic_write_text(path, json.dumps(board, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return found[0]


def _rank_key(entry: dict[str, Any]) -> tuple[float, str, str]:
    value = (entry.get("metrics") or {}).get(SORT_METRIC)
    score = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else -math.inf
    return (-score, str(entry.get("model", "")).casefold(), str(entry.get("date", "")))


# --- rendering --------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _safe_url(value: Any) -> str | None:
    """A URL fit for a link, re-checked at render time (a file may have been edited by hand)."""
    return check_url(value, "url", []) if isinstance(value, str) else None


def _rows(board: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for rank, entry in enumerate(sorted(board["entries"], key=_rank_key), start=1):
        metrics = entry.get("metrics") if isinstance(entry.get("metrics"), dict) else {}
        authors = entry.get("authors")
        suite = entry.get("suite_version") if isinstance(entry.get("suite_version"), dict) else {}
        sha = _text(suite.get("git_sha"))[:8]
        suite_text = _text(suite.get("version")) + (f" ({sha}{', dirty' if suite.get('dirty') else ''})" if sha else "")
        rows.append({
            "rank": rank,
            "model": _text(entry.get("model")),
            "authors": ", ".join(map(_text, authors)) if isinstance(authors, list) else _text(authors),
            "metrics": {key: (v if isinstance(v := metrics.get(key), (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None) for key, _, _ in TABLE_METRICS},
            "code_url": _safe_url(entry.get("code_url")),
            "paper_url": _safe_url(entry.get("paper_url")),
            "config_hash": _text(entry.get("config_hash")),
            "fingerprint": _text(entry.get("dataset_fingerprint"))[:12],
            "missing": entry.get("n_users_missing") if isinstance(entry.get("n_users_missing"), int) else None,
            "date": _text(entry.get("date")),
            "suite": suite_text,
        })  # fmt: skip
    return rows


def _md(text: str) -> str:
    """Markdown text: HTML-escaped (GitHub renders inline HTML), emphasis, code, links and
    table pipes made literal, and no block syntax at the start."""
    escaped = re.sub(r"([\\`*_\[\]|~])", r"\\\1", html.escape(text, quote=True)).replace("\n", " ")
    return "\\" + escaped if escaped[:1] in ("#", "+", "-", "=", "!") else escaped


def _md_link(label: str, url: str | None) -> str:
    if not url:
        return ""
    target = url.replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")
    return f"[{label}](<{target}>)"


def render_markdown(boards: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Leaderboards",
        "",
        "Generated by `python -m benchmark leaderboard render` from the JSON files in this folder; do not edit by hand.",
        "Every number was recomputed by the suite from the submitted top-K lists (`python -m benchmark submit`) on the",
        "official split: default preparation, per-user leave-one-out split, full ranking over all items, seen items",
        "masked. Rows are ordered by NDCG@10. Definitions of the metrics: DESIGN.md.",
        "",
    ]
    header = ["#", "model", "authors"] + [label for _, label, _ in TABLE_METRICS] + ["links", "date", "suite", "config", "fingerprint"]
    for dataset, board in boards.items():
        spec = get_dataset(dataset)
        lines += [f"## {_md(dataset)}", "", _md(spec.description), ""]
        rows = _rows(board)
        if not rows:
            lines += ["No verified entries yet.", ""]
            continue
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---:" if i == 0 or 3 <= i < 3 + len(TABLE_METRICS) else "---" for i in range(len(header))) + "|")
        for row in rows:
            cells = [str(row["rank"]), _md(row["model"]), _md(row["authors"])]
            cells += ["" if row["metrics"][key] is None else f"{row['metrics'][key]:.4f}" for key, _, _ in TABLE_METRICS]
            links = " ".join(x for x in (_md_link("code", row["code_url"]), _md_link("paper", row["paper_url"])) if x)
            cells += [links, _md(row["date"]), _md(row["suite"]), f"`{_md(row['config_hash'])}`" if row["config_hash"] else "", _md(row["fingerprint"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def embed_json(payload: Any) -> str:
    """JSON for a ``<script type="application/json">`` block: ``<``, ``>`` and ``&`` as
    ``\\u003c`` etc., so no string can close the element or start markup."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, sort_keys=True)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


_PAGE_SCRIPT = r"""
(function () {
  "use strict";
  var payload = JSON.parse(document.getElementById("leaderboard-data").textContent);
  var columns = payload.columns;
  var tabs = document.getElementById("tabs");
  var panels = document.getElementById("panels");
  var state = {};

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function link(label, url) {
    if (typeof url !== "string" || !/^https?:\/\//i.test(url)) return null;
    var a = el("a", label);
    a.href = url;
    a.rel = "noopener noreferrer nofollow";
    return a;
  }
  function cellValue(row, col) {
    return col.metric ? row.metrics[col.key] : row[col.key];
  }
  function compare(col, dir) {
    return function (a, b) {
      var x = cellValue(a, col), y = cellValue(b, col);
      if (x === null || x === undefined) return (y === null || y === undefined) ? a.rank - b.rank : 1;
      if (y === null || y === undefined) return -1;
      var c = col.numeric ? x - y : String(x).localeCompare(String(y), undefined, {sensitivity: "base"});
      return c !== 0 ? dir * c : a.rank - b.rank;
    };
  }
  function fillBody(ds) {
    var s = state[ds.name];
    var rows = ds.rows.slice();
    if (s.col !== null) rows.sort(compare(columns[s.col], s.dir));
    var body = s.body;
    while (body.firstChild) body.removeChild(body.firstChild);
    rows.forEach(function (row) {
      var tr = el("tr");
      columns.forEach(function (col) {
        var td;
        if (col.key === "links") {
          td = el("td");
          [link("code", row.code_url), link("paper", row.paper_url)].forEach(function (a) {
            if (a) { if (td.firstChild) td.appendChild(document.createTextNode(" ")); td.appendChild(a); }
          });
        } else {
          var v = cellValue(row, col);
          td = el("td", v === null || v === undefined ? "" : (col.metric ? Number(v).toFixed(4) : v), col.numeric ? "num" : "");
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    s.headers.forEach(function (th, i) {
      th.setAttribute("aria-sort", i === s.col ? (s.dir > 0 ? "ascending" : "descending") : "none");
    });
  }
  function sortBy(ds, i) {
    var s = state[ds.name], col = columns[i];
    if (s.col === i) s.dir = -s.dir;
    else { s.col = i; s.dir = col.metric && col.higher ? -1 : 1; }  // best first on a metric's first click
    fillBody(ds);
  }
  function select(name) {
    payload.datasets.forEach(function (ds) {
      var on = ds.name === name;
      state[ds.name].tab.setAttribute("aria-selected", on ? "true" : "false");
      state[ds.name].panel.hidden = !on;
    });
  }
  payload.datasets.forEach(function (ds) {
    var tab = el("button", ds.name + " (" + ds.rows.length + ")");
    tab.type = "button";
    tab.setAttribute("role", "tab");
    tab.setAttribute("data-dataset", ds.name);
    tab.addEventListener("click", function () { select(ds.name); });
    tabs.appendChild(tab);
    var panel = el("section");
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("data-dataset", ds.name);
    panel.appendChild(el("h2", ds.name));
    panel.appendChild(el("p", ds.description, "desc"));
    state[ds.name] = {tab: tab, panel: panel, col: null, dir: 1, headers: []};
    if (!ds.rows.length) {
      panel.appendChild(el("p", "No verified entries yet.", "empty"));
    } else {
      var table = el("table"), head = el("thead"), hr = el("tr");
      columns.forEach(function (col, i) {
        var th = el("th", col.label, col.numeric ? "num" : "");
        th.setAttribute("data-key", col.key);
        if (col.key !== "links") {
          th.tabIndex = 0;
          th.title = "sort by " + col.label;
          th.addEventListener("click", function () { sortBy(ds, i); });
          th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(ds, i); } });
        }
        state[ds.name].headers.push(th);
        hr.appendChild(th);
      });
      head.appendChild(hr);
      table.appendChild(head);
      state[ds.name].body = el("tbody");
      table.appendChild(state[ds.name].body);
      var wrap = el("div", null, "wrap");
      wrap.appendChild(table);
      panel.appendChild(wrap);
      fillBody(ds);
    }
    panels.appendChild(panel);
  });
  var first = payload.datasets.filter(function (ds) { return ds.rows.length; })[0] || payload.datasets[0];
  if (first) select(first.name);
})();
"""

_PAGE_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1b1f24;background:#fff}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:1rem 0 .2rem}
p.lead,p.desc{color:#57606a;max-width:70rem}
#tabs{display:flex;gap:.3rem;border-bottom:1px solid #d0d7de;margin-top:1rem;flex-wrap:wrap}
#tabs button{font:inherit;border:1px solid transparent;border-bottom:none;background:none;padding:.45rem .9rem;cursor:pointer;border-radius:6px 6px 0 0;color:#57606a}
#tabs button[aria-selected=true]{border-color:#d0d7de;background:#fff;color:#1b1f24;font-weight:600;margin-bottom:-1px}
.wrap{overflow-x:auto}table{border-collapse:collapse;margin-top:.5rem}
th,td{padding:.35rem .6rem;border-bottom:1px solid #eaeef2;text-align:left;white-space:nowrap}
th{cursor:pointer;user-select:none;background:#f6f8fa;position:sticky;top:0}th[data-key=links]{cursor:default}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.num{text-align:right;font-variant-numeric:tabular-nums}tr:hover td{background:#f6f8fa}
a{color:#0969da}.empty{color:#57606a;font-style:italic}
"""


def page_columns() -> list[dict[str, Any]]:
    cols: list[dict[str, Any]] = [
        {"key": "rank", "label": "#", "numeric": True, "metric": False},
        {"key": "model", "label": "model", "numeric": False, "metric": False},
        {"key": "authors", "label": "authors", "numeric": False, "metric": False},
    ]
    cols += [{"key": key, "label": label, "numeric": True, "metric": True, "higher": higher} for key, label, higher in TABLE_METRICS]
    cols += [{"key": key, "label": key.replace("_", " "), "numeric": key == "missing", "metric": False} for key in ("links", "date", "suite", "config_hash", "fingerprint", "missing")]
    return cols


def render_html(boards: dict[str, dict[str, Any]]) -> str:
    payload = {
        "columns": page_columns(),
        "datasets": [{"name": name, "description": get_dataset(name).description, "rows": _rows(board)} for name, board in boards.items()],
    }
    # Only this exact script may run (defence in depth on top of escaping and textContent).
    script_hash = base64.b64encode(hashlib.sha256(_PAGE_SCRIPT.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{html.escape(csp, quote=False)}\">\n"  # no double quotes in csp
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>llm4rec-bench leaderboards</title>\n"
        f"<style>{_PAGE_STYLE}</style>\n</head>\n<body>\n"
        "<h1>llm4rec-bench leaderboards</h1>\n"
        "<p class=\"lead\">Verified entries: every metric was recomputed by the suite from the submitted top-K lists on the "
        "official split (default preparation, leave-one-out, full ranking over all items). Click a column header to sort.</p>\n"
        "<nav id=\"tabs\" role=\"tablist\"></nav>\n<main id=\"panels\"></main>\n"
        "<noscript><p>The tables need JavaScript; the same data is in README.md and the JSON files beside this page.</p></noscript>\n"
        f"<script type=\"application/json\" id=\"leaderboard-data\">{embed_json(payload)}</script>\n"
        f"<script>{_PAGE_SCRIPT}</script>\n</body>\n</html>\n"
    )


def render(directory: str | Path = DEFAULT_DIR) -> dict[str, Any]:
    """Write ``README.md`` and ``index.html`` in ``directory`` from its leaderboard files."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BenchmarkError(f"leaderboard folder {directory} not found")
    boards = {name: load_board(directory, name) for name in real_datasets()}
    _atomic_write_text(directory / "README.md", render_markdown(boards))
    _atomic_write_text(directory / "index.html", render_html(boards))
    return {name: len(board["entries"]) for name, board in boards.items()}


# --- command line (wired in benchmark.cli) -----------------------------------------------


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """``submit`` and ``leaderboard render``."""
    sub = commands.add_parser(
        "submit", help="verify top-K predictions on the official split and add them to a leaderboard",
        description="Recompute every metric from FILE (TSV user, item, rank in raw ids, as `data export-split` ids them) on "
        "the official split of D (default preparation, loo, full ranking) and append a verified entry to "
        "<leaderboard-dir>/D.json. META.yaml (plain YAML data) has: model, authors (list), config (mapping), "
        "dataset_fingerprint (from split.json), protocol {split: loo, eval_protocol: full}; optional code_url, "
        "paper_url (http/https), dataset, metrics (claims: ignored, every metric is recomputed). Refused: synthetic "
        f"data, other fingerprints or protocols, duplicates, bad files, predictions over {MAX_PREDICTIONS_BYTES // 2**20} MiB "
        f"or meta files over {MAX_META_BYTES // 2**10} KiB.",
    )  # fmt: skip
    sub.add_argument("--predictions", required=True, metavar="FILE.tsv", help="top-K lists: TSV user, item, rank (raw ids)")
    sub.add_argument("--data", required=True, choices=list(DATASETS), help="dataset (real datasets only)")
    sub.add_argument("--meta", required=True, metavar="META.yaml", help="submission metadata (see above)")
    sub.add_argument("--raw-dir", help="folder with the raw files (default: $BENCHMARK_DATA/<name>/)")
    sub.add_argument("--leaderboard-dir", default=DEFAULT_DIR, metavar="DIR", help=f"folder of the leaderboard files (default: ./{DEFAULT_DIR})")
    sub.add_argument("--output", metavar="FILE.json", help="also write the accepted entry as JSON")

    board = commands.add_parser("leaderboard", help="leaderboard pages")
    board_commands = board.add_subparsers(dest="leaderboard_command", required=True, metavar="SUBCOMMAND")
    text = "write README.md (one table per dataset) and index.html (sortable tables, one tab per dataset) from the leaderboard files"
    render_parser = board_commands.add_parser("render", help=text, description=text)
    render_parser.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=f"folder with <dataset>.json; the pages are written there (default: ./{DEFAULT_DIR})")
    text = "withdraw one entry from <dir>/D.json (exactly one must match); then run `leaderboard render`"
    remove_parser = board_commands.add_parser("remove", help=text, description=text)
    remove_parser.add_argument("--data", required=True, choices=real_datasets(), help="dataset of the leaderboard")
    remove_parser.add_argument("--model", metavar="NAME", help="model name of the entry (case-insensitive)")
    remove_parser.add_argument("--id", dest="entry_id", metavar="PREFIX", help="first 8+ hex digits of the entry's predictions_sha256 (listed when --model matches several)")
    remove_parser.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=f"folder with <dataset>.json (default: ./{DEFAULT_DIR})")


def cmd_submit(args: argparse.Namespace) -> None:
    from benchmark.cli import print_metrics, write_output

    result = submit(args.predictions, args.data, args.meta, raw_dir=args.raw_dir, directory=args.leaderboard_dir)
    entry = result["entry"]
    print(f"\naccepted: {entry['model']} by {', '.join(entry['authors'])} on {entry['dataset']} (real data, split loo, full ranking), "
          f"{entry['n_test_users']} test users, config {entry['config_hash']}")  # fmt: skip
    for note in result["notes"]:
        print(f"note: {note}")
    print_metrics({"test": {k: v for k, v in entry["metrics"].items() if v is not None}})
    print(f"\nadded to {board_path(args.leaderboard_dir, entry['dataset'])}; `python -m benchmark leaderboard render` updates the pages")
    write_output(args.output, entry)


def cmd_leaderboard(args: argparse.Namespace) -> None:
    if args.leaderboard_command == "remove":
        entry = remove(args.data, model=args.model, entry_id=args.entry_id, directory=args.dir)
        print(f"removed from {board_path(args.dir, args.data)}: {_describe(entry)}; `python -m benchmark leaderboard render` updates the pages")
        return
    counts = render(args.dir)
    print(f"wrote {Path(args.dir) / 'README.md'} and {Path(args.dir) / 'index.html'}: "
          + ", ".join(f"{name} {n} entr{'y' if n == 1 else 'ies'}" for name, n in counts.items()))  # fmt: skip
