"""Item features: text (offline MiniLM), categorical, numerical (training statistics only), images, cache."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.data import features as F
from benchmark.data.features import extract
from benchmark.data.datasets import load_dataset
from benchmark.data.prepare import PreparedData
from benchmark.errors import BenchmarkError


def write_ml_files(out: Path, n_users: int = 40, n_items: int = 30, seed: int = 0) -> Path:
    """A small MovieLens-format dataset written here (independent of the simulator)."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for u in range(1, n_users + 1):
        for j, m in enumerate(sorted(rng.choice(n_items, size=int(rng.integers(4, 12)), replace=False))):
            rows.append(f"{u},{m + 1},{rng.integers(1, 11) / 2},{1_500_000_000 + u * 1000 + j * 10}")
    (out / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    genres = ["Action", "Comedy", "Drama", "Horror"]
    movies = [f'{m},"Movie {m} ({1980 + m})",{genres[m % 4]}|{genres[(m * 3) % 4]}' for m in range(1, n_items + 1)]
    movies[0] = "1,Untitled,(no genres listed)"  # no year, no genres
    (out / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(movies) + "\n")
    tags = [f"{u},{m},tag{m % 3},{1_500_000_000 + u}" for u, m in ((1, 2), (2, 2), (3, 5), (4, 7))]
    (out / "tags.csv").write_text("userId,movieId,tag,timestamp\n" + "\n".join(tags) + "\n")
    return out


@pytest.fixture()
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("BENCHMARK_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def minilm():  # noqa: ANN201
    return F.load_text_encoder(F.DEFAULT_TEXT_ENCODER)


@pytest.fixture()
def tiny(ml_files: Path, own_cache: Path) -> PreparedData:
    return load_dataset("synthetic-ml", raw_dir=ml_files)


def test_item_text_uses_metadata_only() -> None:
    items = pd.DataFrame(
        {
            "title": ["Toy Story (1995)", "", None],
            "categories": [["Animation", "Comedy"], [], None],
            "tags": [np.array(["pixar"]), [], []],
            "description": [["A cowboy doll.", "Fun."], None, None],
            "review_text": ["LEAKED REVIEW", "LEAKED", None],
        }
    )
    texts = F.item_texts(items)
    assert texts[0] == "Toy Story (1995). Categories: Animation, Comedy. Tags: pixar. A cowboy doll. Fun."
    assert texts[1] == "" and texts[2] == ""
    assert not any("LEAKED" in t for t in texts)


def test_categorical_vocab_and_index_lists() -> None:
    cat = F.categorical_feature([["b", "a"], [], ["a", "a", "c"], None, "b"])
    assert cat.vocab == ["a", "b", "c"]  # by frequency, then alphabetically
    assert [list(x) for x in cat.lists()] == [[1, 0], [], [0, 2], [], [1]]
    assert cat.mask.tolist() == [True, False, True, False, True]
    hot = cat.multi_hot()
    assert hot.shape == (5, 3) and hot.dtype == np.float32
    assert hot.tolist()[2] == [1, 0, 1] and hot[1].sum() == 0


def test_numerical_uses_training_items_only() -> None:
    items = pd.DataFrame(
        {"raw_id": [1, 2, 3, 4], "price": [10.0, 20.0, 1000.0, np.nan], "year": pd.array([2000, None, 2010, 2020], dtype="Int64"),
         "imdb_id": ["1", "2", "3", "4"], "title": list("abcd")}
    )  # fmt: skip
    values, mask, names, stats = F.numerical_features(items, train_items=np.array([0, 1, 1, 3]))
    assert names == ["price", "year"]  # raw_id and *_id columns are no features
    assert stats["price"] == {"mean": 15.0, "std": 5.0, "n_fit_items": 2}  # item 2 (test only) not used
    assert stats["year"]["mean"] == 2010.0 and stats["year"]["n_fit_items"] == 2
    np.testing.assert_allclose(values[:, 0], [-1.0, 1.0, 197.0, 0.0])
    assert mask.tolist() == [[True, True], [True, False], [True, True], [False, True]]
    assert values[1, 1] == 0.0 and values.dtype == np.float32


def test_text_features_with_offline_minilm(minilm) -> None:  # noqa: ANN001
    texts = ["Toy Story. Categories: Animation, Children.", "Toy Story 2. Categories: Animation, Children.", "", "Heat. Categories: Crime, Thriller."]
    vectors, mask = F.encode_texts(texts, minilm, batch_size=2, progress=False)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert mask.tolist() == [True, True, False, True]
    np.testing.assert_allclose(np.linalg.norm(vectors[mask], axis=1), 1.0, atol=1e-5)
    assert not vectors[2].any()
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[3]


def test_item_features_cached_by_encoder_and_fingerprint(
    tiny: PreparedData, own_cache: Path, minilm, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    monkeypatch.setattr(extract, "load_text_encoder", lambda name: minilm)  # where item_features looks it up
    feats = F.item_features(tiny, progress=False)
    assert feats.text.shape == (tiny.n_items, 384) and feats.text_mask.all()
    assert set(feats.categorical) == {"categories", "tags"}
    assert feats.numerical_names == ["year"] and feats.numerical.shape == (tiny.n_items, 1)
    train_items = np.unique(tiny.train.item)
    assert abs(feats.numerical[train_items, 0].mean()) < 1e-5  # standardised on training items
    assert feats.coverage["text"] == 1.0 and feats.coverage["image"] == 0.0
    assert 0 < feats.coverage["tags"] < 1
    base = own_cache / "features" / "synthetic-ml" / tiny.fingerprint[:20]
    assert sorted(p.name for p in base.iterdir()) == ["tabular", "text-all-MiniLM-L6-v2"]

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("re-encoded although cached")

    monkeypatch.setattr(extract, "encode_texts", boom)
    monkeypatch.setattr(extract, "categorical_feature", boom)
    again = F.item_features(tiny, progress=False)
    np.testing.assert_array_equal(again.text, feats.text)
    np.testing.assert_array_equal(again.categorical["tags"].index, feats.categorical["tags"].index)
    assert again.categorical["tags"].vocab == feats.categorical["tags"].vocab
    assert again.coverage == feats.coverage


def test_crash_while_caching_leaves_no_part(tiny: PreparedData, own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        F.item_features(tiny, text_encoder=None, progress=False)
    base = own_cache / "features" / "synthetic-ml" / tiny.fingerprint[:20]
    assert not list(base.iterdir())


def _png(path: Path, color: tuple[int, int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 12), color).save(path)


def test_images_random_cnn_masks_and_coverage(tiny: PreparedData, tmp_path: Path, own_cache: Path) -> None:
    raw = tmp_path / "raw"
    ids = tiny.items["raw_id"].tolist()
    _png(raw / "images" / f"{ids[0]}.png", (255, 0, 0))  # by raw item id in <raw>/images/
    _png(raw / "pics" / "b.jpg", (0, 0, 255))
    (raw / "pics" / "broken.png").write_bytes(b"not an image")
    items = tiny.items.copy()
    items["image_path"] = None
    items.loc[1, "image_path"] = "pics/b.jpg"  # relative to the raw folder
    items.loc[2, "image_path"] = "pics/broken.png"
    items.loc[3, "image_path"] = "pics/missing.png"
    data = dataclasses.replace(tiny, items=items)

    feats = F.item_features(data, text_encoder=None, image_encoder=F.RANDOM_CNN, raw_dir=raw, batch_size=2, progress=False)
    assert feats.image.shape == (data.n_items, 32) and feats.image.dtype == np.float32
    assert np.flatnonzero(feats.image_mask).tolist() == [0, 1]  # unreadable and missing files: no image
    assert not feats.image[2:].any()
    assert not np.allclose(feats.image[0], feats.image[1])
    assert feats.coverage["image"] == pytest.approx(2 / data.n_items)
    assert feats.meta["image"]["for_testing_only"] is True
    meta = json.loads((F.features_dir(data) / "image-random-cnn" / "meta.json").read_text())
    assert meta["for_testing_only"] is True and meta["encoder"] == "random-cnn"

    _png(raw / "images" / f"{ids[5]}.jpg", (0, 255, 0))  # a new image: the manifest changes, re-encoded
    again = F.item_features(data, text_encoder=None, image_encoder=F.RANDOM_CNN, raw_dir=raw, progress=False)
    assert np.flatnonzero(again.image_mask).tolist() == [0, 1, 5]
    np.testing.assert_allclose(again.image[0], feats.image[0], atol=1e-6)  # deterministic encoder


def test_open_clip_needs_the_vision_extra() -> None:
    pytest.importorskip("PIL")
    try:
        import open_clip  # noqa: F401
    except ImportError:
        with pytest.raises(BenchmarkError, match=r"llm4rec-bench\[vision\]"):
            F.load_image_encoder("open-clip:ViT-B-32")
    else:  # pragma: no cover - only where the extra is installed
        pytest.skip("open-clip is installed")
    with pytest.raises(BenchmarkError, match="unknown image encoder"):
        F.load_image_encoder("resnet")


@pytest.fixture()
def image_server(tmp_path: Path) -> Iterator[str]:
    folder = tmp_path / "served"
    _png(folder / "a.png", (10, 200, 30))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(folder)))
    httpd.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[method-assign]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_image_urls_are_fetched_only_when_allowed(tiny: PreparedData, own_cache: Path, image_server: str) -> None:
    items = tiny.items.copy()
    items["imageURL"] = [[] for _ in range(len(items))]
    items.at[0, "imageURL"] = [f"{image_server}/a.png"]
    items.at[1, "imageURL"] = [f"{image_server}/missing.png"]
    data = dataclasses.replace(tiny, items=items)
    kwargs = {"text_encoder": None, "image_encoder": F.RANDOM_CNN, "progress": False}
    assert not F.item_features(data, **kwargs).image_mask.any()  # not allowed: nothing fetched
    assert not (own_cache / "images").exists()
    feats = F.item_features(data, allow_image_download=True, **kwargs)
    assert np.flatnonzero(feats.image_mask).tolist() == [0]
    assert len(list((own_cache / "images" / "synthetic-ml").glob("*.png"))) == 1


def test_features_command(ml_files: Path, own_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "features.json"
    argv = ["features", "--data", "synthetic-ml", "--raw-dir", str(ml_files), "--text-encoder", "none",
            "--image-encoder", "random-cnn", "--no-progress", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(out.read_text())
    assert summary["image_encoder"] == "random-cnn" and summary["image_for_testing_only"] is True
    assert summary["coverage_image"] == 0.0 and summary["coverage_categories"] > 0.9
    assert summary["numerical_fields"] == "year" and "text_encoder" not in summary
    assert "coverage_tags" in capsys.readouterr().out
    assert main(["features", "--data", "synthetic-ml", "--raw-dir", str(ml_files), "--text-encoder", "none", "--image-encoder", "open-clip-x"]) == 2


@pytest.fixture()
def ml_files(tmp_path: Path) -> Path:
    return write_ml_files(tmp_path / "ml-files")
