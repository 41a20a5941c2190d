"""Amazon Reviews, any category: the three published layouts, detected automatically.

A dataset ``amazon-<category>`` reads the files of that category (``amazon-electronics``:
``Electronics``, ``amazon-musical-instruments``: ``Musical_Instruments``); file names are
matched case-insensitively, spaces, hyphens and underscores alike (``category_key``).

2014 (McAuley et al., https://jmcauley.ucsd.edu/data/amazon/): ``reviews_<Category>_5.json``
(the 5-core file, preferred) or ``reviews_<Category>.json`` (keys reviewerID, asin, overall,
unixReviewTime, reviewText, summary, helpful: the 2018 keys without verified, vote, style,
image) and ``meta_<Category>.json``, whose lines are Python dict literals, not JSON
(single quotes; read with ``ast.literal_eval``, never ``eval``, with bounded size and
nesting; a copy converted to strict JSON reads the same): asin, title, price (a number),
imUrl, brand, categories (a list of category paths), description, salesRank, related.

2018 (Ni, Li & McAuley, https://nijianmo.github.io/amazon/): ``<Category>_5.json`` (the
5-core file, preferred when present) or ``<Category>.json`` (all reviews; keys
reviewerID, asin, overall, unixReviewTime, reviewText, summary, style, vote, image) and
``meta_<Category>.json`` (asin, title, brand, category list, feature, description,
price such as "$12.99" or "", rank, imageURL/imageURLHighRes, also_buy, also_view).

2023 (Hou et al., https://amazon-reviews-2023.github.io/): ``<Category>.jsonl`` (user_id,
parent_asin, rating, timestamp in milliseconds, text, title, images) and
``meta_<Category>.jsonl`` (parent_asin, title, store, categories, features,
description, price, average_rating, rating_number, images).

Every file may be plain or gzip-compressed (``.gz`` suffix or not: the content decides),
and the schema is recognised from the first line, not from the file name. The metadata
file is optional in every layout: without it the items table is empty. Items are
``asin`` (2014, 2018) / ``parent_asin`` (2023); interactions are reviews.

Quirks handled: HTML entities in titles and categories (``&amp;``) are decoded; prices
are parsed from strings ("$1,299.00" -> 1299.0, ranges -> their lower bound, "" or
non-prices -> NaN); list-or-dict fields (2023 ``images``, 2018 ``style``, which is a
list in the sample and a dict in the full file) are normalised or ignored; missing keys
give empty values; metadata lines repeating an earlier line exactly (the 2018 files
contain such repeats) are dropped, a conflicting repeated asin is a bad line; a repeated
(user, item) review is kept once by the preparation (first in time, counted in
``duplicates_removed``).

Side information per item (columns of ``RawData.items``): ``title``, ``brand`` (2023:
``store``), ``categories`` (list; 2014: the category paths flattened, repeats dropped),
``main_category``, ``description``, ``features`` (text), ``price`` (float, NaN when
unknown), ``image_urls`` (list). Review texts are NOT aggregated into item side
information (future reviews would leak into training): ``read_review_texts`` returns
them per interaction, in file order.

Never read (``WHOLE_PERIOD_FIELDS``): the sales rank (2018 ``rank``, 2014 ``salesRank``),
the co-purchase lists (``also_buy``, ``also_view``, 2014 ``related``: ``also_bought``,
``also_viewed``, ``bought_together``) and the 2023 ``average_rating`` / ``rating_number``
are computed by Amazon over the whole period, validation and test interactions
included, so no feature, prompt or retrieval snippet may see them (DESIGN.md, validity
rules).
"""

from __future__ import annotations

import ast
import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from benchmark.data import jsonl
from benchmark.data.names import category_key, is_category  # noqa: F401 (re-exported)
from benchmark.data.jsonl import ID, INT, LIST, LIST_OR_DICT, NUMBER, PRICE, TEXT, TEXT_OR_LIST, FieldError, Records, Source
from benchmark.data.raw import RATING_RANGE, TIMESTAMP_RANGE, RawData, bad_ratings, bad_timestamps
from benchmark.errors import BenchmarkError, reading

WHOLE_PERIOD_FIELDS = ("rank", "sales_rank", "salesRank", "also_buy", "also_view", "related", "also_bought", "also_viewed",
                       "bought_together", "average_rating", "rating_number")
DEFAULT_CATEGORY = "Electronics"
# a category's review files in order of preference (5-core first; 2018 and 2023 before 2014,
# as before 2014 was read); "{}" is the file stem of the category
REVIEW_NAMES = ("{}_5.json", "{}.json", "{}.jsonl", "reviews_{}_5.json", "reviews_{}.json")
META_NAMES = ("meta_{}.json", "meta_{}.jsonl")
_SEPARATORS = re.compile(r"[\s_\-]+")
_SMALL_WORDS = {"a", "and", "for", "in", "of", "on", "or", "the"}


def file_stem(category: str) -> str:
    """The published spelling of a category's file stem, for messages ("musical-instruments"
    -> "Musical_Instruments"); the lookup itself ignores case."""
    words = [w for w in _SEPARATORS.split(category.strip()) if w]
    if any(c.isupper() for c in category):
        return "_".join(words)
    return "_".join(w if i and w in _SMALL_WORDS else w.capitalize() for i, w in enumerate(words))


def where_to_get(category: str = DEFAULT_CATEGORY) -> str:
    stem = file_stem(category)
    return (
        f"Download reviews_{stem}_5.json.gz (or reviews_{stem}.json.gz) and optionally meta_{stem}.json.gz from "
        f"https://jmcauley.ucsd.edu/data/amazon/ (2014), {stem}_5.json.gz (or {stem}.json.gz) and optionally "
        f"meta_{stem}.json.gz from https://nijianmo.github.io/amazon/ (2018), or {stem}.jsonl.gz and optionally "
        f"meta_{stem}.jsonl.gz from https://amazon-reviews-2023.github.io/ (2023); plain or .gz files both work, and "
        "names match case-insensitively (spaces, hyphens and underscores alike)."
    )


WHERE_TO_GET = where_to_get()
_MS_RANGE = "a time from 1970-01-01 to 2100-01-01 (Unix milliseconds 0 to 4102444799999)"
_REVIEWS_2018 = {"reviewerID": ID, "asin": ID, "overall": NUMBER, "unixReviewTime": INT}
_REVIEWS_2023 = {"user_id": ID, "parent_asin": ID, "rating": NUMBER, "timestamp": INT}
_META_2018 = {
    "asin": ID, "title": TEXT, "brand": TEXT, "category": TEXT_OR_LIST, "main_cat": TEXT, "description": TEXT_OR_LIST,
    "feature": TEXT_OR_LIST, "price": PRICE, "imageURL": TEXT_OR_LIST, "imageURLHighRes": TEXT_OR_LIST,
}  # fmt: skip
# 2014: price is a number, categories a list of category paths (lists); salesRank and related
# (whole-period fields) are not requested, so the line loader drops them
_META_2014 = {
    "asin": ID, "title": TEXT, "brand": TEXT, "categories": LIST, "description": TEXT_OR_LIST, "price": PRICE, "imUrl": TEXT,
}  # fmt: skip
_META_2023 = {
    "parent_asin": ID, "title": TEXT, "store": TEXT, "main_category": TEXT, "categories": TEXT_OR_LIST,
    "description": TEXT_OR_LIST, "features": TEXT_OR_LIST, "price": PRICE, "images": LIST_OR_DICT,
}  # fmt: skip


def _normalised(name: str) -> str:
    return category_key(name[:-3] if name.lower().endswith(".gz") else name)


def locate(raw_dir: Path, category: str = DEFAULT_CATEGORY) -> list[Path] | None:
    """The review file of ``category`` in ``raw_dir``, then its metadata file when there is
    one; None without a review file. A plain file wins over a ``.gz`` of the same name."""
    raw_dir = Path(raw_dir)
    by_name: dict[str, list[Path]] = {}
    with reading(raw_dir):  # an unreadable raw folder: one paragraph, not a traceback
        if not raw_dir.is_dir():
            return None
        for path in raw_dir.iterdir():
            if path.is_file():
                by_name.setdefault(_normalised(path.name), []).append(path)
    key = category_key(category)

    def first(templates: tuple[str, ...]) -> Path | None:
        for template in templates:
            found = by_name.get(category_key(template.format(key)))
            if found:
                return min(found, key=lambda p: (p.name.lower().endswith(".gz"), p.name))
        return None

    reviews = first(REVIEW_NAMES)
    if reviews is None:
        return None
    meta = first(META_NAMES[::-1] if _normalised(reviews.name).endswith(".jsonl") else META_NAMES)
    return [reviews] if meta is None else [reviews, meta]


def missing_files(raw_dir: Path, category: str = DEFAULT_CATEGORY) -> str:
    """Why ``locate`` found nothing: the names it looked for, and the JSON files the folder holds."""
    stem = file_stem(category)
    names = ", ".join(template.format(stem) for template in REVIEW_NAMES)
    raw_dir = Path(raw_dir)
    here = sorted(p.name for p in raw_dir.iterdir() if p.is_file() and ".json" in p.name.lower()) if raw_dir.is_dir() else []
    held = f" The folder holds {', '.join(here[:8])}{', ...' if len(here) > 8 else ''}." if here else ""
    return f"no review file of category {stem!r} in {raw_dir} (looked for {names}, each plain or .gz).{held}"


def _first_line(source: Source) -> bytes:
    for _, line in jsonl.iter_lines(source):
        return line[:4096]
    return b""  # unreachable: iter_lines raises for an empty file


def _is_literal(head: bytes) -> bool:
    """A Python dict literal (the 2014 metadata as published), not JSON."""
    return head.lstrip().startswith(b"{'")


def _layout(source: Source) -> str:
    """'2014', '2018' or '2023' from the keys of the first line (2014 metadata: Python
    literals as published, or the same keys in JSON)."""
    head = _first_line(source)
    if _is_literal(head):
        return "2014"
    if b'"reviewerID"' in head or b'"unixReviewTime"' in head or b'"imageURL' in head or b'"also_buy"' in head:
        return "2018"
    if b'"parent_asin"' in head or b'"user_id"' in head:
        return "2023"
    if b'"imUrl"' in head or b'"salesRank"' in head or b'"related"' in head:
        return "2014"
    if b'"asin"' in head:
        return "2018"
    return "2023"


def _reviews(raw_dir: Path, on_bad_line: str, with_text: bool = False, category: str = DEFAULT_CATEGORY) -> tuple[Records, str, Source, Source | None]:
    files = locate(raw_dir, category)
    if files is None:
        raise BenchmarkError(f"amazon-{category_key(category).replace('_', '-')}: {missing_files(raw_dir, category)} {where_to_get(category)}")
    source = Source(files[0])
    meta = Source(files[1]) if len(files) > 1 else None
    layout = "2023" if _layout(source) == "2023" else "2018"  # 2014 reviews are JSON with the 2018 keys
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


def read_amazon(raw_dir: Path, on_bad_line: str = "error", category: str = DEFAULT_CATEGORY) -> RawData:
    """The reviews of ``category`` in ``raw_dir`` as interactions, with the metadata's items (if any)."""
    raw_dir = Path(raw_dir)
    records, layout, source, meta_source = _reviews(raw_dir, on_bad_line, category=category)
    c = records.columns
    if layout == "2018":
        user, item, rating, timestamp = c["reviewerID"], c["asin"], c["overall"], c["unixReviewTime"]
    else:
        user, item, rating, timestamp = c["user_id"], c["parent_asin"], c["rating"], c["timestamp"] // 1000
    if meta_source is None:
        items, skipped_meta = pd.DataFrame(index=pd.Index([], dtype=object, name="raw_id")), 0
    else:
        reviewed = pc.unique(pa.array(item)).to_pylist()  # no Python object per review (6.7M at full size)
        items, skipped_meta = read_meta(meta_source, on_bad_line, set(reviewed))
    return RawData(
        user=user,
        item=item,
        timestamp=timestamp.astype(np.int64),
        rating=rating.astype(np.float32),
        items=items,
        skipped_lines=records.skipped + skipped_meta,
    )


def read_review_texts(raw_dir: Path, on_bad_line: str = "error", category: str = DEFAULT_CATEGORY) -> pd.DataFrame:
    """Per-interaction review texts (user, item, timestamp, summary, text) in file order.

    The same lines as ``read_amazon`` keeps; for text features restricted to the
    training period (never aggregate them over the whole file into item side information).
    """
    records, layout, _, _ = _reviews(Path(raw_dir), on_bad_line, with_text=True, category=category)
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
    """Item side information from a metadata file (any layout), restricted to ``wanted`` ids."""
    layout = _layout(source)
    fields = {"2014": _META_2014, "2018": _META_2018, "2023": _META_2023}[layout]
    key = "parent_asin" if layout == "2023" else "asin"
    keep = None if wanted is None else (lambda obj: obj[key] in wanted)
    records = jsonl.read_records(
        source, fields, required=(key,), on_bad_line=on_bad_line, unique=key, identical_duplicates_ok=True, keep=keep,
        loads=literal_loader(tuple(fields)) if _is_literal(_first_line(source)) else None,
    )  # fmt: skip
    c = records.columns
    n = len(records)
    if layout == "2014":
        items = pd.DataFrame(
            {
                "title": [_unescape(t) for t in c["title"]],
                "brand": [_unescape(b) for b in c["brand"]],
                "categories": [list(dict.fromkeys(_unescape(x) for x in _as_list(v))) for v in c["categories"]],
                "main_category": [_main_category(v) for v in c["categories"]],
                "description": [_as_text(v) for v in c["description"]],
                "features": [""] * n,
                "price": np.array([parse_price(v) for v in c["price"]], dtype=np.float64),
                "image_urls": [_as_list(v) for v in c["imUrl"]],
            },
            index=pd.Index(c[key].astype(object), name="raw_id"),
        )
    elif layout == "2018":
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


# --- 2014 metadata: Python literals ------------------------------------------------------

# far above any published metadata line; a longer line is a bad line, never parsed
MAX_LITERAL_CHARS = 4 << 20
_PLAIN = (str, int, float, bool, type(None))
_SURROGATE = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, as surrogateescape decodes them
_MARK = "\U0010ffff"  # a noncharacter: stands for such a byte while the line is parsed
# a quoted string (either quote, escapes inside) or a bracket: brackets in strings do not nest
_LITERAL_TOKEN = re.compile(r"""'[^'\\\n]*(?:\\.[^'\\\n]*)*'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"|[\[\]{}()]""")


def literal_loader(keys: tuple[str, ...]) -> Callable[[bytes], dict[str, Any]]:
    """A ``loads`` for ``jsonl.read_records``: one Python dict literal per line (the 2014
    metadata), parsed by ``ast.literal_eval`` (never ``eval``), keeping only ``keys``.

    Bounded: a line over ``MAX_LITERAL_CHARS``, a line nesting lists, dicts and
    parentheses more than ``jsonl.MAX_DEPTH`` levels deep (the limit of the JSON files,
    checked before parsing), a line the parser rejects (malformed, nested too deeply in
    another way: CPython's parser then raises SyntaxError, MemoryError or
    RecursionError), a value that is not a plain literal (a set, bytes, a call), or
    undecodable bytes raise ``FieldError``, so ``read_records`` reports the file and line
    (and the field, where there is one) or skips the line.
    """
    wanted = tuple(keys)

    def loads(line: bytes) -> dict[str, Any]:
        try:
            text, undecodable = line.decode("utf-8"), False
        except UnicodeDecodeError:  # parsed anyway, each bad byte marked, to name the field that holds it
            text, undecodable = _SURROGATE.sub(_MARK, line.decode("utf-8", errors="surrogateescape")), True
        if len(text) > MAX_LITERAL_CHARS:
            raise FieldError(f"a metadata line of at most {MAX_LITERAL_CHARS:,} characters", f"{len(text):,} characters")
        depth = _too_deep(text)
        if depth is not None:
            raise FieldError(f"a Python dict literal nested at most {jsonl.MAX_DEPTH} levels deep", f"nesting {depth} levels deep")
        try:
            obj = ast.literal_eval(text.strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
            if undecodable:
                raise FieldError("UTF-8 text", "undecodable bytes") from None
            raise FieldError("a Python dict literal", f"malformed literal ({_literal_problem(exc)})") from None
        if type(obj) is not dict:
            raise FieldError("a Python dict literal", f"{type(obj).__name__} {text[:60]}")
        if undecodable:
            field = next((k for k, v in obj.items() if _has_mark(k) or _has_mark(v)), None)
            raise FieldError("UTF-8 text" + (f" in field '{field}'" if field is not None else ""), "undecodable bytes")
        out: dict[str, Any] = {}
        for key in wanted:
            if key in obj:
                value = obj[key]
                odd = _not_plain(value)
                if odd is not None:
                    raise FieldError(f"plain values (strings, numbers, lists, dicts) in field '{key}'", f"a {odd}")
                out[key] = value
        return out

    return loads


def _too_deep(text: str) -> int | None:
    """The nesting depth of a literal line when it exceeds ``jsonl.MAX_DEPTH``, else None
    (cheap when the line does not hold that many opening brackets)."""
    if text.count("[") + text.count("{") + text.count("(") <= jsonl.MAX_DEPTH:
        return None
    depth = deepest = 0
    for match in _LITERAL_TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{", "("):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}", ")"):
            depth -= 1
    return deepest if deepest > jsonl.MAX_DEPTH else None


def _literal_problem(exc: BaseException) -> str:
    if isinstance(exc, (MemoryError, RecursionError)):
        return "nested too deeply"
    if isinstance(exc, SyntaxError):
        return f"{exc.msg}" + (f" at column {exc.offset}" if exc.offset else "")
    return "an expression that is not a literal"


def _walk(value: Any) -> Iterator[Any]:
    """Every value nested in ``value`` (iteratively: no recursion however deep)."""
    stack = [value]
    while stack:
        v = stack.pop()
        yield v
        if type(v) is list:
            stack.extend(v)
        elif type(v) is dict:
            stack.extend(v.keys())
            stack.extend(v.values())


def _not_plain(value: Any) -> str | None:
    """The type name of the first value that JSON could not hold (set, tuple, bytes, ...), else None."""
    return next((type(v).__name__ for v in _walk(value) if type(v) not in _PLAIN and type(v) not in (list, dict)), None)


def _has_mark(value: Any) -> bool:
    return any(type(v) is str and _MARK in v for v in _walk(value))


def _main_category(paths: Any) -> str:
    """2014 ``categories`` (a list of paths): the top level of the first path."""
    first = paths[0] if isinstance(paths, list) and paths else None
    names = _as_list(first) if isinstance(first, list) else []
    return _unescape(names[0]) if names else ""


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



