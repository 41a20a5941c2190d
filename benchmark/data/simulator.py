"""The project's simulator: realistic interaction data with known ground truth.

Generative process (deterministic by seed; vectorised, so full-scale sizes take minutes):

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

Writers put the raw files in the real dataset's format, so the real reader is what reads
them: ``write_movielens`` (GroupLens CSV), ``write_yelp`` (Yelp Open Dataset JSON
lines, with stringified attribute dicts and ``\\/`` escapes), ``write_amazon`` (Amazon
2018 ``Electronics_5.json`` + ``meta_Electronics.json``, or the 2023 ``.jsonl`` layout;
HTML entities, "$12.99"/"" prices, list-or-dict ``style``, verbatim repeated metadata
lines). Beside them, in every format: ``ground_truth.npz`` (raw ids, factors, drift,
popularity, exposure probability q, slate size, slates per user, rating scale) and
``heldout.parquet`` (per user: the last two consumed items -- the leave-one-out test and
validation pairs -- and ``n_random_pairs`` unobserved items, each with its true affinity
at the end of the history, noiseless expected rating, relevance flag and exposure
propensity). ``load_ground_truth(raw_dir)`` reads them back.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from benchmark.files import atomic_dir

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_WORDS = ("Night", "River", "Star", "Shadow", "City", "Heart", "Storm", "Game", "Dream", "Road", "King", "Secret")

_TIME_RANGES = {"ml": (822_873_600, 1_569_888_000), "yelp": (1_104_537_600, 1_642_118_400), "amazon": (915_148_800, 1_538_352_000)}
_RATING_CENTER = {"ml": 3.5, "yelp": 3.7, "amazon": 4.1}


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


# --- the generative process ------------------------------------------------------------


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


def simulate(cfg: SimulationConfig, time_range: tuple[int, int] = _TIME_RANGES["ml"]) -> dict[str, np.ndarray]:
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
        "rating": _stars(z, "ml"),
        "user_factors": user_factors, "user_drift": user_drift, "item_factors": item_factors, "item_popularity": item_pop,
        "exposure": exposure, "slates": slates, "affinity_mean": np.float64(mean), "affinity_std": np.float64(std),
    }  # fmt: skip


def _stars(z: np.ndarray, like: str) -> np.ndarray:
    raw = _RATING_CENTER[like] + z
    if like == "ml":
        return np.clip(np.round(raw * 2) / 2, 0.5, 5.0).astype(np.float32)
    return np.clip(np.round(raw), 1.0, 5.0).astype(np.float32)


# --- ground truth ----------------------------------------------------------------------


@dataclass
class GroundTruth:
    """The simulator's truth, in raw ids: read back with ``load_ground_truth``."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_factors: np.ndarray
    user_drift: np.ndarray
    item_factors: np.ndarray
    item_popularity: np.ndarray
    exposure: np.ndarray  # q_i: probability that one slate position shows item i
    slates: np.ndarray  # slates shown to each user
    slate: int
    affinity_mean: float
    affinity_std: float
    rating_center: float
    heldout: pd.DataFrame | None = None

    def _index(self, users: Iterable, items: Iterable) -> tuple[np.ndarray, np.ndarray]:
        u = pd.Index(self.user_ids).get_indexer(np.asarray(users))
        i = pd.Index(self.item_ids).get_indexer(np.asarray(items))
        if (u < 0).any() or (i < 0).any():
            raise KeyError("unknown raw user or item id")
        return u, i

    def propensity(self, users: Iterable, items: Iterable) -> np.ndarray:
        """P(item shown to the user at least once): 1 - (1 - q_i)^(slate * S_u)."""
        return self._propensity(*self._index(users, items))

    def affinity(self, users: Iterable, items: Iterable, at: float = 1.0) -> np.ndarray:
        """True affinity (u + at * w) . v_i / sqrt(d); ``at`` = 1.0 is the end of the history."""
        return self._affinity(*self._index(users, items), at)

    def expected_rating(self, users: Iterable, items: Iterable, at: float = 1.0) -> np.ndarray:
        """Noiseless rating on the dataset's scale (not rounded, not clipped)."""
        return self._expected(self.affinity(users, items, at))

    def _propensity(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return 1.0 - np.power(1.0 - self.exposure[i], self.slate * self.slates[u])

    def _affinity(self, u: np.ndarray, i: np.ndarray, at: float = 1.0) -> np.ndarray:
        pref = self.user_factors[u] + np.float32(at) * self.user_drift[u]
        return np.einsum("nd,nd->n", pref, self.item_factors[i]) / np.float32(np.sqrt(self.item_factors.shape[1]))

    def _expected(self, affinity: np.ndarray) -> np.ndarray:
        return self.rating_center + (affinity - self.affinity_mean) / self.affinity_std


def load_ground_truth(raw_dir: Path) -> GroundTruth:
    raw_dir = Path(raw_dir)
    with np.load(raw_dir / "ground_truth.npz", allow_pickle=False) as npz:
        values = {k: npz[k] for k in npz.files}
    heldout = pd.read_parquet(raw_dir / "heldout.parquet") if (raw_dir / "heldout.parquet").is_file() else None
    return GroundTruth(
        user_ids=values["user_ids"], item_ids=values["item_ids"], user_factors=values["user_factors"],
        user_drift=values["user_drift"], item_factors=values["item_factors"], item_popularity=values["item_popularity"],
        exposure=values["exposure"], slates=values["slates"], slate=int(values["slate"]),
        affinity_mean=float(values["affinity_mean"]), affinity_std=float(values["affinity_std"]),
        rating_center=float(values["rating_center"]), heldout=heldout,
    )  # fmt: skip


def _write_ground_truth(out: Path, cfg: SimulationConfig, sim: dict[str, np.ndarray], like: str, user_ids: np.ndarray, item_ids: np.ndarray) -> None:
    np.savez_compressed(
        out / "ground_truth.npz",
        user_ids=user_ids, item_ids=item_ids, movie_ids=item_ids, user_factors=sim["user_factors"],
        user_drift=sim["user_drift"], item_factors=sim["item_factors"], item_popularity=sim["item_popularity"],
        exposure=sim["exposure"], slates=sim["slates"], slate=np.int64(cfg.slate),
        affinity_mean=sim["affinity_mean"], affinity_std=sim["affinity_std"],
        rating_center=np.float64(_RATING_CENTER[like]),
    )  # fmt: skip
    gt = GroundTruth(
        user_ids, item_ids, sim["user_factors"], sim["user_drift"], sim["item_factors"], sim["item_popularity"],
        sim["exposure"], sim["slates"], cfg.slate, float(sim["affinity_mean"]), float(sim["affinity_std"]), _RATING_CENTER[like],
    )  # fmt: skip
    user, item = sim["user"], sim["item"]
    counts = np.bincount(user, minlength=cfg.n_users)
    ends = np.cumsum(counts)
    has2 = counts >= 2
    last = ends[counts >= 1] - 1
    second = ends[has2] - 2
    rng = np.random.default_rng(cfg.seed + 2)
    per_user = max(1, min(cfg.n_random_pairs, 2_000_000 // max(cfg.n_users, 1)))  # at most ~2M random rows
    r_user = np.repeat(np.arange(cfg.n_users), per_user)
    r_item = rng.integers(0, cfg.n_items, len(r_user))
    seen = np.sort(user * cfg.n_items + item)
    r_key = r_user * cfg.n_items + r_item
    unobserved = seen[np.searchsorted(seen, r_key).clip(max=max(len(seen) - 1, 0))] != r_key
    r_user, r_item = r_user[unobserved], r_item[unobserved]
    pairs_user = np.concatenate([user[last], user[second], r_user])
    pairs_item = np.concatenate([item[last], item[second], r_item])
    split = np.concatenate([np.full(len(last), "test"), np.full(len(second), "valid"), np.full(len(r_user), "random")])
    order = np.argsort(pairs_user, kind="stable")  # by user: test, valid, then random pairs
    pairs_user, pairs_item, split = pairs_user[order], pairs_item[order], split[order]
    affinity = gt._affinity(pairs_user, pairs_item)
    expected = gt._expected(affinity)
    frame = pd.DataFrame(
        {
            "user_id": user_ids[pairs_user], "item_id": item_ids[pairs_item], "split": split, "observed": split != "random",
            "true_affinity": affinity.astype(np.float32), "expected_rating": expected.astype(np.float32),
            "relevant": expected >= _RATING_CENTER[like] + 0.5, "propensity": gt._propensity(pairs_user, pairs_item),
        }
    )  # fmt: skip
    frame.to_parquet(out / "heldout.parquet", index=False)
    (out / "SIMULATION.txt").write_text(
        "Written by benchmark.data.simulator (synthetic data, not real users).\n"
        f"format = {like}\n" + "\n".join(f"{k} = {v}" for k, v in asdict(cfg).items()) + "\n"
        "Ground truth: ground_truth.npz (factors, exposure q, slates per user), heldout.parquet (true relevance and "
        "exposure propensity of held-out pairs); read with benchmark.data.simulator.load_ground_truth.\n"
    )


def _atomic_dir(out_dir: Path, write: Callable[[Path], None]) -> None:
    atomic_dir(out_dir, write, replace=True)


# --- text from latent topics -----------------------------------------------------------

_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8)
_UPPER = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype=np.uint8)


def random_ids(rng: np.random.Generator, n: int, length: int, prefix: str = "", alphabet: np.ndarray = _ALPHABET) -> np.ndarray:
    """``n`` distinct random ids (unicode array), vectorised."""
    out = np.empty(0, dtype=f"U{length + len(prefix)}")
    while len(out) < n:
        codes = alphabet[rng.integers(0, len(alphabet), (n - len(out) + 16, length))]
        fresh = np.char.add(prefix, codes.view(f"S{length}").ravel().astype(f"U{length}"))
        out = pd.unique(np.concatenate([out, fresh]))
        out = np.asarray(out, dtype=f"U{length + len(prefix)}")
    return out[:n]


_TOPICS = {
    "yelp": [
        ("Pizza", "Italian", ["pizza", "pasta", "wood-fired crust", "marinara", "tiramisu"]),
        ("Sushi Bars", "Japanese", ["sushi", "sashimi", "ramen", "miso soup", "omakase"]),
        ("Mexican", "Tacos", ["tacos", "salsa verde", "burritos", "margaritas", "churros"]),
        ("Coffee & Tea", "Cafes", ["espresso", "latte art", "pastries", "cold brew", "croissants"]),
        ("Bars", "Nightlife", ["craft beer", "cocktails", "happy hour", "live music", "bartenders"]),
        ("Hair Salons", "Beauty & Spas", ["haircut", "color", "stylist", "blowout", "manicure"]),
        ("Auto Repair", "Automotive", ["oil change", "brakes", "mechanic", "tires", "diagnostics"]),
        ("Breakfast & Brunch", "American (New)", ["pancakes", "eggs benedict", "mimosas", "brunch", "bacon"]),
        ("Chinese", "Dim Sum", ["dumplings", "noodles", "dim sum", "fried rice", "bao"]),
        ("Fitness & Instruction", "Gyms", ["spin class", "trainers", "yoga", "weights", "classes"]),
        ("Bakeries", "Desserts", ["cupcakes", "sourdough", "macarons", "cakes", "gelato"]),
        ("Indian", "Vegetarian", ["curry", "naan", "biryani", "masala", "samosas"]),
    ],
    "amazon": [
        ("Headphones", "Audio", ["noise cancelling", "bass", "earbuds", "over-ear", "bluetooth audio"]),
        ("Camera & Photo", "Lenses", ["lens", "tripod", "autofocus", "megapixel", "mirrorless"]),
        ("Computers & Accessories", "Laptops", ["laptop", "SSD", "RAM", "keyboard", "USB-C hub"]),
        ("Cell Phones & Accessories", "Cases", ["phone case", "screen protector", "charger", "MagSafe", "cable"]),
        ("Television & Video", "TVs", ["4K", "HDR", "soundbar", "streaming", "remote"]),
        ("Car Electronics", "GPS", ["dash cam", "GPS", "car charger", "FM transmitter", "backup camera"]),
        ("Home Audio", "Speakers", ["speaker", "subwoofer", "receiver", "turntable", "amplifier"]),
        ("Video Games", "Gaming Accessories", ["controller", "gaming mouse", "headset", "RGB", "mechanical keys"]),
        ("Networking", "Routers", ["router", "mesh Wi-Fi", "ethernet", "range extender", "modem"]),
        ("Wearable Technology", "Smartwatches", ["smartwatch", "fitness tracker", "heart rate", "band", "GPS watch"]),
        ("Power Accessories", "Batteries", ["battery", "power bank", "surge protector", "AA batteries", "solar charger"]),
        ("eBook Readers", "Tablets", ["e-reader", "tablet", "stylus", "cover", "e-ink"]),
    ],
}
_BRANDS = ("Sonix", "Veltro", "Auralis", "Kinetek", "Lumio", "Nordvik", "Photon & Co", "Zentra", "Brightline", "Calyx", "Orbis", "Tessel")
_NAME_WORDS = ("Golden", "Blue", "Urban", "Little", "Happy", "Old Town", "Sunset", "Lucky", "Green", "Royal", "Café", "Corner")
_CITIES = (
    ("Philadelphia", "PA"), ("Tucson", "AZ"), ("Tampa", "FL"), ("Indianapolis", "IN"), ("Nashville", "TN"),
    ("New Orleans", "LA"), ("Reno", "NV"), ("Edmonton", "AB"), ("Saint Louis", "MO"), ("Santa Barbara", "CA"), ("Boise", "ID"),
)  # fmt: skip
_SENTIMENT = {
    1: ("Terrible experience.", "Would not recommend the", "Very disappointed with the"),
    2: ("Not great.", "Below average", "Expected more from the"),
    3: ("It was okay.", "Decent but forgettable", "Average"),
    4: ("Really good!", "Solid choice for", "Enjoyed the"),
    5: ("Absolutely loved it!", "Best", "Outstanding, fantastic"),
}


def _topic_order(item_factors: np.ndarray) -> np.ndarray:
    return np.argsort(-item_factors, axis=1, kind="stable")


def _item_words(rng: np.random.Generator, item_factors: np.ndarray, vocab: list[list[str]], n_words: int) -> list[str]:
    """Per item, ``n_words`` words drawn from the topics, weighted by softmax(2 v_i)."""
    n, d = item_factors.shape
    w = np.exp(2.0 * (item_factors - item_factors.max(axis=1, keepdims=True)))
    cdf = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
    topics = (rng.random((n, n_words))[:, :, None] > cdf[:, None, :]).sum(axis=2).clip(0, d - 1)
    slots = rng.integers(0, 5, (n, n_words))
    flat = np.array([word for words in vocab for word in words], dtype=object)
    words = flat[topics * 5 + slots]
    return [", ".join(dict.fromkeys(row)) for row in words]


def _review_texts(like: str, stars: np.ndarray, top_topic: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One short review per interaction from a phrase table (rating x topic x variant)."""
    topics = _TOPICS[like]
    table = []
    for r in range(1, 6):
        for _, _, words in topics:
            for v in range(3):
                opener = _SENTIMENT[r][v]
                table.append(f"{opener} {words[v]} here. The {words[(v + 1) % 5]} and {words[(v + 2) % 5]} were "
                             f"{'great' if r >= 4 else 'fine' if r == 3 else 'poor'}.\n\nRated {r}/5 — would {'' if r >= 3 else 'not '}return.")  # fmt: skip
    table = np.array(table, dtype=object)
    variant = rng.integers(0, 3, len(stars))
    return table[((stars.astype(np.int64) - 1) * len(topics) + top_topic) * 3 + variant]


def _json_str(values: Iterable[str]) -> list[str]:
    dumps = json.dumps
    return [dumps(v, ensure_ascii=False) for v in values]


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 200_000:
                fh.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            fh.write("\n".join(batch) + "\n")


# --- writers ---------------------------------------------------------------------------


def write_movielens(cfg: SimulationConfig, out_dir: Path) -> None:
    """Write a simulated dataset in the GroupLens CSV layout, atomically (temp dir + rename)."""

    def write(tmp: Path) -> None:
        sim = simulate(cfg, _TIME_RANGES["ml"])
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
        strongest = _topic_order(sim["item_factors"])[:, :2]
        genres = ["|".join(sorted({GENRES[d % len(GENRES)] for d in dims})) for dims in strongest]
        years = rng.integers(1950, 2018, cfg.n_items)
        titles = [f"The {_WORDS[d[0] % len(_WORDS)]} {_WORDS[d[1] % len(_WORDS)]} {i} ({y})" for i, (d, y) in enumerate(zip(strongest, years))]
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
        _write_ground_truth(tmp, cfg, sim, "ml", user_ids, movie_ids)

    _atomic_dir(out_dir, write)


def write_yelp(cfg: SimulationConfig, out_dir: Path) -> None:
    """Write a simulated dataset as the Yelp Open Dataset's JSON-lines files (review,
    business, user), atomically; ground truth beside them."""

    def write(tmp: Path) -> None:
        sim = simulate(cfg, _TIME_RANGES["yelp"])
        rng = np.random.default_rng(cfg.seed + 1)
        business_ids = random_ids(rng, cfg.n_items, 22)
        user_ids = random_ids(rng, cfg.n_users, 22)
        topics = _TOPICS["yelp"]
        order = _topic_order(sim["item_factors"])
        top = order[:, 0] % len(topics)
        second = order[:, 1] % len(topics)
        words = _item_words(rng, sim["item_factors"], [t[2] for t in topics], 4)
        price_level = np.clip(np.round(2.3 + 0.8 * sim["item_factors"][:, 0]), 1, 4).astype(int)
        city = rng.integers(0, len(_CITIES), cfg.n_items)
        counts = np.bincount(sim["item"], minlength=cfg.n_items)
        stars = _stars(sim["z"], "yelp")
        mean_stars = np.bincount(sim["item"], weights=stars, minlength=cfg.n_items) / np.maximum(counts, 1)
        lines = []
        for i in range(cfg.n_items):
            t, s = topics[top[i]], topics[second[i]]
            cats = list(dict.fromkeys([t[0], t[1], s[0], "Restaurants" if top[i] < 5 or top[i] in (7, 8, 10, 11) else "Local Services"]))
            attributes = None if i % 11 == 3 else {
                "BusinessAcceptsCreditCards": "True", "RestaurantsPriceRange2": str(price_level[i]),
                "WiFi": ("u'free'", "'no'", "u'paid'")[i % 3], "OutdoorSeating": "False" if i % 2 else "True",
                "BusinessParking": f"{{'garage': False, 'street': {i % 2 == 0}, 'validated': False, 'lot': {i % 3 == 0}, 'valet': False}}",
            }  # fmt: skip
            record = {
                "business_id": business_ids[i], "name": f"{_NAME_WORDS[i % len(_NAME_WORDS)]} {t[2][i % 5].title()} {t[0].split(' ')[0]}",
                "address": f"{100 + i % 9000} Main St", "city": _CITIES[city[i]][0], "state": _CITIES[city[i]][1],
                "postal_code": f"{10000 + i % 89999}", "latitude": round(30 + (i % 997) / 100, 6), "longitude": round(-120 + (i % 991) / 50, 6),
                "stars": float(np.round(mean_stars[i] * 2) / 2) if counts[i] else 3.0, "review_count": int(counts[i]),
                "is_open": int(i % 7 != 0), "attributes": attributes,
                "categories": ", ".join(cats) + (f", Specialty: {words[i]}" if i % 4 == 0 else "") if i % 97 != 13 else None,
                "hours": None if i % 5 == 1 else {"Monday": "8:0-18:30", "Tuesday": "8:0-18:30"},
            }  # fmt: skip
            lines.append(json.dumps(record, ensure_ascii=False).replace("/", "\\/"))
        _write_lines(tmp / "yelp_academic_dataset_business.json", lines)

        n = len(sim["user"])
        review_ids = random_ids(rng, n, 22)
        dates = _iso(sim["timestamp"])
        texts = _json_str(_review_texts("yelp", stars, top[sim["item"]], rng))
        useful = rng.poisson(1.0, n)
        u_ids, b_ids, s_list = user_ids[sim["user"]].tolist(), business_ids[sim["item"]].tolist(), stars.tolist()
        _write_lines(
            tmp / "yelp_academic_dataset_review.json",
            (
                f'{{"review_id":"{r}","user_id":"{u}","business_id":"{b}","stars":{s},"useful":{f},"funny":0,"cool":0,"text":{x},"date":"{d[:10]} {d[11:]}"}}'
                for r, u, b, s, f, x, d in zip(review_ids.tolist(), u_ids, b_ids, s_list, useful.tolist(), texts, dates)
            ),
        )
        del texts, u_ids, b_ids
        per_user = np.bincount(sim["user"], minlength=cfg.n_users)
        first_seen = pd.Series(sim["timestamp"]).groupby(sim["user"]).min().reindex(range(cfg.n_users), fill_value=_TIME_RANGES["yelp"][0])
        since = [f"{d[:10]} {d[11:]}" for d in _iso(first_seen.to_numpy())]
        _write_lines(
            tmp / "yelp_academic_dataset_user.json",
            (f'{{"user_id":"{u}","name":"User {k}","review_count":{c},"yelping_since":"{s}","friends":"None","fans":0}}'
             for k, (u, c, s) in enumerate(zip(user_ids.tolist(), per_user.tolist(), since))),
        )  # fmt: skip
        _write_ground_truth(tmp, cfg, sim, "yelp", user_ids, business_ids)

    _atomic_dir(out_dir, write)


def _iso(timestamps: np.ndarray) -> list[str]:
    """'YYYY-MM-DDTHH:MM:SS' per timestamp (vectorised)."""
    return np.datetime_as_string(np.asarray(timestamps).astype("datetime64[s]")).tolist()


def _review_time(timestamps: np.ndarray) -> list[str]:
    """Amazon 2018 ``reviewTime``: "09 18, 1999" (month, day, year)."""
    return [f"{d[5:7]} {d[8:10]}, {d[:4]}" for d in _iso(timestamps)]


def write_amazon(cfg: SimulationConfig, out_dir: Path, layout: str = "2018", compress: bool = False) -> None:
    """Write a simulated dataset as Amazon Electronics reviews + metadata (layout 2018:
    ``Electronics_5.json``/``meta_Electronics.json``; 2023: ``Electronics.jsonl``/
    ``meta_Electronics.jsonl``), optionally gzip-compressed, atomically; ground truth beside."""
    if layout not in ("2018", "2023"):
        raise ValueError("layout must be '2018' or '2023'")

    def write(tmp: Path) -> None:
        sim = simulate(cfg, _TIME_RANGES["amazon"] if layout == "2018" else (1_262_304_000, 1_694_000_000))
        rng = np.random.default_rng(cfg.seed + 1)
        asins = random_ids(rng, cfg.n_items, 7, "B00", _UPPER)
        user_ids = random_ids(rng, cfg.n_users, 13, "A", _UPPER) if layout == "2018" else random_ids(rng, cfg.n_users, 26, "AE", _UPPER)
        topics = _TOPICS["amazon"]
        order = _topic_order(sim["item_factors"])
        top, second = order[:, 0] % len(topics), order[:, 1] % len(topics)
        words = _item_words(rng, sim["item_factors"], [t[2] for t in topics], 6)
        price = np.exp(3.2 + 0.7 * sim["item_factors"][:, 0] + rng.normal(0, 0.3, cfg.n_items))
        brand_of = (top * 7 + second) % len(_BRANDS)
        counts = np.bincount(sim["item"], minlength=cfg.n_items)
        stars = _stars(sim["z"], "amazon")
        mean_stars = np.bincount(sim["item"], weights=stars, minlength=cfg.n_items) / np.maximum(counts, 1)
        lines = []
        for i in range(cfg.n_items):
            t, s = topics[top[i]], topics[second[i]]
            brand = _BRANDS[brand_of[i]].replace("&", "&amp;") if layout == "2018" else _BRANDS[brand_of[i]]
            title = f"{_BRANDS[brand_of[i]]} {t[2][i % 5].title()} {t[0].split(' ')[0]} {s[2][i % 5]} Model {asins[i][-4:]}"
            description = [f"Designed for {t[2][(i + 1) % 5]} and {s[2][(i + 2) % 5]}. Features: {words[i]}."]
            features = [w.strip() for w in words[i].split(",")][:4]
            images = [f"https://images.example.invalid/I/{asins[i]}.jpg"] if i % 3 else []
            if layout == "2018":
                cats = ["Electronics", t[0].replace("&", "&amp;"), t[1]]
                price_text = "" if i % 6 == 0 else f"${price[i]:,.2f}"
                record = {
                    "category": cats, "tech1": "", "description": description, "fit": "",
                    "title": title.replace("&", "&amp;"), "also_buy": [asins[(i + k * 31) % cfg.n_items] for k in range(1, 1 + i % 4)],
                    "tech2": "", "brand": brand, "feature": features,
                    "rank": [f">#{(i * 37) % 90000 + 1:,} in Electronics (See Top 100 in Electronics)"] if i % 2 else f"{(i * 53) % 90000 + 1:,} in Electronics (",
                    "also_view": [asins[(i + k * 17) % cfg.n_items] for k in range(1, 1 + i % 3)], "main_cat": "All Electronics",
                    "similar_item": "", "date": "", "price": price_text, "asin": asins[i],
                    "imageURL": [u.replace(".jpg", "._SS40_.jpg") for u in images], "imageURLHighRes": images,
                }  # fmt: skip
                if i % 13 == 5:
                    del record["brand"], record["rank"]  # missing keys, as in the published file
            else:
                record = {
                    "main_category": "All Electronics", "title": title, "average_rating": round(float(mean_stars[i]), 1),
                    "rating_number": int(counts[i]), "features": features, "description": description,
                    "price": None if i % 6 == 0 else round(float(price[i]), 2),
                    "images": [{"thumb": u, "large": u, "variant": "MAIN", "hi_res": u} for u in images] if i % 10 else {"hi_res": images, "large": images},
                    "videos": [], "store": brand, "categories": ["Electronics", t[0], t[1]],
                    "details": {"Brand": brand, "Item model number": asins[i][-4:]}, "parent_asin": asins[i], "bought_together": None,
                }  # fmt: skip
            line = json.dumps(record, ensure_ascii=False)
            lines.append(line)
            if layout == "2018" and i % 50 == 7:
                lines.append(line)  # verbatim repeated metadata line (quirk of the published files)
        meta_name = "meta_Electronics.json" if layout == "2018" else "meta_Electronics.jsonl"
        review_name = "Electronics_5.json" if layout == "2018" else "Electronics.jsonl"

        n = len(sim["user"])
        texts = _json_str(_review_texts("amazon", stars, top[sim["item"]], rng))
        summaries = np.array(["Five Stars", "Four Stars", "Three Stars", "Two Stars", "One Star"], dtype=object)[5 - stars.astype(int)]
        u_ids, a_ids, s_list, ts = user_ids[sim["user"]].tolist(), asins[sim["item"]].tolist(), stars.tolist(), sim["timestamp"].tolist()
        if layout == "2018":
            formats = ('"style": {"Format:": " Hardcover"}, ', '"style": [" Paperback"], ', "", "")
            style = np.array(formats, dtype=object)[rng.integers(0, 4, n)]
            votes = np.where(rng.random(n) < 0.15, rng.integers(2, 80, n), 0).tolist()
            review_lines = (
                f'{{"overall": {s}, {"" if v == 0 else chr(34) + "vote" + chr(34) + ": " + chr(34) + str(v) + chr(34) + ", "}"verified": true, '
                f'"reviewTime": "{rt}", "reviewerID": "{u}", "asin": "{a}", {st}"reviewerName": "Customer {u[-4:]}", '
                f'"reviewText": {x}, "summary": "{m}", "unixReviewTime": {t}}}'
                for s, v, rt, u, a, st, x, m, t in zip(s_list, votes, _review_time(sim["timestamp"]), u_ids, a_ids, style, texts, summaries, ts)
            )  # fmt: skip
        else:
            review_lines = (
                f'{{"rating": {s}, "title": "{m}", "text": {x}, "images": [], "asin": "{a}", "parent_asin": "{a}", '
                f'"user_id": "{u}", "timestamp": {t * 1000 + 123}, "helpful_vote": 0, "verified_purchase": true}}'
                for s, m, x, a, u, t in zip(s_list, summaries, texts, a_ids, u_ids, ts)
            )
        _write_lines(tmp / review_name, review_lines)
        _write_lines(tmp / meta_name, lines)
        if compress:
            for name in (review_name, meta_name):
                _gzip(tmp / name)
        _write_ground_truth(tmp, cfg, sim, "amazon", user_ids, asins)

    _atomic_dir(out_dir, write)


def _gzip(path: Path) -> None:
    import gzip

    with open(path, "rb") as src, gzip.open(path.with_name(path.name + ".gz"), "wb", compresslevel=3) as dst:
        shutil.copyfileobj(src, dst, 16 << 20)
    path.unlink()


WRITERS: dict[str, Callable[..., None]] = {"ml": write_movielens, "yelp": write_yelp, "amazon": write_amazon}
