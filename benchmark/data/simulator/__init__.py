"""The project's simulator: realistic interaction data with known ground truth.

``simulate`` (``process``) draws users, items, exposure slates, choices, ratings and
timestamps from latent factors; the writers put the raw files in the real dataset's
format, so the real reader is what reads them: ``write_movielens`` (GroupLens CSV),
``write_yelp`` (Yelp Open Dataset JSON lines, with stringified attribute dicts and ``\\/``
escapes), ``write_amazon`` (Amazon 2018 ``Electronics_5.json`` + ``meta_Electronics.json``,
or the 2023 ``.jsonl`` layout; HTML entities, "$12.99"/"" prices, list-or-dict ``style``,
verbatim repeated metadata lines). Beside them, in every format, the ground truth
(``ground_truth``): ``ground_truth.npz``, ``heldout.parquet`` and the note
``SIMULATION.txt``; ``load_ground_truth(raw_dir)`` reads them back. Item names, texts and
ids come from ``text``; file writing helpers from ``output``.

For a given ``SimulationConfig`` the written files are byte-identical from run to run.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmark.data.simulator.amazon import write_amazon
from benchmark.data.simulator.ground_truth import GroundTruth, load_ground_truth
from benchmark.data.simulator.movielens import write_movielens
from benchmark.data.simulator.process import SimulationConfig, simulate
from benchmark.data.simulator.text import GENRES, random_ids
from benchmark.data.simulator.yelp import write_yelp

__all__ = [
    "GENRES", "WRITERS", "GroundTruth", "SimulationConfig", "load_ground_truth", "random_ids", "simulate",
    "write_amazon", "write_movielens", "write_yelp",
]  # fmt: skip

WRITERS: dict[str, Callable[..., None]] = {"ml": write_movielens, "yelp": write_yelp, "amazon": write_amazon}
