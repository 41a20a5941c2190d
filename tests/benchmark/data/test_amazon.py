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
