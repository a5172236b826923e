"""Seed files in, one shape out: Self-Instruct JSONL, Alpaca JSON, or CSV.

The whole file is parsed and checked before anything is returned, so a caller that stores
the result never stores half a file. Every error names the line (and the field) that is
wrong, because users upload files written by other tools.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.jsonfile import item_lines

FORMATS = ("self-instruct", "alpaca", "csv")
MAX_SEED_BYTES = 50 * 1024 * 1024


class SeedFormatError(ValueError):
    """A seed file that cannot be read; the message names the line and the field."""


@dataclass
class SeedTaskData:
    instruction: str
    instances: list[dict[str, str]] = field(default_factory=list)
    is_classification: bool = False
    name: str | None = None


def detect_format(filename: str | None, text: str) -> str:
    name = (filename or "").lower()
    if name.endswith(".jsonl"):
        return "self-instruct"
    if name.endswith(".json"):
        return "alpaca"
    if name.endswith(".csv"):
        return "csv"
    head = text.lstrip()[:1]
    if head == "[":
        return "alpaca"
    if head == "{":
        return "self-instruct"
    return "csv"


def load_seed_file(path: str | Path, fmt: str | None = None) -> tuple[str, list[SeedTaskData]]:
    """Read a seed file from disk; returns (format, tasks)."""
    p = Path(path)
    if not p.is_file():
        raise SeedFormatError(f"{p}: no such file")
    if p.stat().st_size > MAX_SEED_BYTES:
        raise SeedFormatError(f"{p}: larger than {MAX_SEED_BYTES // (1024 * 1024)} MB")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SeedFormatError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_seeds(text, fmt=fmt, filename=p.name)


def parse_seeds(text: str, fmt: str | None = None, filename: str | None = None) -> tuple[str, list[SeedTaskData]]:
    """Parse seed text; `fmt` is one of FORMATS or None to detect it."""
    fmt = fmt or detect_format(filename, text)
    if fmt not in FORMATS:
        raise SeedFormatError(f"unknown seed format {fmt!r}; use one of {', '.join(FORMATS)}")
    parser = {"self-instruct": _parse_jsonl, "alpaca": _parse_alpaca, "csv": _parse_csv}[fmt]
    tasks = parser(text)
    if not tasks:
        raise SeedFormatError("the file holds no seed tasks")
    return fmt, tasks


def _str_field(obj: dict[str, Any], key: str, where: str, required: bool) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise SeedFormatError(f"{where}: missing field {key!r}")
        return ""
    if not isinstance(value, str):
        raise SeedFormatError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _task_from_object(obj: Any, where: str) -> SeedTaskData:
    if not isinstance(obj, dict):
        raise SeedFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    instruction = _str_field(obj, "instruction", where, required=True).strip()
    if not instruction:
        raise SeedFormatError(f"{where}: field 'instruction' is empty")
    name = obj.get("name")
    if name is not None and not isinstance(name, str):
        raise SeedFormatError(f"{where}: field 'name' must be a string")
    is_clf = obj.get("is_classification", False)
    if not isinstance(is_clf, bool):
        raise SeedFormatError(f"{where}: field 'is_classification' must be true or false")
    instances: list[dict[str, str]] = []
    if "instances" in obj:
        raw = obj["instances"]
        if not isinstance(raw, list):
            raise SeedFormatError(f"{where}: field 'instances' must be a list")
        for i, inst in enumerate(raw):
            iw = f"{where}, instances[{i}]"
            if not isinstance(inst, dict):
                raise SeedFormatError(f"{iw}: expected an object with 'input' and 'output'")
            instances.append(
                {"input": _str_field(inst, "input", iw, False), "output": _str_field(inst, "output", iw, True)}
            )
    elif "output" in obj:  # Alpaca-style row
        instances.append(
            {"input": _alpaca_input(_str_field(obj, "input", where, False)), "output": _str_field(obj, "output", where, True)}
        )
    return SeedTaskData(instruction=instruction, instances=instances, is_classification=is_clf, name=name)


def _alpaca_input(value: str) -> str:
    return "" if value.strip() == "<noinput>" else value


def _parse_jsonl(text: str) -> list[SeedTaskData]:
    tasks = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SeedFormatError(f"line {lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        tasks.append(_task_from_object(obj, f"line {lineno}"))
    return tasks


def _parse_alpaca(text: str) -> list[SeedTaskData]:
    """A JSON list of {instruction, input, output}; errors name the item and its line."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SeedFormatError(f"line {exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, list):
        raise SeedFormatError("line 1: expected a JSON list of {instruction, input, output} objects")
    starts = item_lines(text)
    tasks = []
    for i, obj in enumerate(data):
        line = f"line {starts[i]}, " if i < len(starts) else ""
        tasks.append(_task_from_object(obj, f"{line}item {i}"))
    return tasks


_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n", ""}


def _parse_csv(text: str) -> list[SeedTaskData]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "instruction" not in header:
        raise SeedFormatError(
            f"line 1: the CSV header must name an 'instruction' column (found: {', '.join(header) or 'nothing'})"
        )
    reader.fieldnames = header
    tasks = []
    for row in reader:
        where = f"line {reader.line_num}"
        if None in row:
            raise SeedFormatError(f"{where}: more values than header columns")
        instruction = (row.get("instruction") or "").strip()
        if not instruction:
            raise SeedFormatError(f"{where}: field 'instruction' is empty")
        clf_raw = (row.get("is_classification") or "").strip().lower()
        if clf_raw not in _TRUE | _FALSE:
            raise SeedFormatError(f"{where}: field 'is_classification' must be true or false, got {clf_raw!r}")
        instances = []
        if (row.get("output") or "").strip():
            instances.append({"input": _alpaca_input(row.get("input") or ""), "output": row["output"]})
        tasks.append(
            SeedTaskData(
                instruction=instruction,
                instances=instances,
                is_classification=clf_raw in _TRUE,
                name=(row.get("name") or None),
            )
        )
    return tasks
