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


def test_duplicate_movie_ids_are_an_error(tmp_path: Path) -> None:
    folder = _write_dataset(tmp_path / "raw", GOOD_HEADER + "1,1,4.0,100\n")
    (folder / "movies.csv").write_text("movieId,title,genres\n1,A (1999),Drama\n1,B (2001),Drama\n")
    with pytest.raises(DataFormatError, match="line 3"):
        read_movielens(folder)


def test_missing_folder_says_where_to_put_files(tmp_path: Path) -> None:
    from benchmark.data.datasets import load_dataset

    with pytest.raises(BenchmarkError, match="BENCHMARK_DATA/ml-25m"):
        load_dataset("ml-25m", raw_dir=tmp_path / "nothing")

