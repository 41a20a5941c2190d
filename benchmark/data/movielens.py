"""GroupLens MovieLens CSV layout (ml-25m, ml-latest-small, and the synthetic-ml simulator).

Files: ``ratings.csv`` (userId,movieId,rating,timestamp; required), ``movies.csv``
(movieId,title,genres with '|'; required), ``tags.csv`` (userId,movieId,tag,timestamp;
optional) and ``links.csv`` (movieId,imdbId,tmdbId; optional).
Side information per movie: title, year (parsed from the title), genres (column
``categories``, the name every reader uses for item categories), IMDb/TMDb ids. User
tags are user-generated and dated, so they are returned per tag row
(``RawData.item_text_events``) and become the ``tags`` column only through preparation,
which keeps a tag only when its (user, movie) pair is a training interaction and it is
dated no later than that user's last training event (under ``temporal``: before the
validation cut).

Valid values (``benchmark.data.raw``): ratings finite from 0 to 5, timestamps (ratings and
tags) from 1970 to 2100; a repeated movieId in movies.csv is a bad line. Errors name the
exact line, also after a title or tag quoted over several lines.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.raw import RATING_RANGE, TIMESTAMP_RANGE, RawData, bad_ratings, bad_timestamps
from benchmark.data.tables import FLOAT, INT, STRING, Check, read_csv, read_csv_arrays

REQUIRED_FILES = ("ratings.csv", "movies.csv")
OPTIONAL_FILES = ("tags.csv", "links.csv")
_YEAR = re.compile(r"\((\d{4})\)\s*$")
_NO_GENRES = "(no genres listed)"
_DATED = {"timestamp": Check(bad_timestamps, TIMESTAMP_RANGE)}
_RATED = {"rating": Check(bad_ratings, RATING_RANGE), **_DATED}


def read_movielens(raw_dir: Path, on_bad_line: str = "error") -> RawData:
    # streamed into arrays; ids as int32 when they fit (MovieLens-25M: 25M rows in about 0.5 GB)
    ratings, skipped = read_csv_arrays(
        raw_dir / "ratings.csv",
        {"userId": INT, "movieId": INT, "rating": FLOAT, "timestamp": INT},
        narrow=("userId", "movieId"),
        float32=("rating",),
        on_bad_line=on_bad_line,
        checks=_RATED,
    )
    items, skipped_items = _read_movies(raw_dir / "movies.csv", on_bad_line)
    skipped += skipped_items
    tags_path = raw_dir / "tags.csv"
    tag_events = None
    if tags_path.exists():
        tags, n = read_csv(
            tags_path,
            {"userId": INT, "movieId": INT, "tag": STRING, "timestamp": INT},
            required=("userId", "movieId", "timestamp"),
            on_bad_line=on_bad_line,
            multiline=True,
            checks=_DATED,
        )
        skipped += n
        tag_events = _tag_events(tags.to_pandas())
    links_path = raw_dir / "links.csv"
    if links_path.exists():
        links, n = read_csv(
            links_path, {"movieId": INT, "imdbId": STRING, "tmdbId": STRING}, required=("movieId",), on_bad_line=on_bad_line
        )
        skipped += n
        links = links.to_pandas().drop_duplicates("movieId").set_index("movieId")
        items["imdb_id"] = links["imdbId"].reindex(items.index)
        items["tmdb_id"] = links["tmdbId"].reindex(items.index)
    return RawData(
        user=ratings["userId"],
        item=ratings["movieId"],
        timestamp=ratings["timestamp"],
        rating=ratings["rating"],
        items=items,
        skipped_lines=skipped,
        item_text_events=tag_events,
    )


def _read_movies(path: Path, on_bad_line: str) -> tuple[pd.DataFrame, int]:
    table, skipped = read_csv(
        path, {"movieId": INT, "title": STRING, "genres": STRING}, required=("movieId",), on_bad_line=on_bad_line,
        multiline=True, unique="movieId",
    )  # fmt: skip
    movies = table.to_pandas()
    titles = movies["title"].fillna("").str.strip()
    year = titles.str.extract(_YEAR, expand=False)
    genres = movies["genres"].fillna("").map(lambda g: [] if g in ("", _NO_GENRES) else g.split("|"))
    items = pd.DataFrame(
        {"title": titles.to_numpy(), "year": pd.to_numeric(year).astype("Int64").to_numpy(), "categories": genres.to_numpy()},
        index=pd.Index(movies["movieId"].to_numpy(), name="raw_id"),
    )
    return items, skipped


def _tag_events(tags: pd.DataFrame) -> pd.DataFrame:
    """Every tag row, lower-cased and stripped, as user-generated item text (field ``tags``):
    preparation keeps only the rows of training pairs dated within the user's training period."""
    tags = tags.dropna(subset=["tag"])
    tags = tags.assign(tag=tags["tag"].str.strip().str.lower())
    tags = tags[tags["tag"] != ""]
    return pd.DataFrame(
        {"user": tags["userId"].to_numpy(), "item": tags["movieId"].to_numpy(), "timestamp": tags["timestamp"].to_numpy(np.int64),
         "field": "tags", "value": tags["tag"].to_numpy()}
    )  # fmt: skip
