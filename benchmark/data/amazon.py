"""Amazon Reviews, Electronics: both published layouts, detected automatically.

2018 (Ni, Li & McAuley, https://nijianmo.github.io/amazon/): ``Electronics_5.json`` (the
5-core file, preferred when present) or ``Electronics.json`` (all reviews; keys
reviewerID, asin, overall, unixReviewTime, reviewText, summary, style, vote, image) and
``meta_Electronics.json`` (asin, title, brand, category list, feature, description,
price such as "$12.99" or "", rank, imageURL/imageURLHighRes, also_buy, also_view).

2023 (Hou et al., https://amazon-reviews-2023.github.io/): ``Electronics.jsonl`` (user_id,
parent_asin, rating, timestamp in milliseconds, text, title, images) and
``meta_Electronics.jsonl`` (parent_asin, title, store, categories, features,
description, price, average_rating, rating_number, images).

Every file may be plain or gzip-compressed (``.gz`` suffix or not: the content decides),
and the schema is recognised from the keys of the first line, not from the file name.
Items are ``asin`` (2018) / ``parent_asin`` (2023); interactions are reviews.

Quirks handled: HTML entities in titles and categories (``&amp;``) are decoded; prices
are parsed from strings ("$1,299.00" -> 1299.0, ranges -> their lower bound, "" or
non-prices -> NaN); list-or-dict fields (2023 ``images``, 2018 ``style``, which is a
list in the sample and a dict in the full file) are normalised or ignored; missing keys
give empty values; metadata lines repeating an earlier line exactly (the 2018 files
contain such repeats) are dropped, a conflicting repeated asin is a bad line; a repeated
(user, item) review is kept once by the preparation (first in time, counted in
``duplicates_removed``).

Side information per item (columns of ``RawData.items``): ``title``, ``brand`` (2023:
``store``), ``categories`` (list), ``description``, ``features`` (text), ``price``
(float, NaN when unknown), ``image_urls`` (list). Review texts are NOT aggregated into
item side information (future reviews would leak into training): ``read_review_texts``
returns them per interaction, in file order.

Never read (``WHOLE_PERIOD_FIELDS``): the sales rank (2018 ``rank``, 2014 ``salesRank``),
the co-purchase lists (``also_buy``, ``also_view``, 2014 ``related``: ``also_bought``,
``also_viewed``, ``bought_together``) and the 2023 ``average_rating`` / ``rating_number``
are computed by Amazon over the whole period, validation and test interactions
included, so no feature, prompt or retrieval snippet may see them (DESIGN.md, validity
rules).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data import jsonl
from benchmark.data.jsonl import ID, INT, LIST_OR_DICT, NUMBER, PRICE, TEXT, TEXT_OR_LIST, Records, Source
from benchmark.data.raw import RATING_RANGE, TIMESTAMP_RANGE, RawData, bad_ratings, bad_timestamps
from benchmark.errors import BenchmarkError, reading

WHOLE_PERIOD_FIELDS = ("rank", "sales_rank", "salesRank", "also_buy", "also_view", "related", "also_bought", "also_viewed",
                       "bought_together", "average_rating", "rating_number")
REVIEW_FILES = ("Electronics_5.json", "Electronics.json", "Electronics.jsonl")
META_FILES = ("meta_Electronics.json", "meta_Electronics.jsonl")
WHERE_TO_GET = (
    "Download Electronics_5.json.gz (or Electronics.json.gz) and meta_Electronics.json.gz from "
    "https://nijianmo.github.io/amazon/ (2018), or Electronics.jsonl.gz and meta_Electronics.jsonl.gz from "
    "https://amazon-reviews-2023.github.io/ (2023); plain or .gz files both work."
)

_MS_RANGE = "a time from 1970-01-01 to 2100-01-01 (Unix milliseconds 0 to 4102444799999)"
_REVIEWS_2018 = {"reviewerID": ID, "asin": ID, "overall": NUMBER, "unixReviewTime": INT}
_REVIEWS_2023 = {"user_id": ID, "parent_asin": ID, "rating": NUMBER, "timestamp": INT}
_META_2018 = {
    "asin": ID, "title": TEXT, "brand": TEXT, "category": TEXT_OR_LIST, "main_cat": TEXT, "description": TEXT_OR_LIST,
    "feature": TEXT_OR_LIST, "price": PRICE, "imageURL": TEXT_OR_LIST, "imageURLHighRes": TEXT_OR_LIST,
}  # fmt: skip
_META_2023 = {
    "parent_asin": ID, "title": TEXT, "store": TEXT, "main_category": TEXT, "categories": TEXT_OR_LIST,
    "description": TEXT_OR_LIST, "features": TEXT_OR_LIST, "price": PRICE, "images": LIST_OR_DICT,
}  # fmt: skip


def _candidates(raw_dir: Path, name: str) -> list[Path]:
    return [raw_dir / n for n in (name, name + ".gz")]


def locate(raw_dir: Path) -> list[Path] | None:
    """The review file and the metadata file of ``raw_dir``, or None when either is missing."""
    with reading(raw_dir):  # an unreadable raw folder: one paragraph, not a traceback
        reviews = next((p for n in REVIEW_FILES for p in _candidates(raw_dir, n) if p.is_file()), None)
        if reviews is None:
            return None
        preferred = META_FILES if not reviews.name.startswith("Electronics.jsonl") else META_FILES[::-1]
        meta = next((p for n in preferred for p in _candidates(raw_dir, n) if p.is_file()), None)
    return None if meta is None else [reviews, meta]


def _layout(source: Source) -> str:
    """'2018' or '2023' from the keys of the first line."""
    for _, line in jsonl.iter_lines(source):
        head = line[:4096]
        if b'"reviewerID"' in head or b'"unixReviewTime"' in head or b'"imageURL' in head or b'"also_buy"' in head:
            return "2018"
        if b'"parent_asin"' in head or b'"user_id"' in head:
            return "2023"
        if b'"asin"' in head:
            return "2018"
        return "2023"
    return "2018"  # unreachable: iter_lines raises for an empty file


def _reviews(raw_dir: Path, on_bad_line: str, with_text: bool = False) -> tuple[Records, str, Source, Source]:
    files = locate(raw_dir)
    if files is None:
        raise BenchmarkError(f"amazon-electronics: no review file ({', '.join(REVIEW_FILES)}) with its metadata "
                             f"({', '.join(META_FILES)}) in {raw_dir}. {WHERE_TO_GET}")  # fmt: skip
    source, meta = Source(files[0]), Source(files[1])
    layout = _layout(source)
    fields = dict(_REVIEWS_2018 if layout == "2018" else _REVIEWS_2023)
    if with_text:
        fields.update({"summary": TEXT, "reviewText": TEXT} if layout == "2018" else {"title": TEXT, "text": TEXT})
    skip = on_bad_line == "skip"
    rating = "overall" if layout == "2018" else "rating"
    stamp = "unixReviewTime" if layout == "2018" else "timestamp"
    per_second = 1 if layout == "2018" else 1000  # the 2023 files give milliseconds
    stamp_range = TIMESTAMP_RANGE if layout == "2018" else _MS_RANGE

    def post(records: Records) -> Records:
        records = jsonl.reject(source, records, bad_ratings(records.columns[rating]), RATING_RANGE, rating, skip)
        return jsonl.reject(source, records, bad_timestamps(records.columns[stamp] // per_second), stamp_range, stamp, skip)

    records = jsonl.read_fast_or_precise(source, fields, required=tuple(list(fields)[:4]), on_bad_line=on_bad_line, post=post)
    return records, layout, source, meta


def read_amazon(raw_dir: Path, on_bad_line: str = "error") -> RawData:
    raw_dir = Path(raw_dir)
    records, layout, source, meta_source = _reviews(raw_dir, on_bad_line)
    c = records.columns
    if layout == "2018":
        user, item, rating, timestamp = c["reviewerID"], c["asin"], c["overall"], c["unixReviewTime"]
    else:
        user, item, rating, timestamp = c["user_id"], c["parent_asin"], c["rating"], c["timestamp"] // 1000
    items, skipped_meta = read_meta(meta_source, on_bad_line, set(pd.unique(item.astype(object))))
    return RawData(
        user=user,
        item=item,
        timestamp=timestamp.astype(np.int64),
        rating=rating.astype(np.float32),
        items=items,
        skipped_lines=records.skipped + skipped_meta,
    )


def read_review_texts(raw_dir: Path, on_bad_line: str = "error") -> pd.DataFrame:
    """Per-interaction review texts (user, item, timestamp, summary, text) in file order.

    The same lines as ``read_amazon`` keeps; for text features restricted to the
    training period (never aggregate them over the whole file into item side information).
    """
    records, layout, _, _ = _reviews(Path(raw_dir), on_bad_line, with_text=True)
    c = records.columns
    if layout == "2018":
        cols = {"user": c["reviewerID"], "item": c["asin"], "timestamp": c["unixReviewTime"], "summary": c["summary"], "text": c["reviewText"]}
    else:
        cols = {"user": c["user_id"], "item": c["parent_asin"], "timestamp": c["timestamp"] // 1000, "summary": c["title"], "text": c["text"]}
    frame = pd.DataFrame(cols)
    frame["summary"] = frame["summary"].fillna("").map(_unescape)
    frame["text"] = frame["text"].fillna("").map(_unescape)
    return frame


def read_meta(source: Source, on_bad_line: str, wanted: set[str] | None = None) -> tuple[pd.DataFrame, int]:
    """Item side information from a metadata file (either layout), restricted to ``wanted`` ids."""
    layout = _layout(source)
    fields = _META_2018 if layout == "2018" else _META_2023
    key = "asin" if layout == "2018" else "parent_asin"
    keep = None if wanted is None else (lambda obj: obj[key] in wanted)
    records = jsonl.read_records(
        source, fields, required=(key,), on_bad_line=on_bad_line, unique=key, identical_duplicates_ok=True, keep=keep
    )
    c = records.columns
    n = len(records)
    if layout == "2018":
        images = [_as_list(hi) or _as_list(lo) for hi, lo in zip(c["imageURLHighRes"], c["imageURL"])]
        items = pd.DataFrame(
            {
                "title": [_unescape(t) for t in c["title"]],
                "brand": [_unescape(b) for b in c["brand"]],
                "categories": [[_unescape(x) for x in _as_list(v)] for v in c["category"]],
                "main_category": [_unescape(v) for v in c["main_cat"]],
                "description": [_as_text(v) for v in c["description"]],
                "features": [_as_text(v) for v in c["feature"]],
                "price": np.array([parse_price(v) for v in c["price"]], dtype=np.float64),
                "image_urls": images,
            },
            index=pd.Index(c[key].astype(object), name="raw_id"),
        )
    else:
        items = pd.DataFrame(
            {
                "title": [_unescape(t) for t in c["title"]],
                "brand": [_unescape(b) for b in c["store"]],
                "categories": [[_unescape(x) for x in _as_list(v)] for v in c["categories"]],
                "main_category": [_unescape(v) for v in c["main_category"]],
                "description": [_as_text(v) for v in c["description"]],
                "features": [_as_text(v) for v in c["features"]],
                "price": np.array([parse_price(v) for v in c["price"]], dtype=np.float64),
                "image_urls": [_image_urls(v) for v in c["images"]],
            },
            index=pd.Index(c[key].astype(object), name="raw_id"),
        )
    assert len(items) == n
    return items, records.skipped


# --- value normalisation ---------------------------------------------------------------

_PRICE = re.compile(r"\$?\s*(\d[\d,]*(?:\.\d+)?)")


def parse_price(value: Any) -> float:
    """"$1,299.99" -> 1299.99; "$3.99 - $5.99" -> 3.99; "", None, HTML/CSS junk -> NaN."""
    if value is None or isinstance(value, bool):
        return float("nan")
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else float("nan")
    text = value.strip()
    if not text or len(text) > 40 or "{" in text:
        return float("nan")
    match = _PRICE.match(text)
    return float(match.group(1).replace(",", "")) if match else float("nan")


def _unescape(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return html.unescape(text).strip() if "&" in text else text.strip()


def _as_list(value: Any) -> list[str]:
    """A list of non-empty strings from a list, a dict (its values), a string or None."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, dict):
        value = list(value.values())
    out = []
    for v in value:
        if isinstance(v, str):
            if v.strip():
                out.append(v.strip())
        elif isinstance(v, (list, dict)):
            out.extend(_as_list(v))
        elif v is not None:
            out.append(str(v))
    return out


def _as_text(value: Any) -> str:
    return "\n".join(_unescape(v) for v in _as_list(value))


def _image_urls(value: Any) -> list[str]:
    """2023 ``images``: a list of {thumb, large, hi_res, variant} or a dict of lists."""
    if value is None:
        return []
    if isinstance(value, dict):
        for key in ("hi_res", "large", "thumb"):
            urls = [u for u in _as_list(value.get(key)) if u.startswith("http")]
            if urls:
                return urls
        return []
    out = []
    for entry in value:
        if isinstance(entry, dict):
            url = entry.get("hi_res") or entry.get("large") or entry.get("thumb")
            if isinstance(url, str) and url:
                out.append(url)
        elif isinstance(entry, str) and entry:
            out.append(entry)
    return out



