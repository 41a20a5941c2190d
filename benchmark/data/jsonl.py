"""Streaming JSON-lines reading with precise errors (file, line, field).

The Amazon and Yelp dumps are "one JSON object per line" files of several GB, plain,
gzip-compressed or inside a tar archive. ``read_records`` streams them in blocks
(never the whole file in memory), parses one line at a time and keeps only the
requested keys in columnar buffers that are turned into NumPy arrays every
``chunk_lines`` lines. Every problem names the file, the line and the field:

- a line that is not a JSON object (malformed, truncated), or that nests arrays and
  objects more than ``MAX_DEPTH`` levels deep (Python's parser would overflow its stack);
- a required key missing, or any requested key of the wrong type: numbers must be
  finite (``NaN`` and ``Infinity`` are refused), integers must fit in 64 bits;
- bytes that are not UTF-8;
- an empty file; a truncated ``.gz``; a duplicated id (``unique=``).

With ``on_bad_line="skip"`` the offending line is dropped instead and counted
(a truncated ``.gz`` ends the file: its partial last line counts as one skipped line).
A damaged compressed stream (corrupt deflate data, a failed CRC) is always an error,
even with ``skip``: what was decompressed before the damage may itself be garbage. A
bad line in a gzip file is first checked against this (the rest of the file is read),
so the error names the real cause.

``read_fast_or_precise`` first tries a fast path for flat records (interaction files):
blocks of whole lines, checked to be UTF-8, parsed by pyarrow's multithreaded JSON
reader keeping only the requested keys, ids turned into NumPy unicode arrays without a
Python object per value. A block is accepted only when pyarrow's rows are exactly its
lines (one row per line, no blank lines), so row numbers are line numbers. On anything
pyarrow reads differently from ``json`` -- a bad line, NaN, a date pyarrow would
normalise, deep nesting -- it reads the file again with ``read_records`` (the precise path
above), so errors and skip counts are the same on both paths.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import sys
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from benchmark.errors import BenchmarkError, DataFormatError, cannot_read

_BLOCK = 16 << 20
_GZIP_MAGIC = b"\x1f\x8b"


# --- sources: plain, .gz, tar member ---------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A JSON-lines file: a path, or a member of an uncompressed/compressed tar archive."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path} (member {self.member})" if self.member else str(self.path)

    @property
    def name(self) -> str:
        return Path(self.member).name if self.member else self.path.name

    def open(self) -> tuple[BinaryIO, list[Any]]:
        """Binary stream of the decompressed content, plus objects to close afterwards."""
        try:
            return self._open()
        except OSError as exc:
            if exc.errno is None:  # gzip's complaint about a damaged archive, not an OS error
                raise unreadable_archive(self.path, exc) from None
            raise cannot_read(exc.filename or self.path, exc) from None
        except (tarfile.TarError, zlib.error, EOFError) as exc:  # the archive's index cannot be read
            raise unreadable_archive(self.path, exc) from None

    def _open(self) -> tuple[BinaryIO, list[Any]]:
        if self.member is not None:
            tar = tarfile.open(self.path, "r:*")
            try:
                fh = tar.extractfile(self.member)
            except KeyError:
                tar.close()
                raise BenchmarkError(f"{self.path}: no member {self.member!r} in the archive") from None
            if fh is None:
                tar.close()
                raise BenchmarkError(f"{self}: not a regular file")
            return _maybe_gunzip(fh), [fh, tar]
        if not self.path.is_file():
            raise BenchmarkError(f"{self.path}: file not found")
        fh = open(self.path, "rb")
        return _maybe_gunzip(fh), [fh]

    def compressed(self) -> bool:
        """Whether the content is gzip-compressed (the file itself or the tar member)."""
        fh, closers = self.open()
        for c in closers:
            c.close()
        return isinstance(fh, gzip.GzipFile)


DAMAGED_HINT = "The file is damaged: download it again (gzip -t FILE tests a .gz copy)."


def unreadable_archive(path: Path, exc: BaseException) -> DataFormatError:
    """A tar archive whose index cannot be read (damaged compression, cut short)."""
    return DataFormatError(path, None, "a readable tar archive", str(exc), hint=DAMAGED_HINT)


def _maybe_gunzip(fh: BinaryIO) -> BinaryIO:
    head = fh.peek(2)[:2] if hasattr(fh, "peek") else b""
    if not head:
        head = fh.read(2)
        fh.seek(0)
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    return fh


def iter_lines(source: Source) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line bytes without the newline) for every non-blank line.

    Raises ``DataFormatError`` for an empty file, ``TruncatedError`` for a compressed
    stream that ends early and ``CorruptStreamError`` for a damaged one (the line number
    is that of the first line that could not be read completely).
    """
    fh, closers = source.open()
    line_no = 0
    seen_any = False
    try:
        rest = b""
        read = getattr(fh, "read1", fh.read)  # read1: a truncated .gz still yields the lines before the cut
        while True:
            block = _read_block(read, source, line_no + 1)
            if not block:
                break
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            for line in lines:
                line_no += 1
                if line.strip():
                    seen_any = True
                    yield line_no, line
        if rest.strip():
            line_no += 1
            seen_any = True
            yield line_no, rest
    finally:
        for c in closers:
            c.close()
    if not seen_any:
        raise DataFormatError(source, 1, "one JSON object per line", "an empty file")


def _read_block(read: Callable[[int], bytes], source: Source, line: int) -> bytes:
    """One block of decompressed bytes; read errors become errors naming ``line``."""
    try:
        return read(_BLOCK)
    except (EOFError, tarfile.ReadError) as exc:
        raise TruncatedError(source, line, exc) from None
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise CorruptStreamError(source, line, exc) from None
    except OSError as exc:  # an OS read error (errno set), or a decoder's complaint without one
        if exc.errno is not None:
            raise cannot_read(source, exc) from None
        raise CorruptStreamError(source, line, exc) from None


class TruncatedError(DataFormatError):
    """The compressed stream ends before its end marker (an interrupted download)."""

    def __init__(self, source: Source, line: int, exc: BaseException) -> None:
        super().__init__(source, line, "a complete compressed stream", f"the file ends early ({exc})", hint=DAMAGED_HINT)


class CorruptStreamError(DataFormatError):
    """The compressed stream is damaged (bad deflate data, CRC or length mismatch)."""

    def __init__(self, source: Source, line: int, exc: BaseException) -> None:
        super().__init__(source, line, "a valid compressed stream", f"damaged compressed data ({exc})", hint=DAMAGED_HINT)


# --- value kinds -----------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    label: str
    check: Callable[[Any], bool]
    column: str  # "str" (numpy unicode), "int" (int64), "float" (float64, NaN for null), "object"


_INT64 = (-(2**63), 2**63)


def _is_int(v: Any) -> bool:
    return type(v) is int and _INT64[0] <= v < _INT64[1]


def _is_number(v: Any) -> bool:
    return (type(v) is float and math.isfinite(v)) or (type(v) is int and abs(v) <= _MAX_FLOAT_INT)


_MAX_FLOAT_INT = int(sys.float_info.max)  # a larger JSON integer does not fit in a float64


ID = Kind("a non-empty string", lambda v: type(v) is str and v != "", "str")
INT = Kind("a 64-bit integer", _is_int, "int")
NUMBER = Kind("a finite number", _is_number, "float")
TEXT = Kind("a string", lambda v: type(v) is str, "object")
LIST = Kind("a list", lambda v: type(v) is list, "object")
DICT = Kind("an object", lambda v: type(v) is dict, "object")
LIST_OR_DICT = Kind("a list or an object", lambda v: type(v) in (list, dict), "object")
TEXT_OR_LIST = Kind("a string or a list", lambda v: type(v) in (str, list), "object")
ANY = Kind("any value", lambda v: True, "object")
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATE_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"
_DATE_RE = re.compile(_DATE_PATTERN)
NAT = np.iinfo(np.int64).min  # an impossible date (2019-02-30) read as a date column
# "YYYY-MM-DD HH:MM:SS" (Yelp), kept as int64 seconds (read as UTC); see ``date_seconds``
DATE = Kind("a date 'YYYY-MM-DD HH:MM:SS'", lambda v: type(v) is str and _DATE_RE.fullmatch(v) is not None, "date")
# a number, or a string such as "$12.99" / "" / "$3.99 - $5.99" (Amazon prices)
PRICE = Kind("a number or a price string", lambda v: type(v) is str or _is_number(v), "object")


def date_seconds(dates: pa.Array) -> np.ndarray:
    """'YYYY-MM-DD HH:MM:SS' strings -> int64 seconds (UTC), ``NAT`` for dates not in the calendar.

    Both reading paths convert dates here, so they agree on every value: strptime rolls
    impossible dates over (2019-02-30 -> 2019-03-02, 23:59:60 -> the next day), so a date
    counts only if it reads back unchanged.
    """
    stamps = pc.strptime(dates, format=_DATE_FORMAT, unit="s", error_is_null=True)
    same = pc.fill_null(pc.equal(pc.strftime(stamps, format=_DATE_FORMAT), dates), False)
    return pc.if_else(same, stamps.cast(pa.int64()), pa.scalar(NAT, pa.int64())).to_numpy(zero_copy_only=False)


# --- nesting depth: json's parser recurses once per level -------------------------------

MAX_DEPTH = 100  # real files nest 4 levels at most; Python's own limit is about 1,000
_OPENERS = bytes.maketrans(b"{", b"[")
_NOT_OPENER_OR_NEWLINE = bytes(b for b in range(256) if b not in b"[{\n")
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


_RUN = b"[" * (MAX_DEPTH + 1)


def _openers(data: bytes) -> bytes:
    """``data`` reduced to its newlines and its '[' and '{' (both as '['): the run of '[' a
    line leaves is an upper bound of its nesting depth (C speed, about 2 GB/s)."""
    return data.translate(_OPENERS, _NOT_OPENER_OR_NEWLINE)


def _depth(line: bytes) -> int:
    """Nesting depth of a JSON line, brackets inside strings not counted."""
    depth = deepest = 0
    for match in _TOKEN.finditer(line):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def too_deep(line: bytes) -> int | None:
    """The nesting depth of ``line`` when it exceeds ``MAX_DEPTH``, else None (cheap when it does not)."""
    if len(line) <= MAX_DEPTH or len(_openers(line)) <= MAX_DEPTH:
        return None
    depth = _depth(line)
    return depth if depth > MAX_DEPTH else None


def _too_deep_in_block(block: bytes, reduced: bytes) -> bool:
    """Whether any line of ``block`` (``reduced``: its ``_openers``) nests deeper than ``MAX_DEPTH``;
    exact, and cheap: only the few lines with more openers than that are scanned."""
    if _RUN not in reduced:
        return False
    lines = block.split(b"\n")
    return any(_depth(lines[i]) > MAX_DEPTH for i, run in enumerate(reduced.split(b"\n")) if len(run) > MAX_DEPTH)


# --- reading ---------------------------------------------------------------------------


@dataclass
class Records:
    """Columns of the kept lines (file order), their line numbers, and how many lines were skipped."""

    columns: dict[str, np.ndarray]
    lines: np.ndarray  # int64 line numbers in the file, on both reading paths
    skipped: int

    def __len__(self) -> int:
        return len(self.lines)

    def take(self, mask: np.ndarray) -> Records:
        return Records({k: v[mask] for k, v in self.columns.items()}, self.lines[mask], self.skipped)


class _Bad(Exception):
    def __init__(self, expected: str, found: str) -> None:
        self.expected, self.found = expected, found


def _found(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def _undecodable_field(line: bytes) -> str:
    """Which key holds the bytes that are not UTF-8 (best effort, error path only)."""
    try:
        obj = json.loads(line.decode("utf-8", errors="surrogateescape"))
    except ValueError:
        return ""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not _encodable(value):
                return f" in field '{key}'"
    return ""


def _encodable(value: Any) -> bool:
    """False for text holding a lone surrogate (``"\ud800"`` in the file): json accepts the
    escape, but no UTF-8 writer (Parquet, the console) can store it."""
    try:
        (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _may_hold_surrogate(line: bytes) -> bool:
    return b"\\ud" in line or b"\\uD" in line  # surrogates are \uD800-\uDFFF


def _parse(line: bytes) -> dict[str, Any]:
    """One line as a JSON object, or ``_Bad``."""
    depth = too_deep(line)
    if depth is not None:
        raise _Bad(f"a JSON object nested at most {MAX_DEPTH} levels deep", f"nesting {depth} levels deep")
    try:
        obj = json.loads(line)
    except UnicodeDecodeError:
        raise _Bad("UTF-8 text" + _undecodable_field(line), "undecodable bytes") from None
    except ValueError as exc:
        msg = getattr(exc, "msg", str(exc))
        col = getattr(exc, "colno", None)
        raise _Bad("a JSON object", f"malformed JSON ({msg}" + (f" at column {col})" if col else ")")) from None
    if type(obj) is not dict:
        raise _Bad("a JSON object", _found(obj))
    return obj


def read_records(
    source: Source | Path,
    fields: dict[str, Kind],
    *,
    required: tuple[str, ...] = (),
    on_bad_line: str = "error",
    unique: str | None = None,
    identical_duplicates_ok: bool = False,
    check: Callable[[dict[str, Any]], None] | None = None,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    chunk_lines: int = 250_000,
    loads: Callable[[bytes], Any] | None = None,
) -> Records:
    """Stream ``source`` and keep ``fields`` (JSON key -> kind) of every line.

    ``required`` keys must be present and not null; other keys may be missing or null
    (kept as "" / NaN / None by column type; integers must then be required). ``unique``
    names a key whose values must not repeat. ``check(record)`` may raise
    ``FieldError`` for extra per-line validation; ``keep(record)`` False drops a valid
    line silently (e.g. metadata of items never rated). ``loads`` replaces the JSON parser
    for lines in another notation: it returns the line's object or raises ``FieldError``
    for a bad line, under the same rules (nesting at most ``MAX_DEPTH`` levels, finite
    numbers and 64-bit integers by the kinds, valid Unicode text).
    """
    source = source if isinstance(source, Source) else Source(Path(source))
    skip = on_bad_line == "skip"
    names = list(fields)
    kinds = [fields[n] for n in names]
    required_set = set(required)
    missing_values = {"str": "", "int": 0, "float": math.nan, "object": None, "date": "NaT"}
    texts = [n for n, k in zip(names, kinds) if k.column in ("str", "object", "date")]
    buffers: dict[str, list[Any]] = {n: [] for n in names}
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    line_buf: list[int] = []
    hash_buf: list[int] = []
    hash_chunks: list[np.ndarray] = []
    line_chunks: list[np.ndarray] = []
    skipped = 0
    parse = _parse if loads is None else loads

    def flush() -> None:
        for n, kind in zip(names, kinds):
            chunks[n].append(_column(buffers[n], kind.column))
            buffers[n].clear()
        line_chunks.append(np.array(line_buf, dtype=np.int64))
        line_buf.clear()
        hash_chunks.append(np.array(hash_buf, dtype=np.int64))
        hash_buf.clear()

    lines_iter = iter_lines(source)
    while True:
        try:
            line_no, line = next(lines_iter)
        except StopIteration:
            break
        except TruncatedError:
            if not skip:
                raise
            skipped += 1
            break
        try:
            obj = parse(line)
            row = []
            for n, kind in zip(names, kinds):
                value = obj.get(n)
                if value is None:
                    if n in required_set:
                        raise _Bad(f"the required field '{n}' ({kind.label})", "missing" if n not in obj else "null")
                    row.append(missing_values[kind.column])
                elif kind.check(value):
                    row.append(value)
                else:
                    raise _Bad(f"{kind.label} in field '{n}'", _found(value))
            if loads is not None or _may_hold_surrogate(line):  # another notation may spell escapes otherwise
                for n in texts:
                    if not _encodable(obj.get(n)):
                        raise _Bad(f"valid Unicode text in field '{n}'", "an unpaired UTF-16 surrogate escape")
            if check is not None:
                check(obj)
            if keep is not None and not keep(obj):
                continue
        except (FieldError, _Bad) as exc:
            if not skip:
                raise _bad_line_error(source, line_no, exc.expected, exc.found, lines_iter) from None
            skipped += 1
            continue
        for n, value in zip(names, row):
            buffers[n].append(value)
        line_buf.append(line_no)
        if identical_duplicates_ok:
            hash_buf.append(hash(line.strip()))
        if len(line_buf) >= chunk_lines:
            flush()
    flush()
    columns = {n: _concat(chunks[n]) for n in names}
    records = Records(columns, np.concatenate(line_chunks), skipped)
    if unique is not None:
        hashes = np.concatenate(hash_chunks) if identical_duplicates_ok else None
        records = _check_unique(source, records, unique, skip, hashes)
    return records


def _column(values: list[Any], column: str) -> np.ndarray:
    """A buffer of one field's values as the column type of its kind."""
    if column == "str":
        return np.array(values, dtype=str) if values else np.array([], dtype="U1")
    if column == "int":
        return np.array(values, dtype=np.int64)
    if column == "float":
        return np.array(values, dtype=np.float64)
    if column == "date":
        return date_seconds(pa.array(values, type=pa.string()))
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _bad_line_error(source: Source, line: int, expected: str, found: str, rest: Iterator[tuple[int, bytes]]) -> DataFormatError:
    """The error for a bad line; in a gzip file, a damaged stream further on is the real cause
    (deflate damage often decodes to garbage lines before zlib or the CRC notices)."""
    if source.compressed():
        try:
            for _ in rest:
                pass
        except CorruptStreamError as damaged:
            return damaged
        except TruncatedError:
            pass  # a cut at the end does not garble the lines before it
    return DataFormatError(source, line, expected, found)


class FieldError(Exception):
    """Raised by a ``check`` callback: the line is bad (expected / found)."""

    def __init__(self, expected: str, found: Any) -> None:
        super().__init__(expected)
        self.expected, self.found = expected, _found(found)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if len(p)] or parts[:1]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _check_unique(source: Source, records: Records, key: str, skip: bool, hashes: np.ndarray | None) -> Records:
    """Repeated ``key`` values are bad lines; with ``hashes``, a line identical to the first
    occurrence is a harmless repeat (a quirk of the published Amazon files) and is dropped."""
    values = pd.Series(records.columns[key].astype(object) if records.columns[key].dtype.kind == "U" else records.columns[key])
    duplicated = values.duplicated().to_numpy()
    if not duplicated.any():
        return records
    if hashes is not None:
        first_hash = pd.Series(hashes[~duplicated], index=values[~duplicated].to_numpy())
        same = duplicated.copy()
        same[duplicated] = first_hash.reindex(values[duplicated].to_numpy()).to_numpy() == hashes[duplicated]
        records = records.take(~same)
        duplicated = duplicated[~same]
        values = values[~same]
        if not duplicated.any():
            return records
    if not skip:
        first = int(np.flatnonzero(duplicated)[0])
        raise DataFormatError(
            source, int(records.lines[first]), f"a unique '{key}' per line (it appeared on an earlier line)", str(values.iloc[first])
        )
    kept = records.take(~duplicated)
    kept.skipped += int(duplicated.sum())
    return kept


class SlowPathNeeded(Exception):
    """The fast path cannot vouch for the file: re-read it with the precise line-by-line reader."""


def reject(source: Source, records: Records, bad: np.ndarray, expected: str, field: str, skip: bool) -> Records:
    """Vectorised check after reading: ``bad`` lines raise (first one named) or are skipped."""
    if not bad.any():
        return records
    if not skip:
        first = int(np.flatnonzero(bad)[0])
        raise DataFormatError(source, int(records.lines[first]), f"{expected} in field '{field}'", str(records.columns[field][first]))
    kept = records.take(~bad)
    kept.skipped += int(bad.sum())
    return kept


# --- fast path: pyarrow's JSON parser on validated blocks ------------------------------

_ARROW = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.string()}
# pyarrow skips blank lines, so rows would stop being lines (two patterns: a leading "^|" would
# cost the search its fast scan for the newline)
_BLANK_FIRST_LINE = re.compile(rb"[ \t\r]*\n")
_BLANK_LINE = re.compile(rb"\n[ \t\r]*\n")


def _to_unicode(col: pa.ChunkedArray) -> np.ndarray:
    """Arrow strings -> a NumPy unicode array without a Python object per value (ASCII ids:
    pad to a common width with NUL, view the bytes as fixed-width, widen to unicode)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if len(arr) == 0:
        return np.array([], dtype="U1")
    if not pc.all(pc.string_is_ascii(arr)).as_py():
        return arr.to_numpy(zero_copy_only=False).astype(str)
    width = max(int(pc.max(pc.binary_length(arr)).as_py()), 1)
    padded = pc.utf8_rpad(arr, width=width, padding="\0")
    start = int(np.frombuffer(padded.buffers()[1], dtype=np.int32, count=1, offset=padded.offset * 4)[0])
    data = np.frombuffer(padded.buffers()[2], dtype=np.uint8)[start : start + len(arr) * width]
    return data.view(f"S{width}").astype(f"U{width}")


def _fast_records(source: Source, fields: dict[str, Kind], required: tuple[str, ...], unique: str | None, skip: bool) -> Records:
    """All-or-nothing fast read: blocks of whole lines, checked to be UTF-8, parsed by pyarrow
    (only the requested keys are materialised). Any irregularity raises ``SlowPathNeeded``;
    repeated ``unique`` values are named (or skipped) as on the precise path."""
    if any(k.column not in _ARROW and k is not TEXT for k in fields.values()):
        raise SlowPathNeeded()
    schema = pa.schema([(n, _ARROW.get(k.column, pa.string())) for n, k in fields.items()])
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    read_options = pajson.ReadOptions(block_size=4 << 20)
    tables = [_parse_block(block, options, read_options) for block in _line_blocks(source)]
    if not tables:
        raise SlowPathNeeded()
    table = pa.concat_tables(tables)
    columns = {name: _fast_column(table.column(name), kind, name in required) for name, kind in fields.items()}
    records = Records(columns, np.arange(1, table.num_rows + 1, dtype=np.int64), 0)
    if unique is not None and pc.count_distinct(table.column(unique)).as_py() != table.num_rows:
        records = _check_unique(source, records, unique, skip, None)
    return records


def _line_blocks(source: Source) -> Iterator[bytes]:
    """The decompressed file in blocks of whole lines, each ending with a newline."""
    fh, closers = source.open()
    try:
        read = getattr(fh, "read1", fh.read)
        rest = b""
        while True:
            try:
                block = read(_BLOCK)
            except (EOFError, zlib.error, tarfile.TarError, OSError):  # BadGzipFile is an OSError
                raise SlowPathNeeded() from None
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0 and len(block) < (256 << 20):
                rest = block
                continue
            rest, block = block[cut:], block[:cut]
            yield block
        if rest.strip():
            yield rest + b"\n"
    finally:
        for c in closers:
            c.close()


def _fast_column(col: pa.ChunkedArray, kind: Kind, required: bool) -> np.ndarray:
    """One column of the fast path, or ``SlowPathNeeded`` where the precise path could disagree."""
    if required and col.null_count:
        raise SlowPathNeeded()
    if kind.column == "str":
        if col.null_count or pc.any(pc.equal(pc.binary_length(col), 0)).as_py():
            raise SlowPathNeeded()
        return _to_unicode(col)
    if kind.column == "date":
        if col.null_count or not pc.all(pc.match_substring_regex(col, f"^{_DATE_PATTERN}$")).as_py():
            raise SlowPathNeeded()
        return date_seconds(col.combine_chunks())
    if kind.column == "int":
        if col.null_count:
            raise SlowPathNeeded()
        return col.to_numpy()
    if kind.column == "float":
        if pc.any(pc.invert(pc.is_finite(col))).as_py():  # NaN, Infinity: refused by the precise path
            raise SlowPathNeeded()
        return col.to_numpy(zero_copy_only=False).astype(np.float64)
    return col.to_numpy(zero_copy_only=False)


def _parse_block(block: bytes, options: pajson.ParseOptions, read_options: pajson.ReadOptions) -> pa.Table:
    """One block by pyarrow, only when its rows are exactly its lines and json would read them alike."""
    try:
        block.decode("utf-8")  # pyarrow does not check the keys it ignores
    except UnicodeDecodeError:
        raise SlowPathNeeded() from None
    reduced = _openers(block)  # newlines and openers only: small, and counts both
    if _BLANK_FIRST_LINE.match(block) or _BLANK_LINE.search(block) or _too_deep_in_block(block, reduced):
        raise SlowPathNeeded()
    try:
        table = pajson.read_json(pa.py_buffer(block), read_options=read_options, parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        raise SlowPathNeeded() from None
    if table.num_rows != reduced.count(b"\n"):  # two values on a line, or a bare "\r" between them
        raise SlowPathNeeded()
    return table


def read_fast_or_precise(
    source: Source,
    fields: dict[str, Kind],
    *,
    required: tuple[str, ...] = (),
    on_bad_line: str = "error",
    unique: str | None = None,
    post: Callable[[Records], Records] | None = None,
) -> Records:
    """``read_records``, first by the fast path (pyarrow); if the fast path cannot vouch for a
    line, again line by line. Both paths give exact line numbers, so ``unique`` and ``post``
    checks name the same line (or skip the same lines) whichever path read the file."""
    try:
        records = _fast_records(source, fields, required, unique, on_bad_line == "skip")
    except SlowPathNeeded:
        records = read_records(source, fields, required=required, on_bad_line=on_bad_line, unique=unique)
    return post(records) if post is not None else records
