"""The Amazon Electronics reader: the real 2018 slice, both layouts, .gz, and bad input."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.config import DataConfig
from benchmark.data import amazon
from benchmark.data.amazon import locate, parse_price, read_amazon, read_review_texts
from benchmark.errors import BenchmarkError, DataFormatError
from tests.benchmark.data.bad_input import CASES, write_case
from tests.conftest import SHARED_DATA

AMAZON = SHARED_DATA / "amazon-electronics-2018-sample"


@pytest.fixture(scope="module")
def amazon_slice() -> Path:
    if not (AMAZON / "Electronics_5.json").is_file():
        pytest.skip(f"real data slice not found at {AMAZON}")
    return AMAZON


def test_reads_real_2018_slice(amazon_slice: Path) -> None:
    raw = read_amazon(amazon_slice)
    assert len(raw) == 100 and raw.skipped_lines == 0
    assert len(np.unique(raw.user)) == 96 and len(np.unique(raw.item)) == 9
    # first line: "overall": 5.0, "reviewerID": "AAP7PPBU72QFM", "asin": "0151004714", "unixReviewTime": 937612800
    assert (raw.user[0], raw.item[0], raw.rating[0], raw.timestamp[0]) == ("AAP7PPBU72QFM", "0151004714", 5.0, 937612800)
    items = raw.items
    assert set(raw.item) <= set(items.index)  # all 9 reviewed products are in the meta slice
    book = items.loc["0151004714"]
    assert book["title"] == "The Last Life: A Novel"
    assert book["price"] == pytest.approx(13.81)
    assert isinstance(book["categories"], list) and book["categories"][0] == "Electronics"
    assert not any("&amp;" in c for cats in items["categories"] for c in cats)  # HTML entities decoded
    assert items["price"].isna().any()  # "" prices are NaN, not 0
    texts = read_review_texts(amazon_slice)
    assert len(texts) == 100 and texts["summary"][0] == "A star is born" and "\n" in "".join(texts["text"])


def test_meta_quirks_from_the_full_file(tmp_path: Path) -> None:
    meta = [
        {"asin": "I1", "title": "Sound &amp; Vision", "category": ["Electronics", "Camera &amp; Photo"], "price": "$1,299.00",
         "rank": [">#3,092 in Tools &amp; Home"], "imageURLHighRes": ["https://x/1.jpg"], "feature": ["a", "b"]},
        {"asin": "I2", "title": "B", "price": ".a-box-inner{background-color:#fff;}", "rank": "12,345 in Electronics (",
         "description": "one string", "category": []},
        {"asin": "I3", "price": "$3.99 - $5.99"},
    ]  # fmt: skip
    reviews = [
        {"overall": 5.0, "reviewerID": "U1", "asin": "I1", "unixReviewTime": 100, "style": {"Color:": " Red"}},
        {"overall": 4.0, "reviewerID": "U2", "asin": "I2", "unixReviewTime": 101, "style": [" Paperback"]},
        {"overall": 3.0, "reviewerID": "U2", "asin": "I3", "unixReviewTime": 102},
    ]
    (tmp_path / "Electronics.json").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    lines = [json.dumps(m) for m in meta]
    (tmp_path / "meta_Electronics.json").write_text("\n".join(lines + [lines[0]]) + "\n")  # verbatim repeat is harmless
    raw = read_amazon(tmp_path)
    items = raw.items
    assert items.loc["I1", "title"] == "Sound & Vision" and items.loc["I1", "categories"] == ["Electronics", "Camera & Photo"]
    assert items.loc["I1", "price"] == 1299.0
    assert items.loc["I1", "image_urls"] == ["https://x/1.jpg"] and items.loc["I1", "features"] == "a\nb"
    assert math.isnan(items.loc["I2", "price"])
    assert items.loc["I2", "description"] == "one string"
    assert items.loc["I3", "price"] == 3.99 and items.loc["I3", "title"] == ""
    assert len(items) == 3 and raw.skipped_lines == 0


def test_price_strings() -> None:
    assert parse_price("$12.99") == 12.99 and parse_price(5) == 5.0
    for junk in ("", None, "unknown", "{color:red}"):
        assert math.isnan(parse_price(junk))


def test_gz_and_layout_detection(amazon_slice: Path, tmp_path: Path) -> None:
    for name in ("Electronics_5.json", "meta_Electronics.json"):
        (tmp_path / (name + ".gz")).write_bytes(gzip.compress((amazon_slice / name).read_bytes()))
    assert [p.name for p in locate(tmp_path)] == ["Electronics_5.json.gz", "meta_Electronics.json.gz"]
    plain, packed = read_amazon(amazon_slice), read_amazon(tmp_path)
    assert plain.user.tolist() == packed.user.tolist() and plain.items.equals(packed.items)
    # a .json name with gzip content (or the reverse) is recognised by its content
    shutil.move(tmp_path / "Electronics_5.json.gz", tmp_path / "Electronics_5.json")
    assert len(read_amazon(tmp_path)) == 100


def test_2023_layout(tmp_path: Path) -> None:
    reviews = [
        {"rating": 5.0, "title": "Great", "text": "x", "images": [], "asin": "A1", "parent_asin": "P1", "user_id": "U1", "timestamp": 1588687728923},
        {"rating": 2.0, "title": "Meh", "text": "y", "images": [], "asin": "A2", "parent_asin": "P2", "user_id": "U1", "timestamp": 1588687729923},
    ]  # fmt: skip
    meta = [
        {"parent_asin": "P1", "title": "Cam &amp; Co", "store": "Brand", "categories": ["Electronics", "Cameras"], "price": 19.99,
         "average_rating": 4.2, "rating_number": 10, "images": [{"thumb": "t", "large": "l", "hi_res": "h", "variant": "MAIN"}]},
        {"parent_asin": "P2", "title": "B", "price": None, "images": {"hi_res": [None], "large": ["https://l.jpg"]}, "features": []},
    ]  # fmt: skip
    (tmp_path / "Electronics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    (tmp_path / "meta_Electronics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    raw = read_amazon(tmp_path)
    assert raw.item.tolist() == ["P1", "P2"] and raw.timestamp.tolist() == [1588687728, 1588687729]
    assert raw.items.loc["P1", "title"] == "Cam & Co" and raw.items.loc["P1", "brand"] == "Brand"
    assert raw.items.loc["P1", "image_urls"] == ["h"] and raw.items.loc["P2", "image_urls"] == ["https://l.jpg"]
    assert math.isnan(raw.items.loc["P2", "price"])
    assert "average_rating" not in raw.items and "rating_number" not in raw.items  # whole-period fields are never read


# --- bad input -------------------------------------------------------------------------

REVIEWS = [
    {"overall": 5.0, "reviewerID": f"U{u}", "asin": f"I{i}", "unixReviewTime": 1000 + 10 * u + i, "reviewText": "fine"}
    for u in range(4) for i in range(3)
]  # fmt: skip
META = [{"asin": f"I{i}", "title": f"Item {i}", "price": "$1.00"} for i in range(3)]
KEYS = {"rating": "overall", "item": "asin", "text": "reviewText", "id": "asin"}


def _dataset(folder: Path, case: str | None) -> Path:
    """A small 2018 dataset with ``case`` applied to the reviews (duplicate ids: to the metadata; None: intact)."""
    folder.mkdir(parents=True, exist_ok=True)
    reviews, meta = folder / "Electronics_5.json", folder / "meta_Electronics.json"
    reviews.write_text("".join(json.dumps(r) + "\n" for r in REVIEWS))
    meta.write_text("".join(json.dumps(m) + "\n" for m in META))
    if case is None:
        return reviews
    if case == "duplicate id":
        return write_case(meta, case, [dict(m, title=f"other {k}") for k, m in enumerate(META)], KEYS)
    return write_case(reviews, case, REVIEWS, KEYS)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_names_file_line_and_field(case: str, tmp_path: Path) -> None:
    bad_file = _dataset(tmp_path / "raw", case)
    _, line, words = CASES[case]
    with pytest.raises(DataFormatError) as info:
        read_amazon(tmp_path / "raw")
    message = str(info.value)
    assert str(bad_file) in message
    if line is not None:
        assert info.value.line == line
    for word in words:
        assert word in message
    if case == "wrong type":
        assert "'overall'" in message
    if case == "missing required key":
        assert "'asin'" in message
    if case == "non-UTF-8 bytes":
        assert "'reviewText'" in message


@pytest.mark.parametrize("case", [c for c in CASES if c != "empty file"])
def test_bad_lines_are_skipped_and_counted(case: str, tmp_path: Path) -> None:
    _dataset(tmp_path / "raw", case)
    raw = read_amazon(tmp_path / "raw", on_bad_line="skip")
    assert raw.skipped_lines == 1
    if case not in ("duplicate id", "truncated gz"):
        assert len(raw) == len(REVIEWS) - 1


@pytest.mark.parametrize("case", list(CASES))
def test_cli_bad_input_exits_2_without_cache(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("BENCHMARK_CACHE", str(cache))
    _dataset(tmp_path / "raw", case)
    code = main(["data", "prepare", "--data", "amazon-electronics", "--raw-dir", str(tmp_path / "raw"), "--set", "kcore=0"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "line" in err
    assert not (cache / "prepared").exists()


def test_cli_skip_reports_skipped_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    _dataset(tmp_path / "raw", "malformed JSON")
    argv = ["data", "info", "--data", "amazon-electronics", "--raw-dir", str(tmp_path / "raw"), "--set", "kcore=0",
            "--set", "on_bad_line=skip", "--output", str(tmp_path / "info.json")]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((tmp_path / "info.json").read_text())["skipped_lines"] == 1
    assert "skipped_lines" in capsys.readouterr().out


def test_missing_files_say_where_to_get_them(tmp_path: Path) -> None:
    from benchmark.data.datasets import load_dataset

    with pytest.raises(BenchmarkError, match="nijianmo.github.io"):
        load_dataset("amazon-electronics", raw_dir=tmp_path)


# --- values outside the valid ranges, damaged compressed files -----------------------


@pytest.mark.parametrize(
    "stamp, words",
    [
        (10**18, "a time from 1970-01-01 to 2100-01-01"),  # milliseconds' worth of digits, and more
        (-1, "a time from 1970-01-01 to 2100-01-01"),
        (4_102_444_800, "a time from 1970-01-01 to 2100-01-01"),  # 2100-01-01T00:00:00Z itself is excluded
        (2**63, "a 64-bit integer in field 'unixReviewTime'"),  # overflows int64
    ],
)
def test_out_of_range_timestamps_are_bad_lines(stamp: int, words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    reviews = [dict(r) for r in REVIEWS]
    reviews[4]["unixReviewTime"] = stamp
    _dataset(tmp_path / "raw", None)
    (tmp_path / "raw" / "Electronics_5.json").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    with pytest.raises(DataFormatError, match="line 5: expected " + words):
        read_amazon(tmp_path / "raw")
    raw = read_amazon(tmp_path / "raw", on_bad_line="skip")
    assert raw.skipped_lines == 1 and len(raw) == len(REVIEWS) - 1 and int(raw.timestamp.max()) == 1000 + 10 * 3 + 2
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    assert main(["data", "info", "--data", "amazon-electronics", "--raw-dir", str(tmp_path / "raw"), "--set", "kcore=0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "line 5" in err and not (tmp_path / "cache" / "prepared").exists()


def test_range_boundaries_are_kept(tmp_path: Path) -> None:
    reviews = [dict(r) for r in REVIEWS]
    reviews[0]["unixReviewTime"], reviews[1]["unixReviewTime"] = 0, 4_102_444_799
    reviews[2]["overall"], reviews[3]["overall"] = 0.0, 5
    _dataset(tmp_path / "raw", None)
    (tmp_path / "raw" / "Electronics_5.json").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    raw = read_amazon(tmp_path / "raw")
    assert raw.timestamp[:2].tolist() == [0, 4_102_444_799] and raw.rating[2:4].tolist() == [0.0, 5.0]


def test_2023_millisecond_timestamps_out_of_range(tmp_path: Path) -> None:
    review = {"rating": 5.0, "parent_asin": "P1", "user_id": "U1", "timestamp": 1588687728923}
    (tmp_path / "Electronics.jsonl").write_text(json.dumps(review) + "\n" + json.dumps(dict(review, timestamp=10**18)) + "\n")
    (tmp_path / "meta_Electronics.jsonl").write_text(json.dumps({"parent_asin": "P1", "title": "x"}) + "\n")
    with pytest.raises(DataFormatError, match=r"line 2: expected a time .*Unix milliseconds.* in field 'timestamp'"):
        read_amazon(tmp_path)


def _review_bytes() -> bytes:
    copies = [dict(r, reviewerID=f"{r['reviewerID']}-{k}") for k in range(30) for r in REVIEWS]
    return "".join(json.dumps(r) + "\n" for r in copies).encode()


def _damaged_gz(kind: str) -> bytes:
    """gzip bytes damaged in a reproducible way (independent of the zlib version)."""
    if kind == "invalid deflate block":  # first deflate byte 0xff: block type 3 is reserved
        content = bytearray(gzip.compress(_review_bytes(), mtime=0))
        content[10] = 0xFF
        return bytes(content)
    if kind == "CRC mismatch":  # every byte decompresses, the trailer's CRC-32 is wrong
        content = bytearray(gzip.compress(_review_bytes(), mtime=0))
        content[-8] ^= 0xFF
        return bytes(content)
    # stored (uncompressed) deflate blocks: a changed byte decodes to a malformed line, the CRC catches it at the end
    content = bytearray(gzip.compress(_review_bytes(), compresslevel=0, mtime=0))
    content[content.index(b'"U1-2"')] = ord("{")
    return bytes(content)


@pytest.mark.parametrize("kind", ["invalid deflate block", "CRC mismatch", "garbage then CRC mismatch"])
def test_damaged_gz_is_an_error_even_when_skipping(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    _dataset(tmp_path / "raw", None)
    (tmp_path / "raw" / "Electronics_5.json").unlink()
    (tmp_path / "raw" / "Electronics_5.json.gz").write_bytes(_damaged_gz(kind))
    for on_bad_line in ("error", "skip"):
        with pytest.raises(DataFormatError, match=r"expected a valid compressed stream, found 'damaged compressed data") as info:
            read_amazon(tmp_path / "raw", on_bad_line=on_bad_line)
        assert "Electronics_5.json.gz" in str(info.value) and "download it again" in str(info.value)
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    argv = ["data", "prepare", "--data", "amazon-electronics", "--raw-dir", str(tmp_path / "raw"), "--set", "kcore=0"]
    for _ in range(2):  # the same clear message on a rerun, nothing cached
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "damaged compressed data" in err and not (tmp_path / "cache" / "prepared").exists()


# --- the 2014 layout and any category ----------------------------------------------------

MUSICAL = SHARED_DATA / "amazon-2014-musical-instruments"
MUSICAL_REVIEWS = MUSICAL / "reviews_Musical_Instruments_5.json.gz"


@pytest.fixture(scope="module")
def musical() -> Path:
    if not MUSICAL_REVIEWS.is_file():
        pytest.skip(f"real 2014 file not found at {MUSICAL_REVIEWS}")
    return MUSICAL


def test_reads_real_2014_musical_instruments(musical: Path) -> None:
    assert locate(musical, "musical-instruments") == [MUSICAL_REVIEWS]  # no metadata file: reviews only
    assert locate(musical) is None  # the default category (Electronics) is not there
    raw = read_amazon(musical, category="Musical Instruments")
    assert len(raw) == 10_261 and raw.skipped_lines == 0
    assert len(np.unique(raw.user)) == 1_429 and len(np.unique(raw.item)) == 900
    # first line: "reviewerID": "A2IBPI20UZIR0U", "asin": "1384719342", "overall": 5.0, "unixReviewTime": 1393545600
    assert (raw.user[0], raw.item[0], raw.rating[0], raw.timestamp[0]) == ("A2IBPI20UZIR0U", "1384719342", 5.0, 1393545600)
    assert raw.timestamp.min() == 1095465600 and raw.timestamp.max() == 1405987200  # 2004-09-18 .. 2014-07-22
    assert len(raw.items) == 0 and raw.items.index.name == "raw_id"  # without metadata the items table is empty
    texts = read_review_texts(musical, category="musical_instruments")
    assert len(texts) == 10_261 and texts["summary"][0] == "good"
    assert texts["text"][0].startswith("Not much to write about here, but it does exactly what it's supposed to.")


def test_musical_instruments_prepares_with_a_review_text_per_interaction(musical: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.data.datasets import get_dataset, load_dataset
    from benchmark.data.reviews import interaction_texts

    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    spec = get_dataset("amazon-musical-instruments")
    assert spec.source == "real" and spec.default_kcore == 5 and spec.read_texts is not None
    data = load_dataset("amazon-musical-instruments", raw_dir=musical)
    assert (data.n_users, data.n_items, data.n_interactions) == (1_429, 900, 10_261)  # the file is 5-core: 5-core keeps all
    assert data.stats["kcore"] == 5 and data.stats["duplicates_removed"] == 0
    assert list(data.items.columns) == ["raw_id"] and len(data.items) == 900
    texts = interaction_texts(data, musical)
    assert texts is not None
    reviews = read_review_texts(musical, category="Musical_Instruments")
    body = reviews["text"].where(reviews["text"].str.strip() != "", reviews["summary"])
    by_pair = {(u, i): " ".join(t.split()) for u, i, t in zip(reviews["user"], reviews["item"], body)}
    assert (reviews["text"].str.strip() == "").sum() == 7  # these 7 reviews have only a summary line
    for part in ("train", "valid", "test"):
        frame, log = texts.part(part), getattr(data, part)
        assert len(frame) == len(log)  # every prepared interaction has its (non-empty) text
        assert frame["user"].tolist() == log.user.tolist() and frame["item"].tolist() == log.item.tolist()
        assert (frame["text"].str.len() > 0).all()
        for u, i, text in zip(frame["user"][:200], frame["item"][:200], frame["text"][:200]):
            full = by_pair[(data.user_ids[u], data.item_ids[i])]
            assert full.startswith(text) and len(text) <= 200


def test_cli_data_info_musical_instruments(musical: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "info.json"
    assert main(["data", "info", "--data", "amazon-musical-instruments", "--raw-dir", str(musical), "--output", str(out)]) == 0
    info = json.loads(out.read_text())
    assert info["dataset"] == "amazon-musical-instruments" and info["data_source"] == "real"
    assert (info["n_users"], info["n_items"], info["n_interactions"]) == (1_429, 900, 10_261)
    assert (info["n_valid"], info["n_test"], info["kcore"], info["skipped_lines"]) == (1_429, 1_429, 5, 0)
    assert info["time_start"] == "2004-09-18T00:00:00+00:00" and info["time_end"] == "2014-07-22T00:00:00+00:00"


def _literal(record: dict) -> str:
    """One line of the 2014 metadata: the repr of a Python dict (single quotes), as published."""
    return repr(record)


PLANTED_RANK = 987_654
META_2014 = [
    {"asin": "I0", "title": "Girl's Tutu &amp; Bow", "price": 3.17, "imUrl": "http://ecx.images-amazon.com/images/I/I0.jpg",
     "related": {"also_bought": ["ALSOBOUGHT1"], "also_viewed": ["ALSOVIEWED1"], "bought_together": ["TOGETHER1"]},
     "salesRank": {"Musical Instruments": PLANTED_RANK}, "brand": "Fender",
     "categories": [["Musical Instruments", "Guitars", "Electric Guitars"], ["Musical Instruments", "Amplifiers &amp; Effects"]]},
    {"asin": "I1", "title": 'It\'s a "quoted" title', "price": 12, "categories": [["Musical Instruments"]],
     "description": "Line one.\nLine two, caf\u00e9.", "salesRank": {"Toys & Games": PLANTED_RANK}},
    {"asin": "I2", "related": {"also_viewed": ["ALSOVIEWED2"]}, "categories": []},
    {"asin": "NOT_REVIEWED", "title": "never rated", "categories": [["Musical Instruments"]]},
]  # fmt: skip
REVIEWS_2014 = [
    {"reviewerID": f"U{u}", "asin": f"I{i}", "reviewerName": "x", "helpful": [u, u + 1], "reviewText": f"review {u} {i}",
     "overall": float(1 + (u + i) % 5), "summary": "ok", "unixReviewTime": 1_300_000_000 + 86_400 * (3 * u + i), "reviewTime": "01 1, 2011"}
    for u in range(4) for i in range(3)
]  # fmt: skip


def _write_2014(folder: Path, meta: list[str] | None = None, category: str = "Musical_Instruments") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"reviews_{category}_5.json").write_text("".join(json.dumps(r) + "\n" for r in REVIEWS_2014))
    lines = [_literal(m) for m in META_2014] if meta is None else meta
    (folder / f"meta_{category}.json").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_2014_metadata_python_literals(tmp_path: Path) -> None:
    lines = [_literal(m) for m in META_2014]
    raw_dir = _write_2014(tmp_path / "raw", lines + [lines[0]])  # a verbatim repeat is harmless
    assert "{'asin': 'I0'" in lines[0] and "'It\\'s a \"quoted\" title'" in lines[1]  # really Python literals, not JSON
    raw = read_amazon(raw_dir, category="musical-instruments")
    assert len(raw) == 12 and raw.skipped_lines == 0
    items = raw.items
    assert sorted(items.index) == ["I0", "I1", "I2"]  # only reviewed items
    assert list(items.columns) == ["title", "brand", "categories", "main_category", "description", "features", "price", "image_urls"]
    i0, i1, i2 = items.loc["I0"], items.loc["I1"], items.loc["I2"]
    assert i0["title"] == "Girl's Tutu & Bow" and i0["brand"] == "Fender" and i0["price"] == pytest.approx(3.17)
    assert i0["categories"] == ["Musical Instruments", "Guitars", "Electric Guitars", "Amplifiers & Effects"]  # paths flattened
    assert i0["main_category"] == "Musical Instruments" and i0["image_urls"] == ["http://ecx.images-amazon.com/images/I/I0.jpg"]
    assert i1["title"] == 'It\'s a "quoted" title' and i1["price"] == 12.0 and i1["description"] == "Line one.\nLine two, caf\u00e9."
    assert i1["brand"] == "" and i1["image_urls"] == [] and i1["features"] == ""
    assert math.isnan(i2["price"]) and i2["categories"] == [] and i2["main_category"] == "" and i2["title"] == ""
    # salesRank and related (whole-period fields) are never read
    cells = " ".join(str(v) for v in items.to_numpy().ravel())
    assert str(PLANTED_RANK) not in cells and "ALSO" not in cells and "TOGETHER" not in cells
    assert not {"salesRank", "related", "also_bought", "also_viewed", "bought_together"} & set(items.columns)
    # the same metadata as strict JSON (as some copies are converted) reads the same
    strict = _write_2014(tmp_path / "strict", [json.dumps(m) for m in META_2014])
    assert read_amazon(strict, category="Musical_Instruments").items.equals(items)


def test_2014_gz_detection(tmp_path: Path) -> None:
    plain = _write_2014(tmp_path / "plain")
    packed = tmp_path / "packed"
    packed.mkdir()
    for path in plain.iterdir():
        (packed / (path.name + ".gz")).write_bytes(gzip.compress(path.read_bytes()))
    assert [p.name for p in locate(packed, "Musical_Instruments")] == ["reviews_Musical_Instruments_5.json.gz", "meta_Musical_Instruments.json.gz"]
    a, b = read_amazon(plain, category="Musical_Instruments"), read_amazon(packed, category="Musical_Instruments")
    assert a.user.tolist() == b.user.tolist() and a.timestamp.tolist() == b.timestamp.tolist() and a.items.equals(b.items)
    # the content decides, not the suffix: gzip bytes under the plain names
    for name in ("reviews_Musical_Instruments_5.json", "meta_Musical_Instruments.json"):
        shutil.move(packed / (name + ".gz"), packed / name)
    c = read_amazon(packed, category="Musical_Instruments")
    assert c.user.tolist() == a.user.tolist() and c.items.equals(a.items)


# bad 2014 metadata lines: (line 3 of 4) -> words in the message
_DEEP = "[" * 100_000 + "]" * 100_000
BAD_META_2014 = {
    "truncated literal": ("{'asin': 'I2', 'title': 'cut here", ("a Python dict literal", "malformed literal")),
    "absurdly nested brackets": ("{'asin': 'I2', 'categories': " + _DEEP + "}", ("nested at most 100 levels deep", "nesting 100001 levels")),
    "nested 101 levels": ("{'asin': 'I2', 'categories': " + "[" * 100 + "]" * 100 + "}", ("a Python dict literal nested at most 100", "101 levels")),
    "deep parentheses": ("{'asin': 'I2', 'extra': " + "(" * 150 + "1" + ")" * 150 + "}", ("nested at most 100 levels deep", "151 levels")),
    "escaped lone surrogate": ("{'asin': 'I2', 'title': 'caf\\U0000d800'}", ("valid Unicode text in field 'title'", "surrogate")),
    "absurdly nested unary": ("{'asin': 'I2', 'price': " + "- " * 100_000 + "1}", ("malformed literal", "nested too deeply")),
    "absurdly long chain": ("{'asin': 'I2', 'price': " + "+".join(["1"] * 100_000) + "}", ("malformed literal",)),
    "not a literal": ("{'asin': 'I2', 'title': __import__('os').getcwd()}", ("not a literal",)),
    "not a dict": ("['asin', 'I2']", ("a Python dict literal", "list")),
    "wrong type": ("{'asin': 'I2', 'title': 5}", ("a string in field 'title'",)),
    "a set": ("{'asin': 'I2', 'categories': {'a', 'b'}}", ("field 'categories'", "set")),
    "bytes": ("{'asin': 'I2', 'title': b'x'}", ("field 'title'", "bytes")),
    "missing asin": ("{'title': 'no id'}", ("required field 'asin'",)),
    "conflicting repeat": ("{'asin': 'I0', 'title': 'other'}", ("unique 'asin'",)),
    "non-UTF-8 bytes": ("{'asin': 'I2', 'title': 'caf\udce9'}", ("UTF-8 text in field 'title'",)),
}  # fmt: skip


def _bad_meta(folder: Path, case: str) -> Path:
    lines = [_literal(m) for m in META_2014]
    lines[2] = BAD_META_2014[case][0]
    folder = _write_2014(folder, ["x"])
    meta = folder / "meta_Musical_Instruments.json"
    meta.write_bytes(("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape"))
    return meta


@pytest.mark.parametrize("case", list(BAD_META_2014))
def test_bad_2014_metadata_lines_name_file_line_and_field(case: str, tmp_path: Path) -> None:
    meta = _bad_meta(tmp_path / "raw", case)
    with pytest.raises(DataFormatError) as info:  # never a RecursionError, MemoryError or SyntaxError
        read_amazon(tmp_path / "raw", category="Musical_Instruments")
    message = str(info.value)
    assert str(meta) in message and info.value.line == 3
    for word in BAD_META_2014[case][1]:
        assert word in message
    raw = read_amazon(tmp_path / "raw", on_bad_line="skip", category="Musical_Instruments")
    assert raw.skipped_lines == 1 and len(raw) == len(REVIEWS_2014)
    assert sorted(raw.items.index) == ["I0", "I1"]  # the bad line (I2, or a repeat of I0) is dropped
    assert raw.items.loc["I0", "title"] == "Girl's Tutu & Bow"  # the first occurrence is kept


def test_2014_metadata_nesting_limit_is_the_json_limit(tmp_path: Path) -> None:
    lines = [_literal(m) for m in META_2014]
    lines[2] = "{'asin': 'I2', 'title': '[[[ (not nesting) {{{', 'categories': " + "[" * 99 + "]" * 99 + "}"  # 100 levels with the dict
    raw = read_amazon(_write_2014(tmp_path / "raw", lines), category="Musical_Instruments")
    assert raw.skipped_lines == 0 and raw.items.loc["I2", "title"] == "[[[ (not nesting) {{{"


def test_overlong_2014_metadata_line_is_a_bad_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(amazon, "MAX_LITERAL_CHARS", 300)
    lines = [_literal(m) for m in META_2014]
    assert max(len(line) for line in lines[1:]) < 300 < len(lines[0])
    _write_2014(tmp_path / "raw", lines)
    with pytest.raises(DataFormatError, match="at most 300 characters") as info:
        read_amazon(tmp_path / "raw", category="Musical_Instruments")
    assert info.value.line == 1
    assert read_amazon(tmp_path / "raw", on_bad_line="skip", category="Musical_Instruments").skipped_lines == 1


KEYS_2014 = {"rating": "overall", "item": "asin", "text": "reviewText", "id": "asin"}


@pytest.mark.parametrize("case", [c for c in CASES if c != "duplicate id"])
def test_bad_2014_review_lines(case: str, tmp_path: Path) -> None:
    folder = _write_2014(tmp_path / "raw")
    bad_file = write_case(folder / "reviews_Musical_Instruments_5.json", case, REVIEWS_2014, KEYS_2014)
    _, line, words = CASES[case]
    with pytest.raises(DataFormatError) as info:
        read_amazon(folder, category="Musical_Instruments")
    message = str(info.value)
    assert str(bad_file) in message and all(word in message for word in words)
    if line is not None:
        assert info.value.line == line
    if case == "wrong type":
        assert "'overall'" in message
    if case == "non-UTF-8 bytes":
        assert "'reviewText'" in message
    if case != "empty file":
        raw = read_amazon(folder, on_bad_line="skip", category="Musical_Instruments")
        assert raw.skipped_lines == 1
        if case != "truncated gz":
            assert len(raw) == len(REVIEWS_2014) - 1


def _reviews_2018(n_users: int = 6, n_items: int = 5, user_key: str = "reviewerID") -> list[dict]:
    return [{"overall": 4.0, user_key: f"U{u}", "asin": f"I{i}", "unixReviewTime": 1000 + 10 * u + i, "reviewText": "t", "summary": "s"}
            for u in range(n_users) for i in range(n_items)]  # fmt: skip


@pytest.mark.parametrize("layout", ["2014", "2018", "2023"])
def test_any_category_by_name_for_every_layout(layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.data.datasets import DATASETS, canonical_name, get_dataset, load_dataset

    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    reviews = _reviews_2018()
    if layout == "2023":
        reviews = [{"rating": r["overall"], "user_id": r["reviewerID"], "parent_asin": r["asin"], "timestamp": r["unixReviewTime"] * 1000,
                    "text": "t", "title": "s"} for r in reviews]  # fmt: skip
        (raw_dir / "cell phones and accessories.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    else:
        name = "reviews_Cell_Phones_and_Accessories_5.json" if layout == "2014" else "Cell-Phones-And-Accessories_5.json"
        (raw_dir / name).write_text("".join(json.dumps(r) + "\n" for r in reviews))
    (raw_dir / "Electronics_5.json").write_text(json.dumps(_reviews_2018()[0]) + "\n")  # another category beside it
    assert "amazon-cell-phones-and-accessories" not in DATASETS
    for spelling in ("amazon-cell-phones-and-accessories", "amazon-Cell_Phones_and_Accessories", "amazon-CELL phones and-accessories"):
        assert canonical_name(spelling) == "amazon-cell-phones-and-accessories"
        assert get_dataset(spelling).name == "amazon-cell-phones-and-accessories"
    data = load_dataset("amazon-Cell_Phones_and_Accessories", DataConfig(kcore=0), raw_dir)
    assert data.name == "amazon-cell-phones-and-accessories" and data.source == "real"
    assert (data.n_users, data.n_items, data.n_interactions) == (6, 5, 30) and list(data.items.columns) == ["raw_id"]
    assert data.item_ids.tolist() == ["I0", "I1", "I2", "I3", "I4"]
    out = tmp_path / "info.json"
    argv = ["data", "info", "--data", "amazon-Cell_Phones_and_Accessories", "--raw-dir", str(raw_dir), "--set", "kcore=0", "--output", str(out)]
    assert main(argv) == 0
    info = json.loads(out.read_text())
    assert info["dataset"] == "amazon-cell-phones-and-accessories" and info["n_interactions"] == 30 and info["fingerprint"] == data.fingerprint


def test_metadata_is_optional_for_2018_and_2023(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.data.datasets import load_dataset

    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "Electronics_5.json").write_text("".join(json.dumps(r) + "\n" for r in _reviews_2018()))
    assert [p.name for p in locate(tmp_path / "a")] == ["Electronics_5.json"]
    data = load_dataset("amazon-electronics", DataConfig(kcore=0), tmp_path / "a")
    assert data.n_interactions == 30 and list(data.items.columns) == ["raw_id"]
    (tmp_path / "b").mkdir()
    reviews = [{"rating": 3.0, "user_id": f"U{k}", "parent_asin": "P1", "timestamp": 5000 + k} for k in range(3)]
    (tmp_path / "b" / "Electronics.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in reviews).encode()))
    raw = read_amazon(tmp_path / "b")
    assert len(raw) == 3 and len(raw.items) == 0 and raw.timestamp.tolist() == [5, 5, 5]


def test_unknown_category_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    raw_dir = _write_2014(tmp_path / "raw")
    assert main(["data", "info", "--data", "amazon-lawn-and-garden", "--raw-dir", str(raw_dir)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(raw_dir) in err
    for name in ("reviews_Lawn_and_Garden_5.json", "reviews_Lawn_and_Garden.json", "Lawn_and_Garden_5.json", "Lawn_and_Garden.jsonl", "plain or .gz"):
        assert name in err
    assert "reviews_Musical_Instruments_5.json" in err  # what the folder holds instead
    assert "jmcauley.ucsd.edu" in err and "$BENCHMARK_DATA/amazon-lawn-and-garden/" in err
    with pytest.raises(BenchmarkError, match=r"Lawn_and_Garden_5\.json"):
        read_amazon(raw_dir, category="lawn and garden")


def test_names_that_are_not_datasets() -> None:
    from benchmark.data.datasets import DATASET_NAMES, get_dataset

    for name in ("amazon-", "amazon-<category>", "amazon-a/b", "nonsense"):
        assert name not in DATASET_NAMES
        with pytest.raises(BenchmarkError, match="amazon-<category>"):
            get_dataset(name)
    assert "amazon-books" in DATASET_NAMES and "amazon-electronics" in DATASET_NAMES and "synthetic-amazon" in DATASET_NAMES
    with pytest.raises(SystemExit):
        main(["data", "info", "--data", "nonsense"])
