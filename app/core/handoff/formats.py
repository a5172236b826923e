"""Streamed writers of every format a trainer reads, fed one row at a time.

A writer takes rows with `add(row)` and makes its file appear with `close()` (`abort()`
leaves nothing). Memory stays flat whatever the number of rows: JSON formats write each
record as it comes (through `app.core.records.AtomicFile`, the project's one atomic file
writer), Parquet buffers at most one row group. Several writers can be fed from one pass
over the rows (`app.core.handoff.bundle`), so a source is read once for every format.

Row shapes come from `app.core.export.to_record` only. Files in a bundle:

    alpaca.json               JSON list of {instruction, input, output, ...}
    sharegpt.jsonl            {"conversations": [{"from": "human"|"gpt", "value"}], "system"?}
    messages.jsonl            {"messages": [{"role", "content"}]}  (TRL conversational)
    prompt_completion.jsonl   {"prompt", "completion"}             (TRL prompt-completion)
    data/train-00000-of-0000N.parquet   the Hugging Face Hub layout (`PARQUET_SCHEMA`)

Each writer records the columns its records have (all of them, and those every record
has), so the preflight check can hold `dataset_info.json` to what the files really hold.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from app.core import export, records
from app.core.errors import InvalidInput

FORMATS = ("alpaca", "sharegpt", "messages", "prompt-completion", "parquet")
FILE_NAMES = {
    "alpaca": "alpaca.json",
    "sharegpt": "sharegpt.jsonl",
    "messages": "messages.jsonl",
    "prompt-completion": "prompt_completion.jsonl",
    "parquet": "data",
}
PARQUET_DIR = "data"
ROW_GROUP_ROWS = 1000


class FormatError(InvalidInput):
    """A row cannot be written in a format (names the row)."""


@dataclass
class WrittenFile:
    """What one writer wrote: its path in the folder, rows, bytes and columns."""

    format: str
    name: str
    rows: int = 0
    bytes: int = 0
    columns: list[str] = field(default_factory=list)  # every top-level key some record has
    required_columns: list[str] = field(default_factory=list)  # keys every record has
    shards: list[str] = field(default_factory=list)  # Parquet: file names under data/

    def as_dict(self) -> dict[str, Any]:
        return {"format": self.format, "name": self.name, "rows": self.rows, "bytes": self.bytes,
                "columns": self.columns, "required_columns": self.required_columns, "shards": self.shards}


class FormatWriter(Protocol):
    format: str

    def add(self, row: dict[str, Any]) -> None: ...

    def close(self) -> WrittenFile: ...

    def abort(self) -> None: ...


class _Columns:
    def __init__(self) -> None:
        self.seen: dict[str, None] = {}
        self.every: set[str] | None = None

    def add(self, record: dict[str, Any]) -> None:
        for key in record:
            self.seen.setdefault(key, None)
        self.every = set(record) if self.every is None else self.every & set(record)

    def fill(self, written: WrittenFile) -> None:
        written.columns = list(self.seen)
        written.required_columns = [k for k in self.seen if k in (self.every or set())]


class JsonWriter:
    """alpaca (a JSON list, byte for byte what `json.dumps(rows, indent=2)` gives) or a JSONL format."""

    def __init__(self, fmt: str, folder: Path, name: str | None = None):
        if fmt not in export.FORMATS:
            raise ValueError(f"not a JSON format: {fmt!r}")
        self.format = fmt
        self.name = name or FILE_NAMES[fmt]
        self.file = records.AtomicFile(Path(folder) / self.name)
        self.columns = _Columns()
        self.rows = 0

    def add(self, row: dict[str, Any]) -> None:
        record = export.to_record(row, self.format)
        self.columns.add(record)
        if self.format == "alpaca":
            self.file.fh.write(("[\n" if self.rows == 0 else ",\n") + export.alpaca_item_text(record))
        else:
            self.file.fh.write(export.record_text(record) + "\n")
        self.rows += 1

    def close(self) -> WrittenFile:
        if self.format == "alpaca":
            self.file.fh.write("[]\n" if self.rows == 0 else "\n]\n")
        self.file.commit()
        written = WrittenFile(self.format, self.name, self.rows, self.file.path.stat().st_size)
        self.columns.fill(written)
        return written

    def abort(self) -> None:
        self.file.discard()


def parquet_schema() -> Any:
    """The columns of the Parquet shards (`export.PARQUET_COLUMNS`); lineage, scores and any
    other extra keys are JSON text, so one schema fits every source; the judge's quality and
    complexity are numbers (null when the row was not scored), so a reader filters on them."""
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    types = {"id": pa.int64(), "job_id": pa.int64(), "messages": pa.list_(message),
             "quality": pa.float64(), "complexity": pa.float64()}
    return pa.schema([(name, types.get(name, pa.string())) for name in export.PARQUET_COLUMNS])


class ParquetWriter:
    """Shards of `rows_per_shard` rows in `data/` (Hub layout), written in a hidden folder and
    renamed into place on `close`, once the number of shards (the `-of-0000N`) is known."""

    format = "parquet"

    def __init__(self, folder: Path, rows_per_shard: int = 100_000):
        if rows_per_shard < 1:
            raise ValueError("rows_per_shard must be at least 1")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=self.folder, prefix=f".{PARQUET_DIR}.", suffix=".tmp"))
        self.rows_per_shard = rows_per_shard
        self.schema = parquet_schema()
        self.rows = 0
        self.buffer: list[dict[str, Any]] = []
        self.shard_rows = 0
        self.shards: list[Path] = []
        self.writer: Any = None
        self.columns = _Columns()

    def add(self, row: dict[str, Any]) -> None:
        record = export.to_record(row, "parquet")
        for key in ("id", "job_id"):
            if record[key] is not None and (not isinstance(record[key], int) or isinstance(record[key], bool)):
                raise FormatError(f"row {self.rows}: {key} must be an integer for Parquet, got {record[key]!r}")
        self.buffer.append(record)
        self.rows += 1
        self.shard_rows += 1
        if len(self.buffer) >= ROW_GROUP_ROWS or self.shard_rows >= self.rows_per_shard:
            self._flush()
        if self.shard_rows >= self.rows_per_shard:
            self._end_shard()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.buffer:
            return
        if self.writer is None:
            path = self.tmp / f"shard-{len(self.shards):05d}.parquet"
            self.shards.append(path)
            self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.writer.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema))
        self.buffer.clear()

    def _end_shard(self) -> None:
        self._flush()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.shard_rows = 0

    def close(self) -> WrittenFile:
        import pyarrow.parquet as pq

        self._end_shard()
        if not self.shards:  # no rows: one empty shard, so readers still find the schema
            path = self.tmp / "shard-00000.parquet"
            pq.ParquetWriter(path, self.schema, compression="zstd").close()
            self.shards.append(path)
        n = len(self.shards)
        names = []
        for k, path in enumerate(self.shards):
            name = f"train-{k:05d}-of-{n:05d}.parquet"
            path.rename(self.tmp / name)
            names.append(name)
        target = self.folder / PARQUET_DIR
        os.rename(self.tmp, target)  # fails if data/ exists: never mixes two writes' shards
        written = WrittenFile("parquet", PARQUET_DIR, self.rows, sum((target / n).stat().st_size for n in names),
                              shards=names)
        written.columns = list(export.PARQUET_COLUMNS)
        written.required_columns = list(export.PARQUET_COLUMNS)  # a Parquet column exists in every row
        return written

    def abort(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):  # the shard is being thrown away
                self.writer.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def open_writer(fmt: str, folder: Path, rows_per_shard: int = 100_000) -> FormatWriter:
    if fmt == "parquet":
        return ParquetWriter(folder, rows_per_shard)
    if fmt in export.FORMATS:
        return JsonWriter(fmt, folder)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def write_all(rows: Iterable[dict[str, Any]], writers: list[FormatWriter]) -> list[WrittenFile]:
    """Feed every row to every writer in one pass, then close them; on any error, abort all."""
    try:
        for row in rows:
            for writer in writers:
                writer.add(row)
        return [writer.close() for writer in writers]
    except BaseException:
        for writer in writers:
            writer.abort()
        raise


def write_parquet_folder(rows: Iterable[dict[str, Any]], out_dir: str | Path, rows_per_shard: int = 100_000) -> WrittenFile:
    """`out_dir/data/train-*.parquet`, the folder `datasets.load_dataset(out_dir)` reads as is.
    `out_dir` must not hold a `data/` folder already."""
    out = Path(out_dir)
    if (out / PARQUET_DIR).exists():
        raise FileExistsError(f"{out / PARQUET_DIR} already exists; choose an empty folder")
    return write_all(rows, [ParquetWriter(out, rows_per_shard)])[0]


def write_parquet_zip(rows: Iterable[dict[str, Any]], zip_path: str | Path, rows_per_shard: int = 100_000) -> WrittenFile:
    """The Parquet folder as one zip (entries `data/train-*.parquet`; unzip, then
    `load_dataset(folder)`), written atomically. Stored, not deflated: Parquet is compressed."""
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=zip_path.parent, prefix=f".{zip_path.name}.", suffix=".tmp"))
    try:
        written = write_parquet_folder(rows, work, rows_per_shard)
        with records.atomic_file(zip_path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
            for name in written.shards:
                zf.write(work / PARQUET_DIR / name, f"{PARQUET_DIR}/{name}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    written.name, written.bytes = zip_path.name, zip_path.stat().st_size
    return written
