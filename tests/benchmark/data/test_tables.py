"""CSV reading: pyarrow's typed read and the precise line scan agree on every value."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.data import tables
from benchmark.data.raw import RATING_RANGE, bad_ratings
from benchmark.data.tables import FLOAT, INT, STRING, Check, read_csv
from benchmark.errors import BenchmarkError

INTEGERS = [
    "5", " 5", "5 ", "\t5", "05", "-0", "000000000000000000005", "9223372036854775807", "9223372036854775808",
    "-9223372036854775808", "-9223372036854775809", "0x10", "0X1f", "0xffffffffffffffff", "0x00000000000000010", "-0x10",
    "0x", "+5", "1e3", "1.0", "-", "1_000", "\u0663", "5\u00a0", "nan", "NA", "  ", '"5"', '""',
]  # fmt: skip
NUMBERS = [
    "1", " 1.5", "+1.5", ".5", "5.", "-.5", "1e-5", "1.5E-3", "1.e5", "5.0000001", "-0.5", "0." + "1" * 400, "1e-400",
    "nan", "NaN", "-nan", "inf", "-Infinity", "1e400", "1" * 400, ".", "1e", ".e5", "0x1p3", "1_0", '"1,5"', "N/A", "null",
    "  ", '"4.5"', '""',
]  # fmt: skip
COLUMNS = {"i": INT, "f": FLOAT, "s": STRING}
CHECKS = {"f": Check(bad_ratings, RATING_RANGE)}


def _verdict(path: Path, on_bad_line: str, multiline: bool = False) -> tuple:
    try:
        table, skipped = read_csv(path, COLUMNS, required=("i", "f"), on_bad_line=on_bad_line, multiline=multiline, checks=CHECKS)
    except BenchmarkError as exc:
        return ("error", str(exc))
    return ("read", table.to_pylist(), skipped)


def _both_paths(path: Path, on_bad_line: str, monkeypatch: pytest.MonkeyPatch, multiline: bool = False) -> tuple[tuple, tuple]:
    fast = _verdict(path, on_bad_line, multiline)
    with monkeypatch.context() as patch:
        patch.setattr(tables, "_fast_table", lambda spec: None)
        return fast, _verdict(path, on_bad_line, multiline)


@pytest.mark.parametrize("column, token", [("i", t) for t in INTEGERS] + [("f", t) for t in NUMBERS])
def test_values_get_the_same_verdict_on_both_paths(column: str, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    row = f"{token},1,x" if column == "i" else f"1,{token},x"
    path = tmp_path / "t.csv"
    path.write_text(f"i,f,s\n1,2,a\n{row}\n3,4,b\n")
    for on_bad_line in ("error", "skip"):
        fast, scan = _both_paths(path, on_bad_line, monkeypatch)
        assert fast == scan
    verdict = _verdict(path, "error")
    if verdict[0] == "error":
        assert ", line 3: expected " in verdict[1] and f"in column '{column}'" in verdict[1]
        assert _verdict(path, "skip")[2] == 1


def test_verdicts_on_sample_values() -> None:
    """What the grammar is, spelled out: pyarrow's, with NaN and infinities refused."""
    assert [tables._integer(t) for t in ("5", " -7\t", "0x10", "0xffffffffffffffff", "+5", "1e3", "9223372036854775808")] == [
        5, -7, 16, -1, None, None, None,
    ]  # fmt: skip
    assert [tables._number(t) for t in ("1.5", "+.5", "1e5", "nan", "inf", "1e400", "1,5")] == [1.5, 0.5, 1e5, None, None, None, None]


@pytest.mark.parametrize(
    "content, line",
    [
        ('i,f,s\n1,2,"two\nlines"\n3,4,"three\n\nlines"\nx,1,a\n', 7),
        ("i,f,s\r\n1,2,a\r\n\r\n3,9,b\r\n", 4),
        ("i,f,s\n1,2,a\n3,4\n", 3),
    ],
)
def test_structure_errors_name_the_first_line_of_the_record(content: str, line: int, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    path = tmp_path / "t.csv"
    path.write_text(content, newline="")
    fast, scan = _both_paths(path, "error", monkeypatch, multiline=True)
    assert fast == scan and fast[0] == "error" and str(path) in fast[1]
    assert f", line {line}: " in fast[1]
    fast, scan = _both_paths(path, "skip", monkeypatch, multiline=True)
    assert fast == scan and fast[0] == "read" and fast[2] == 1
