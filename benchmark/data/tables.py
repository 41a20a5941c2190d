"""Reading raw CSV files fast (pyarrow) and failing precisely (file, line, field).

The fast path is pyarrow's multithreaded reader with declared column types. Its table is
used only when it can vouch for every line: required values present, numbers finite,
``checks`` (valid ranges) and ``unique`` satisfied. Otherwise a precise line-by-line scan
decides: it reads numbers with pyarrow's grammar (spaces and tabs around them allowed,
integers in decimal or ``0x`` hexadecimal within 64 bits), refuses NaN and infinities,
and counts physical lines (a quoted value spanning lines is reported at its first line;
``\\r``, ``\\n`` and ``\\r\\n`` all end a line), so an error names the exact line. With
``on_bad_line="skip"`` the scan drops bad lines instead and counts them. Either way the
verdict on a line is the same whichever path read the file.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.compute as pc

from benchmark.errors import BenchmarkError, DataFormatError, cannot_read

INT = pa.int64()
FLOAT = pa.float64()
STRING = pa.string()

# csv's default cap (128 KiB per field) would refuse long values pyarrow reads
csv.field_size_limit(1 << 30)


@dataclass(frozen=True)
class Check:
    """A per-column validity rule: ``bad(values)`` is a mask over a NumPy array (NaN bad)."""

    bad: Callable[[np.ndarray], np.ndarray]
    expected: str


def read_header(path: Path) -> list[str]:
    if not path.is_file():
        raise BenchmarkError(f"{path}: file not found")
    try:
        with open(path, "rb") as fh:
            first = fh.readline()
    except OSError as exc:
        raise cannot_read(path, exc) from None
    if not first.strip():
        raise DataFormatError(path, 1, "a CSV header line", "an empty file" if not first else first.decode(errors="replace"))
    try:
        line = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataFormatError(path, 1, "UTF-8 text", "undecodable bytes") from None
    return next(csv.reader([line]))


def read_csv(
    path: Path,
    columns: dict[str, pa.DataType],
    *,
    required: tuple[str, ...] | None = None,
    on_bad_line: str = "error",
    multiline: bool = False,
    checks: dict[str, Check] | None = None,
    unique: str | None = None,
) -> tuple[pa.Table, int]:
    """Read ``columns`` of ``path`` with their types; return the table and the skipped-line count.

    ``required`` columns (default: all) must be present and non-empty on every line;
    others may be empty (null). ``multiline`` allows quoted values with newlines.
    ``checks`` (column -> Check) refuse values out of range; ``unique`` names a column
    whose values must not repeat (a repeat is a bad line: named, or skipped).
    """
    required = tuple(columns) if required is None else required
    checks = checks or {}
    header = read_header(path)
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataFormatError(path, 1, f"a header with columns {list(columns)} (missing {missing})", ",".join(header))
    spec = _Spec(path, header, columns, required, multiline, checks, unique)
    table = _fast_table(spec)
    if table is not None:
        return table, 0
    return _scan(spec, skip=on_bad_line == "skip")


@dataclass(frozen=True)
class _Spec:
    path: Path
    header: list[str]
    columns: dict[str, pa.DataType]
    required: tuple[str, ...]
    multiline: bool
    checks: dict[str, Check]
    unique: str | None


# --- fast path -----------------------------------------------------------------------------


def _fast_table(spec: _Spec) -> pa.Table | None:
    """pyarrow's typed read, or None when the precise scan must decide."""
    parse = pacsv.ParseOptions(newlines_in_values=spec.multiline)
    # only "" is null: pyarrow's default list would turn a title or tag "NA" / "null" into null
    convert = pacsv.ConvertOptions(column_types=spec.columns, include_columns=list(spec.columns), null_values=[""],
                                   strings_can_be_null=True)  # fmt: skip
    read = pacsv.ReadOptions(block_size=64 << 20)
    try:
        table = pacsv.read_csv(spec.path, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    except OSError as exc:
        raise cannot_read(spec.path, exc) from None
    return table if _vouched(table, spec) else None


def _vouched(table: pa.Table, spec: _Spec) -> bool:
    if any(table.column(c).null_count for c in spec.required):
        return False
    for name, kind in spec.columns.items():
        if kind == FLOAT and not pc.all(pc.is_finite(table.column(name))).as_py():
            return False
    for name, check in spec.checks.items():
        if check.bad(pc.drop_null(table.column(name)).to_numpy()).any():  # an empty optional value is not judged
            return False
    return spec.unique is None or pc.count_distinct(table.column(spec.unique)).as_py() == table.num_rows


# --- streamed numeric columns ------------------------------------------------------------

_INT32 = np.iinfo(np.int32)
STREAM_BLOCK = 16 << 20  # bytes per streamed block: small enough that Arrow's buffers stay small
_COMPRESSED = (".gz", ".bz2", ".lz4", ".zst", ".zstd", ".br")


def read_csv_arrays(
    path: Path,
    columns: dict[str, pa.DataType],
    *,
    narrow: tuple[str, ...] = (),
    float32: tuple[str, ...] = (),
    on_bad_line: str = "error",
    checks: dict[str, Check] | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """``read_csv`` for numeric columns that are all required, as NumPy arrays, streamed:
    blocks go straight into arrays sized by the file's line count, so neither the whole
    Arrow table nor a second copy of the columns is ever held (25M MovieLens ratings: about
    0.5 GB instead of 1.5). ``narrow`` integer columns come back as int32 when every value
    fits (ids), ``float32`` columns as float32; the others keep their type. A block is kept
    only under ``read_csv``'s fast-path rules (every value present, numbers finite,
    ``checks`` satisfied); anything irregular (a bad or out-of-range value, an empty field,
    rows that are not the file's lines, a compressed file) goes through ``read_csv``, whose
    errors, exact line numbers and skipping are the reference.
    """
    checks = checks or {}
    path = Path(path)
    arrays = None if path.suffix.lower() in _COMPRESSED or not path.is_file() else _streamed(path, columns, narrow, float32, checks)
    if arrays is not None:
        return arrays, 0
    table, skipped = read_csv(path, columns, on_bad_line=on_bad_line, checks=checks)
    return {name: _narrowed(table.column(name).to_numpy(), name in narrow, name in float32) for name in columns}, skipped


def _streamed(
    path: Path, columns: dict[str, pa.DataType], narrow: tuple[str, ...], float32: tuple[str, ...], checks: dict[str, Check]
) -> dict[str, np.ndarray] | None:
    """The columns of ``path`` streamed into arrays, or None when ``read_csv`` must decide."""
    header = read_header(path)
    if any(c not in header for c in columns):
        return None
    try:
        capacity = _count_lines(path) + 1
        out: dict[str, np.ndarray] = {}
        for name, kind in columns.items():
            if name in narrow and pa.types.is_integer(kind):
                out[name] = np.empty(capacity, dtype=np.int32)
            elif name in float32 and pa.types.is_floating(kind):
                out[name] = np.empty(capacity, dtype=np.float32)
            else:
                out[name] = np.empty(capacity, dtype=kind.to_pandas_dtype())
        # the conversion of read_csv's fast path: only "" is null
        convert = pacsv.ConvertOptions(column_types=columns, include_columns=list(columns), null_values=[""], strings_can_be_null=True)
        filled = 0
        with pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=STREAM_BLOCK), convert_options=convert) as reader:
            for batch in reader:
                rows = batch.num_rows
                if filled + rows > capacity:
                    return None
                for name, kind in columns.items():
                    column = batch.column(name)
                    if column.null_count:
                        return None
                    values = column.to_numpy()
                    if kind == FLOAT and not np.isfinite(values).all():
                        return None
                    check = checks.get(name)
                    if check is not None and check.bad(values).any():
                        return None
                    target = out[name]
                    if target.dtype == np.int32 and rows and (values.min() < _INT32.min or values.max() > _INT32.max):
                        wide = np.empty(capacity, dtype=np.int64)  # an id beyond int32: this column stays int64
                        wide[:filled] = target[:filled]
                        out[name] = target = wide
                    target[filled : filled + rows] = values
                filled += rows
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    except OSError as exc:
        raise cannot_read(path, exc) from None
    return {name: values[:filled] for name, values in out.items()}


def _narrowed(values: np.ndarray, narrow: bool, float32: bool) -> np.ndarray:
    if narrow and values.dtype.kind == "i" and (len(values) == 0 or (values.min() >= _INT32.min and values.max() <= _INT32.max)):
        return values.astype(np.int32)
    if float32 and values.dtype.kind == "f":
        return values.astype(np.float32)
    return values


def _count_lines(path: Path) -> int:
    lines = 0
    with open(path, "rb") as fh:
        while block := fh.read(16 << 20):
            lines += block.count(b"\n")
    return lines


# --- precise scan ----------------------------------------------------------------------------

_SPACE = " \t"  # what pyarrow trims around numbers
_DECIMAL = re.compile(r"[ \t]*-?[0-9]+[ \t]*")
_HEX = re.compile(r"[ \t]*0[xX]([0-9a-fA-F]{1,16})[ \t]*")
_FLOAT = re.compile(r"[ \t]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t]*")
_INT64 = (-(2**63), 2**63)


class _BadLine(Exception):
    def __init__(self, expected: str, found: str) -> None:
        self.expected, self.found = expected, found


def _integer(text: str) -> int | None:
    """pyarrow's int64 grammar: decimal with an optional '-', or 0x and up to 16 hex digits
    (read as two's complement, as pyarrow does); None when the text is not one."""
    if _DECIMAL.fullmatch(text):
        value = int(text.strip(_SPACE))
        return value if _INT64[0] <= value < _INT64[1] else None
    match = _HEX.fullmatch(text)
    if match:
        value = int(match.group(1), 16)
        return value - 2**64 if value >= 2**63 else value
    return None


def _number(text: str) -> float | None:
    """A finite float64 in pyarrow's grammar; None for anything else (NaN, inf, overflow)."""
    if not _FLOAT.fullmatch(text):
        return None
    value = float(text.strip(_SPACE))
    return value if math.isfinite(value) else None


def _describe(kind: pa.DataType) -> str:
    return {INT: "a 64-bit integer", FLOAT: "a finite number"}.get(kind, "a value")


def _physical_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text with its line ending) of every line; bytes that are not UTF-8
    are kept as surrogates, so only the values read are refused for them."""
    number = 0
    try:
        with open(path, "rb") as fh:
            for chunk in fh:
                for part in re.split(rb"(?<=\r)(?!\n)", chunk) if b"\r" in chunk[:-2] else (chunk,):
                    number += 1
                    yield number, part.decode("utf-8", errors="surrogateescape")
    except OSError as exc:
        raise cannot_read(path, exc) from None


def _records(spec: _Spec) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of every non-empty CSV record after the header."""
    lines = _physical_lines(spec.path)
    next(lines)  # the header, read by read_header
    if not spec.multiline:
        for number, text in lines:
            if text.strip("\r\n"):
                yield number, next(csv.reader([text]))
        return
    reader = csv.reader(text for _, text in lines)  # line_num: lines consumed after the header
    last = 1
    for row in reader:
        start, last = last + 1, reader.line_num + 1
        if row:
            yield start, row


def _row_values(spec: _Spec, row: list[str], position: dict[str, int]) -> list[object]:
    """The typed values of one record, or ``_BadLine``."""
    header = spec.header
    if len(row) != len(header):
        raise _BadLine(f"{len(header)} comma-separated fields ({','.join(header)})", ",".join(row))
    values: list[object] = []
    for name, kind in spec.columns.items():
        text = row[position[name]]
        if any("\udc80" <= ch <= "\udcff" for ch in text):
            raise _BadLine(f"UTF-8 text in column '{name}'", "undecodable bytes")
        if text == "":
            if name in spec.required:
                raise _BadLine(f"{_describe(kind)} in column '{name}'", text)
            values.append(None)
            continue
        value: object = _integer(text) if kind == INT else _number(text) if kind == FLOAT else text
        if value is None:
            raise _BadLine(f"{_describe(kind)} in column '{name}'", text)
        check = spec.checks.get(name)
        if check is not None and check.bad(np.array([value]))[0]:
            raise _BadLine(f"{check.expected} in column '{name}'", text)
        values.append(value)
    return values


def _scan(spec: _Spec, *, skip: bool) -> tuple[pa.Table, int]:
    """Line by line: the first bad line raises (or every bad line is skipped and counted)."""
    position = {name: spec.header.index(name) for name in spec.columns}
    table = _TableBuilder(spec.columns)
    seen: set[object] = set()
    skipped = 0
    key = list(spec.columns).index(spec.unique) if spec.unique else None
    records = _records(spec)
    while True:
        try:
            line, row = next(records)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a quoted value still open at the end of the file
            if not skip:
                raise DataFormatError(spec.path, None, "well-formed CSV", str(exc)) from None
            skipped += 1
            break
        try:
            values = _row_values(spec, row, position)
            if key is not None:
                if values[key] in seen:
                    raise _BadLine(f"a unique '{spec.unique}' per line (it appeared on an earlier line)", str(values[key]))
                seen.add(values[key])
        except _BadLine as bad:
            if not skip:
                raise DataFormatError(spec.path, line, bad.expected, bad.found) from None
            skipped += 1
            continue
        table.append(values)
    return table.finish(), skipped


class _TableBuilder:
    """Rows of Python values -> an Arrow table, converted every ``chunk_rows`` rows (bounded memory)."""

    def __init__(self, columns: dict[str, pa.DataType], chunk_rows: int = 250_000) -> None:
        self.columns, self.chunk_rows = columns, chunk_rows
        self.rows: list[list[object]] = []
        self.batches: list[pa.RecordBatch] = []

    def append(self, values: list[object]) -> None:
        self.rows.append(values)
        if len(self.rows) >= self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        arrays = [pa.array([row[i] for row in self.rows], type=kind) for i, kind in enumerate(self.columns.values())]
        self.batches.append(pa.RecordBatch.from_arrays(arrays, names=list(self.columns)))
        self.rows.clear()

    def finish(self) -> pa.Table:
        self._flush()
        return pa.Table.from_batches(self.batches)
