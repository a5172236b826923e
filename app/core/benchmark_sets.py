"""Benchmark files in, `BenchmarkItem`s out: what decontamination compares candidates with.

A benchmark is a file in any seed format (Self-Instruct JSONL, Alpaca JSON, CSV: each
instance is an item, its prompt the instruction + input and its text the output; a task
without instances is one item, its instruction) or JSONL with named text fields
(`prompt_fields` joined as the prompt, `output_field` as the output), read by
`app/core/records.py` so an error names its line. The whole file is checked before
anything is returned.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.core import records, seeds
from app.core.filters.decontaminate import BenchmarkItem, prompt_text
from app.core.records import RecordError

FORMATS = (*seeds.FORMATS, "jsonl")
MAX_ITEMS = 1_000_000


class BenchmarkFormatError(RecordError):
    """A benchmark file that cannot be read; the message names the line and the field."""


def parse_benchmark(text: str, name: str, fmt: str | None = None, filename: str | None = None,
                    prompt_fields: Sequence[str] = (), output_field: str | None = None) -> tuple[str, list[BenchmarkItem]]:
    """(format, items). Named fields select the `jsonl` format; else the seed formats apply."""
    if fmt is not None and fmt not in FORMATS:
        raise BenchmarkFormatError(f"unknown benchmark format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "jsonl" or (fmt is None and (prompt_fields or output_field)):
        return "jsonl", _named_fields(text, name, prompt_fields, output_field)
    if prompt_fields or output_field:
        raise BenchmarkFormatError("prompt and output field names apply to the 'jsonl' format only")
    try:
        fmt_name, tasks = seeds.parse_seeds(text, fmt=fmt, filename=filename)
    except RecordError as exc:
        raise BenchmarkFormatError(str(exc)) from None
    items = []
    for position, task in enumerate(tasks):
        ident = task.name or f"task{position + 1}"
        if not task.instances:
            items.append(BenchmarkItem(name, ident, task.instruction))
        for i, inst in enumerate(task.instances):
            items.append(BenchmarkItem(name, f"{ident}#{i + 1}" if len(task.instances) > 1 else ident,
                                       prompt_text(task.instruction, inst["input"]), inst["output"]))
    _check_size(items)
    return fmt_name, items


def _named_fields(text: str, name: str, prompt_fields: Sequence[str], output_field: str | None) -> list[BenchmarkItem]:
    fields = list(prompt_fields) or ["prompt"]
    items = []
    try:
        for item in records.jsonl_items(text.removeprefix("\ufeff")):
            if not isinstance(item.value, dict):
                raise BenchmarkFormatError(f"{item.where}: expected a JSON object, got {type(item.value).__name__}")
            try:
                parts = [records.string_field(item.value, f, required=(i == 0)) for i, f in enumerate(fields)]
                output = records.string_field(item.value, output_field, required=True) if output_field else ""
            except RecordError as exc:
                raise BenchmarkFormatError(f"{item.where}: {exc}") from None
            ident = item.value.get("id")
            ident = str(ident) if isinstance(ident, (str, int)) and not isinstance(ident, bool) else f"line{item.line}"
            items.append(BenchmarkItem(name, ident, "\n".join(p for p in parts if p), output))
    except RecordError as exc:
        raise BenchmarkFormatError(str(exc)) from None
    if not items:
        raise BenchmarkFormatError("the file holds no benchmark items")
    _check_size(items)
    return items


def _check_size(items: list[BenchmarkItem]) -> None:
    if len(items) > MAX_ITEMS:
        raise BenchmarkFormatError(f"{len(items):,} items; a benchmark set holds at most {MAX_ITEMS:,}")
