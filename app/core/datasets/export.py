"""A version in an export format, streamed: constant memory whatever the version's size.

The rows come from `versions.version_pages` a page at a time and are rendered as
`app.core.export.to_record` renders a job's export, so a dataset version and a job's
export read the same in every format. JSONL formats are one record a line; `alpaca` is
the JSON list `app.core.export.render` writes (indent 2), produced record by record.
Each record carries the example's `method` and `lineage` besides the format's fields; a
conversation's later turns are in `messages` and `sharegpt` (alpaca takes the first exchange).
A download's ETag is the version's content hash: the bytes depend only on the rows.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from sqlmodel import Session

from app.core import export as formats
from app.core.datasets import versions as v
from app.core.datasets.errors import DatasetError

MEDIA_TYPES = {"alpaca": "application/json", "messages": "application/x-ndjson",
               "prompt-completion": "application/x-ndjson", "sharegpt": "application/x-ndjson"}
EXTENSIONS = {"alpaca": "json", "messages": "jsonl", "prompt-completion": "jsonl", "sharegpt": "jsonl"}
_ROW_FIELDS = ("instruction", "input", "output", "method", "lineage", "turns")  # lineage, turns: stored text


def check_format(fmt: str) -> str:
    if fmt not in formats.FORMATS:
        raise DatasetError(f"format: unknown export format {fmt!r}; use one of {', '.join(formats.FORMATS)}")
    return fmt


def file_name(dataset_name: str, number: int, fmt: str) -> str:
    return f"{dataset_name}-v{number}.{EXTENSIONS[check_format(fmt)]}"


def _lineage_text(stored: str) -> str:
    """`json.dumps(lineage, ensure_ascii=False)` from the column's stored text.

    The stored text is `json.dumps(lineage)` (SQLAlchemy's JSON type on SQLite, psycopg's
    on PostgreSQL; both keep the text as written), which differs from the wanted text only
    where it escaped a character as `\\uXXXX`; only such texts are decoded and encoded
    again. Decoding every row's JSON would cost a 200K-row export about half its time."""
    if "\\u" in stored:
        return json.dumps(json.loads(stored), ensure_ascii=False)
    return stored


def _jsonl_line(fmt: str) -> Callable[[Sequence[Any]], str]:
    """A renderer of one (instruction, input, output, method, stored lineage text) row as a JSONL line.

    Equal, byte for byte, to `json.dumps(export.to_record(row, fmt), ensure_ascii=False)`
    (the tests compare them), but assembled from the string encoder directly: the general
    path spends most of a 200K-row export building and walking the record dicts."""
    enc, user = encode_basestring, formats.user_text

    def tail(method: str, lineage: str) -> str:
        return f', "method": {enc(method)}, "lineage": {_lineage_text(lineage)}}}\n'

    def general(r: Sequence[Any]) -> str:
        return formats.record_text(formats.to_record(_decoded(r), fmt)) + "\n"

    if fmt == "messages":
        def line(r: Sequence[Any]) -> str:
            if _has_turns(r):
                return general(r)
            return (f'{{"messages": [{{"role": "user", "content": {enc(user(r[0], r[1]))}}}, '
                    f'{{"role": "assistant", "content": {enc(r[2])}}}]' + tail(r[3], r[4]))
    elif fmt == "prompt-completion":
        def line(r: Sequence[Any]) -> str:
            if _has_turns(r):
                return general(r)
            return f'{{"prompt": {enc(user(r[0], r[1]))}, "completion": {enc(r[2])}' + tail(r[3], r[4])
    elif fmt in formats.FORMATS and fmt != "alpaca":  # any other JSONL format: the general path
        line = general
    else:
        raise ValueError(f"{fmt} is not a JSONL format")
    return line


def _has_turns(r: Sequence[Any]) -> bool:
    """A conversation (stored turns other than the empty list)."""
    return r[5] is not None and r[5].strip() != "[]"


def _decoded(r: Sequence[Any]) -> dict[str, Any]:
    """A page's row as the dict `export.to_record` takes (lineage and turns decoded; no turns: left out)."""
    row = dict(zip(_ROW_FIELDS, r))
    row["lineage"] = json.loads(row["lineage"])
    turns = json.loads(row.pop("turns") or "[]")
    if turns:
        row["turns"] = turns
    return row


def _alpaca_item(r: Sequence[Any]) -> str:
    record = formats.to_record(_decoded(r), "alpaca")  # a conversation's first exchange
    return "\n".join("  " + text for text in json.dumps(record, ensure_ascii=False, indent=2).split("\n"))


def export_chunks(session: Session, dataset_id: int, number: int, fmt: str,
                  page_size: int = v.PAGE_SIZE) -> Iterator[str]:
    """Version `number` rendered in `fmt`, as text chunks (one per page of rows).

    Raises `VersionNotFound` or `DatasetError` (unknown format) before the first chunk."""
    check_format(fmt)
    pages = v.version_pages(session, dataset_id, number, _ROW_FIELDS, page_size, raw_json=("lineage", "turns"))
    return _alpaca_chunks(pages) if fmt == "alpaca" else _jsonl_chunks(pages, _jsonl_line(fmt))


def _jsonl_chunks(pages: Iterator[Sequence[Sequence[Any]]], line: Callable[[Sequence[Any]], str]) -> Iterator[str]:
    for page in pages:
        yield "".join(map(line, page))


def _alpaca_chunks(pages: Iterator[Sequence[Sequence[Any]]]) -> Iterator[str]:
    first = True
    for page in pages:
        text = ",\n".join(map(_alpaca_item, page))
        yield ("[\n" if first else ",\n") + text
        first = False
    yield "[]\n" if first else "\n]\n"


def write_export(session: Session, dataset_id: int, number: int, fmt: str, path: str | Path) -> int:
    """Write version `number` in `fmt` to `path` atomically (temporary file, then rename); returns bytes."""
    chunks = export_chunks(session, dataset_id, number, fmt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path.stat().st_size
