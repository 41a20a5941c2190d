"""The official split in raw ids, and scoring of external top-K predictions.

``python -m benchmark data export-split --data D --out DIR`` writes ``train.tsv``,
``valid.tsv`` and ``test.tsv`` (header ``user, item, timestamp``; raw ids; tab-separated),
``test.qrels`` (the test pairs as TREC qrels, ``user 0 item 1``, for trec_eval, ranx and
pytrec_eval) and ``split.json`` (dataset, fingerprint, split protocol, counts), so any
external system trains on exactly the suite's split. ``python -m benchmark evaluate
--predictions FILE --data D`` scores that system's top-K lists with the same engine and
every metric. Two formats, chosen by ``--predictions-format`` or else by the file name
(``.trec`` and ``.run`` are TREC, anything else TSV):

- TSV: ``user<TAB>item<TAB>rank`` (raw ids; ranks 1..n per user); an optional first line
  ``user<TAB>item<TAB>rank`` is the header;
- TREC run: ``qid Q0 docid rank score tag`` separated by spaces or tabs (qid = user,
  docid = item; the second field is the literal ``Q0``; one tag for the whole file).
  trec_eval and ranx order a list by score, not by the rank field, so within a list the
  score must strictly decrease as the rank grows: both readings are then the same list.

Parsing is strict: every line has exactly the format's number of fields (3 or 6; no empty
lines, no quoting, ``\\r\\n`` endings accepted), ranks are digit strings from 1 to the
number of items, TREC scores finite decimal numbers, text UTF-8 and lines at most
``MAX_LINE_BYTES`` long. Users missing from the file get empty lists (0 on every accuracy
metric); a file with malformed lines, unknown users or items, repeated items or ranks in a
list, ranks that are not 1..n, or an item the user interacted with before the test period
(a masked item) is refused with a report of every kind of problem found, each with its
count and the first line numbers (1-based, counting the header).

The file is read in blocks of ``CHUNK_BYTES`` (split at line ends), each block checked
and parsed (pyarrow) on its own into arrays sized by a first pass that counts the lines, so
memory grows with the rows, not with the file's text: 16 bytes a row (user, item, rank and
line number as 32-bit integers; a TREC score adds 8), and about 24 more while the repeat
and masking checks run (README, "Predictions files", has the measured peaks).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import torch

from benchmark.data.datamodule import CSR, RecDataModule, _contains
from benchmark.data.prepare import PreparedData
from benchmark.errors import BenchmarkError
from benchmark.evaluation import Evaluator, _valid_ids, mask_seen, top_k
from benchmark.files import atomic_file
from benchmark.model import BatchSpec, RecModule

SPLIT_FILES = ("train", "valid", "test")
MAX_EXAMPLES = 5
FORMATS = ("tsv", "trec")
TREC_SUFFIXES = (".trec", ".run")
CHUNK_BYTES = 4 << 20
# Two ids and a rank (TREC: six short fields): real ids are at most a few dozen characters.
MAX_LINE_BYTES = 4096
TSV_HEADER = "user\titem\trank"
TREC_TAG = "llm4rec-bench"
_FIELDS = {"tsv": ("user", "item", "rank"), "trec": ("user", "q0", "item", "rank", "score", "tag")}
_DIGITS = r"^[0-9]+$"
_DECIMAL = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"  # no inf/nan: scores must be finite


def predictions_format(path: str | Path, explicit: str | None = None) -> str:
    """``explicit`` (``tsv`` or ``trec``) if given, else TREC for ``.trec``/``.run`` names, else TSV."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise BenchmarkError(f"unknown predictions format {explicit!r}; choose from: {', '.join(FORMATS)}")
        return explicit
    return "trec" if Path(path).suffix.lower() in TREC_SUFFIXES else "tsv"


def export_split(data: PreparedData, out_dir: str | Path) -> dict[str, Any]:
    """Write the split in raw ids (and the test pairs as TREC qrels); returns what ``split.json`` holds."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for part in SPLIT_FILES:
        log = getattr(data, part)
        frame = pd.DataFrame({"user": data.user_ids[log.user], "item": data.item_ids[log.item], "timestamp": log.timestamp})
        frame.to_csv(out / f"{part}.tsv", sep="\t", index=False)
        counts[f"n_{part}"] = len(frame)
    qrels = pd.DataFrame({"user": data.user_ids[data.test.user], "iter": 0, "item": data.item_ids[data.test.item], "rel": 1})
    qrels.drop_duplicates(["user", "item"]).to_csv(out / "test.qrels", sep=" ", index=False, header=False, quoting=csv.QUOTE_NONE)
    meta = {
        "dataset": data.name,
        "data_source": data.source,
        "dataset_fingerprint": data.fingerprint,
        "split": data.config.split,
        "n_users": data.n_users,
        "n_items": data.n_items,
        **counts,
        "files": [f"{part}.tsv" for part in SPLIT_FILES] + ["test.qrels"],
    }
    (out / "split.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return meta


@dataclass
class Predictions:
    """Top-K lists of every test user: ``items`` [n_test_users, K] internal ids (-1 = empty)."""

    users: np.ndarray  # internal ids of the test users, in the test set's order
    items: np.ndarray
    n_missing: int  # test users absent from the file
    n_rows: int
    notes: list[str] = field(default_factory=list)


def _show(value: Any) -> str:
    """A value as it may appear in a message: printable characters only, at most 40."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value)[:41])
    return text[:40] + "..." if len(text) > 40 else text


class _Report:
    """Problems by kind: the count and the first ``MAX_EXAMPLES`` (line, detail) pairs."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts  # kind -> description; its order is the report's order
        self.found: dict[str, list[Any]] = {}

    def add(self, kind: str, lines: np.ndarray, details: Any = None) -> None:
        """``lines``: ascending line numbers; ``details(n)``: the detail strings of the first n."""
        if len(lines) == 0:
            return
        entry = self.found.setdefault(kind, [0, []])
        entry[0] += len(lines)
        room = MAX_EXAMPLES - len(entry[1])
        if room > 0:
            shown = details(min(room, len(lines))) if details is not None else [None] * min(room, len(lines))
            entry[1] += [(int(n), d) for n, d in zip(lines[:room], shown)]

    def message(self) -> str:
        out = []
        for kind, text in self.texts.items():
            if kind not in self.found:
                continue
            count, examples = self.found[kind]
            shown = ", ".join(f"line {n}" + (f" ({_show(d)})" if d is not None else "") for n, d in sorted(examples))
            more = f", ... ({count - len(examples)} more)" if count > len(examples) else ""
            out.append(f"- {count} {text}: {shown}{more}")
        return "\n".join(out)


class _Rows:
    """The rows kept, in file order, in arrays sized by the file's line count (no regrowth)."""

    def __init__(self, n_lines: int, with_score: bool) -> None:
        self.user = np.empty(n_lines, dtype=np.int32)
        self.item = np.empty(n_lines, dtype=np.int32)
        self.rank = np.empty(n_lines, dtype=np.int32)
        self.line = np.empty(n_lines, dtype=np.int32)  # 1-based line numbers, for the report
        self.score = np.empty(n_lines if with_score else 0, dtype=np.float64)
        self.n = 0  # rows kept so far
        self.n_rows = 0  # data rows read (the header not counted)
        self.tag: str | None = None  # TREC: the first row's tag

    def add(self, user: np.ndarray, item: np.ndarray, rank: np.ndarray, line: np.ndarray, score: np.ndarray | None) -> None:
        end = self.n + len(user)
        self.user[self.n : end], self.item[self.n : end], self.rank[self.n : end], self.line[self.n : end] = user, item, rank, line
        if score is not None:
            self.score[self.n : end] = score
        self.n = end


def _count_lines(path: Path) -> int:
    """Lines in the file (a last line without its newline counts): one pass of buffered reads."""
    count, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _blocks(path: Path) -> Iterator[tuple[int, bytes]]:
    """(number of the first line, bytes) of consecutive whole-line blocks of about CHUNK_BYTES."""
    line = 1
    rest = b""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(CHUNK_BYTES)
            if not block:
                if rest:
                    yield line, rest
                return
            cut = block.rfind(b"\n") + 1
            if cut == 0:  # no line end in this block: the line continues in the next one
                rest += block
                if len(rest) > MAX_LINE_BYTES:
                    raise BenchmarkError(f"{path}: line {line} is longer than {MAX_LINE_BYTES:,} bytes; nothing was scored (is this a predictions file?)")
                continue
            head = rest + block[:cut] if rest else (block if cut == len(block) else block[:cut])
            yield line, head
            line += head.count(b"\n")
            rest = block[cut:]


def _line_spans(buf: np.ndarray, ends_with_newline: bool) -> tuple[np.ndarray, np.ndarray]:
    ends = np.flatnonzero(buf == 10)
    if not ends_with_newline:
        ends = np.append(ends, len(buf))
    starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else ends
    return starts, ends


def _utf8_bad(chunk: bytes, starts: np.ndarray, ends: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Mask of the candidate lines that are not UTF-8 (only called when the block as a whole is not)."""
    bad = np.zeros(len(starts), dtype=bool)
    for i in np.flatnonzero(candidates):
        try:
            chunk[starts[i] : ends[i]].decode("utf-8")
        except UnicodeDecodeError:
            bad[i] = True
    return bad


def _normalise_trec(chunk: bytes) -> bytes:
    """Runs of spaces, tabs and carriage returns as one space, none at a line's ends (as
    trec_eval splits fields); the text is only rewritten when it holds such runs."""
    if not (b"\t" in chunk or b"\r" in chunk or b"  " in chunk or b"\n " in chunk or b" \n" in chunk or chunk[:1] == b" " or chunk[-1:] == b" "):
        return chunk
    a = np.frombuffer(chunk, dtype=np.uint8)
    ws = (a == 32) | (a == 9) | (a == 13)
    position = np.arange(len(a))
    last_text = np.maximum.accumulate(np.where(ws, -1, position))  # the last non-space byte at or before each
    next_text = np.append(~ws[1:] & (a[1:] != 10), False)  # the next byte starts a field
    after_text = (last_text >= 0) & (a[np.maximum(last_text, 0)] != 10)  # a field came before, on this line
    keep = ~ws | (ws & next_text & after_text)  # a run's last byte, between two fields, stands for it
    out = a[keep].copy()
    out[ws[keep]] = 32
    return out.tobytes()


def _parse_block(chunk: bytes, first_line: int, fmt: str, ctx: dict[str, Any], report: _Report, rows: _Rows) -> None:
    names = _FIELDS[fmt]
    if fmt == "trec":  # any run of spaces/tabs separates fields (as trec_eval reads them)
        chunk = _normalise_trec(chunk)
        sep = b" "
    else:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        sep = b"\t"
    buf = np.frombuffer(chunk, dtype=np.uint8)
    starts, ends = _line_spans(buf, chunk.endswith(b"\n"))
    if len(starts) == 0:
        return
    lines = first_line + np.arange(len(starts))
    lengths = ends - starts
    seps = np.flatnonzero(buf == sep[0])
    counts = np.searchsorted(seps, ends) - np.searchsorted(seps, starts) + 1
    good = np.ones(len(starts), dtype=bool)
    if first_line == 1 and fmt == "tsv" and [f.strip().lower() for f in chunk[starts[0] : ends[0]].split(b"\t")] == TSV_HEADER.encode().split(b"\t"):
        good[0] = False  # the header: not a data row
    rows.n_rows += int(good.sum())
    empty = good & (lengths == 0)
    report.add("empty", lines[empty])
    long = good & (lengths > MAX_LINE_BYTES)
    report.add("long", lines[long])
    fields = good & ~empty & ~long & (counts != len(names))
    report.add("fields", lines[fields], lambda n: [f"{c} field{'s' if c != 1 else ''}" for c in counts[fields][:n]])
    good &= ~empty & ~long & ~fields
    try:
        if buf.max() >= 0x80:  # only text with non-ASCII bytes needs the UTF-8 check
            chunk.decode("utf-8")
    except UnicodeDecodeError:
        bad = _utf8_bad(chunk, starts, ends, good)
        report.add("utf8", lines[bad])
        good &= ~bad
    if not good.any():
        return
    if not good.all():  # drop the bad lines' bytes (newline included) before parsing the rest
        spans = np.diff(np.append(starts, len(buf)))
        chunk = buf[np.repeat(good, spans)].tobytes()
        if not chunk.endswith(b"\n"):
            chunk += b"\n"
    lines = lines[good]
    table = pacsv.read_csv(
        pa.py_buffer(chunk),
        read_options=pacsv.ReadOptions(column_names=list(names)),
        parse_options=pacsv.ParseOptions(delimiter=sep.decode(), quote_char=False, escape_char=False, newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, null_values=[], strings_can_be_null=False),
    )  # fmt: skip
    if table.num_rows != len(lines):  # every line was checked to hold exactly len(names) fields
        raise BenchmarkError(f"internal error: {table.num_rows} rows parsed from {len(lines)} lines of block at line {first_line}")
    column = {n: pc.utf8_trim_whitespace(table.column(n)) if fmt == "tsv" else table.column(n) for n in names}

    def details(name: str, mask: np.ndarray) -> Any:
        return lambda n: column[name].filter(pa.array(mask)).slice(0, n).to_pylist()

    ok = np.ones(len(lines), dtype=bool)
    if fmt == "trec":
        q0 = pc.equal(column["q0"], "Q0").to_numpy(zero_copy_only=False)
        report.add("q0", lines[~q0], details("q0", ~q0))
        ok &= q0
    user = pc.fill_null(pc.index_in(column["user"], value_set=ctx["user_ids"]), -1).to_numpy()
    item = pc.fill_null(pc.index_in(column["item"], value_set=ctx["item_ids"]), -1).to_numpy()
    report.add("user", lines[user < 0], details("user", user < 0))
    report.add("item", lines[item < 0], details("item", item < 0))
    ok &= (user >= 0) & (item >= 0)
    rank_text = column["rank"]
    digits = pc.match_substring_regex(rank_text, _DIGITS).to_numpy(zero_copy_only=False)
    significant = pc.utf8_length(pc.utf8_ltrim(rank_text, characters="0")).to_numpy()
    small = digits & (significant <= 12)  # longer digit strings are out of range anyway: never cast them
    rank = np.zeros(len(lines), dtype=np.int64)
    if small.any():
        rank[small] = pc.cast(rank_text.filter(pa.array(small)), pa.int64()).to_numpy()
    not_positive = ~digits | (digits & small & (rank == 0))
    too_large = digits & ~not_positive & (~small | (rank > ctx["n_items"]))
    report.add("rank", lines[not_positive], details("rank", not_positive))
    report.add("rank_range", lines[too_large], details("rank", too_large))
    ok &= ~not_positive & ~too_large
    score = None
    if fmt == "trec":
        numeric = pc.match_substring_regex(column["score"], _DECIMAL).to_numpy(zero_copy_only=False)
        score = np.full(len(lines), np.nan)
        if numeric.any():
            score[numeric] = pc.cast(column["score"].filter(pa.array(numeric)), pa.float64()).to_numpy()
        finite = numeric & np.isfinite(score)  # a huge exponent overflows to inf
        report.add("score", lines[~finite], details("score", ~finite))
        if rows.tag is None:
            rows.tag = column["tag"][0].as_py()
        other = pc.not_equal(column["tag"], rows.tag).to_numpy(zero_copy_only=False)
        report.add("tag", lines[other], details("tag", other))
        ok &= finite & ~other
    ctx["dropped"][user[(user >= 0) & ~ok]] = True  # their ranks cannot be checked for gaps
    rows.add(user[ok], item[ok], rank[ok], lines[ok], score[ok] if score is not None else None)


def _texts(fmt: str, n_items: int) -> dict[str, str]:
    n = len(_FIELDS[fmt])
    layout = "user, item, rank separated by tabs" if fmt == "tsv" else "qid Q0 docid rank score tag separated by spaces or tabs"
    return {
        "long": f"lines longer than {MAX_LINE_BYTES:,} bytes",
        "utf8": "lines that are not UTF-8 text",
        "empty": "empty lines",
        "fields": f"lines without exactly {n} fields ({layout})",
        "q0": "rows whose second field is not Q0",
        "user": "rows with an unknown user",
        "item": "rows with an unknown item",
        "rank": "rows whose rank is not a positive integer",
        "rank_range": f"rows whose rank is larger than the number of items ({n_items:,})",
        "score": "rows whose score is not a finite decimal number",
        "tag": "rows whose tag differs from the first row's (a run file holds one run)",
        "dup_item": "repeated items in a user's list",
        "dup_rank": "repeated ranks in a user's list",
        "gaps": "users whose ranks are not 1..n (ranks missing)",
        "order": "users whose scores do not strictly decrease as the rank grows (trec_eval and ranx order a list by score)",
        "masked": "items the user already interacted with before the test period (training or validation items)",
    }


def _member(sorted_keys: np.ndarray, queries: np.ndarray, step: int = 1 << 20) -> np.ndarray:
    """``_contains`` in slices of ``step`` queries: its temporaries stay a few MB."""
    out = np.zeros(len(queries), dtype=bool)
    for start in range(0, len(queries), step):
        out[start : start + step] = _contains(sorted_keys, queries[start : start + step])
    return out


def _pair_key(first: np.ndarray, second: np.ndarray, base: int) -> np.ndarray:
    """first * base + second as int64, built in place (one array, no temporaries)."""
    key = first.astype(np.int64)
    key *= base
    key += second
    return key


def _repeats(key: np.ndarray) -> np.ndarray:
    """Positions of the rows whose key occurred on an earlier row (file order). One sorted
    copy of the keys at a time: the rows of repeated keys are found, then ordered, apart."""
    sorted_key = np.sort(key)
    repeated = np.unique(sorted_key[1:][sorted_key[1:] == sorted_key[:-1]])
    del sorted_key
    if len(repeated) == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.flatnonzero(_member(repeated, key))
    order = np.argsort(key[rows], kind="stable")  # rows ascending: the first of each key comes first
    ranked = key[rows][order]
    later = np.concatenate(([False], ranked[1:] == ranked[:-1]))
    return np.sort(rows[order][later])


def read_predictions(path: str | Path, data: PreparedData, dm: RecDataModule, k: int, fmt: str | None = None) -> Predictions:
    """Parse and check a predictions file (``fmt``: ``tsv``, ``trec``, or None to choose by
    the file name) against the prepared data; raise with a full report."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"predictions file {path} not found")
    fmt = predictions_format(path, fmt)
    ctx = {
        "user_ids": pa.array(data.user_ids.astype(str)), "item_ids": pa.array(data.item_ids.astype(str)), "n_items": data.n_items,
        "dropped": np.zeros(data.n_users, dtype=bool),  # users with a row refused above
    }  # fmt: skip
    report = _Report(_texts(fmt, data.n_items))
    try:
        rows = _Rows(_count_lines(path), with_score=fmt == "trec")
        for start, chunk in _blocks(path):
            _parse_block(chunk, start, fmt, ctx, report, rows)
    except OSError as exc:
        raise BenchmarkError(f"{path}: cannot read the predictions file ({exc.strerror})") from None
    user, item, rank, line = rows.user[: rows.n], rows.item[: rows.n], rows.rank[: rows.n], rows.line[: rows.n]
    raw_user = data.user_ids
    raw_item = data.item_ids

    def pairs(positions: np.ndarray) -> Any:
        return lambda n: [f"{raw_user[user[p]]} / {raw_item[item[p]]}" for p in positions[:n]]

    n_items = np.int64(data.n_items)
    key = _pair_key(user, item, data.n_items)  # (user, item): repeats, then masked items
    dup_item = _repeats(key)
    report.add("dup_item", line[dup_item], pairs(dup_item))
    seen: CSR = dm.test_set.seen
    seen_keys = np.unique(np.repeat(np.arange(data.n_users, dtype=np.int64), np.diff(seen.ptr)) * n_items + seen.items)
    masked = np.flatnonzero(_member(seen_keys, key))
    del key
    rank_key = _pair_key(user, rank, data.n_items + 1)
    dup_rank = _repeats(rank_key)
    report.add("dup_rank", line[dup_rank], lambda n: [f"{raw_user[user[p]]} / rank {rank[p]}" for p in dup_rank[:n]])
    count = np.bincount(user, minlength=data.n_users)
    deepest = np.zeros(data.n_users, dtype=np.int64)
    np.maximum.at(deepest, user, rank)
    first_line = np.full(data.n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_line, user, line)
    # a refused row already explains a gap; so may any unparsed line (its user is not known)
    unparsed = any(kind in report.found for kind in ("long", "utf8", "empty", "fields"))
    gappy = np.flatnonzero((deepest != count) & ~ctx["dropped"]) if not unparsed else np.zeros(0, dtype=np.int64)
    gappy = gappy[np.argsort(first_line[gappy], kind="stable")]
    report.add("gaps", first_line[gappy], lambda n: [str(raw_user[u]) for u in gappy[:n]])
    if fmt == "trec":
        score = rows.score[: rows.n]
        order = np.argsort(rank_key)  # by user, then rank (keys are unique once repeats are refused)
        same_user = user[order[1:]] == user[order[:-1]]
        rising = order[1:][same_user & (score[order[1:]] >= score[order[:-1]])]
        offenders = np.unique(user[rising])
        where = first_line[offenders]
        offenders = offenders[np.argsort(where, kind="stable")]
        report.add("order", np.sort(where), lambda n: [str(raw_user[u]) for u in offenders[:n]])
        del order
    del rank_key
    report.add("masked", line[masked], pairs(masked))
    if report.found:
        raise BenchmarkError(f"{path}: the predictions file ({fmt.upper()}) has problems; nothing was scored:\n" + report.message())

    test_users = dm.test_set.users
    position = np.full(data.n_users, -1, dtype=np.int64)
    position[test_users] = np.arange(len(test_users))
    keep = (position[user] >= 0) & (rank <= k)
    items = np.full((len(test_users), k), -1, dtype=np.int64)
    items[position[user[keep]], rank[keep].astype(np.int64) - 1] = item[keep]
    listed = np.zeros(len(test_users), dtype=bool)
    listed[position[user[keep]]] = True
    notes = []
    n_missing = int((~listed).sum())
    if n_missing:
        notes.append(f"{n_missing} of {len(test_users)} test users are not in the file: they count as 0")
    return Predictions(test_users, items, n_missing, rows.n_rows, notes)


def score_predictions(predictions: Predictions, dm: RecDataModule, evaluator: Evaluator, batch_size: int = 1024) -> dict[str, float]:
    """Feed the lists to ``evaluator`` batch by batch (the same engine as model evaluation)."""
    evaluator.reset()
    test_set = dm.test_set
    for start in range(0, len(test_set), batch_size):
        idx = np.arange(start, min(start + batch_size, len(test_set)))
        batch = test_set[(0, 0, idx)]
        evaluator.update_lists(batch, torch.from_numpy(predictions.items[idx]), lists_from_ids=True)
    return evaluator.compute()


def _check_trec_ids(ids: np.ndarray, what: str) -> None:
    if ids.dtype.kind in "OUS" and len(ids) and pd.Series(ids.astype(str)).str.contains(r"\s", regex=True).any():
        raise BenchmarkError(f"some raw {what} ids contain whitespace, which the TREC run format cannot hold: use the TSV format")


@torch.no_grad()
def write_predictions(model: RecModule, dm: RecDataModule, path: str | Path, k: int, batch_size: int = 1024, fmt: str | None = None) -> int:
    """Write ``model``'s top-k list of every test user as a predictions file (raw ids; ranks
    1..n over the valid items, so masked or invalid slots are left out), TSV or TREC
    (``fmt``, or chosen by the file name; TREC scores are k + 1 - rank). Written batch by
    batch into a temporary file renamed into place. Returns the rows written."""
    fmt = predictions_format(path, fmt)
    data, test_set = dm.data, dm.test_set
    if fmt == "trec":
        _check_trec_ids(data.user_ids, "user")
        _check_trec_ids(data.item_ids, "item")
    model.eval()
    written = 0

    def write(tmp: Path) -> None:
        nonlocal written
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            if fmt == "tsv":
                fh.write(TSV_HEADER + "\n")
            for start in range(0, len(test_set), batch_size):
                batch = test_set[(0, 0, np.arange(start, min(start + batch_size, len(test_set))))]
                batch = {key: value.to(model.device) for key, value in batch.items()}
                if type(model).is_generative():
                    items = model.recommend(batch, k)
                    valid = _valid_ids(items, data.n_items)
                else:
                    scores = model.score(batch).clone()
                    mask_seen(scores, batch["seen_rows"], batch["seen_items"])
                    items, valid = top_k(scores, k)
                items, valid = items.cpu().numpy(), valid.cpu().numpy()
                rank = np.cumsum(valid, axis=1)
                users = np.broadcast_to(batch["users"].cpu().numpy()[:, None], items.shape)
                columns = {"user": data.user_ids[users[valid]], "item": data.item_ids[items[valid]], "rank": rank[valid]}
                if fmt == "trec":
                    columns = {"user": columns["user"], "q0": "Q0", "item": columns["item"], "rank": columns["rank"],
                               "score": k + 1 - columns["rank"], "tag": TREC_TAG}  # fmt: skip
                frame = pd.DataFrame(columns)
                frame.to_csv(fh, sep="\t" if fmt == "tsv" else " ", index=False, header=False, quoting=csv.QUOTE_NONE, lineterminator="\n")
                written += len(frame)

    atomic_file(path, write)
    return written


def evaluation_datamodule(data: PreparedData, eval_batch_size: int = 1024) -> RecDataModule:
    """A RecDataModule used only for its evaluation sets (no model needed)."""
    return RecDataModule(data, BatchSpec("pairwise", 1), eval_batch_size=eval_batch_size)


def evaluate_predictions_file(
    path: str | Path, dataset: str, overrides: dict[str, Any], *, raw_dir: str | None = None, fmt: str | None = None
) -> dict[str, Any]:
    """Score a predictions file (``fmt``: tsv, trec or None = by the file name) on ``dataset``
    (prepared with the data keys of ``overrides``) with every metric at the ``ks`` of
    ``overrides`` (default 5, 10, 20)."""
    from benchmark.config import DataConfig, TrainConfig, apply_overrides
    from benchmark.data.datasets import load_dataset
    from benchmark.evaluation import test_evaluator, true_relevance_for

    fmt = predictions_format(path, fmt)
    data_keys = {k: v for k, v in overrides.items() if k in DataConfig.__dataclass_fields__}
    train = TrainConfig().overridden({k: v for k, v in overrides.items() if k not in data_keys})
    data = load_dataset(dataset, apply_overrides({DataConfig: DataConfig()}, data_keys)[DataConfig], raw_dir)
    dm = evaluation_datamodule(data, train.loop.eval_batch_size)
    evaluator = test_evaluator(dm, train, seed=0, true_relevance=true_relevance_for(data))
    predictions = read_predictions(path, data, dm, evaluator.max_k, fmt)
    metrics = score_predictions(predictions, dm, evaluator, train.loop.eval_batch_size)
    return {
        "metrics": metrics,
        "format": fmt,
        "data_source": data.source,
        "split": data.config.split,
        "dataset_fingerprint": data.fingerprint,
        "n_rows": predictions.n_rows,
        "n_test_users": len(predictions.users),
        "n_users_missing": predictions.n_missing,
        "notes": predictions.notes,
    }
