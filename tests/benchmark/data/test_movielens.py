"""The GroupLens reader on the real slice, and its errors on malformed files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data.movielens import read_movielens
from benchmark.errors import BenchmarkError, DataFormatError


def test_reads_real_ml_latest_small(ml_small: Path) -> None:
    raw = read_movielens(ml_small)
    assert len(raw) == 100_836
    assert len(np.unique(raw.user)) == 610
    assert len(np.unique(raw.item)) == 9_724  # 18 of the 9,742 movies are never rated
    assert raw.skipped_lines == 0
    assert raw.items.shape[0] == 9_742
    toy = raw.items.loc[1]
    assert toy["title"] == "Toy Story (1995)" and toy["year"] == 1995
    assert toy["categories"] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert toy["imdb_id"] == "0114709" and toy["tmdb_id"] == "862"
    assert "tags" not in raw.items  # user tags are dated events, filtered by the split (RawData.item_text_events)
    tags = raw.item_text_events
    assert len(tags) == 3_683 and set(tags["field"]) == {"tags"}
    assert "funny" in set(tags.loc[tags["item"] == 60756, "value"])
    # first line of ratings.csv: 1,1,4.0,964982703
    assert (raw.user[0], raw.item[0], raw.rating[0], raw.timestamp[0]) == (1, 1, 4.0, 964982703)


def _write_dataset(folder: Path, ratings: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text(ratings)
    (folder / "movies.csv").write_text("movieId,title,genres\n1,A (1999),Drama\n2,B (2001),Comedy|Drama\n")
    return folder


GOOD_HEADER = "userId,movieId,rating,timestamp\n"
CASES = {
    "non-numeric id": (GOOD_HEADER + "1,1,4.0,100\nx7,2,3.0,101\n", 3, "userId"),
    "missing column": ("userId,movieId,rating\n1,1,4.0\n", 1, "timestamp"),
    "truncated line": (GOOD_HEADER + "1,1,4.0,100\n1,2,3.0,101\n2,1,5.0", 4, "4 comma-separated fields"),
    "empty value": (GOOD_HEADER + "1,1,4.0,100\n1,,3.0,101\n", 3, "movieId"),
    "empty file": ("", 1, "empty file"),
    "NaN rating": (GOOD_HEADER + "1,1,4.0,100\n1,2,nan,101\n", 3, "a finite number in column 'rating'"),
    "infinite rating": (GOOD_HEADER + "1,1,4.0,100\n1,2,inf,101\n", 3, "a finite number in column 'rating'"),
    "rating out of range": (GOOD_HEADER + "1,1,4.0,100\n1,2,6.5,101\n", 3, "a finite rating from 0 to 5 in column 'rating'"),
    "timestamp in the year 2100": (GOOD_HEADER + "1,1,4.0,100\n1,2,3.0,4102444800\n", 3, "a time from 1970-01-01 to 2100-01-01"),
    "negative timestamp": (GOOD_HEADER + "1,1,4.0,-5\n", 2, "a time from 1970-01-01 to 2100-01-01"),
    "timestamp beyond 64 bits": (GOOD_HEADER + "1,1,4.0,100\n1,2,3.0,99999999999999999999\n", 3, "a 64-bit integer in column 'timestamp'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_ratings_name_file_and_line(case: str, tmp_path: Path) -> None:
    content, line, words = CASES[case]
    folder = _write_dataset(tmp_path / "raw", content)
    with pytest.raises(DataFormatError) as info:
        read_movielens(folder)
    assert info.value.line == line
    assert str(folder / "ratings.csv") in str(info.value)
    assert words in str(info.value)


@pytest.mark.parametrize("case", list(CASES) + ["missing file"])
def test_cli_bad_input_exits_2_without_traceback_or_cache(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("BENCHMARK_CACHE", str(cache))
    folder = _write_dataset(tmp_path / "raw", CASES.get(case, (GOOD_HEADER + "1,1,4.0,100\n", 0, ""))[0])
    if case == "missing file":
        os.remove(folder / "ratings.csv")
    code = main(["data", "prepare", "--data", "ml-latest-small", "--raw-dir", str(folder)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and "ratings.csv" in err
    assert not (cache / "prepared").exists()


def test_skip_bad_lines_counts_them(tmp_path: Path) -> None:
    ratings = GOOD_HEADER + "1,1,4.0,100\nx,2,3.0,101\n1,2,3.0,102\n2,1,5.0\n2,2,1.5,103\n"
    raw = read_movielens(_write_dataset(tmp_path / "raw", ratings), on_bad_line="skip")
    assert raw.skipped_lines == 2
    assert raw.user.tolist() == [1, 1, 2] and raw.item.tolist() == [1, 2, 2]
    assert raw.timestamp.tolist() == [100, 102, 103]


def test_nan_rating_is_refused_on_both_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow reads "nan" as a number; the line scan must not, and neither may the fast path."""
    from benchmark.data import tables

    folder = _write_dataset(tmp_path / "raw", GOOD_HEADER + "1,1,4.0,100\n1,2,NaN,101\n2,1,5.0,102\n")
    with pytest.raises(DataFormatError, match="line 3: expected a finite number in column 'rating', found 'NaN'"):
        read_movielens(folder)
    monkeypatch.setattr(tables, "_fast_table", lambda spec: None)  # the line scan alone: same verdict
    with pytest.raises(DataFormatError, match="line 3: expected a finite number in column 'rating', found 'NaN'"):
        read_movielens(folder)
    raw = read_movielens(folder, on_bad_line="skip")
    assert raw.skipped_lines == 1 and raw.rating.tolist() == [4.0, 5.0]


def test_duplicate_movie_ids_are_an_error(tmp_path: Path) -> None:
    folder = _write_dataset(tmp_path / "raw", GOOD_HEADER + "1,1,4.0,100\n")
    (folder / "movies.csv").write_text("movieId,title,genres\n1,A (1999),Drama\n1,B (2001),Drama\n")
    with pytest.raises(DataFormatError, match="line 3"):
        read_movielens(folder)


def test_missing_folder_says_where_to_put_files(tmp_path: Path) -> None:
    from benchmark.data.datasets import load_dataset

    with pytest.raises(BenchmarkError, match="BENCHMARK_DATA/ml-25m"):
        load_dataset("ml-25m", raw_dir=tmp_path / "nothing")



# --- exact line numbers after values quoted over several lines ---------------------------

MOVIES_HEADER = "movieId,title,genres\n"
TWO_LINE_TITLE = '1,"A film\nin two lines (1999)",Drama\n'  # lines 2-3


@pytest.mark.parametrize(
    "file, content, line, words",
    [
        ("movies.csv", MOVIES_HEADER + TWO_LINE_TITLE + "x2,B (2001),Comedy\n", 4, "a 64-bit integer in column 'movieId'"),
        ("movies.csv", MOVIES_HEADER + TWO_LINE_TITLE + "2,B (2001),Comedy\n1,C (2002),Drama\n", 5, "a unique 'movieId'"),
        ("movies.csv", MOVIES_HEADER + TWO_LINE_TITLE + '2,"B\n\nthree lines",Comedy\n3,C,Drama,extra\n', 7, "3 comma-separated fields"),
        ("movies.csv", MOVIES_HEADER + TWO_LINE_TITLE + "\n\n2,B (2001),Comedy\n,C,Drama\n", 7, "in column 'movieId'"),
        ("tags.csv", "userId,movieId,tag,timestamp\n1,1,\"funny\nand sad\",100\n1,2,ok,1e9\n", 4, "a 64-bit integer in column 'timestamp'"),
        ("tags.csv", "userId,movieId,tag,timestamp\n1,1,\"funny\r\nsad\",100\r\n1,2,ok,-1\r\n", 4, "a time from 1970-01-01"),
        ("ratings.csv", GOOD_HEADER + "1,1,4.0,100\r1,2,3.0,101\r1,3,x,102\r", 4, "a finite number in column 'rating'"),
    ],
)
def test_line_numbers_are_exact_after_multiline_values(file: str, content: str, line: int, words: str, tmp_path: Path) -> None:
    folder = _write_dataset(tmp_path / "raw", GOOD_HEADER + "1,1,4.0,100\n1,2,3.0,101\n")
    (folder / file).write_text(content, newline="")
    with pytest.raises(DataFormatError) as info:
        read_movielens(folder)
    assert info.value.line == line and str(folder / file) in str(info.value) and words in str(info.value)
    assert read_movielens(folder, on_bad_line="skip").skipped_lines == 1


def test_undecodable_bytes_are_named_at_their_own_line(tmp_path: Path) -> None:
    """The decoder reads ahead in blocks: the line must come from the bytes, not from how far it read."""
    rows = [f"{u},{m},3.5,{1_000_000 + u * 10 + m}" for u in range(1, 200) for m in range(1, 6)]
    content = (GOOD_HEADER + "\n".join(rows) + "\n").encode()
    lines = content.split(b"\n")
    lines[700] = lines[700] + b"\xff"  # line 701
    folder = _write_dataset(tmp_path / "raw", "")
    (folder / "ratings.csv").write_bytes(b"\n".join(lines))
    with pytest.raises(DataFormatError, match=r"line 701: expected UTF-8 text in column 'timestamp'"):
        read_movielens(folder)
    movies = MOVIES_HEADER.encode() + TWO_LINE_TITLE.encode() + b"2,Caf\xe9 (2001),Drama\n"
    (folder / "ratings.csv").write_text(GOOD_HEADER + "1,1,4.0,100\n")
    (folder / "movies.csv").write_bytes(movies)
    with pytest.raises(DataFormatError, match=r"line 4: expected UTF-8 text in column 'title'"):
        read_movielens(folder)


def test_titles_spelled_like_null_values_are_kept(tmp_path: Path) -> None:
    folder = _write_dataset(tmp_path / "raw", GOOD_HEADER + "1,1,4.0,100\n")
    (folder / "movies.csv").write_text(MOVIES_HEADER + "1,NA,Drama\n2,null,Comedy\n3,,Drama\n")
    items = read_movielens(folder).items
    assert items["title"].tolist() == ["NA", "null", ""]


def test_unreadable_ratings_file_is_one_paragraph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.benchmark.data.unprivileged import cli_unprivileged

    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    folder = _write_dataset(tmp_path / "raw", GOOD_HEADER + "1,1,4.0,100\n")
    (folder / "ratings.csv").chmod(0)
    code, err = cli_unprivileged(["data", "prepare", "--data", "ml-latest-small", "--raw-dir", str(folder)])
    assert code == 2 and err.count("\n") == 1
    assert f"{folder / 'ratings.csv'}: cannot read it (Permission denied). Make it readable" in err and "--raw-dir" in err
