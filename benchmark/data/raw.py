"""What every reader returns: interactions in file order plus item side information."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class RawData:
    """Interactions exactly as read (raw ids, file order) and per-item side information.

    ``items`` is indexed by raw item id; its columns are the dataset's modalities.
    Shared column names across readers: ``title`` (str), ``categories`` (list of str:
    genres, categories), ``tags`` (list of str); others are dataset-specific (year,
    brand, city, state, price, ...). Items without side information may be absent.
    """

    user: np.ndarray  # raw user ids (int32 or int64, or str)
    item: np.ndarray  # raw item ids
    timestamp: np.ndarray  # int64 seconds
    rating: np.ndarray  # float32; NaN where the dataset has none
    items: pd.DataFrame
    skipped_lines: int = 0
    #: user-generated item text (MovieLens tags): columns user, item, timestamp (raw ids, int64
    #: seconds), field (the items column it feeds, e.g. "tags") and value. Preparation keeps a
    #: row only where the split allows it (``prepare.user_item_text``), so readers never
    #: aggregate it into ``items`` themselves.
    item_text_events: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.user)
