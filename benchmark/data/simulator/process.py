"""The simulator's generative process (deterministic by seed; vectorised, so full-scale sizes take minutes).

1. Items have latent attribute vectors v_i ~ N(0, I_d) and a popularity log-weight
   b_i ~ N(0, pop_sigma) (a long tail). Latent dimension t is also a *topic*: item
   categories (genres), brand, titles, descriptions and review texts are drawn from the
   vocabularies of the item's strongest topics, and the price grows with v_i[0], so text,
   categorical and numerical side information all carry signal.
2. Users have a preference vector u ~ N(0, I_d) that drifts slowly over their lifetime:
   at the fraction f in [0, 1) of their history it is u + f * w, w ~ N(0, drift^2 I),
   so recent history predicts the future better than old history (adaptation matters).
3. Exposure: every choice of a user starts from a *slate* of ``slate`` items drawn
   i.i.d. from the popularity distribution q_i (proportional to exp(b_i), quantised to a
   lookup table; the exact q_i used is saved). The user consumes the slate item with the
   largest (u_f . v_i) / (temperature sqrt(d)) + Gumbel noise (a softmax choice among the
   exposed items); an item consumed before is redrawn with a fresh slate. So the known
   exposure propensity of (user, item) is P(i is in at least one of the user's S_u
   slates) = 1 - (1 - q_i)^(slate * S_u) (``GroundTruth.propensity``): data are missing
   not at random, popularity-skewed, and debiasing can be checked against the truth.
4. Within each of ``segments`` parts of a history, items are consumed in order of their
   projection on a per-user direction (consecutive items are similar: sequential signal).
5. Ratings are the standardised true affinity plus N(0, rating_noise^2) noise, on the
   dataset's scale (MovieLens half stars 0.5-5; Yelp and Amazon integer stars 1-5);
   timestamps increase with exponential gaps from a per-user start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIME_RANGES = {"ml": (822_873_600, 1_569_888_000), "yelp": (1_104_537_600, 1_642_118_400), "amazon": (915_148_800, 1_538_352_000)}
RATING_CENTER = {"ml": 3.5, "yelp": 3.7, "amazon": 4.1}


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
    n_interactions: int | None = None  # exact total (before the rare unresolvable repeats); overrides mean_interactions
    slate: int = 16  # items exposed per choice
    rating_noise: float = 0.5
    n_random_pairs: int = 20  # unobserved (user, item) pairs per user in heldout.parquet


def _lengths(cfg: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    mean = cfg.n_interactions / cfg.n_users if cfg.n_interactions else cfg.mean_interactions
    lengths = cfg.min_interactions + rng.geometric(1.0 / max(mean - cfg.min_interactions, 1), cfg.n_users) - 1
    cap = max(cfg.n_items // 2, cfg.min_interactions)
    if cfg.n_interactions:
        extra = (lengths - cfg.min_interactions).astype(np.float64)
        budget = cfg.n_interactions - cfg.min_interactions * cfg.n_users
        scaled = extra * budget / max(extra.sum(), 1.0)
        lengths = cfg.min_interactions + np.floor(scaled).astype(np.int64)
        short = cfg.n_interactions - lengths.sum()
        if short > 0:
            lengths[np.argsort(-(scaled - np.floor(scaled)), kind="stable")[:short]] += 1
    lengths = np.minimum(lengths, cap).astype(np.int64)
    if cfg.n_interactions:  # what the cap removed goes to users below it
        for _ in range(4):
            short = cfg.n_interactions - int(lengths.sum())
            room = np.flatnonzero(lengths < cap)
            if short <= 0 or len(room) == 0:
                break
            add = np.bincount(rng.choice(room, short), minlength=cfg.n_users)
            lengths = np.minimum(lengths + add, cap)
    return lengths


def _popularity_table(b: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A lookup table in which item i fills count_i slots (>= 1): sampling a uniform slot
    samples item i with probability exactly q_i = count_i / len(table)."""
    p = np.exp(b - b.max())
    counts = np.maximum(1, np.round(p / p.sum() * size)).astype(np.int64)
    return np.repeat(np.arange(len(b), dtype=np.int32), counts), counts / counts.sum()


def simulate(cfg: SimulationConfig, time_range: tuple[int, int] = TIME_RANGES["ml"]) -> dict[str, np.ndarray]:
    """Draw one dataset; returns interaction arrays (internal 0-based ids, sorted by user
    then time) and the ground truth."""
    rng = np.random.default_rng(cfg.seed)
    d = cfg.dim
    item_factors = rng.standard_normal((cfg.n_items, d)).astype(np.float32)
    item_pop = rng.normal(0.0, cfg.pop_sigma, cfg.n_items)
    user_factors = rng.standard_normal((cfg.n_users, d)).astype(np.float32)
    user_drift = rng.normal(0.0, cfg.drift, (cfg.n_users, d)).astype(np.float32)
    lengths = _lengths(cfg, rng)
    table, exposure = _popularity_table(item_pop, 64 * cfg.n_items)
    n = int(lengths.sum())
    offsets = np.r_[0, np.cumsum(lengths)[:-1]]
    user = np.repeat(np.arange(cfg.n_users, dtype=np.int64), lengths)
    position = np.arange(n, dtype=np.int64) - np.repeat(offsets, lengths)
    frac = (position / lengths[user]).astype(np.float32)
    item = np.full(n, -1, dtype=np.int64)
    slates = np.zeros(cfg.n_users, dtype=np.int64)
    scale = np.float32(1.0 / (cfg.temperature * np.sqrt(d)))
    todo = np.arange(n)
    consumed = np.zeros(0, dtype=np.int64)  # the sorted (user, item) keys consumed so far; set after round 0
    for _round in range(12):
        if len(todo) == 0:
            break
        slates += np.bincount(user[todo], minlength=cfg.n_users)
        for start in range(0, len(todo), 400_000):
            idx = todo[start : start + 400_000]
            pref = user_factors[user[idx]] + frac[idx, None] * user_drift[user[idx]]
            cand = table[rng.integers(0, len(table), (len(idx), cfg.slate))]
            score = np.einsum("nd,nmd->nm", pref, item_factors[cand]) * scale
            score += rng.gumbel(size=score.shape).astype(np.float32)
            if _round > 0:  # a redraw: items the user already consumed are not chosen again
                cand_key = user[idx, None] * cfg.n_items + cand
                at = np.searchsorted(consumed, cand_key).clip(max=len(consumed) - 1)
                score[consumed[at] == cand_key] = -np.inf
            item[idx] = cand[np.arange(len(idx)), score.argmax(axis=1)]
        # an item the user consumed at an earlier position is redrawn (only users with redraws can repeat)
        if _round == 0:
            scope = np.arange(n)
        else:
            redrawn = np.zeros(cfg.n_users, dtype=bool)
            redrawn[user[todo]] = True
            scope = np.flatnonzero(redrawn[user])
        key = user[scope] * cfg.n_items + item[scope]
        order = np.lexsort((position[scope], key))
        repeat = np.zeros(len(scope), dtype=bool)
        repeat[order[1:]] = key[order[1:]] == key[order[:-1]]
        todo = scope[repeat]
        done = np.ones(n, dtype=bool)
        done[todo] = False
        consumed = np.sort(user[done] * cfg.n_items + item[done]) if len(todo) else None
    keep = np.ones(n, dtype=bool)
    keep[todo] = False  # unresolved after the last round (very heavy users): dropped
    user, item, position, frac = user[keep], item[keep], position[keep], frac[keep]

    # sequential signal: within each segment, order by projection on a per-user direction
    direction = rng.standard_normal((cfg.n_users, d)).astype(np.float32)
    projection = np.einsum("nd,nd->n", item_factors[item], direction[user])
    segment = (frac * cfg.segments).astype(np.int64)
    order = np.lexsort((projection, segment, user))
    user, item = user[order], item[order]
    counts = np.bincount(user, minlength=cfg.n_users)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    frac = ((np.arange(len(user)) - starts[user]) / np.maximum(counts[user], 1)).astype(np.float32)
    pref = user_factors[user] + frac[:, None] * user_drift[user]
    affinity = np.einsum("nd,nd->n", pref, item_factors[item]) / np.float32(np.sqrt(d))
    mean, std = float(affinity.mean()), float(affinity.std() + 1e-9)
    z = (affinity - mean) / std + rng.normal(0.0, cfg.rating_noise, len(affinity)).astype(np.float32)

    t0, t1 = time_range
    gaps = rng.exponential(86_400.0, len(user)).astype(np.int64) + 1
    first = np.r_[True, user[1:] != user[:-1]] if len(user) else np.zeros(0, dtype=bool)
    gaps[first] = 0
    cumulative = np.cumsum(gaps)
    since_start = cumulative - cumulative[starts[user]]
    span = np.zeros(cfg.n_users, dtype=np.int64)
    span[counts > 0] = since_start[np.cumsum(counts)[counts > 0] - 1]  # sorted by user, increasing in time
    start = t0 + (rng.random(cfg.n_users) * np.maximum(t1 - t0 - span, 0)).astype(np.int64)
    timestamp = start[user] + since_start
    return {
        "user": user, "item": item, "z": z.astype(np.float32), "timestamp": timestamp.astype(np.int64),
        "rating": stars_on_scale(z, "ml"),
        "user_factors": user_factors, "user_drift": user_drift, "item_factors": item_factors, "item_popularity": item_pop,
        "exposure": exposure, "slates": slates, "affinity_mean": np.float64(mean), "affinity_std": np.float64(std),
    }  # fmt: skip


def stars_on_scale(z: np.ndarray, like: str) -> np.ndarray:
    raw = RATING_CENTER[like] + z
    if like == "ml":
        return np.clip(np.round(raw * 2) / 2, 0.5, 5.0).astype(np.float32)
    return np.clip(np.round(raw), 1.0, 5.0).astype(np.float32)

