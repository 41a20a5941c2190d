"""The simulator's MovieLens writer: the GroupLens CSV layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from benchmark.data.simulator.ground_truth import write_ground_truth
from benchmark.data.simulator.output import atomic_output
from benchmark.data.simulator.process import TIME_RANGES, SimulationConfig, simulate
from benchmark.data.simulator.text import GENRES, TITLE_WORDS, topic_order


def write_movielens(cfg: SimulationConfig, out_dir: Path) -> None:
    """Write a simulated dataset in the GroupLens CSV layout, atomically (temp dir + rename)."""

    def write(tmp: Path) -> None:
        sim = simulate(cfg, TIME_RANGES["ml"])
        rng = np.random.default_rng(cfg.seed + 1)
        movie_ids = np.sort(rng.choice(np.arange(1, 20 * cfg.n_items + 1), cfg.n_items, replace=False))
        user_ids = np.arange(1, cfg.n_users + 1)
        # GroupLens files are sorted by user, then movie: file order is not time order.
        order = np.lexsort((movie_ids[sim["item"]], sim["user"]))
        stars = np.round(sim["rating"][order] * 2).astype(np.int32)  # 1..10 half stars
        labels = pa.array([f"{s / 2:.1f}" for s in range(11)])
        table = pa.table(
            {
                "userId": pa.array(user_ids[sim["user"][order]]),
                "movieId": pa.array(movie_ids[sim["item"][order]]),
                "rating": pa.DictionaryArray.from_arrays(pa.array(stars), labels).cast(pa.string()),
                "timestamp": pa.array(sim["timestamp"][order]),
            }
        )
        with pa.OSFile(str(tmp / "ratings.csv"), "wb") as sink:  # GroupLens header: unquoted
            sink.write(b"userId,movieId,rating,timestamp\n")
            pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=1 << 20))
        strongest = topic_order(sim["item_factors"])[:, :2]
        genres = ["|".join(sorted({GENRES[d % len(GENRES)] for d in dims})) for dims in strongest]
        years = rng.integers(1950, 2018, cfg.n_items)
        titles = [f"The {TITLE_WORDS[d[0] % len(TITLE_WORDS)]} {TITLE_WORDS[d[1] % len(TITLE_WORDS)]} {i} ({y})" for i, (d, y) in enumerate(zip(strongest, years))]
        pd.DataFrame({"movieId": movie_ids, "title": titles, "genres": genres}).to_csv(tmp / "movies.csv", index=False)
        pd.DataFrame(
            {"movieId": movie_ids, "imdbId": [f"{m:07d}" for m in movie_ids], "tmdbId": movie_ids + 100_000}
        ).to_csv(tmp / "links.csv", index=False)
        n = len(sim["user"])
        tagged = np.sort(rng.choice(n, size=n // 50, replace=False))
        tag_names = np.array([g.split("|")[0].lower() for g in genres], dtype=object)
        pd.DataFrame(
            {
                "userId": user_ids[sim["user"][tagged]],
                "movieId": movie_ids[sim["item"][tagged]],
                "tag": tag_names[sim["item"][tagged]],
                "timestamp": sim["timestamp"][tagged],
            }
        ).to_csv(tmp / "tags.csv", index=False)
        write_ground_truth(tmp, cfg, sim, "ml", user_ids, movie_ids)

    atomic_output(out_dir, write)
