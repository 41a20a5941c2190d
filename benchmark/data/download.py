"""Verified, resumable, atomic downloads of published dataset archives, and safe extraction.

Only datasets whose licence allows an automated download have a ``Download`` (MovieLens
from GroupLens). Amazon and Yelp files are fetched by the user (terms of use / a form);
their ``DatasetSpec.where_to_get`` says where from and where to put them.

The flow, used by ``load_dataset`` when the raw files are missing from the default raw
folder and no ``--raw-dir`` was given:

1. the expected MD5: pinned in code where certain, else read from the checksum file the
   publisher puts beside the archive (``<archive>.md5``), fetched at download time;
2. the archive is fetched into ``$BENCHMARK_CACHE/downloads/<archive>.part``; an existing
   ``.part`` is resumed with an HTTP ``Range`` request (a server that ignores it restarts
   the file); a tqdm progress bar shows bytes;
3. the complete file is verified (MD5); a mismatch deletes it and stops with an error;
4. the archive is extracted into a temporary folder beside the raw folder, refusing
   absolute member paths, ``..`` components and links that leave the target; a single
   top folder (``ml-25m/``) is stripped so the CSVs land directly in the raw folder. An
   archive that passed its MD5 check but cannot be extracted (a damaged member: bad
   deflate data, a CRC mismatch) is deleted, so the next run downloads it again instead
   of failing on the same file forever;
5. only then is the folder renamed into place (atomic on one file system) and the
   archive deleted.

A folder that cannot be written (the download folder, the raw folder's parent) ends in a
one-paragraph error naming it.

``BENCHMARK_DOWNLOAD_URL`` replaces every download's base URL (a mirror, or the local
test server); pinned checksums still apply to a mirror.
"""

from __future__ import annotations

import logging
import hashlib
import http.client
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from benchmark.errors import ENVIRONMENT_ERRNOS, BenchmarkError, cannot_write

LOG = logging.getLogger(__name__)  # progress and notes: the CLI shows them on stderr

DOWNLOAD_URL_ENV = "BENCHMARK_DOWNLOAD_URL"
TIMEOUT_SECONDS = 60.0
_CHUNK = 1 << 20
_MD5 = re.compile(r"\b([0-9a-fA-F]{32})\b")


@dataclass(frozen=True)
class Download:
    """A published archive holding a dataset's raw files."""

    filename: str  # e.g. "ml-25m.zip"
    base_url: str  # folder URL, ending with "/"
    page: str  # human page to download it by hand
    md5: str | None = None  # pinned checksum; None: read ``<filename>.md5`` beside the archive
    checksum_suffix: str = ".md5"

    def url(self) -> str:
        base = os.environ.get(DOWNLOAD_URL_ENV) or self.base_url
        return base.rstrip("/") + "/" + self.filename


_GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/"
_GROUPLENS_PAGE = "https://grouplens.org/datasets/movielens/"

# ml-25m.zip is a fixed release (261,978,986 bytes); its published ml-25m.zip.md5 holds this
# value. ml-latest-small is refreshed by GroupLens from time to time: its .md5 is read at
# download time.
ML_25M = Download("ml-25m.zip", _GROUPLENS_URL, _GROUPLENS_PAGE, md5="6b51fb2759a8657d3bfcbfc42b592ada")
ML_LATEST_SMALL = Download("ml-latest-small.zip", _GROUPLENS_URL, _GROUPLENS_PAGE)


def downloads_dir() -> Path:
    from benchmark.data.prepare import cache_root

    return cache_root() / "downloads"


# --- HTTP -------------------------------------------------------------------------------


def _open(url: str, start: int = 0):  # noqa: ANN202 - an http.client.HTTPResponse
    request = urllib.request.Request(url, headers={"User-Agent": "llm4rec-bench"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)  # noqa: S310 - http(s) URLs only


def published_md5(url: str) -> str:
    """The MD5 in a publisher's checksum file (``md5sum`` or BSD ``MD5 (f) = x`` format)."""
    with _open(url) as response:
        text = response.read(1 << 16).decode("utf-8", errors="replace")
    match = _MD5.search(text)
    if not match:
        raise BenchmarkError(f"{url} does not contain an MD5 checksum")
    return match.group(1).lower()


def md5_of(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 - the publisher's checksum is MD5
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, dest: Path, expected_md5: str | None, *, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify it, then rename it into place.

    Network problems raise ``OSError``/``urllib.error.URLError`` (the caller words the
    message); a checksum mismatch deletes the partial file and raises ``BenchmarkError``.
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, start)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not start:  # 416: the partial file is already complete (or bad)
            raise
        response = None
    if response is not None:
        with response:
            if start and response.status != 206:  # the server ignored Range: start over
                start = 0
            length = response.headers.get("Content-Length")
            total = start + int(length) if length is not None else None
            verb = "resuming" if start else "downloading"
            LOG.info(f"{verb} {url} -> {dest}")
            with open(part, "ab" if start else "wb") as fh, tqdm(
                total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                desc=dest.name, disable=not progress, file=sys.stderr,
            ) as bar:  # fmt: skip
                while chunk := response.read(_CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
            if total is not None and part.stat().st_size != total:
                raise urllib.error.URLError(f"connection closed after {part.stat().st_size} of {total} bytes (run again to resume)")
    if expected_md5 is not None:
        found = md5_of(part)
        if found != expected_md5.lower():
            part.unlink()
            raise BenchmarkError(
                f"{url}: checksum mismatch (MD5 {found}, expected {expected_md5}); the corrupted download was deleted. "
                "Run the command again to retry."
            )
    os.replace(part, dest)
    return dest


# --- extraction -------------------------------------------------------------------------


def _check_member(name: str, archive: Path) -> PurePosixPath:
    """Refuse absolute paths, drive letters and ``..`` components; return the relative path."""
    norm = name.replace("\\", "/")
    path = PurePosixPath(norm)
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or path.is_absolute():
        raise BenchmarkError(f"{archive}: refusing to extract member {name!r} with an absolute path")
    if ".." in path.parts:
        raise BenchmarkError(f"{archive}: refusing to extract member {name!r} with a '..' component")
    return path


def _check_link(name: str, link_target: str, archive: Path) -> None:
    """A link member must point inside the extraction folder."""
    member = _check_member(name, archive)
    target = link_target.replace("\\", "/")
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        raise BenchmarkError(f"{archive}: refusing link {name!r} -> {link_target!r} (absolute target)")
    depth = len(member.parts) - 1  # folders above the link, inside the target
    for part in PurePosixPath(target).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise BenchmarkError(f"{archive}: refusing link {name!r} -> {link_target!r} (points outside the target folder)")


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a zip or tar archive into ``target``, refusing members that would escape it."""
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_member(info.filename, archive)
                if stat.S_ISLNK(info.external_attr >> 16):
                    _check_link(info.filename, zf.read(info).decode("utf-8", errors="replace"), archive)
            zf.extractall(target)  # names were checked; zipfile writes links as small plain files
        return
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError:
        raise BenchmarkError(f"{archive}: not a zip or tar archive") from None
    with tf:
        members = tf.getmembers()
        for member in members:
            _check_member(member.name, archive)
            if member.issym():
                _check_link(member.name, member.linkname, archive)
            elif member.islnk():  # hard link: its target is a path from the archive root
                _check_member(member.linkname, archive)
            elif not (member.isfile() or member.isdir()):
                raise BenchmarkError(f"{archive}: refusing to extract special file {member.name!r}")
        tf.extractall(target, members=members, filter="data")


def _single_top_folder(folder: Path) -> Path:
    entries = [p for p in folder.iterdir() if p.name != "__MACOSX"]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder


# --- datasets ---------------------------------------------------------------------------


def download_dataset(name: str, source: Download, raw_dir: Path, required: tuple[str, ...], *, progress: bool = True) -> Path:
    """Download, verify and extract ``source`` so that ``required`` files are in ``raw_dir``."""
    url = source.url()
    manual = (
        f"Download {source.filename} by hand from {source.page}, unzip it and put {', '.join(required)} "
        f"in {raw_dir} (or pass --raw-dir DIR)."
    )
    archive = downloads_dir() / source.filename
    try:
        expected = source.md5 or published_md5(url + source.checksum_suffix)
        if not archive.is_file() or md5_of(archive) != expected:
            fetch(url, archive, expected, progress=progress)
    except BenchmarkError as exc:
        raise BenchmarkError(f"dataset {name!r}: {exc} {manual}") from None
    except OSError as exc:
        if exc.errno in ENVIRONMENT_ERRNOS and exc.filename is not None:  # the download folder, not the network
            raise cannot_write(exc.filename, exc, "the downloaded archive") from None
        reason = getattr(exc, "reason", None) or exc
        raise BenchmarkError(f"dataset {name!r}: could not download {url} ({reason}). {manual}") from None
    except (http.client.HTTPException, ValueError) as exc:
        raise BenchmarkError(f"dataset {name!r}: could not download {url} ({exc}). {manual}") from None
    try:
        _extract_into(archive, raw_dir, name, source, required, manual)
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        raise cannot_write(exc.filename or raw_dir.parent, exc, "the extracted raw files") from None
    archive.unlink(missing_ok=True)
    LOG.info(f"{name}: raw files in {raw_dir}")
    return raw_dir


def _extract_into(archive: Path, raw_dir: Path, name: str, source: Download, required: tuple[str, ...], manual: str) -> None:
    """Extract ``archive`` beside ``raw_dir`` and move its files into place."""
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{raw_dir.name}.download.", dir=raw_dir.parent))
    try:
        try:
            safe_extract(archive, tmp)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
            archive.unlink(missing_ok=True)  # its MD5 matched, so only a new download can help
            raise BenchmarkError(
                f"dataset {name!r}: {archive} passed its MD5 check but cannot be extracted ({exc}); it was deleted, so "
                f"the next run downloads it again. If this repeats, the published file or the mirror is damaged. {manual}"
            ) from None
        content = _single_top_folder(tmp)
        missing = [f for f in required if not (content / f).is_file()]
        if missing:
            raise BenchmarkError(f"dataset {name!r}: {source.filename} does not contain {', '.join(missing)}. {manual}")
        if raw_dir.is_dir() and not any(raw_dir.iterdir()):
            raw_dir.rmdir()
        if not raw_dir.exists():
            os.rename(content, raw_dir)
        else:  # a folder with some of the files already: replace file by file
            for path in content.iterdir():
                os.replace(path, raw_dir / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
