"""Yelp Open Dataset (https://www.yelp.com/dataset): businesses are items, reviews interactions.

Files (JSON lines, as published): ``yelp_academic_dataset_review.json`` (review_id,
user_id, business_id, stars, useful, funny, cool, text, date "YYYY-MM-DD HH:MM:SS") and
``yelp_academic_dataset_business.json`` (business_id, name, address, city, state,
postal_code, latitude, longitude, stars, review_count, is_open, attributes, categories
"A, B, C", hours) are required; ``photos.json`` (+ a ``photos/`` folder of
``<photo_id>.jpg``) is optional. ``yelp_academic_dataset_user.json`` is not needed (user
side information is not part of ``RawData``). The files may be plain or gzip-compressed,
or still inside the downloaded archive (``yelp_dataset.tar``, ``yelp_photos.tar``): a
tar in the raw folder is read in place, member by member, without extracting it;
``extract_archive`` unpacks one safely (no paths outside the target, no links/devices).

Side information per business (``RawData.items``): ``title`` (the name), ``categories``
(list), ``city``, ``state``, ``postal_code``, ``latitude``, ``longitude``, ``attributes`` (the raw attributes as a JSON string, with the stringified
Python values of the raw file -- ``"u'free'"``, ``"{'garage': False, ...}"`` -- parsed),
``tags`` (list: ``"BikeParking"`` for true flags, ``"WiFi=free"`` for values,
``"BusinessParking=lot"`` for true entries of nested dicts), ``price`` (the
``RestaurantsPriceRange2`` level 1-4, NaN when unknown), ``photo_ids`` and
``image_paths`` (when ``photos.json`` / ``photos/`` exist). Review texts are NOT
aggregated into item side information (future reviews would leak into training):
``read_review_texts`` returns them per interaction, in file order. Timestamps: the
``date`` field (local time of the business) read as if UTC.

Never read (``WHOLE_PERIOD_FIELDS``): the business file's ``stars``, ``review_count`` and
``is_open`` are Yelp's snapshot at release time, computed over every review including
those of the validation and test periods (and whether the business closed since), so
no feature, prompt or retrieval snippet may see them (DESIGN.md, validity rules).
"""

from __future__ import annotations

import ast
import json
import tarfile
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data import jsonl
from benchmark.data.jsonl import DATE, DICT, ID, NUMBER, TEXT, TEXT_OR_LIST, Records, Source
from benchmark.data.raw import RATING_RANGE, TIMESTAMP_RANGE, RawData, bad_ratings, bad_timestamps
from benchmark.errors import BenchmarkError, cannot_read, reading

REVIEW = "yelp_academic_dataset_review.json"
BUSINESS = "yelp_academic_dataset_business.json"
PHOTOS = "photos.json"
REQUIRED_FILES = (REVIEW, BUSINESS)
WHOLE_PERIOD_FIELDS = ("stars", "review_count", "is_open")
WHERE_TO_GET = (
    "Get the Yelp Open Dataset from https://www.yelp.com/dataset (you must accept Yelp's Dataset Terms of Use: "
    "academic, non-commercial use; it cannot be downloaded for you) and put yelp_academic_dataset_review.json and "
    "yelp_academic_dataset_business.json (or the downloaded yelp_dataset.tar; optionally yelp_photos.tar or "
    "photos.json with its photos/ folder) in the raw folder."
)
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")

_REVIEW_FIELDS = {"review_id": ID, "user_id": ID, "business_id": ID, "stars": NUMBER, "date": DATE}
_BUSINESS_FIELDS = {
    "business_id": ID, "name": TEXT, "city": TEXT, "state": TEXT, "postal_code": TEXT, "latitude": NUMBER,
    "longitude": NUMBER, "attributes": DICT,
    "categories": TEXT_OR_LIST,
}  # fmt: skip
_PHOTO_FIELDS = {"photo_id": ID, "business_id": ID, "caption": TEXT, "label": TEXT}


# --- locating the files ----------------------------------------------------------------


def _plain(raw_dir: Path, name: str) -> Path | None:
    return next((p for p in (raw_dir / name, raw_dir / (name + ".gz")) if p.is_file()), None)


@lru_cache(maxsize=16)
def _tar_members(tar: Path, size: int, mtime: int) -> dict[str, str]:
    """basename -> member name of the regular files in a tar (cached per file version)."""
    try:
        with tarfile.open(tar, "r:*") as archive:
            return {Path(m.name).name: m.name for m in archive if m.isfile()}
    except OSError as exc:
        if exc.errno is not None:
            raise cannot_read(tar, exc) from None
        raise jsonl.unreadable_archive(tar, exc) from None  # gzip's complaint (a failed CRC), not an OS error
    except (tarfile.TarError, zlib.error, EOFError) as exc:  # a .tar.gz with damaged deflate data, a cut tar
        raise jsonl.unreadable_archive(tar, exc) from None


def _in_tars(raw_dir: Path, name: str) -> Source | None:
    if not raw_dir.is_dir():
        return None
    for tar in sorted(p for p in raw_dir.iterdir() if p.is_file() and p.name.endswith(_TAR_SUFFIXES)):
        stat = tar.stat()
        members = _tar_members(tar, stat.st_size, stat.st_mtime_ns)
        for candidate in (name, name + ".gz"):
            if candidate in members:
                return Source(tar, members[candidate])
    return None


def sources(raw_dir: Path) -> dict[str, Source]:
    """The review, business and (optional) photos files, plain/.gz in ``raw_dir`` or inside a tar there."""
    raw_dir = Path(raw_dir)
    found: dict[str, Source] = {}
    with reading(raw_dir):  # an unreadable raw folder: one paragraph, not a traceback
        for name in (REVIEW, BUSINESS, PHOTOS):
            plain = _plain(raw_dir, name)
            source = Source(plain) if plain is not None else _in_tars(raw_dir, name)
            if source is not None:
                found[name] = source
    return found


def locate(raw_dir: Path) -> list[Path] | None:
    """Files whose content defines the dataset (for the fingerprint); None when incomplete."""
    found = sources(raw_dir)
    if not all(name in found for name in REQUIRED_FILES):
        return None
    return sorted({s.path for s in found.values()})


def extract_archive(tar: Path, dest: Path) -> list[Path]:
    """Unpack a downloaded archive safely: only regular files and folders, only inside ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar, "r:*") as archive:
        members = [m for m in archive if m.isfile() or m.isdir()]
        archive.extractall(dest, members=members, filter="data")
    return [dest / m.name for m in members if m.isfile()]


# --- reading ---------------------------------------------------------------------------


def _missing(raw_dir: Path) -> BenchmarkError:
    return BenchmarkError(f"yelp: {', '.join(REQUIRED_FILES)} not found in {raw_dir}. {WHERE_TO_GET}")


def _reviews(raw_dir: Path, on_bad_line: str, with_text: bool = False) -> tuple[Records, np.ndarray, dict[str, Source]]:
    found = sources(raw_dir)
    if REVIEW not in found or BUSINESS not in found:
        raise _missing(raw_dir)
    source = found[REVIEW]
    skip = on_bad_line == "skip"
    fields = dict(_REVIEW_FIELDS, **({"text": TEXT} if with_text else {}))

    def post(records: Records) -> Records:
        records = jsonl.reject(source, records, bad_ratings(records.columns["stars"]), RATING_RANGE, "stars", skip)
        records = jsonl.reject(source, records, records.columns["date"] == jsonl.NAT, "a date in the calendar", "date", skip)
        return jsonl.reject(source, records, bad_timestamps(records.columns["date"]), TIMESTAMP_RANGE, "date", skip)

    records = jsonl.read_fast_or_precise(source, fields, required=tuple(_REVIEW_FIELDS), on_bad_line=on_bad_line, unique="review_id", post=post)
    return records, records.columns["date"], found


def read_yelp(raw_dir: Path, on_bad_line: str = "error") -> RawData:
    raw_dir = Path(raw_dir)
    records, timestamp, found = _reviews(raw_dir, on_bad_line)
    items, skipped = read_businesses(found[BUSINESS], on_bad_line)
    if PHOTOS in found:
        photos, n = read_photos(found[PHOTOS], on_bad_line, raw_dir / "photos")
        skipped += n
        items = items.join(photos, how="left")
        for column in ("photo_ids", "image_paths"):
            items[column] = items[column].map(lambda v: v if isinstance(v, list) else [])
    c = records.columns
    return RawData(
        user=c["user_id"],
        item=c["business_id"],
        timestamp=timestamp,
        rating=c["stars"].astype(np.float32),
        items=items,
        skipped_lines=records.skipped + skipped,
    )


def read_review_texts(raw_dir: Path, on_bad_line: str = "error") -> pd.DataFrame:
    """Per-interaction review texts (user, item, timestamp, text), in file order.

    The same lines as ``read_yelp`` keeps; for text features restricted to the training
    period (never aggregate them over the whole file into item side information).
    """
    records, timestamp, _ = _reviews(Path(raw_dir), on_bad_line, with_text=True)
    c = records.columns
    return pd.DataFrame({"user": c["user_id"], "item": c["business_id"], "timestamp": timestamp, "text": c["text"]})


def read_businesses(source: Source, on_bad_line: str) -> tuple[pd.DataFrame, int]:
    records = jsonl.read_records(
        source, _BUSINESS_FIELDS, required=("business_id",), on_bad_line=on_bad_line, unique="business_id"
    )
    c = records.columns
    parsed = [_parse_attributes(a) for a in c["attributes"]]
    items = pd.DataFrame(
        {
            "title": [_text(s) for s in c["name"]],
            "categories": [_categories(v) for v in c["categories"]],
            "city": [_text(s) for s in c["city"]],
            "state": [_text(s) for s in c["state"]],
            "postal_code": c["postal_code"],
            "latitude": c["latitude"],
            "longitude": c["longitude"],
            "attributes": [json.dumps(a, sort_keys=True) if a else "" for a, _ in parsed],
            "tags": [t for _, t in parsed],
            "price": np.array([_price_level(a) for a, _ in parsed], dtype=np.float64),
        },
        index=pd.Index(c["business_id"].astype(object), name="raw_id"),
    )
    return items, records.skipped


def read_photos(source: Source, on_bad_line: str, folder: Path) -> tuple[pd.DataFrame, int]:
    records = jsonl.read_records(source, _PHOTO_FIELDS, required=("photo_id", "business_id"), on_bad_line=on_bad_line, unique="photo_id")
    frame = pd.DataFrame({"business_id": records.columns["business_id"].astype(object), "photo_id": records.columns["photo_id"].astype(object)})
    with reading(folder):
        present = {p.stem for p in folder.iterdir()} if folder.is_dir() else None
    if present is not None:
        frame["path"] = [str(folder / f"{p}.jpg") if p in present else None for p in frame["photo_id"]]
    else:
        frame["path"] = None
    grouped = frame.groupby("business_id", sort=False)
    out = pd.DataFrame(
        {
            "photo_ids": grouped["photo_id"].agg(list),
            "image_paths": grouped["path"].agg(lambda v: [p for p in v if isinstance(p, str)]),
        }
    )
    out.index.name = "raw_id"
    return out, records.skipped


def _text(value: str | None) -> str:
    return value.strip() if value is not None else ""  # a missing or null key: no text


# --- attribute values: stringified Python literals in the raw file ----------------------


def _categories(value: Any) -> list[str]:
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [p.strip() for p in parts if p.strip()]


_LITERALS = {"True": True, "False": False, "None": None, "": None}


@lru_cache(maxsize=65536)
def _literal(text: str) -> Any:
    """``"True"`` -> True, ``"u'free'"`` -> "free", ``"{'lot': True}"`` -> dict; other text as is."""
    if text in _LITERALS:
        return _LITERALS[text]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items() if isinstance(v, (bool, int, float, str)) or v is None}
    return value if isinstance(value, (bool, int, float, str)) or value is None else text


def _parse_attributes(raw: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    if not raw:
        return {}, []
    parsed: dict[str, Any] = {}
    tags: list[str] = []
    for key, value in raw.items():
        value = _literal(value) if isinstance(value, str) else value
        parsed[key] = value
        if value is True:
            tags.append(key)
        elif isinstance(value, dict):
            tags.extend(f"{key}={k}" for k, v in value.items() if v is True)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).lower() not in ("none", "no", ""):
            tags.append(f"{key}={value}")
    return parsed, tags


def _price_level(attributes: dict[str, Any]) -> float:
    value = attributes.get("RestaurantsPriceRange2")
    try:
        level = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
    return level if 1 <= level <= 4 else float("nan")
