"""Downloads against a local HTTP server: verify, resume, atomic placement, safe extraction, errors."""

from __future__ import annotations

import hashlib
import io
import socket
import struct
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data import download
from benchmark.data.datasets import DATASETS, default_raw_dir, load_dataset
from benchmark.data.download import Download, download_dataset, safe_extract
from benchmark.errors import BenchmarkError

REQUIRED = ("ratings.csv", "movies.csv")


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


class FixtureServer:
    """Serves ``files`` (URL path -> bytes) on 127.0.0.1, honouring ``Range`` unless told not to."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.honour_range = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng and server.honour_range else 0
                if start >= len(body) and rng and server.honour_range:
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/movielens/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def add(self, name: str, body: bytes, md5: str | None = None) -> None:
        self.files[f"/movielens/{name}"] = body
        md5 = md5 or hashlib.md5(body).hexdigest()
        self.files[f"/movielens/{name}.md5"] = f"{md5}  {name}\n".encode()


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FixtureServer]:
    srv = FixtureServer()
    srv.thread.start()
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(download.DOWNLOAD_URL_ENV, srv.url)
    monkeypatch.setattr(download, "TIMEOUT_SECONDS", 5.0)
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buffer.getvalue()


def _ml_zip(raw: Path, top: str = "ml-latest-small/") -> bytes:
    members = {f"{top}{p.name}": p.read_bytes() for p in sorted(raw.glob("*.csv"))}
    members[f"{top}README.txt"] = b"fixture\n"
    return _zip(members)


SOURCE = Download("ml-latest-small.zip", "http://unused.invalid/", "https://grouplens.org/datasets/movielens/")


def test_download_verify_extract_and_load(server: FixtureServer, ml_files: Path, tmp_path: Path) -> None:
    server.add("ml-latest-small.zip", _ml_zip(ml_files))
    data = load_dataset("ml-latest-small")  # no --raw-dir, files missing: downloaded
    raw = default_raw_dir("ml-latest-small")
    assert (raw / "ratings.csv").read_bytes() == (ml_files / "ratings.csv").read_bytes()  # top folder stripped
    assert (raw / "README.txt").is_file() and data.n_users > 0
    downloads = tmp_path / "cache" / "downloads"
    assert not list(downloads.iterdir())  # archive removed after extraction, no .part left
    assert not [p for p in raw.parent.iterdir() if p.name.startswith(".")]  # no temporary folder
    paths = [p for p, _ in server.requests]
    assert paths == ["/movielens/ml-latest-small.zip.md5", "/movielens/ml-latest-small.zip"]
    load_dataset("ml-latest-small")  # second use: nothing fetched
    assert len(server.requests) == 2


def test_resume_partial_download_with_range(server: FixtureServer, ml_files: Path, tmp_path: Path) -> None:
    body = _ml_zip(ml_files)
    server.add("ml-latest-small.zip", body)
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "ml-latest-small.zip.part").write_bytes(body[: len(body) // 2])
    raw = tmp_path / "raw" / "ml-latest-small"
    download_dataset("ml-latest-small", SOURCE, raw, REQUIRED, progress=False)
    assert ("/movielens/ml-latest-small.zip", f"bytes={len(body) // 2}-") in server.requests
    assert (raw / "movies.csv").read_bytes() == (ml_files / "movies.csv").read_bytes()


def test_server_ignoring_range_restarts_the_file(server: FixtureServer, ml_files: Path, tmp_path: Path) -> None:
    body = _ml_zip(ml_files)
    server.add("ml-latest-small.zip", body)
    server.honour_range = False
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "ml-latest-small.zip.part").write_bytes(b"garbage that is not the start")
    raw = tmp_path / "raw" / "ml-latest-small"
    download_dataset("ml-latest-small", SOURCE, raw, REQUIRED, progress=False)
    assert (raw / "ratings.csv").is_file()


def test_corrupted_archive_is_refused_and_nothing_left(server: FixtureServer, ml_files: Path, tmp_path: Path) -> None:
    body = _ml_zip(ml_files)
    server.add("ml-latest-small.zip", body[:-10] + b"0123456789", md5=hashlib.md5(body).hexdigest())
    raw = tmp_path / "raw" / "ml-latest-small"
    with pytest.raises(BenchmarkError, match="checksum mismatch") as info:
        download_dataset("ml-latest-small", SOURCE, raw, REQUIRED, progress=False)
    assert str(raw) in str(info.value)  # says where to put the files by hand
    assert not raw.exists()
    assert not list((tmp_path / "cache" / "downloads").iterdir())
    assert not (tmp_path / "raw").exists()  # verified before anything is extracted


def test_pinned_checksum_wins_over_the_server(server: FixtureServer, ml_files: Path, tmp_path: Path) -> None:
    server.add("ml-25m.zip", _ml_zip(ml_files, "ml-25m/"))  # the .md5 beside it matches, the pin does not
    raw = tmp_path / "raw" / "ml-25m"
    with pytest.raises(BenchmarkError, match="expected 6b51fb2759a8657d3bfcbfc42b592ada"):
        download_dataset("ml-25m", download.ML_25M, raw, REQUIRED, progress=False)
    assert not raw.exists()
    assert "/movielens/ml-25m.zip.md5" not in [p for p, _ in server.requests]


def test_archive_without_the_required_files(server: FixtureServer, tmp_path: Path) -> None:
    server.add("ml-latest-small.zip", _zip({"ml-latest-small/README.txt": b"x"}))
    raw = tmp_path / "raw" / "ml-latest-small"
    with pytest.raises(BenchmarkError, match="does not contain ratings.csv, movies.csv"):
        download_dataset("ml-latest-small", SOURCE, raw, REQUIRED, progress=False)
    assert not raw.exists() and not list((tmp_path / "raw").iterdir())


def test_path_traversal_zip_is_refused_over_http(server: FixtureServer, tmp_path: Path) -> None:
    server.add("ml-latest-small.zip", _zip({"ml-latest-small/ratings.csv": b"a", "../evil": b"owned"}))
    raw = tmp_path / "raw" / "ml-latest-small"
    with pytest.raises(BenchmarkError, match=r"'\.\.'"):
        download_dataset("ml-latest-small", SOURCE, raw, REQUIRED, progress=False)
    assert not (tmp_path / "raw" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not raw.exists() and not list((tmp_path / "raw").iterdir())


@pytest.mark.parametrize(
    "member, message",
    [("../evil.txt", "'..'"), ("ok/../../evil.txt", "'..'"), ("/tmp/evil.txt", "absolute"), ("C:/evil.txt", "absolute")],
)
def test_zip_members_escaping_the_target_are_refused(tmp_path: Path, member: str, message: str) -> None:
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip({"fine.txt": b"ok", member: b"owned"}))
    target = tmp_path / "out" / "inner"
    with pytest.raises(BenchmarkError, match=message):
        safe_extract(archive, target)
    assert not list(target.iterdir())  # checked before anything is written
    assert not (tmp_path / "out" / "evil.txt").exists()


def _tar(tmp_path: Path, add: list[tarfile.TarInfo]) -> Path:
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        ok = tarfile.TarInfo("data/ratings.csv")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        for info in add:
            tf.addfile(info)
    return archive


@pytest.mark.parametrize("link", ["../../outside", "/etc/passwd", "a/../../../outside"])
def test_tar_symlink_pointing_outside_is_refused(tmp_path: Path, link: str) -> None:
    info = tarfile.TarInfo("data/link")
    info.type, info.linkname = tarfile.SYMTYPE, link
    target = tmp_path / "out"
    with pytest.raises(BenchmarkError, match="refusing link"):
        safe_extract(_tar(tmp_path, [info]), target)
    assert not list(target.iterdir())


def test_tar_symlink_inside_the_target_is_allowed(tmp_path: Path) -> None:
    info = tarfile.TarInfo("data/link.csv")
    info.type, info.linkname = tarfile.SYMTYPE, "ratings.csv"
    target = tmp_path / "out"
    safe_extract(_tar(tmp_path, [info]), target)
    assert (target / "data" / "link.csv").read_bytes() == b"ok"


def test_zip_symlink_pointing_outside_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("data/link")
        info.external_attr = (0o120777 << 16)  # a symbolic link
        zf.writestr(info, "../../etc/passwd")
    with pytest.raises(BenchmarkError, match="points outside"):
        safe_extract(archive, tmp_path / "out")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_network_ends_with_where_to_put_the_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(download.DOWNLOAD_URL_ENV, f"http://127.0.0.1:{_closed_port()}/")
    assert main(["data", "info", "--data", "ml-latest-small"]) == 2
    err = capsys.readouterr().err
    raw = default_raw_dir("ml-latest-small")
    assert "could not download" in err and str(raw) in err and "grouplens.org" in err
    assert "Traceback" not in err and not raw.exists()


def test_explicit_raw_dir_never_downloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(download.DOWNLOAD_URL_ENV, f"http://127.0.0.1:{_closed_port()}/")
    with pytest.raises(BenchmarkError, match="not found in"):
        load_dataset("ml-latest-small", raw_dir=tmp_path / "nothing")


@pytest.mark.parametrize("name", ["yelp", "amazon-electronics"])
def test_terms_gated_datasets_say_where_to_get_files(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if name not in DATASETS:
        pytest.skip(f"{name} is not registered yet")
    assert DATASETS[name].download is None  # terms of use / a form: the user fetches the files
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    assert main(["data", "info", "--data", name]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(default_raw_dir(name)) in err and "http" in err


@pytest.fixture()
def ml_files(tmp_path: Path) -> Path:
    return write_ml_files(tmp_path / "ml-files")


# --- an archive that passes its MD5 check but cannot be extracted ----------------------


def _damaged_zip(raw: Path, damage: str) -> bytes:
    """An ml-latest-small zip whose ratings.csv member is damaged, reproducibly."""
    compression = zipfile.ZIP_STORED if damage == "CRC mismatch" else zipfile.ZIP_DEFLATED
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for path in sorted(raw.glob("*.csv")):
            zf.writestr(f"ml-latest-small/{path.name}", path.read_bytes())
    content = bytearray(buffer.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(content))).getinfo("ml-latest-small/ratings.csv")
    name_length, extra_length = struct.unpack("<HH", content[info.header_offset + 26 : info.header_offset + 30])
    data_start = info.header_offset + 30 + name_length + extra_length
    if damage == "CRC mismatch":  # stored bytes: one changed digit, caught by the member's CRC-32
        content[data_start + 40] ^= 0x01
    else:  # the first deflate block gets the reserved block type: zlib fails at once
        content[data_start] = 0xFF
    return bytes(content)


@pytest.mark.parametrize("damage", ["CRC mismatch", "invalid deflate block"])
def test_archive_with_a_damaged_member_is_deleted_and_fetched_again(damage: str, server: FixtureServer, ml_files: Path,
                                                                    tmp_path: Path) -> None:  # fmt: skip
    server.add("ml-latest-small.zip", _damaged_zip(ml_files, damage))  # the published .md5 matches the damaged file
    raw = tmp_path / "raw" / "ml-latest-small"
    with pytest.raises(BenchmarkError, match="passed its MD5 check but cannot be extracted") as info:
        download_dataset("ml-latest-small", SOURCE, raw, REQUIRED, progress=False)
    assert "it was deleted, so the next run downloads it again" in str(info.value) and str(raw) in str(info.value)
    assert not list((tmp_path / "cache" / "downloads").iterdir())  # not reused forever
    assert not raw.exists() and not list((tmp_path / "raw").iterdir())  # no temporary folder left
    server.add("ml-latest-small.zip", _ml_zip(ml_files))  # the mirror is repaired
    download_dataset("ml-latest-small", SOURCE, raw, REQUIRED, progress=False)
    assert (raw / "ratings.csv").read_bytes() == (ml_files / "ratings.csv").read_bytes()
    assert [p for p, _ in server.requests].count("/movielens/ml-latest-small.zip") == 2


def test_damaged_archive_left_by_an_earlier_run_is_not_reused(server: FixtureServer, ml_files: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    damaged = _damaged_zip(ml_files, "invalid deflate block")
    server.add("ml-latest-small.zip", damaged)
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "ml-latest-small.zip").write_bytes(damaged)  # complete, its MD5 matches: reused as is
    assert main(["data", "info", "--data", "ml-latest-small"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "invalid block type" in err and "grouplens.org" in err
    assert "/movielens/ml-latest-small.zip" not in [p for p, _ in server.requests]  # the damaged copy was used, then deleted
    assert not (downloads / "ml-latest-small.zip").exists()
    server.add("ml-latest-small.zip", _ml_zip(ml_files))
    assert main(["data", "info", "--data", "ml-latest-small"]) == 0
    assert "/movielens/ml-latest-small.zip" in [p for p, _ in server.requests]


def test_read_only_cache_cannot_take_the_download(server: FixtureServer, ml_files: Path, tmp_path: Path) -> None:
    from tests.benchmark.data.unprivileged import cli_unprivileged

    server.add("ml-latest-small.zip", _ml_zip(ml_files))
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        code, err = cli_unprivileged(["data", "info", "--data", "ml-latest-small"])
    finally:
        cache.chmod(0o755)
    assert code == 2 and err.count("\n") == 1 and "Permission denied" in err
    assert str(cache / "downloads") in err and "BENCHMARK_CACHE" in err and not (cache / "downloads").exists()
