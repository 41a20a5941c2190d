"""The simulator's ground truth as prepared side information of simulated data.

The simulator writes its truth beside the raw files (``ground_truth.npz``,
``heldout.parquet``; ``benchmark.data.simulator.ground_truth``). They are raw files of the
dataset: ``truth_files`` names the ones present, and preparation puts them in the
fingerprint. Preparation re-indexes the truth to the prepared internal ids
(``prepared_truth``) and stores it with the prepared data (``save_truth``: ``truth.npz``,
``truth_heldout.parquet`` in the cache folder); ``PreparedData.truth`` reads it back
(``load_truth``) on first use. So whatever needs the truth after preparation (``ndcg-true``,
the propensity check of the debiasing module) reads the prepared data, never the raw folder.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.simulator.ground_truth import ITEM_ARRAYS, TRUTH_FILES, USER_ARRAYS, GroundTruth, load_ground_truth

LOG = logging.getLogger(__name__)

ARRAYS_FILE = "truth.npz"
HELDOUT_FILE = "truth_heldout.parquet"
_SCALARS = ("slate", "affinity_mean", "affinity_std", "rating_center")


def truth_files(raw: Path) -> list[Path]:
    """The simulator's ground-truth files present in the raw folder ``raw``."""
    return [Path(raw) / name for name in TRUTH_FILES if (Path(raw) / name).is_file()]


def prepared_truth(raw: Path, user_ids: np.ndarray, item_ids: np.ndarray) -> GroundTruth | None:
    """The ground truth in ``raw`` with its rows in internal id order (``user_ids``/``item_ids``:
    the raw id of each internal id); None when there is none or it does not cover every
    prepared user and item (files of another simulation: nothing true to measure against)."""
    if not (Path(raw) / TRUTH_FILES[0]).is_file():
        return None
    try:
        truth = load_ground_truth(raw)
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:  # a damaged file: the interactions are still usable
        LOG.warning(f"{raw}: the simulator's ground truth could not be read ({exc}); ndcg-true and the propensity check are skipped")
        return None
    try:
        return truth.aligned(user_ids, item_ids)
    except KeyError:
        LOG.warning(f"{raw}: the simulator's ground truth does not cover the prepared users and items; "
                    "ndcg-true and the propensity check are skipped")  # fmt: skip
        return None


def save_truth(truth: GroundTruth, folder: Path) -> None:
    """Write an aligned ``truth`` into the prepared data's (temporary) cache folder."""
    arrays = {name: getattr(truth, name) for name in (*USER_ARRAYS, *ITEM_ARRAYS)}
    np.savez(folder / ARRAYS_FILE, **arrays, **{name: np.asarray(getattr(truth, name)) for name in _SCALARS})
    if truth.heldout is not None:
        truth.heldout.to_parquet(folder / HELDOUT_FILE, index=False)


def load_truth(folder: Path, user_ids: np.ndarray, item_ids: np.ndarray) -> GroundTruth | None:
    """The aligned truth stored in the cache folder ``folder``, or None when it holds none."""
    path = Path(folder) / ARRAYS_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        values = {name: npz[name] for name in npz.files}
    heldout = pd.read_parquet(folder / HELDOUT_FILE) if (folder / HELDOUT_FILE).is_file() else None
    return GroundTruth(
        user_ids=np.asarray(user_ids), item_ids=np.asarray(item_ids), **{name: values[name] for name in (*USER_ARRAYS, *ITEM_ARRAYS)},
        slate=int(values["slate"]), affinity_mean=float(values["affinity_mean"]), affinity_std=float(values["affinity_std"]),
        rating_center=float(values["rating_center"]), heldout=heldout,
    )  # fmt: skip
