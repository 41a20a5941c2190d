"""What every reader returns: interactions in file order plus item side information.

Valid values, checked by every reader at read time (a value outside is a bad line: an
error naming the file and the line, or skipped and counted with ``on_bad_line=skip``):

- timestamps: Unix seconds from 1970-01-01T00:00:00Z (``TIMESTAMP_MIN``) up to, not
  including, 2100-01-01T00:00:00Z (``TIMESTAMP_MAX``). No published dataset has events
  outside; a value outside is corrupt or in the wrong unit (milliseconds where seconds
  are due), and far outside it breaks date arithmetic downstream;
- ratings: finite numbers from 0 to 5 (``RATING_MIN``, ``RATING_MAX``); NaN and
  infinities are refused on every reading path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TIMESTAMP_MIN = 0  # 1970-01-01T00:00:00Z
TIMESTAMP_MAX = 4_102_444_800  # 2100-01-01T00:00:00Z, excluded
TIMESTAMP_RANGE = "a time from 1970-01-01 to 2100-01-01 (Unix seconds 0 to 4102444799)"
RATING_MIN, RATING_MAX = 0.0, 5.0
RATING_RANGE = "a finite rating from 0 to 5"


def bad_timestamps(seconds: np.ndarray) -> np.ndarray:
    """Mask of Unix-second timestamps outside [TIMESTAMP_MIN, TIMESTAMP_MAX)."""
    return (seconds < TIMESTAMP_MIN) | (seconds >= TIMESTAMP_MAX)


def bad_ratings(ratings: np.ndarray) -> np.ndarray:
    """Mask of ratings that are not finite numbers in [RATING_MIN, RATING_MAX] (NaN included)."""
    return ~((ratings >= RATING_MIN) & (ratings <= RATING_MAX))


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
    timestamp: np.ndarray  # int64 seconds, within [TIMESTAMP_MIN, TIMESTAMP_MAX)
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
