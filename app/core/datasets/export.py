"""A version in an export format, streamed: constant memory whatever the version's size.

The rows come from `versions.version_rows` a page at a time and are rendered with the
same `app.core.export.to_record` as a job's export, so a dataset version and a job's
export read the same in every format. JSONL formats are one record a line; `alpaca` is
the JSON list `app.core.export.render` writes (indent 2), produced record by record.
Each record carries the example's `method` and `lineage` besides the format's fields.
A download's ETag is the version's content hash: the bytes depend only on the rows.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlmodel import Session

from app.core import export as formats
from app.core.datasets import versions as v

MEDIA_TYPES = {"alpaca": "application/json", "messages": "application/x-ndjson",
               "prompt-completion": "application/x-ndjson"}
EXTENSIONS = {"alpaca": "json", "messages": "jsonl", "prompt-completion": "jsonl"}
_ROW_FIELDS = ("instruction", "input", "output", "method", "lineage")
_CHUNK_ROWS = 500


def check_format(fmt: str) -> str:
    if fmt not in formats.FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(formats.FORMATS)}")
    return fmt


def file_name(dataset_name: str, number: int, fmt: str) -> str:
    return f"{dataset_name}-v{number}.{EXTENSIONS[check_format(fmt)]}"


def _record_text(row: dict[str, Any], fmt: str) -> str:
    record = formats.to_record(row, fmt)
    if fmt == "alpaca":
        return "\n".join("  " + line for line in json.dumps(record, ensure_ascii=False, indent=2).split("\n"))
    return json.dumps(record, ensure_ascii=False)


def export_chunks(session: Session, dataset_id: int, number: int, fmt: str,
                  page_size: int = v.PAGE_SIZE) -> Iterator[str]:
    """Version `number` rendered in `fmt`, as text chunks of a few hundred records.

    Raises `VersionNotFound` or ValueError (unknown format) before the first chunk."""
    check_format(fmt)
    rows = v.version_rows(session, dataset_id, number, page_size=page_size, fields=_ROW_FIELDS)
    return _chunks(rows, fmt)


def _chunks(rows: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    alpaca = fmt == "alpaca"
    buf: list[str] = []
    first = True
    for row in rows:
        text = _record_text(row, fmt)
        if alpaca:
            text = ("[\n" if first else ",\n") + text
        else:
            text += "\n"
        first = False
        buf.append(text)
        if len(buf) >= _CHUNK_ROWS:
            yield "".join(buf)
            buf = []
    if alpaca:
        buf.append("[]\n" if first else "\n]\n")
    if buf:
        yield "".join(buf)


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
