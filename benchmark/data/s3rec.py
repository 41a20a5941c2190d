"""The S3-Rec sequence format: the field's full-ranking benchmark files (Amazon 2014, Yelp).

Files, as published with S3-Rec (Zhou et al., CIKM 2020) and reused unchanged by ICLRec,
DuoRec, CL4SRec, TIGER, eSASRec and others:

- ``<Name>.txt`` (required): one line per user, ``user_id item_id item_id ...``,
  space-separated positive integers, the user's items oldest first. There are no
  timestamps and no ratings: every listed item is one implicit interaction and its
  position in the line is its time order.
- ``<Name>_item2attributes.json`` (optional): ``{"item_id": [attribute_id, ...]}``,
  anonymous attribute ids (brand and categories for Beauty, categories for Sports/Yelp).
- ``<Name>_items.tsv`` (optional, tab-separated with a header): ``item_id`` plus
  ``asin``/``business_id``, ``brand_and_categories`` or ``categories`` (`` | ``-separated)
  and ``title_words`` / ``name_and_category_words`` (a few words of the title or name).

Side information per item (``RawData.items``): ``attribute_ids`` (list of attribute ids
as strings, ``a<id>``), ``categories`` (named categories where the TSV has them, else the
attribute ids: the published attribute file is the only category information of Sports),
``brand`` (Beauty: the first ``brand_and_categories`` entry when it is a brand, i.e. a
value that never appears after the first position of any item's list; "Unknown" is no
brand; HTML entities decoded), ``title`` (the
title or name words) and the source id (``asin`` / ``business_id``).

Time: the position of an interaction in its line (0, 1, ...) becomes its timestamp, so
the chronological order per user is exactly the file's; positions of different users are
not comparable, so the splits that need a global clock (``temporal``) or real time
(``ratio``, streaming) are refused (``HAS_TIMESTAMPS``). ``loo`` is the published protocol.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.raw import RawData
from benchmark.errors import DataFormatError

HAS_TIMESTAMPS = False


def read_s3rec(raw_dir: Path, name: str, on_bad_line: str = "error") -> RawData:
    """Read ``<name>.txt`` (and its side-information files when present) from ``raw_dir``."""
    raw_dir = Path(raw_dir)
    users, items, positions, skipped = _read_sequences(raw_dir / f"{name}.txt", on_bad_line)
    table = _item_table(raw_dir, name, on_bad_line)
    return RawData(
        user=users,
        item=items,
        timestamp=positions,
        rating=np.full(len(users), np.nan, dtype=np.float32),
        items=table,
        skipped_lines=skipped,
    )


def _read_sequences(path: Path, on_bad_line: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    seen_users: set[int] = set()
    skipped = 0
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields:
                continue  # blank lines carry nothing (a trailing newline)
            problem = _check_line(fields, seen_users)
            if problem is not None:
                if on_bad_line == "skip":
                    skipped += 1
                    continue
                raise DataFormatError(path, number, problem, line.decode("utf-8", errors="replace").strip()[:80])
            values = np.array(fields, dtype=np.int64)
            seen_users.add(int(values[0]))
            users.append(np.full(len(values) - 1, values[0]))
            items.append(values[1:])
    if not users:
        raise DataFormatError(path, None, "at least one line 'user_id item_id item_id ...'", "no interactions")
    lengths = np.array([len(v) for v in items])
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.arange(int(lengths.sum()), dtype=np.int64) - starts
    return np.concatenate(users), np.concatenate(items), positions, skipped


def _check_line(fields: list[bytes], seen_users: set[int]) -> str | None:
    """What is wrong with one line, or None."""
    if len(fields) < 2:
        return "'user_id item_id [item_id ...]' (a user id and at least one item id)"
    if not all(f.isdigit() and len(f) <= 18 for f in fields):
        return "positive integer ids separated by spaces"
    if int(fields[0]) in seen_users:
        return "one line per user (this user id has an earlier line)"
    return None


def _item_table(raw_dir: Path, name: str, on_bad_line: str) -> pd.DataFrame:
    """Side information indexed by raw item id (empty frame when neither file exists)."""
    frame = pd.DataFrame(index=pd.Index([], dtype=np.int64, name="raw_id"))
    tsv = raw_dir / f"{name}_items.tsv"
    if tsv.is_file():
        frame = _read_items_tsv(tsv, on_bad_line)
    attributes_path = raw_dir / f"{name}_item2attributes.json"
    if attributes_path.is_file():
        attributes = _read_attributes(attributes_path)
        frame = frame.reindex(frame.index.union(attributes.index))
        frame.index.name = "raw_id"
        frame["attribute_ids"] = attributes.reindex(frame.index).map(lambda v: v if isinstance(v, list) else [])
        if "categories" not in frame:
            frame["categories"] = frame["attribute_ids"]
    for column in ("categories", "attribute_ids"):
        if column in frame:
            frame[column] = frame[column].map(lambda v: v if isinstance(v, list) else [])
    return frame


def _read_attributes(path: Path) -> pd.Series:
    try:
        content = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise DataFormatError(path, None, 'a JSON object {"item_id": [attribute_id, ...]}', str(exc)[:80]) from None
    if not isinstance(content, dict):
        raise DataFormatError(path, None, 'a JSON object {"item_id": [attribute_id, ...]}', type(content).__name__)
    ids, values = [], []
    for key, value in content.items():
        if not (isinstance(key, str) and key.isdigit()) or not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise DataFormatError(path, None, "integer item ids mapped to lists of integer attribute ids", f"{key}: {str(value)[:40]}")
        ids.append(int(key))
        values.append([f"a{v}" for v in value])
    return pd.Series(values, index=pd.Index(ids, dtype=np.int64, name="raw_id"), dtype=object)


def _read_items_tsv(path: Path, on_bad_line: str) -> pd.DataFrame:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise DataFormatError(path, 1, "a header line starting with item_id", "an empty file")
    header = lines[0].split("\t")
    if header[0] != "item_id":
        raise DataFormatError(path, 1, "a header line starting with item_id", lines[0][:80])
    rows, skipped = [], 0
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(header) or not cells[0].isdigit():
            if on_bad_line == "skip":
                skipped += 1
                continue
            raise DataFormatError(path, number, f"{len(header)} tab-separated fields starting with an integer item_id", line[:80])
        rows.append(cells)
    frame = pd.DataFrame(rows, columns=header)
    frame.index = pd.Index(frame.pop("item_id").astype(np.int64), name="raw_id")
    if frame.index.duplicated().any():
        first = frame.index[frame.index.duplicated()][0]
        raise DataFormatError(path, None, "one line per item_id", f"item_id {first} twice")
    out = pd.DataFrame(index=frame.index)
    for column in ("asin", "business_id"):
        if column in frame:
            out[column] = frame[column].to_numpy()
    lists = None
    if "brand_and_categories" in frame:
        lists = frame["brand_and_categories"].map(_split)
        out["brand"], out["categories"] = _brand_and_categories(lists)
    elif "categories" in frame:
        out["categories"] = frame["categories"].map(_split)
    for column in ("title_words", "name_and_category_words"):
        if column in frame:
            out["title"] = frame[column].str.strip().to_numpy()
            break
    return out


def _split(value: str) -> list[str]:
    return [html.unescape(part.strip()) for part in str(value).split("|") if part.strip()]


def _brand_and_categories(lists: pd.Series) -> tuple[list[str | None], list[list[str]]]:
    """Beauty's ``brand | cat | cat ...`` lists: the first entry is the brand iff that value
    never appears after the first position of any list (categories do: they follow brands)."""
    later = {value for values in lists for value in values[1:]}
    brands, categories = [], []
    for values in lists:
        if values and values[0] not in later:
            brands.append(None if values[0] == "Unknown" else html.unescape(values[0]))
            categories.append(values[1:])
        else:
            brands.append(None)
            categories.append(list(values))
    return brands, categories
