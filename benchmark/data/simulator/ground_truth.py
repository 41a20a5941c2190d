"""The simulator's ground truth beside its raw files, in raw ids: ``ground_truth.npz`` and
``heldout.parquet``, written with the raw files and read back by ``load_ground_truth``.

``ground_truth.npz``: raw ids, factors, drift, popularity, exposure probability q, slate
size, slates per user, rating scale. ``heldout.parquet``: per user the last two consumed
items (the leave-one-out test and validation pairs) and ``n_random_pairs`` unobserved
items, each with its true affinity at the end of the history, noiseless expected rating,
relevance flag and exposure propensity.

Preparation stores the truth with the prepared data, re-indexed to the internal ids
(``GroundTruth.aligned``; ``benchmark.data.truth``, ``PreparedData.truth``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.simulator.process import RATING_CENTER, SimulationConfig

TRUTH_FILES = ("ground_truth.npz", "heldout.parquet")  # written beside the raw files
USER_ARRAYS = ("user_factors", "user_drift", "slates")  # one row per user
ITEM_ARRAYS = ("item_factors", "item_popularity", "exposure")  # one row per item


@dataclass
class GroundTruth:
    """The simulator's truth: row j of the user arrays belongs to ``user_ids[j]``, row j of the
    item arrays to ``item_ids[j]`` (raw ids; ``aligned`` re-indexes them, e.g. to a prepared
    dataset's internal ids). Read back from the raw folder with ``load_ground_truth``."""

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

    def aligned(self, user_ids: np.ndarray, item_ids: np.ndarray) -> GroundTruth:
        """This truth with its rows in the order of ``user_ids`` and ``item_ids`` (raw ids, each
        known to the truth, else KeyError). ``heldout`` keeps the pairs of those users and items,
        with their new row numbers as the columns ``user`` and ``item``."""
        u, i = self._index(user_ids, item_ids)
        heldout = None
        if self.heldout is not None:
            hu = pd.Index(user_ids).get_indexer(self.heldout["user_id"].to_numpy())
            hi = pd.Index(item_ids).get_indexer(self.heldout["item_id"].to_numpy())
            keep = (hu >= 0) & (hi >= 0)
            heldout = self.heldout[keep].assign(user=hu[keep].astype(np.int64), item=hi[keep].astype(np.int64)).reset_index(drop=True)
        return replace(
            self, user_ids=np.asarray(user_ids), item_ids=np.asarray(item_ids), heldout=heldout,
            **{name: getattr(self, name)[u] for name in USER_ARRAYS}, **{name: getattr(self, name)[i] for name in ITEM_ARRAYS},
        )  # fmt: skip

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


def load_ground_truth(raw_dir: str | Path) -> GroundTruth:
    """The ground truth the simulator wrote in ``raw_dir`` (``heldout`` None without heldout.parquet)."""
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


def write_ground_truth(out: Path, cfg: SimulationConfig, sim: dict[str, np.ndarray], like: str, user_ids: np.ndarray, item_ids: np.ndarray) -> None:
    """``ground_truth.npz``, ``heldout.parquet`` and the note ``SIMULATION.txt`` of one simulated dataset, in ``out``."""
    np.savez_compressed(
        out / "ground_truth.npz",
        user_ids=user_ids, item_ids=item_ids, movie_ids=item_ids, user_factors=sim["user_factors"],
        user_drift=sim["user_drift"], item_factors=sim["item_factors"], item_popularity=sim["item_popularity"],
        exposure=sim["exposure"], slates=sim["slates"], slate=np.int64(cfg.slate),
        affinity_mean=sim["affinity_mean"], affinity_std=sim["affinity_std"],
        rating_center=np.float64(RATING_CENTER[like]),
    )  # fmt: skip
    gt = GroundTruth(
        user_ids, item_ids, sim["user_factors"], sim["user_drift"], sim["item_factors"], sim["item_popularity"],
        sim["exposure"], sim["slates"], cfg.slate, float(sim["affinity_mean"]), float(sim["affinity_std"]), RATING_CENTER[like],
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
            "relevant": expected >= RATING_CENTER[like] + 0.5, "propensity": gt._propensity(pairs_user, pairs_item),
        }
    )  # fmt: skip
    frame.to_parquet(out / "heldout.parquet", index=False)
    (out / "SIMULATION.txt").write_text(
        "Written by benchmark.data.simulator (synthetic data, not real users).\n"
        f"format = {like}\n" + "\n".join(f"{k} = {v}" for k, v in asdict(cfg).items()) + "\n"
        "Ground truth: ground_truth.npz (factors, exposure q, slates per user), heldout.parquet (true relevance and "
        "exposure propensity of held-out pairs); read with benchmark.data.simulator.load_ground_truth.\n"
    )
