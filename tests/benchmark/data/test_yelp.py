"""The Yelp Open Dataset reader: the real slice, a tar read in place, safe extraction, bad input."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data.yelp import BUSINESS, REVIEW, extract_archive, read_review_texts, read_yelp
from benchmark.errors import BenchmarkError, DataFormatError
from tests.benchmark.data.bad_input import CASES, write_case
from tests.conftest import SHARED_DATA

YELP = SHARED_DATA / "yelp-sample"


@pytest.fixture(scope="module")
def yelp_slice() -> Path:
    if not (YELP / REVIEW).is_file():
        pytest.skip(f"real data slice not found at {YELP}")
    return YELP


def test_reads_real_slice(yelp_slice: Path) -> None:
    raw = read_yelp(yelp_slice)
    assert len(raw) == 5000 and raw.skipped_lines == 0
    assert len(np.unique(raw.user)) == 4843 and len(np.unique(raw.item)) == 2663
    assert int(np.isin(raw.item, raw.items.index).sum()) == 1724  # reviews whose business is in the slice
    # first review: user mh_-eMZ6K5RLWhZyISBhwA, business XQfwVwDr-v0ZS3_CbbE5Xw, 3 stars, 2018-07-07 22:09:11
    assert (raw.user[0], raw.item[0], raw.rating[0]) == ("mh_-eMZ6K5RLWhZyISBhwA", "XQfwVwDr-v0ZS3_CbbE5Xw", 3.0)
    assert raw.timestamp[0] == 1531001351
    items = raw.items
    assert len(items) == 5000
    first = items.loc["Pns2l4eNsfO8kk83dixA6A"]
    assert first["title"] == "Abby Rappoport, LAC, CMQ" and first["city"] == "Santa Barbara" and first["state"] == "CA"
    assert "Naturopathic/Holistic" in first["categories"]  # the raw file writes "Naturopathic\/Holistic"
    assert first["tags"] == ["ByAppointmentOnly"]
    assert not {"stars", "review_count", "is_open"} & set(items.columns)  # whole-period fields are never read
    target = items.loc["tUFrWirKiKi_TAnsVWINQQ"]  # stringified attributes: "u'no'", "{'garage': False, ...}"
    assert target["price"] == 2.0
    assert "BusinessParking=lot" in target["tags"] and "BikeParking" in target["tags"] and "CoatCheck" not in target["tags"]
    assert json.loads(target["attributes"])["BusinessParking"]["lot"] is True
    assert items["categories"].map(len).eq(0).sum() == 5  # "categories": null
    texts = read_review_texts(yelp_slice)
    assert len(texts) == 5000 and texts["text"][0].startswith("If you decide to eat here")


def test_tar_read_in_place_and_safe_extraction(yelp_slice: Path, tmp_path: Path) -> None:
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    with tarfile.open(raw_dir / "yelp_dataset.tar", "w") as tar:
        for name in (REVIEW, BUSINESS):
            tar.add(yelp_slice / name, arcname=f"Yelp JSON/{name}")
    in_place = read_yelp(raw_dir)
    assert len(in_place) == 5000 and in_place.items.equals(read_yelp(yelp_slice).items)
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        for name, data in (("../escaped.json", b"{}"), ("ok/photos.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(tarfile.TarError):
        extract_archive(evil, tmp_path / "out")
    assert not (tmp_path / "escaped.json").exists()


def test_photos_become_image_paths(tmp_path: Path) -> None:
    _dataset(tmp_path / "raw", None)
    photos = tmp_path / "raw" / "photos"
    photos.mkdir()
    (photos / "p1.jpg").write_bytes(b"jpg")
    (tmp_path / "raw" / "photos.json").write_text(
        '{"photo_id":"p1","business_id":"B0","caption":"","label":"food"}\n{"photo_id":"p2","business_id":"B0","caption":"","label":"inside"}\n'
    )
    items = read_yelp(tmp_path / "raw").items
    assert items.loc["B0", "photo_ids"] == ["p1", "p2"] and items.loc["B0", "image_paths"] == [str(photos / "p1.jpg")]
    assert items.loc["B1", "photo_ids"] == []


# --- bad input -------------------------------------------------------------------------

REVIEWS = [
    {"review_id": f"R{u}{b}", "user_id": f"U{u}", "business_id": f"B{b}", "stars": 4.0, "text": "good", "date": f"2019-01-0{u + 1} 10:00:0{b}"}
    for u in range(4) for b in range(3)
]  # fmt: skip
BUSINESSES = [{"business_id": f"B{b}", "name": f"Place {b}", "city": "Reno", "state": "NV", "categories": "Bars, Pizza", "attributes": None} for b in range(3)]
KEYS = {"rating": "stars", "item": "business_id", "text": "text", "id": "review_id"}


def _dataset(folder: Path, case: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / BUSINESS).write_text("".join(json.dumps(b) + "\n" for b in BUSINESSES))
    (folder / REVIEW).write_text("".join(json.dumps(r) + "\n" for r in REVIEWS))
    return folder / REVIEW if case is None else write_case(folder / REVIEW, case, REVIEWS, KEYS)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_names_file_line_and_field(case: str, tmp_path: Path) -> None:
    bad_file = _dataset(tmp_path / "raw", case)
    _, line, words = CASES[case]
    with pytest.raises(DataFormatError) as info:
        read_yelp(tmp_path / "raw")
    message = str(info.value)
    assert str(bad_file) in message
    if line is not None:
        assert info.value.line == line
    for word in words:
        assert word in message
    field = {"wrong type": "'stars'", "missing required key": "'business_id'", "non-UTF-8 bytes": "'text'", "duplicate id": "'review_id'"}
    assert field.get(case, "") in message


def test_bad_business_file_and_bad_date(tmp_path: Path) -> None:
    _dataset(tmp_path / "raw", None)
    (tmp_path / "raw" / BUSINESS).write_text(json.dumps(BUSINESSES[0]) + "\n" + json.dumps(dict(BUSINESSES[1], latitude="high")) + "\n")
    with pytest.raises(DataFormatError, match=r"line 2: expected a finite number in field 'latitude'"):
        read_yelp(tmp_path / "raw")
    _dataset(tmp_path / "raw", None)
    lines = (tmp_path / "raw" / REVIEW).read_text().splitlines()
    lines[4] = lines[4].replace("2019-01-02 10:00:01", "yesterday")
    (tmp_path / "raw" / REVIEW).write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"line 5: expected a date .* in field 'date'"):
        read_yelp(tmp_path / "raw")
    assert read_yelp(tmp_path / "raw", on_bad_line="skip").skipped_lines == 1


@pytest.mark.parametrize("case", [c for c in CASES if c != "empty file"])
def test_bad_lines_are_skipped_and_counted(case: str, tmp_path: Path) -> None:
    _dataset(tmp_path / "raw", case)
    raw = read_yelp(tmp_path / "raw", on_bad_line="skip")
    assert raw.skipped_lines == 1
    if case != "truncated gz":
        assert len(raw) == len(REVIEWS) - 1


@pytest.mark.parametrize("case", list(CASES))
def test_cli_bad_input_exits_2_without_cache(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("BENCHMARK_CACHE", str(cache))
    _dataset(tmp_path / "raw", case)
    code = main(["data", "prepare", "--data", "yelp", "--raw-dir", str(tmp_path / "raw"), "--set", "kcore=0"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and REVIEW in err and "line" in err
    assert not (cache / "prepared").exists()


def test_missing_files_say_where_to_get_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.data.datasets import load_dataset

    with pytest.raises(BenchmarkError, match=r"https://www.yelp.com/dataset.*Terms of Use.*BENCHMARK_DATA/yelp"):
        load_dataset("yelp", raw_dir=tmp_path / "nothing")
    assert main(["data", "prepare", "--data", "yelp", "--raw-dir", str(tmp_path / "nothing")]) == 2
    assert "https://www.yelp.com/dataset" in capsys.readouterr().err


# --- values outside the valid ranges, damaged archives, missing optional keys ------------


@pytest.mark.parametrize(
    "date, words",
    [
        ("99999-01-01 00:00:00", "a date 'YYYY-MM-DD HH:MM:SS' in field 'date'"),
        ("2100-01-01 00:00:00", "a time from 1970-01-01 to 2100-01-01"),
        ("1969-12-31 23:59:59", "a time from 1970-01-01 to 2100-01-01"),
        ("0001-01-01 00:00:00", "a time from 1970-01-01 to 2100-01-01"),
        ("2019-02-30 10:00:00", "a date in the calendar"),
    ],
)
def test_dates_outside_the_valid_range_are_bad_lines(date: str, words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    _dataset(tmp_path / "raw", None)
    lines = (tmp_path / "raw" / REVIEW).read_text().splitlines()
    lines[6] = lines[6].replace("2019-01-03 10:00:00", date)
    (tmp_path / "raw" / REVIEW).write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=f"line 7: expected {words}"):
        read_yelp(tmp_path / "raw")
    raw = read_yelp(tmp_path / "raw", on_bad_line="skip")
    assert raw.skipped_lines == 1 and len(raw) == len(REVIEWS) - 1
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    assert main(["data", "info", "--data", "yelp", "--raw-dir", str(tmp_path / "raw"), "--set", "kcore=0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "line 7" in err and not (tmp_path / "cache" / "prepared").exists()


def test_businesses_without_name_or_city(tmp_path: Path) -> None:
    _dataset(tmp_path / "raw", None)
    (tmp_path / "raw" / BUSINESS).write_text(
        json.dumps({"business_id": "B0"}) + "\n" + json.dumps({"business_id": "B1", "name": None, "city": " Reno ", "state": None}) + "\n"
    )
    items = read_yelp(tmp_path / "raw").items
    assert items.loc["B0", "title"] == "" and items.loc["B1", "city"] == "Reno" and items.loc["B1", "state"] == ""


def test_damaged_tar_gz_archive_is_one_paragraph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    _dataset(tmp_path / "files", None)
    with tarfile.open(raw_dir / "yelp_dataset.tar.gz", "w:gz") as tar:
        for name in (REVIEW, BUSINESS):
            tar.add(tmp_path / "files" / name, arcname=name)
    content = bytearray((raw_dir / "yelp_dataset.tar.gz").read_bytes())
    assert content[3] == 0x08  # the gzip header holds a file name (FNAME): deflate data start after it
    content[content.index(0, 10) + 1] = 0xFF  # the first deflate block gets the reserved block type: zlib fails at once
    (raw_dir / "yelp_dataset.tar.gz").write_bytes(bytes(content))
    with pytest.raises(DataFormatError, match=r"yelp_dataset.tar.gz: expected a readable tar archive, found .*download it again"):
        read_yelp(raw_dir)
    assert main(["data", "prepare", "--data", "yelp", "--raw-dir", str(raw_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "readable tar archive" in err  # one paragraph


def test_unreadable_review_file_and_raw_folder(tmp_path: Path) -> None:
    from tests.benchmark.data.unprivileged import cli_unprivileged

    raw_dir = tmp_path / "raw"
    _dataset(raw_dir, None)
    argv = ["data", "prepare", "--data", "yelp", "--raw-dir", str(raw_dir), "--set", "kcore=0"]
    (raw_dir / REVIEW).chmod(0)
    code, err = cli_unprivileged(argv)
    assert code == 2 and "Traceback" not in err
    assert f"{raw_dir / REVIEW}: cannot read it (Permission denied)" in err and "chmod u+r" in err
    (raw_dir / REVIEW).chmod(0o644)
    raw_dir.chmod(0)
    try:
        code, err = cli_unprivileged(argv)
    finally:
        raw_dir.chmod(0o755)
    assert code == 2 and "Traceback" not in err and "cannot read it (Permission denied)" in err and str(raw_dir) in err
