"""Seed files in, one shape out: Self-Instruct JSONL, Alpaca JSON, or CSV.

The whole file is parsed and checked before anything is returned, so a caller that stores
the result never stores half a file. Every error names the line (and the field) that is
wrong, because users upload files written by other tools. The files are read by
`app/core/records.py` (line numbers, JSON limits, strict CSV, the string-field check);
this module adds what makes a seed task: an instruction of at most `MAX_INSTRUCTION_WORDS`
words, texts of at most `MAX_TEXT_CHARS` characters, and ids (when given) unique.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core import records
from app.core.records import RecordError

FORMATS = ("self-instruct", "alpaca", "csv")
MAX_SEED_BYTES = 50 * 1024 * 1024
MAX_INSTRUCTION_WORDS = 1_000  # a prompt shows several seeds; a longer one is not an instruction
MAX_TEXT_CHARS = 100_000  # any one instruction, input or output


MAX_REPORTED_PROBLEMS = 20  # a file's bad lines named at once; the rest are counted


class SeedFormatError(RecordError):
    """A seed file that cannot be read; the message names the line and the field.

    A file with several bad lines is refused with all of them (`problems`, the first
    `MAX_REPORTED_PROBLEMS`; `total` counts every one), so a user fixes the file in one
    pass rather than one line per upload. The message is the first problem, with the count
    of the others.
    """

    def __init__(self, message: str, problems: list[str] | None = None, total: int | None = None):
        self.problems = list(problems) if problems else [message]
        self.total = total if total is not None else len(self.problems)
        more = self.total - 1
        super().__init__(message if more <= 0 else f"{message} (and {more:,} more bad line{'s' if more > 1 else ''})")


def line_of(problem: str) -> int | None:
    """The line a problem names ("line 12: ..."), if it names one."""
    match = _LINE.match(problem)
    return int(match.group(1)) if match else None


_LINE = re.compile(r"line (\d+)\b")


def _refuse_all(problems: list[str]) -> None:
    """Raise one error naming every collected problem (up to the cap) in line order, if any."""
    if problems:
        problems = sorted(problems, key=lambda p: line_of(p) or 0)  # stable: JSON errors and field errors merged
        raise SeedFormatError(problems[0], problems[:MAX_REPORTED_PROBLEMS], len(problems))


@dataclass
class SeedTaskData:
    instruction: str
    instances: list[dict[str, str]] = field(default_factory=list)
    is_classification: bool = False
    name: str | None = None
    # where a machine instruction came from (`store.origin`: persona, topic path), kept by a method
    # that starts from another job's rows (Evol-Instruct's roots)
    origin: dict[str, Any] = field(default_factory=dict)


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
    try:
        text = records.read_text(path, max_bytes=MAX_SEED_BYTES)
    except RecordError as exc:
        raise SeedFormatError(str(exc)) from None
    return parse_seeds(text, fmt=fmt, filename=Path(path).name)


def parse_seeds(text: str, fmt: str | None = None, filename: str | None = None) -> tuple[str, list[SeedTaskData]]:
    """Parse seed text; `fmt` is one of FORMATS or None to detect it."""
    text = text.removeprefix("\ufeff")
    fmt = fmt or detect_format(filename, text)
    if fmt not in FORMATS:
        raise SeedFormatError(f"unknown seed format {fmt!r}; use one of {', '.join(FORMATS)}")
    try:
        if fmt == "csv":
            tasks = _parse_csv(text)
        else:
            problems: list[str] = []
            items = records.jsonl_items(text, problems) if fmt == "self-instruct" else _alpaca_items(text)
            tasks = tasks_from_objects(((item.where, item.value) for item in items), problems)
    except SeedFormatError:
        raise
    except RecordError as exc:
        raise SeedFormatError(str(exc)) from None
    if not tasks:
        raise SeedFormatError("the file holds no seed tasks")
    return fmt, tasks


def tasks_from_objects(objects: Iterable[tuple[str, Any]], problems: list[str] | None = None) -> list[SeedTaskData]:
    """Seed tasks from (where, JSON object) pairs, checked one by one and for unique ids.

    Every bad object is named (after `problems` already found, e.g. lines that are not JSON)
    before the whole list is refused."""
    tasks: list[SeedTaskData] = []
    ids: dict[Any, str] = {}
    problems = list(problems or [])
    for where, obj in objects:
        try:
            tasks.append(_task_from_object(obj, where))
            _check_unique_id(ids, obj.get("id"), where)
        except SeedFormatError as exc:
            problems.append(str(exc))
    _refuse_all(problems)
    return tasks


def _check_unique_id(seen: dict[Any, str], ident: Any, where: str) -> None:
    if ident is None:
        return
    if not isinstance(ident, (str, int)) or isinstance(ident, bool):
        raise SeedFormatError(f"{where}: field 'id' must be a string or an integer")
    key = str(ident)
    if key in seen:
        raise SeedFormatError(f"{where}: duplicate id {ident!r} (also on {seen[key]})")
    seen[key] = where


def _str_field(obj: dict[str, Any], key: str, where: str, required: bool) -> str:
    try:
        value = records.string_field(obj, key, required)
    except RecordError as exc:
        raise SeedFormatError(f"{where}: {exc}") from None
    if len(value) > MAX_TEXT_CHARS:
        raise SeedFormatError(f"{where}: field {key!r} has {len(value):,} characters; at most {MAX_TEXT_CHARS:,}")
    return value


def _instruction(value: str, where: str) -> str:
    instruction = value.strip()
    if not instruction:
        raise SeedFormatError(f"{where}: field 'instruction' is empty")
    words = len(instruction.split())
    if words > MAX_INSTRUCTION_WORDS:
        raise SeedFormatError(f"{where}: field 'instruction' has {words:,} words; a seed instruction has at most "
                              f"{MAX_INSTRUCTION_WORDS:,}")
    return instruction


def _task_from_object(obj: Any, where: str) -> SeedTaskData:
    if not isinstance(obj, dict):
        raise SeedFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    instruction = _instruction(_str_field(obj, "instruction", where, required=True), where)
    name = _str_field(obj, "name", where, required=False) or None
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


def _alpaca_items(text: str) -> list[records.Item]:
    """A JSON list of {instruction, input, output}; errors name the item and its line."""
    try:
        return records.json_list_items(text)
    except RecordError as exc:
        if "expected a JSON list" in str(exc):
            raise SeedFormatError("line 1: expected a JSON list of {instruction, input, output} objects") from None
        raise


_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n", ""}


def _parse_csv(text: str) -> list[SeedTaskData]:
    header, rows = records.csv_rows(text)
    if "instruction" not in header:
        raise SeedFormatError(
            f"line 1: the CSV header must name an 'instruction' column (found: {', '.join(header) or 'nothing'})"
        )
    tasks: list[SeedTaskData] = []
    ids: dict[Any, str] = {}
    problems: list[str] = []
    for row in rows:
        try:
            tasks.append(_csv_task(row, ids))
        except SeedFormatError as exc:
            problems.append(str(exc))
    _refuse_all(problems)
    return tasks


def _csv_task(row: records.Item, ids: dict[Any, str]) -> SeedTaskData:
    where, values = row.where, row.value
    instruction = _instruction(_str_field(values, "instruction", where, True), where)
    clf_raw = values.get("is_classification", "").strip().lower()
    if clf_raw not in _TRUE | _FALSE:
        raise SeedFormatError(f"{where}: field 'is_classification' must be true or false, got {clf_raw[:20]!r}")
    instances = []
    output = _str_field(values, "output", where, False)
    if output.strip():
        instances.append({"input": _alpaca_input(_str_field(values, "input", where, False)), "output": output})
    _check_unique_id(ids, values.get("id", "").strip() or None, where)
    return SeedTaskData(instruction=instruction, instances=instances, is_classification=clf_raw in _TRUE,
                        name=_str_field(values, "name", where, False) or None)
