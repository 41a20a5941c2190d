"""Streaming JSON-lines reading with precise errors (file, line, field).

The Amazon and Yelp dumps are "one JSON object per line" files of several GB, plain,
gzip-compressed or inside a tar archive. ``read_records`` streams them in blocks
(never the whole file in memory), parses one line at a time and keeps only the
requested keys in columnar buffers that are turned into NumPy arrays every
``chunk_lines`` lines. Every problem names the file, the line and the field:

- a line that is not a JSON object (malformed, truncated);
- a required key missing, or any requested key of the wrong type;
- bytes that are not UTF-8;
- an empty file; a truncated ``.gz``; a duplicated id (``unique=``).

With ``on_bad_line="skip"`` the offending line is dropped instead and counted
(a truncated ``.gz`` ends the file: its partial last line counts as one skipped line).

``read_fast_or_precise`` first tries a fast path for flat records (interaction files):
blocks of whole lines, checked to be UTF-8, parsed by pyarrow's multithreaded JSON
reader keeping only the requested keys, ids turned into NumPy unicode arrays without a
Python object per value. On any irregularity it reads the file again with
``read_records`` (the precise path above), so errors and skip counts are the same.
"""

from __future__ import annotations

import gzip
import json
import math
import re
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

from benchmark.errors import BenchmarkError, DataFormatError

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

    Raises ``DataFormatError`` for an empty file and for a truncated compressed stream
    (the line number is that of the line that could not be completed).
    """
    fh, closers = source.open()
    line_no = 0
    seen_any = False
    try:
        rest = b""
        read = getattr(fh, "read1", fh.read)  # read1: a truncated .gz still yields the lines before the cut
        while True:
            try:
                block = read(_BLOCK)
            except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError, OSError) as exc:
                raise TruncatedError(source, line_no + 1, exc) from None
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


class TruncatedError(DataFormatError):
    def __init__(self, source: Source, line: int, exc: BaseException) -> None:
        super().__init__(source, line, "a complete compressed stream", f"the file ends early or is corrupt ({exc})")


# --- value kinds -----------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    label: str
    check: Callable[[Any], bool]
    column: str  # "str" (numpy unicode), "int" (int64), "float" (float64, NaN for null), "object"


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_number(v: Any) -> bool:
    return (type(v) is float and math.isfinite(v)) or type(v) is int


ID = Kind("a non-empty string", lambda v: type(v) is str and v != "", "str")
INT = Kind("an integer", _is_int, "int")
NUMBER = Kind("a number", _is_number, "float")
TEXT = Kind("a string", lambda v: type(v) is str, "object")
LIST = Kind("a list", lambda v: type(v) is list, "object")
DICT = Kind("an object", lambda v: type(v) is dict, "object")
LIST_OR_DICT = Kind("a list or an object", lambda v: type(v) in (list, dict), "object")
TEXT_OR_LIST = Kind("a string or a list", lambda v: type(v) in (str, list), "object")
ANY = Kind("any value", lambda v: True, "object")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
# "YYYY-MM-DD HH:MM:SS" (Yelp), kept as int64 seconds (read as UTC)
DATE = Kind("a date 'YYYY-MM-DD HH:MM:SS'", lambda v: type(v) is str and _DATE_RE.fullmatch(v) is not None, "date")
# a number, or a string such as "$12.99" / "" / "$3.99 - $5.99" (Amazon prices)
PRICE = Kind("a number or a price string", lambda v: type(v) is str or _is_number(v), "object")


# --- reading ---------------------------------------------------------------------------


@dataclass
class Records:
    """Columns of the kept lines (file order), their line numbers, and how many lines were skipped."""

    columns: dict[str, np.ndarray]
    lines: np.ndarray  # int64 line numbers (row numbers on the fast path: see ``exact``)
    skipped: int
    exact: bool = True  # False: read by the fast path, ``lines`` are row numbers, not file lines

    def __len__(self) -> int:
        return len(self.lines)

    def take(self, mask: np.ndarray) -> Records:
        return Records({k: v[mask] for k, v in self.columns.items()}, self.lines[mask], self.skipped, self.exact)


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
            try:
                json.dumps(value, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                return f" in field '{key}'"
    return ""


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
    line silently (e.g. metadata of items never rated). ``loads`` replaces ``json.loads``
    for lines in another notation (it raises ``FieldError`` for a bad line).
    """
    source = source if isinstance(source, Source) else Source(Path(source))
    skip = on_bad_line == "skip"
    names = list(fields)
    kinds = [fields[n] for n in names]
    required_set = set(required)
    missing_values = {"str": "", "int": 0, "float": math.nan, "object": None, "date": "NaT"}
    buffers: dict[str, list[Any]] = {n: [] for n in names}
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    line_buf: list[int] = []
    hash_buf: list[int] = []
    hash_chunks: list[np.ndarray] = []
    line_chunks: list[np.ndarray] = []
    skipped = 0
    loads = json.loads if loads is None else loads

    def flush() -> None:
        for n, kind in zip(names, kinds):
            values = buffers[n]
            if kind.column == "str":
                arr = np.array(values, dtype=str) if values else np.array([], dtype="U1")
            elif kind.column == "int":
                arr = np.array(values, dtype=np.int64)
            elif kind.column == "float":
                arr = np.array(values, dtype=np.float64)
            elif kind.column == "date":
                try:
                    arr = np.array(values, dtype="datetime64[s]").astype(np.int64)
                except ValueError:  # e.g. 2019-02-30: a valid shape but not a date
                    arr = pd.to_datetime(pd.Series(values, dtype=object), format="%Y-%m-%d %H:%M:%S", errors="coerce")
                    arr = arr.to_numpy().astype("datetime64[s]").astype(np.int64)
            else:
                arr = np.empty(len(values), dtype=object)
                arr[:] = values
            chunks[n].append(arr)
            values.clear()
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
            try:
                obj = loads(line)
            except UnicodeDecodeError:
                raise _Bad("UTF-8 text" + _undecodable_field(line), "undecodable bytes") from None
            except ValueError as exc:
                msg = getattr(exc, "msg", str(exc))
                col = getattr(exc, "colno", None)
                raise _Bad("a JSON object", f"malformed JSON ({msg}" + (f" at column {col})" if col else ")")) from None
            if type(obj) is not dict:
                raise _Bad("a JSON object", _found(obj))
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
            if check is not None:
                check(obj)
            if keep is not None and not keep(obj):
                continue
        except FieldError as exc:
            if not skip:
                raise DataFormatError(source, line_no, exc.expected, exc.found) from None
            skipped += 1
            continue
        except _Bad as exc:
            if not skip:
                raise DataFormatError(source, line_no, exc.expected, exc.found) from None
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
    columns = {n: _concat(chunks[n], kinds[i].column) for i, n in enumerate(names)}
    records = Records(columns, np.concatenate(line_chunks), skipped)
    if unique is not None:
        hashes = np.concatenate(hash_chunks) if identical_duplicates_ok else None
        records = _check_unique(source, records, unique, skip, hashes)
    return records


class FieldError(Exception):
    """Raised by a ``check`` callback: the line is bad (expected / found)."""

    def __init__(self, expected: str, found: Any) -> None:
        super().__init__(expected)
        self.expected, self.found = expected, _found(found)


def _concat(parts: list[np.ndarray], column: str) -> np.ndarray:
    parts = [p for p in parts if len(p)] or parts[:1]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _check_unique(source: Source, records: Records, key: str, skip: bool, hashes: np.ndarray | None) -> Records:
    """Repeated ``key`` values are bad lines; with ``hashes``, a line identical to the first
    occurrence is a harmless repeat (a quirk of the published Amazon files) and is dropped."""
    values = pd.Series(records.columns[key].astype(object) if records.columns[key].dtype.kind == "U" else records.columns[key])
    duplicated = values.duplicated().to_numpy()
    if not duplicated.any():
        return records
    if not records.exact:
        raise SlowPathNeeded()
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
    """A check failed on fast-path records: re-read with the precise line-by-line reader."""


def reject(source: Source, records: Records, bad: np.ndarray, expected: str, field: str, skip: bool) -> Records:
    """Vectorised check after reading: ``bad`` lines raise (first one named) or are skipped."""
    if not bad.any():
        return records
    if not records.exact:
        raise SlowPathNeeded()
    if not skip:
        first = int(np.flatnonzero(bad)[0])
        raise DataFormatError(source, int(records.lines[first]), f"{expected} in field '{field}'", str(records.columns[field][first]))
    kept = records.take(~bad)
    kept.skipped += int(bad.sum())
    return kept


# --- fast path: pyarrow's JSON parser on validated blocks ------------------------------

_ARROW = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.string()}


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


def _fast_records(source: Source, fields: dict[str, Kind], required: tuple[str, ...], unique: str | None) -> Records:
    """All-or-nothing fast read: blocks of whole lines, checked to be UTF-8, parsed by pyarrow
    (only the requested keys are materialised). Any irregularity raises ``SlowPathNeeded``."""
    if any(k.column not in _ARROW and k is not TEXT for k in fields.values()) or (unique and fields[unique].column != "str"):
        raise SlowPathNeeded()
    schema = pa.schema([(n, _ARROW.get(k.column, pa.string())) for n, k in fields.items()])
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    read_options = pajson.ReadOptions(block_size=4 << 20)
    tables: list[pa.Table] = []
    fh, closers = source.open()
    try:
        read = getattr(fh, "read1", fh.read)
        rest = b""
        while True:
            try:
                block = read(_BLOCK)
            except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError, OSError):
                raise SlowPathNeeded() from None
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0 and len(block) < (256 << 20):
                rest = block
                continue
            rest, block = block[cut:], block[:cut]
            tables.append(_parse_block(block, options, read_options))
        if rest.strip():
            tables.append(_parse_block(rest + b"\n", options, read_options))
    finally:
        for c in closers:
            c.close()
    if not tables:
        raise SlowPathNeeded()
    table = pa.concat_tables(tables)
    columns: dict[str, np.ndarray] = {}
    for name, kind in fields.items():
        col = table.column(name)
        if name in required and col.null_count:
            raise SlowPathNeeded()
        if kind.column == "str":
            if col.null_count or pc.any(pc.equal(pc.binary_length(col), 0)).as_py():
                raise SlowPathNeeded()
            if name == unique and pc.count_distinct(col).as_py() != len(col):
                raise SlowPathNeeded()
            columns[name] = _to_unicode(col)
        elif kind.column == "date":
            try:
                stamps = pc.strptime(col, format="%Y-%m-%d %H:%M:%S", unit="s")
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise SlowPathNeeded() from None
            if stamps.null_count:
                raise SlowPathNeeded()
            columns[name] = stamps.cast(pa.int64()).to_numpy()
        elif kind.column == "int":
            if col.null_count:
                raise SlowPathNeeded()
            columns[name] = col.to_numpy()
        elif kind.column == "float":
            values = col.to_numpy(zero_copy_only=False).astype(np.float64)
            if np.isinf(values).any():
                raise SlowPathNeeded()
            columns[name] = values
        else:
            columns[name] = col.fill_null("").to_numpy(zero_copy_only=False)
    return Records(columns, np.arange(1, table.num_rows + 1, dtype=np.int64), 0, exact=False)


def _parse_block(block: bytes, options: pajson.ParseOptions, read_options: pajson.ReadOptions) -> pa.Table:
    try:
        block.decode("utf-8")  # pyarrow does not check the keys it ignores
        if b"\n\n" in block or block.startswith(b"\n"):
            raise SlowPathNeeded()  # blank lines: row numbers would not be line numbers
        return pajson.read_json(pa.py_buffer(block), read_options=read_options, parse_options=options)
    except (UnicodeDecodeError, pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        raise SlowPathNeeded() from None


def read_fast_or_precise(
    source: Source,
    fields: dict[str, Kind],
    *,
    required: tuple[str, ...] = (),
    on_bad_line: str = "error",
    unique: str | None = None,
    post: Callable[[Records], Records] | None = None,
) -> Records:
    """``read_records``, first by the fast path (pyarrow); if anything is irregular -- a bad
    line, a failed ``post`` check -- again line by line, for precise errors or skipping."""
    try:
        records = _fast_records(source, fields, required, unique)
        return post(records) if post is not None else records
    except SlowPathNeeded:
        pass
    records = read_records(source, fields, required=required, on_bad_line=on_bad_line, unique=unique)
    return post(records) if post is not None else records
