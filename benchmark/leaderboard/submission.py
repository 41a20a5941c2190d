"""Submissions: the meta file, names compared as a reader sees them, and ``submit``.

``submit`` never trusts a reported number or a claimed origin: it recomputes every metric of
every seed's lists on the official split, checks the raw files against the board's data
identity (``benchmark.leaderboard.board``) and refuses simulator output, dirty code versions,
look-alike duplicates and malformed or oversize files. The rules are stated in
``benchmark.leaderboard``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import re
import unicodedata
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from benchmark.config import DataConfig, config_hash
from benchmark.data.datasets import (
    DATASETS,
    default_raw_dir,
    get_dataset,
    load_dataset,
    simulator_markers,
)
from benchmark.errors import BenchmarkError
from benchmark.leaderboard.board import (
    DEFAULT_DIR,
    OFFICIAL_PROTOCOL,
    board_path,
    data_identity,
    find_duplicate,
    identity_differences,
    load_board,
    locked,
    official_data,
    rank_key,
    real_datasets,
    write_board,
)
from benchmark.provenance import code_version

# Limits: the largest real dataset (Yelp, ~300k users after 5-core, 22-character ids) at
# 20 ranks per user is about 300 MB of TSV; a meta file is a few hundred bytes.
from benchmark.leaderboard import MAX_META_BYTES, MAX_PREDICTIONS_BYTES, MAX_SEEDS  # noqa: E402 (the package holds the limits)
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
GIT_SHA_RE = re.compile(r"[0-9a-f]{7,40}")

REQUIRED_FIELDS = ("model", "authors", "config", "dataset_fingerprint", "protocol")
OPTIONAL_FIELDS = ("code_url", "paper_url", "dataset", "metrics", "seeds", "code")
CODE_FIELDS = ("git_sha", "dirty", "version")


# --- names as a reader sees them --------------------------------------------------------------

# Cyrillic and Greek letters drawn like Latin ones (the common cases of Unicode's
# confusables.txt for these two scripts, not the whole table): mapped before casefolding,
# since a capital and a small letter can look like different Latin letters (Greek Η / η).
_CONFUSABLES = str.maketrans({
    # Cyrillic capitals and small letters
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y",
    "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Ү": "Y", "Ԛ": "Q", "Ԝ": "W", "Ӏ": "I",
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y",
    "х": "x", "і": "i", "ј": "j", "ѕ": "s", "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ү": "y",
    # Greek capitals and small letters
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
    "Τ": "T", "Υ": "Y", "Χ": "X",
    "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ϲ": "c",
    "γ": "y", "ω": "w",
})  # fmt: skip
_SEPARATORS = re.compile(r"[\s.\-_'/:]+")


def name_key(text: str) -> str:
    """What two names are compared by: NFKC (fullwidth and other compatibility forms become
    plain letters), Cyrillic/Greek look-alikes mapped to Latin (``_CONFUSABLES``), casefolded,
    accents dropped, and spaces and . - _ ' / : removed ("SAS-Rec" = "SASRec")."""
    text = unicodedata.normalize("NFKC", text).translate(_CONFUSABLES)
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text))


def identity_key(model: str, authors: list[str], cfg_hash: str) -> tuple[str, tuple[str, ...], str]:
    """(model, sorted authors, config hash), names by ``name_key``: equal keys are duplicates."""
    return name_key(model), tuple(sorted(name_key(a) for a in authors)), cfg_hash


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
    seeds: list[int] | None = None  # one per predictions file, in order
    code: dict[str, Any] | None = None  # the code version that produced the lists


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_code(value: Any, where: str, problems: list[str]) -> dict[str, Any] | None:
    """A code version ``{git_sha, dirty, version}`` as ``run`` records it; else a problem."""
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= set(CODE_FIELDS):
        problems.append(f"- {where}: expected a mapping with some of {', '.join(CODE_FIELDS)} (the run record's code)")
        return None
    sha, dirty, version = value.get("git_sha"), value.get("dirty"), value.get("version")
    if sha is not None and not (isinstance(sha, str) and GIT_SHA_RE.fullmatch(sha)):
        problems.append(f"- {where}.git_sha: expected 7 to 40 lowercase hex digits")
    if dirty is not None and not isinstance(dirty, bool):
        problems.append(f"- {where}.dirty: expected true or false")
    if version is not None and not (isinstance(version, str) and re.fullmatch(r"[\w.+\-]{1,40}", version)):
        problems.append(f"- {where}.version: expected a version string such as 0.1.0")
    return {"git_sha": sha, "dirty": dirty, "version": version}


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
    if "protocol" in content and (
        not isinstance(protocol, dict) or set(protocol) != set(OFFICIAL_PROTOCOL) or not all(isinstance(v, str) for v in protocol.values())
    ):
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
    seeds = content.get("seeds")
    if seeds is not None:
        if not isinstance(seeds, list) or not 1 <= len(seeds) <= MAX_SEEDS or not all(_is_int(s) and 0 <= s < 2**32 for s in seeds):
            problems.append(f"- seeds: expected a list of 1 to {MAX_SEEDS} integer seeds (0 to 2^32 - 1), one per predictions file, in order")
            seeds = None
        elif len(set(seeds)) != len(seeds):
            problems.append("- seeds: a seed is listed twice")
    code = check_code(content.get("code"), "code", problems)
    if problems:
        raise BenchmarkError(f"{source}: the meta file has problems; nothing was submitted:\n" + "\n".join(problems))
    return Meta(model, authors, config, fingerprint, dict(protocol), urls["code_url"], urls["paper_url"], dataset, dict(claimed), seeds, code)  # type: ignore[arg-type]


# --- submit -----------------------------------------------------------------------------


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    """JSON-safe metrics (NaN/inf would make the file unparsable in browsers): None instead."""
    return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}


def official_scores(lists: Any, dm: Any) -> dict[str, float | None]:
    """The figures an entry holds for one seed's parsed lists (``benchmark.predictions.read_predictions``):
    the official evaluation (full ranking at K = 5, 10, 20, every metric), JSON-safe."""
    from benchmark.config import TrainConfig
    from benchmark.evaluation import test_evaluator
    from benchmark.predictions import score_predictions

    train = TrainConfig()
    return _finite(score_predictions(lists, dm, test_evaluator(dm, train, seed=0), train.loop.eval_batch_size))


def predictions_hash(items: Any) -> str:
    """SHA-256 of the scored lists (internal ids per test user, -1 = empty slot): two files that
    differ only in formatting, row order or ranks past the deepest K hash the same."""
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(items, dtype="<i8").tobytes()).hexdigest()


def _refuse(reason: str) -> BenchmarkError:
    return BenchmarkError(f"{reason} Nothing was submitted.")


def _dirty(code: Any) -> bool:
    return isinstance(code, dict) and code.get("dirty") is True


def _seeds_and_code(meta: Meta, runs: list[str | Path], n_files: int, dataset: str, fingerprint: str) -> tuple[list[int | None], list[dict[str, Any] | None], str | None]:
    """Each predictions file's seed and code version (from ``--run`` records, else the meta),
    and the runs' shared config hash (None without runs); refuses what does not fit."""
    if _dirty(meta.code):
        raise _refuse(f"the meta file's code version {meta.code.get('git_sha') or ''} is dirty (uncommitted changes): an entry must "  # type: ignore[union-attr]
                      "name a code version that exists. Commit the code, make the lists again and submit them.")  # fmt: skip
    if not runs:
        if meta.seeds is None and n_files > 1:
            raise _refuse(f"{n_files} predictions files but no seeds: list them in the meta file (seeds: [0, 1, ...], one per file, in order) or pass --run for each.")
        if meta.seeds is not None and len(meta.seeds) != n_files:
            raise _refuse(f"the meta file lists {len(meta.seeds)} seeds for {n_files} predictions files (one seed per file, in order).")
        return list(meta.seeds) if meta.seeds is not None else [None], [meta.code] * n_files, None
    from benchmark.records import RecordError, RunRecord

    if len(runs) != n_files:
        raise _refuse(f"{len(runs)} --run records for {n_files} predictions files: give one run per file, in the same order.")
    records = []
    for run in runs:
        try:
            record = RunRecord.read(run)
        except RecordError as exc:
            raise _refuse(f"--run {run}: {exc}.") from None
        where = f"run {record.run_id} ({run})"
        checks = [
            (record.completed, f"its status is {record.status!r}, not 'completed'"),
            (record.dataset == dataset, f"it is a run on {record.dataset}, not {dataset}"),
            (record.data_source == "real", f"its data were {record.data_source}"),
            ((record.split, record.eval_protocol) == (OFFICIAL_PROTOCOL["split"], OFFICIAL_PROTOCOL["eval_protocol"]),
             f"its protocol is split {record.split!r}, eval_protocol {record.eval_protocol!r}"),
            (record.dataset_fingerprint == fingerprint, f"it was trained on data with fingerprint {record.dataset_fingerprint[:16]}..., not the official split's {fingerprint[:16]}..."),
            (not _dirty(record.code), f"its code version {record.code.get('git_sha') or ''} is dirty (uncommitted changes)"),
        ]  # fmt: skip
        for ok, why in checks:
            if not ok:
                raise _refuse(f"{where}: {why}.")
        records.append(record)
    hashes = {r.config_hash for r in records}
    if len(hashes) != 1:
        raise _refuse(f"the runs have different configs (hashes {', '.join(sorted(hashes))}): one entry is one config over several seeds.")
    seeds = [r.seed for r in records]
    if len(set(seeds)) != len(seeds):
        raise _refuse(f"two runs have the same seed ({', '.join(map(str, seeds))}): each seed counts once.")
    if meta.seeds is not None and list(meta.seeds) != seeds:
        raise _refuse(f"the meta file's seeds {meta.seeds} are not the runs' seeds {seeds}.")
    return seeds, [dict(r.code) if r.code else meta.code for r in records], records[0].config_hash


def _aggregate(per_seed: list[dict[str, float | None]]) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Mean and sample std (ddof = 1; only for several seeds) of every metric over the seeds."""
    import numpy as np

    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    for key in per_seed[0]:
        values = [m.get(key) for m in per_seed]
        if any(v is None for v in values):
            mean[key], std[key] = None, None
            continue
        mean[key] = float(np.mean(values))
        std[key] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return mean, (std if len(per_seed) > 1 else {})


def submit(
    predictions: str | Path | list[str | Path], dataset: str, meta_path: str | Path, *, raw_dir: str | Path | None = None,
    directory: str | Path = DEFAULT_DIR, runs: list[str | Path] | None = None, fmt: str | None = None,
) -> dict[str, Any]:
    """Verify a submission (one predictions file per seed, TSV or TREC by ``fmt`` or the file
    names) and append it to ``<directory>/<dataset>.json``; returns ``{"entry": ..., "notes": [...]}``.
    Raises ``BenchmarkError`` on any refusal."""
    spec = get_dataset(dataset)
    if spec.source != "real":
        raise _refuse(f"{dataset} is {spec.source} data: leaderboards rank real datasets only ({', '.join(real_datasets())}).")
    files = [Path(p) for p in (predictions if isinstance(predictions, list) else [predictions])]
    runs = list(runs or [])
    if not 1 <= len(files) <= MAX_SEEDS:
        raise _refuse(f"{len(files)} predictions files: a submission has 1 to {MAX_SEEDS} (one per seed).")
    for path in files:
        _read_limited(path, MAX_PREDICTIONS_BYTES, "predictions file")
    meta = load_meta(meta_path)
    if meta.dataset is not None and meta.dataset != spec.name:
        raise _refuse(f"the meta file says the predictions are for {meta.dataset}, but --data is {spec.name}.")
    if meta.protocol != OFFICIAL_PROTOCOL:
        theirs = ", ".join(f"{k} {v!r}" for k, v in meta.protocol.items())
        ours = ", ".join(f"{k} {v!r}" for k, v in OFFICIAL_PROTOCOL.items())
        raise _refuse(f"protocol mismatch: the predictions were made for {theirs}; the leaderboard's protocol is {ours}.")
    suite = code_version()
    if suite.get("dirty") is True:
        raise _refuse(f"the suite verifying this submission has uncommitted changes (git sha {suite.get('git_sha')}, dirty): an entry must "
                      "name the code version that scored it. Commit or stash the changes and submit again.")  # fmt: skip
    config = dict(meta.config)
    if runs:
        config.pop("seed", None)  # a run's resolved config holds its seed; the entry's config is what the runs share
    elif len(files) > 1 and "seed" in config:
        raise _refuse("the config is shared by all seeds of an entry: remove its 'seed' key (the seeds come from the meta file's seeds or the --run records).")
    directory = Path(directory)
    cfg_hash = config_hash(config)
    identity: dict[str, Any] = {"model": meta.model, "authors": meta.authors, "config_hash": cfg_hash}
    reason = find_duplicate(load_board(directory, spec.name), identity)
    if reason:  # cheap check before scoring; repeated under the lock below
        raise _refuse(f"duplicate submission: {reason}.")

    from benchmark.config import TrainConfig
    from benchmark.data.prepare import PREPARATION_VERSION, file_sha256
    from benchmark.predictions import (
        evaluation_datamodule,
        predictions_format,
        read_predictions,
    )

    # the official preparation (defaults only), the raw files hashed again: the checksum memo
    # trusts size and modification time, which a replaced file can keep
    data = load_dataset(spec.name, DataConfig(), raw_dir, rehash=True)
    raw = Path(raw_dir) if raw_dir is not None else default_raw_dir(spec.name)
    raw_files = spec.raw_files(raw)
    markers = simulator_markers(raw, raw_files)
    if markers:
        raise _refuse(f"the raw files in {raw} were written by the project's simulator ({', '.join(p.name for p in markers)} beside "
                      f"them): simulated data is never real, whatever the dataset name. Leaderboards take the published {spec.name} files.")  # fmt: skip
    if data.source != "real":
        raise _refuse(f"{spec.name}: prepared data is {data.source}; leaderboards take real data only.")
    checksums = {p.name: file_sha256(p) for p in raw_files}  # fresh: load_dataset just re-hashed them
    board_data = official_data(load_board(directory, spec.name))
    if board_data is not None and identity_differences(board_data["raw_files"], checksums):
        lines = "\n".join(f"- {d}" for d in identity_differences(board_data["raw_files"], checksums))
        raise _refuse(f"these are not the board's data: the raw files in {raw} differ from the {spec.name} files the leaderboard "
                      f"is built on (identity {board_data['identity'][:16]}..., {board_data['fixed_by']}):\n{lines}\n"
                      f"Use the published {spec.name} files unchanged.")  # fmt: skip
    if meta.dataset_fingerprint != data.fingerprint:
        raise _refuse(
            f"dataset fingerprint mismatch: the predictions were made for {meta.dataset_fingerprint[:16]}..., the official split of "
            f"{spec.name} here is {data.fingerprint[:16]}... (another preparation: min_rating, kcore, split, or another version of the "
            f"suite's preparation code). Export the official split with `python -m benchmark data export-split --data {spec.name}` "
            "(split.json has the fingerprint), predict on it and submit again."
        )
    seeds, codes, runs_hash = _seeds_and_code(meta, runs, len(files), spec.name, data.fingerprint)
    if runs_hash is not None:
        if config_hash(config) != runs_hash:
            raise _refuse(f"the meta file's config (hash {config_hash(config)}, without its seed) is not the runs' config (hash {runs_hash}): "
                          "put the runs' resolved config (result.json, config) in the meta file.")  # fmt: skip
        cfg_hash = runs_hash
        identity["config_hash"] = cfg_hash

    train = TrainConfig()  # the official evaluation: full ranking at K = 5, 10, 20, every metric
    dm = evaluation_datamodule(data, train.loop.eval_batch_size)
    scored = []
    for path, seed in zip(files, seeds):
        lists = read_predictions(path, data, dm, max(train.loop.ks), fmt)  # refuses bad, leaking or foreign lists
        if lists.n_missing == len(lists.users):
            raise _refuse(f"{path}: none of the {len(lists.users)} test users has a list.")
        digest = predictions_hash(lists.items)
        same = [s for s in scored if s["predictions_sha256"] == digest]
        if same:
            raise _refuse(f"{path} (seed {seed}) holds the same lists as {same[0]['file']} (seed {same[0]['seed']}): a deterministic model is one seed.")
        metrics = official_scores(lists, dm)
        scored.append({"file": str(path), "seed": seed, "format": predictions_format(path, fmt), "predictions_sha256": digest,
                       "metrics": metrics, "n_users_missing": int(lists.n_missing), "notes": lists.notes, "n_test_users": len(lists.users)})  # fmt: skip
    order = sorted(range(len(scored)), key=lambda i: (scored[i]["seed"] is None, scored[i]["seed"] or 0))
    scored = [scored[i] for i in order]
    codes = [codes[i] for i in order]
    digests = [s["predictions_sha256"] for s in scored]
    # one seed: the lists' own hash; several: the hash of theirs, in seed order (the id `remove --id` matches)
    entry_hash = digests[0] if len(digests) == 1 else hashlib.sha256("\n".join(digests).encode()).hexdigest()
    identity.update(predictions_sha256=entry_hash, seeds=[{"predictions_sha256": d} for d in digests])
    reason = find_duplicate(load_board(directory, spec.name), identity)
    if reason:
        raise _refuse(f"duplicate submission: {reason}.")
    metrics, std = _aggregate([s["metrics"] for s in scored])
    notes = [f"seed {s['seed']}: {n}" if len(scored) > 1 else n for s in scored for n in s["notes"]]
    differing = sorted(k for k, v in meta.claimed_metrics.items() if metrics.get(k) is None or abs(metrics[k] - float(v)) > 1e-6)  # type: ignore[operator]
    if differing:
        notes.append(f"claimed metrics ignored; {len(differing)} differ from the recomputed values: {', '.join(differing[:8])}")
    entry = {
        "model": meta.model,
        "authors": meta.authors,
        "code_url": meta.code_url,
        "paper_url": meta.paper_url,
        "config": config,
        "config_hash": cfg_hash,
        "dataset": spec.name,
        "data_source": data.source,
        "data_identity": data_identity(spec.name, checksums),
        "dataset_fingerprint": data.fingerprint,  # of the preparation: changes with PREPARATION_VERSION
        "preparation_version": PREPARATION_VERSION,
        "protocol": {**OFFICIAL_PROTOCOL, "ks": list(train.loop.ks)},
        "metrics": metrics,
        **({"metrics_std": std} if std else {}),
        "n_seeds": len(scored),
        "seeds": [
            {"seed": s["seed"], "predictions_sha256": s["predictions_sha256"], "format": s["format"], "metrics": s["metrics"],
             "n_users_missing": s["n_users_missing"], **({"code": c} if c else {})}
            for s, c in zip(scored, codes)
        ],
        "n_test_users": scored[0]["n_test_users"],
        "n_users_missing": max(s["n_users_missing"] for s in scored),
        "predictions_sha256": entry_hash,
        "verified": True,  # every metric recomputed by the suite from the submitted lists
        "date": dt.datetime.now(dt.timezone.utc).date().isoformat(),  # of acceptance (UTC)
        "suite_version": {"version": suite.get("version"), "git_sha": suite.get("git_sha"), "dirty": suite.get("dirty")},
    }
    with locked(directory):
        board = load_board(directory, spec.name)
        reason = find_duplicate(board, entry)
        if reason:
            raise _refuse(f"duplicate submission: {reason}.")
        current = official_data(board)
        if current is not None and identity_differences(current["raw_files"], checksums):  # fixed meanwhile by another submission
            raise _refuse(f"the board's data identity changed while this submission was scored ({current['identity'][:16]}...).")
        board["data"] = current or {"identity": entry["data_identity"], "raw_files": checksums,
                                    "fixed_by": f"the first entry ({meta.model}, {entry['date']})"}  # fmt: skip
        board["data"]["identity"] = data_identity(spec.name, board["data"]["raw_files"])
        board["entries"].append(entry)
        board["entries"].sort(key=rank_key)
        write_board(directory, board)
    return {"entry": entry, "notes": notes, "board": str(board_path(directory, spec.name))}
