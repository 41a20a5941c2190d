"""The project's simulator: realistic interaction data with known ground truth.

Generative process (deterministic by seed):

1. Items have latent attribute vectors v_i ~ N(0, I_d) and a popularity log-weight
   b_i ~ N(0, pop_sigma) (a long tail). Each item's genres are the genres attached to
   its two strongest latent dimensions, so side information carries signal.
2. Users have a preference vector u ~ N(0, I_d) that drifts linearly over their
   lifetime (u_s = u + (s / S) * w, w ~ N(0, drift^2 I)): recent history is more
   predictive than old history.
3. A user's history is S segments; in each, items are drawn without replacement with
   logits (u_s . v_i) / temperature + b_i (Gumbel top-k), so exposure is
   popularity-skewed. Within a segment items are consumed in order of their projection
   on a per-user direction, so consecutive items are similar (sequential signal).
4. Ratings are the standardised affinity plus noise, mapped to 0.5..5 stars;
   timestamps increase with exponential gaps.

The raw files are written in the real dataset's format, so the real reader is what
reads them, and the ground truth (factors, popularity) is saved beside them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_WORDS = ("Night", "River", "Star", "Shadow", "City", "Heart", "Storm", "Game", "Dream", "Road", "King", "Secret")


@dataclass(frozen=True)
class SimulationConfig:
    n_users: int = 2000
    n_items: int = 1000
    mean_interactions: int = 40  # per user; each user has at least min_interactions
    min_interactions: int = 5
    dim: int = 8
    segments: int = 4
    temperature: float = 0.5
    pop_sigma: float = 1.0
    drift: float = 0.6
    seed: int = 0


def simulate(cfg: SimulationConfig) -> dict[str, np.ndarray]:
    """Draw one dataset; returns interaction arrays (internal 0-based ids) and ground truth."""
    rng = np.random.default_rng(cfg.seed)
    item_factors = rng.standard_normal((cfg.n_items, cfg.dim))
    item_pop = rng.normal(0.0, cfg.pop_sigma, cfg.n_items)
    user_factors = rng.standard_normal((cfg.n_users, cfg.dim))
    user_drift = rng.normal(0.0, cfg.drift, (cfg.n_users, cfg.dim))
    lengths = cfg.min_interactions + rng.geometric(1.0 / max(cfg.mean_interactions - cfg.min_interactions, 1), cfg.n_users) - 1
    lengths = np.minimum(lengths, cfg.n_items // 2)

    users, items, affinity = [], [], []
    for u in range(cfg.n_users):
        chosen = np.zeros(cfg.n_items, dtype=bool)
        direction = rng.standard_normal(cfg.dim)
        per_segment = np.diff(np.linspace(0, lengths[u], cfg.segments + 1).astype(int))
        for s, n in enumerate(per_segment):
            if n == 0:
                continue
            pref = user_factors[u] + (s / cfg.segments) * user_drift[u]
            logits = item_factors @ pref / (cfg.temperature * np.sqrt(cfg.dim)) + item_pop
            logits = np.where(chosen, -np.inf, logits + rng.gumbel(size=cfg.n_items))
            picked = np.argpartition(-logits, n - 1)[:n]
            picked = picked[np.argsort(item_factors[picked] @ direction, kind="stable")]
            chosen[picked] = True
            users.append(np.full(n, u))
            items.append(picked)
            affinity.append(item_factors[picked] @ pref)
    user = np.concatenate(users)
    item = np.concatenate(items)
    aff = np.concatenate(affinity)
    z = (aff - aff.mean()) / (aff.std() + 1e-9) + rng.normal(0.0, 0.5, len(aff))
    rating = np.clip(np.round((3.0 + 1.0 * z) * 2) / 2, 0.5, 5.0)
    start = rng.integers(946_684_800, 1_500_000_000, cfg.n_users)  # 2000-01-01 .. 2017-07
    gaps = rng.exponential(86_400.0, len(user)).astype(np.int64) + 1
    first = np.r_[True, user[1:] != user[:-1]]
    gaps[first] = 0
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(user)), 0))
    cumulative = np.cumsum(gaps)
    timestamp = start[user] + cumulative - cumulative[group_start]
    return {
        "user": user, "item": item, "rating": rating.astype(np.float32), "timestamp": timestamp.astype(np.int64),
        "user_factors": user_factors, "user_drift": user_drift, "item_factors": item_factors, "item_popularity": item_pop,
    }  # fmt: skip


def write_movielens(cfg: SimulationConfig, out_dir: Path) -> None:
    """Write a simulated dataset in the GroupLens CSV layout, atomically (temp dir + rename)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        sim = simulate(cfg)
        rng = np.random.default_rng(cfg.seed + 1)
        movie_ids = np.sort(rng.choice(np.arange(1, 20 * cfg.n_items + 1), cfg.n_items, replace=False))
        user_ids = np.arange(1, cfg.n_users + 1)
        # GroupLens files are sorted by user, then movie: file order is not time order.
        order = np.lexsort((movie_ids[sim["item"]], sim["user"]))
        pd.DataFrame(
            {
                "userId": user_ids[sim["user"][order]],
                "movieId": movie_ids[sim["item"][order]],
                "rating": sim["rating"][order],
                "timestamp": sim["timestamp"][order],
            }
        ).to_csv(tmp / "ratings.csv", index=False, float_format="%.1f")
        strongest = np.argsort(-sim["item_factors"], axis=1)[:, :2]
        genres = ["|".join(sorted({GENRES[d % len(GENRES)] for d in dims})) for dims in strongest]
        years = rng.integers(1950, 2018, cfg.n_items)
        titles = [f"The {_WORDS[d[0] % len(_WORDS)]} {_WORDS[d[1] % len(_WORDS)]} {i} ({y})" for i, (d, y) in enumerate(zip(strongest, years))]
        pd.DataFrame({"movieId": movie_ids, "title": titles, "genres": genres}).to_csv(tmp / "movies.csv", index=False)
        pd.DataFrame(
            {"movieId": movie_ids, "imdbId": [f"{m:07d}" for m in movie_ids], "tmdbId": movie_ids + 100_000}
        ).to_csv(tmp / "links.csv", index=False)
        tagged = rng.choice(len(sim["user"]), size=len(sim["user"]) // 50, replace=False)
        pd.DataFrame(
            {
                "userId": user_ids[sim["user"][tagged]],
                "movieId": movie_ids[sim["item"][tagged]],
                "tag": [genres[i].split("|")[0].lower() for i in sim["item"][tagged]],
                "timestamp": sim["timestamp"][tagged],
            }
        ).to_csv(tmp / "tags.csv", index=False)
        np.savez_compressed(
            tmp / "ground_truth.npz",
            user_ids=user_ids, movie_ids=movie_ids, user_factors=sim["user_factors"], user_drift=sim["user_drift"],
            item_factors=sim["item_factors"], item_popularity=sim["item_popularity"],
        )  # fmt: skip
        (tmp / "SIMULATION.txt").write_text(
            "Written by benchmark.data.simulator (synthetic data, not real users).\n"
            + "\n".join(f"{k} = {v}" for k, v in asdict(cfg).items())
            + "\n"
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
