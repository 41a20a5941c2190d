"""Bad-input cases shared by the JSON-lines readers' tests: each turns good lines into a bad file."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

# name -> (corrupt(lines, key fields) -> file bytes, file name suffix, expected line, words in the message)
Corrupt = Callable[[list[dict], dict[str, str]], bytes]


def _dump(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def malformed(records: list[dict], keys: dict[str, str]) -> bytes:
    lines = _dump(records).decode().splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]
    return ("\n".join(lines) + "\n").encode()


def wrong_type(records: list[dict], keys: dict[str, str]) -> bytes:
    records = [dict(r) for r in records]
    records[2][keys["rating"]] = "five"
    return _dump(records)


def missing_key(records: list[dict], keys: dict[str, str]) -> bytes:
    records = [dict(r) for r in records]
    del records[2][keys["item"]]
    return _dump(records)


def non_utf8(records: list[dict], keys: dict[str, str]) -> bytes:
    records = [dict(r) for r in records]
    records[2][keys["text"]] = "PLACEHOLDER"
    return _dump(records).replace(b"PLACEHOLDER", b"caf\xe9 \xff")


def empty(records: list[dict], keys: dict[str, str]) -> bytes:
    return b""


def truncated_gz(records: list[dict], keys: dict[str, str]) -> bytes:
    copies = [dict(r, **{keys["id"]: f"{r[keys['id']]}-{k}"}) for k in range(40) for r in records]  # ids stay unique
    content = gzip.compress(_dump(copies))
    return content[: len(content) * 2 // 3]


def deep_nesting(records: list[dict], keys: dict[str, str]) -> bytes:
    """A field nested 100,000 levels deep (json's parser would overflow its stack)."""
    lines = _dump(records).decode().splitlines()
    lines[2] = lines[2][:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    return ("\n".join(lines) + "\n").encode()


def nan_rating(records: list[dict], keys: dict[str, str]) -> bytes:
    records = [dict(r) for r in records]
    records[2][keys["rating"]] = float("nan")  # json.dumps writes NaN, which json.loads and pyarrow read
    return _dump(records)


def infinite_rating(records: list[dict], keys: dict[str, str]) -> bytes:
    records = [dict(r) for r in records]
    records[2][keys["rating"]] = float("inf")
    return _dump(records)


def duplicate_id(records: list[dict], keys: dict[str, str]) -> bytes:
    records = [dict(r) for r in records]
    records[2][keys["id"]] = records[0][keys["id"]]
    return _dump(records)


# case -> (function, expected line (None: not checked), words in the message)
CASES: dict[str, tuple[Corrupt, int | None, tuple[str, ...]]] = {
    "malformed JSON": (malformed, 3, ("malformed JSON",)),
    "wrong type": (wrong_type, 3, ("a finite number in field",)),
    "missing required key": (missing_key, 3, ("required field",)),
    "non-UTF-8 bytes": (non_utf8, 3, ("UTF-8", "field")),
    "empty file": (empty, 1, ("empty file",)),
    "truncated gz": (truncated_gz, None, ("ends early",)),
    "duplicate id": (duplicate_id, 3, ("unique",)),
    "deep nesting": (deep_nesting, 3, ("nested at most 100 levels deep", "100001 levels")),
    "NaN rating": (nan_rating, 3, ("a finite number in field", "NaN")),
    "infinite rating": (infinite_rating, 3, ("a finite number in field", "Infinity")),
}


def write_case(path: Path, case: str, records: list[dict], keys: dict[str, str]) -> Path:
    """Write the corrupted file; a truncated .gz gets the ``.gz`` suffix. Returns its path."""
    corrupt = CASES[case][0]
    target = path.with_name(path.name + ".gz") if case == "truncated gz" else path
    if target != path and path.exists():
        path.unlink()
    target.write_bytes(corrupt(records, keys))
    return target
