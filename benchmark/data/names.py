"""Dataset names, without importing a reader: the ``--data`` choices of the command line.

``REGISTERED`` lists every registered dataset in registry order (benchmark.data.datasets
holds their specs; a test checks both lists agree); ``amazon-<category>`` names any Amazon
review category, matched to its files case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

REGISTERED = (
    "ml-25m", "ml-latest-small", "synthetic-ml", "amazon-electronics", "amazon-musical-instruments", "yelp",
    "synthetic-yelp", "synthetic-amazon", "s3rec-beauty", "s3rec-sports", "s3rec-toys", "s3rec-yelp",
)  # fmt: skip
#: where each registered dataset's data come from (a run record says it too)
SOURCES = {name: "synthetic" if name.startswith("synthetic-") else "real" for name in REGISTERED}
AMAZON_PREFIX = "amazon-"
_SEPARATORS = re.compile(r"[\s_\-]+")
_CATEGORY_KEY = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")


def category_key(category: str) -> str:
    """The form names are compared in: lower case, runs of spaces/underscores/hyphens -> "_"
    ("Musical Instruments", "musical-instruments" -> "musical_instruments")."""
    return _SEPARATORS.sub("_", category.strip().lower()).strip("_")


def is_category(category: str) -> bool:
    """Whether ``category`` can name a category's files (letters, digits and separators)."""
    return _CATEGORY_KEY.fullmatch(category_key(category)) is not None


def amazon_category(name: str) -> str | None:
    """The category key of an ``amazon-<category>`` name ("amazon-Musical_Instruments" ->
    "musical_instruments"); None for any other name."""
    if not name.lower().startswith(AMAZON_PREFIX) or not is_category(name[len(AMAZON_PREFIX) :]):
        return None
    return category_key(name[len(AMAZON_PREFIX) :])


def canonical_name(name: str) -> str:
    """``amazon-<category>`` in its canonical spelling (lower case, hyphens); other names unchanged."""
    category = amazon_category(name) if name not in REGISTERED else None
    return AMAZON_PREFIX + category.replace("_", "-") if category is not None else name


class DatasetNames:
    """The ``--data`` choices (argparse ``choices=``, with ``type=canonical_name``): every
    registered name and ``amazon-<category>``; listing shows the registered names and the pattern."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in REGISTERED or amazon_category(name) is not None)

    def __iter__(self) -> Iterator[str]:
        return iter([*REGISTERED, AMAZON_PREFIX + "<category>"])

    def __len__(self) -> int:
        return len(REGISTERED) + 1


DATASET_NAMES = DatasetNames()
