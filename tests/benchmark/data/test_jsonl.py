"""JSON-lines reading: the fast (pyarrow) and the precise (line by line) paths give the same
verdict on every line, nesting depth is bounded, and line numbers are exact on both paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.data import jsonl
from benchmark.data.jsonl import DATE, ID, INT, NUMBER, TEXT, Records, Source
from benchmark.data.raw import RATING_RANGE, bad_ratings
from benchmark.errors import BenchmarkError, DataFormatError

FIELDS = {"review_id": ID, "user_id": ID, "stars": NUMBER, "date": DATE, "n": INT, "text": TEXT}
REQUIRED = ("review_id", "user_id", "stars", "date", "n")


def _lines() -> list[str]:
    return [
        json.dumps({"review_id": f"R{k}", "user_id": f"U{k % 3}", "stars": 4.0, "date": f"2019-01-0{k + 1} 10:00:00", "n": k,
                    "text": "ok", "extra": {"a": [1, 2]}})  # fmt: skip
        for k in range(8)
    ]


def _with_line_4(old: str, new: str) -> str:
    lines = _lines()
    lines[3] = lines[3].replace(old, new)
    assert lines[3] != _lines()[3]
    return "\n".join(lines) + "\n"


def _joined(lines: list[str], sep: str = "\n") -> str:
    return sep.join(lines) + sep


# name -> (file content, expected verdict with on_bad_line=error: None = read, else (line, words))
CASES: dict[str, tuple[str, tuple[int, str] | None]] = {
    "NaN": (_with_line_4('"stars": 4.0', '"stars": NaN'), (4, "a finite number in field 'stars', found 'NaN'")),
    "Infinity": (_with_line_4('"stars": 4.0', '"stars": Infinity'), (4, "found 'Infinity'")),
    "-Infinity": (_with_line_4('"stars": 4.0', '"stars": -Infinity'), (4, "found '-Infinity'")),
    "overflowing float": (_with_line_4('"stars": 4.0', '"stars": 1e400'), (4, "a finite number in field 'stars'")),
    "400-digit integer as a number": (_with_line_4('"stars": 4.0', '"stars": ' + "9" * 400), (4, "a finite number")),
    "integer beyond 64 bits": (_with_line_4('"n": 3', '"n": ' + "9" * 30), (4, "a 64-bit integer in field 'n'")),
    "nested 100,000 levels": (_with_line_4('"extra": {', '"extra": ' + "[" * 100_000 + "]" * 100_000 + ', "x": {'), (4, "100001 levels")),
    "nested 101 levels": (_with_line_4('"extra": {', '"extra": ' + "[" * 100 + "]" * 100 + ', "x": {'), (4, "101 levels deep")),
    "nested 100 levels": (_with_line_4('"extra": {', '"extra": ' + "[" * 99 + "]" * 99 + ', "x": {'), None),
    "brackets inside a string": (_with_line_4('"text": "ok"', '"text": "' + "[{" * 500 + '"'), None),
    "deep array as the line": (_joined(_lines()[:3] + ["[" * 100_000 + "]" * 100_000] + _lines()[4:]), (4, "nesting 100000 levels")),
    "two objects on a line": (_with_line_4(_lines()[3], _lines()[3] + " " + _lines()[4].replace("R4", "R99")), (4, "Extra data")),
    "bare CR between objects": (_with_line_4(_lines()[3], _lines()[3] + "\r" + _lines()[4].replace("R4", "R99")), (4, "Extra data")),
    "whitespace-only line": (_joined(_lines()[:3] + [" \t "] + _lines()[3:]), None),
    "CRLF line endings": (_joined(_lines(), "\r\n"), None),
    "CRLF blank line": (_joined(_lines()[:3] + [""] + _lines()[3:], "\r\n"), None),
    "February 30": (_with_line_4("2019-01-04", "2019-02-30"), None),  # read as NAT: the reader's check refuses it
    "one-digit month": (_with_line_4("2019-01-04", "2019-1-04"), (4, "a date 'YYYY-MM-DD HH:MM:SS'")),
    "year 99999": (_with_line_4("2019-01-04", "99999-01-04"), (4, "found '99999-01-04 10:00:00'")),
    "lone surrogate in a read field": (_with_line_4('"text": "ok"', '"text": "a\\ud800b"'), (4, "valid Unicode text in field 'text'")),
    "lone surrogate in an ignored field": (_with_line_4('"extra": {', '"zz": "\\ud800", "extra": {'), None),
    "escaped surrogate pair": (_with_line_4('"text": "ok"', '"text": "\\ud83d\\ude00"'), None),
    "duplicate id": (_with_line_4('"R3"', '"R1"'), (4, "a unique 'review_id'")),
    "empty id": (_with_line_4('"R3"', '""'), (4, "a non-empty string")),
    "control character": (_with_line_4('"text": "ok"', '"text": "o\x01k"'), (4, "Invalid control character")),
    "boolean rating": (_with_line_4('"stars": 4.0', '"stars": true'), (4, "found 'true'")),
    "float as integer": (_with_line_4('"n": 3', '"n": 3.0'), (4, "a 64-bit integer")),
    "no final newline": ("\n".join(_lines()), None),
    "blank first line": ("\n" + _joined(_lines()), None),
}


def _read(path: Path, on_bad_line: str, *, precise_only: bool, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """The verdict of ``read_fast_or_precise``: the records, or the error message."""
    with monkeypatch.context() as patch:
        if precise_only:
            patch.setattr(jsonl, "_fast_records", _no_fast_path)
        try:
            records = jsonl.read_fast_or_precise(Source(path), FIELDS, required=REQUIRED, on_bad_line=on_bad_line, unique="review_id")
        except BenchmarkError as exc:
            return ("error", str(exc))
    return ("read", {k: v.tolist() for k, v in records.columns.items()}, records.lines.tolist(), records.skipped)


def _no_fast_path(*args: object) -> Records:
    raise jsonl.SlowPathNeeded()


@pytest.mark.parametrize("case", list(CASES))
def test_fast_and_precise_paths_give_the_same_verdict(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content, expected = CASES[case]
    path = tmp_path / "reviews.json"
    path.write_bytes(content.encode("utf-8"))
    for on_bad_line in ("error", "skip"):
        verdict = _read(path, on_bad_line, precise_only=False, monkeypatch=monkeypatch)
        assert verdict == _read(path, on_bad_line, precise_only=True, monkeypatch=monkeypatch), on_bad_line
    error = _read(path, "error", precise_only=False, monkeypatch=monkeypatch)
    skipping = _read(path, "skip", precise_only=False, monkeypatch=monkeypatch)
    if expected is None:
        assert error[0] == "read" and error == skipping and len(error[2]) == 8
    else:
        line, words = expected
        assert error[0] == "error" and f", line {line}: " in error[1] and words in error[1]
        assert skipping[0] == "read" and skipping[3] == 1 and line not in skipping[2] and len(skipping[2]) == 7


@pytest.mark.parametrize("case", ["CRLF line endings", "brackets inside a string", "nested 100 levels", "escaped surrogate pair", "no final newline"])
def test_regular_files_stay_on_the_fast_path(case: str, tmp_path: Path) -> None:
    path = tmp_path / "reviews.json"
    path.write_bytes(CASES[case][0].encode("utf-8"))
    records = jsonl._fast_records(Source(path), FIELDS, REQUIRED, "review_id", False)
    assert records.lines.tolist() == list(range(1, 9)) and records.columns["review_id"][3] == "R3"


def test_impossible_dates_become_nat_on_both_paths(tmp_path: Path) -> None:
    path = tmp_path / "reviews.json"
    path.write_bytes(_with_line_4("2019-01-04 10:00:00", "2019-02-30 10:00:00").encode())
    fast = jsonl._fast_records(Source(path), FIELDS, REQUIRED, None, False)
    precise = jsonl.read_records(Source(path), FIELDS, required=REQUIRED)
    for records in (fast, precise):
        assert records.columns["date"][3] == jsonl.NAT and records.columns["date"][0] == 1546336800  # 2019-01-01 10:00:00
    leap = jsonl.date_seconds(jsonl.pa.array(["2019-01-01 23:59:60", "2019-01-01 24:00:00", "2019-12-31 23:59:59"]))
    assert leap.tolist() == [jsonl.NAT, jsonl.NAT, 1577836799]


def test_nesting_that_json_could_parse_is_still_bounded(tmp_path: Path) -> None:
    """500 levels fit Python's parser, but not the readers after it (recursive list walks)."""
    lines = [json.dumps({"asin": "I1", "category": ["a"]}), json.dumps({"asin": "I2", "category": [[[["b"]]]]})]
    lines.append('{"asin": "I3", "category": ' + "[" * 500 + '"c"' + "]" * 500 + "}")
    path = tmp_path / "meta.json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"line 3: expected a JSON object nested at most 100 levels deep, found 'nesting 501"):
        jsonl.read_records(path, {"asin": ID, "category": jsonl.TEXT_OR_LIST}, required=("asin",))
    kept = jsonl.read_records(path, {"asin": ID, "category": jsonl.TEXT_OR_LIST}, required=("asin",), on_bad_line="skip")
    assert kept.columns["asin"].tolist() == ["I1", "I2"] and kept.skipped == 1
    assert jsonl.too_deep(b"[" * 101 + b"]" * 101) == 101 and jsonl.too_deep(b'["' + b"[" * 200 + b'"]') is None


def test_fast_path_names_exact_lines_without_rereading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check after reading (a rating out of range) names the file line, CRLF endings included."""
    lines = _lines()
    lines[5] = lines[5].replace('"stars": 4.0', '"stars": 7.0')
    path = tmp_path / "reviews.json"
    path.write_bytes(_joined(lines, "\r\n").encode())
    monkeypatch.setattr(jsonl, "read_records", lambda *a, **k: pytest.fail("the fast path re-read the file"))
    source = Source(path)

    def post(records: Records) -> Records:
        return jsonl.reject(source, records, bad_ratings(records.columns["stars"]), RATING_RANGE, "stars", False)

    with pytest.raises(DataFormatError, match=r"line 6: expected a finite rating from 0 to 5 in field 'stars', found '7.0'"):
        jsonl.read_fast_or_precise(source, FIELDS, required=REQUIRED, post=post)


def test_a_bad_line_after_blank_lines_names_its_own_line(tmp_path: Path) -> None:
    lines = _lines()
    lines[6] = lines[6].replace('"stars": 4.0', '"stars": NaN')
    path = tmp_path / "reviews.json"
    path.write_text("\n".join(lines[:2] + ["", "   ", ""] + lines[2:]) + "\n")  # 3 blank lines: line 7 is now line 10
    with pytest.raises(DataFormatError) as info:
        jsonl.read_fast_or_precise(Source(path), FIELDS, required=REQUIRED)
    assert info.value.line == 10 and "'NaN'" in str(info.value)
    np.testing.assert_array_equal(
        jsonl.read_fast_or_precise(Source(path), FIELDS, required=REQUIRED, on_bad_line="skip").lines, [1, 2, 6, 7, 8, 9, 11]
    )
