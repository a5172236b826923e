"""Record files in and out: one reader (JSON list, JSONL, CSV), one string-field check, one
atomic writer.

Seed files, training exports and `sprout filter` inputs are written by other tools and
uploaded by people, so every reader here:

* names the line of every record (and, in a JSON list, its 1-based item number), so each
  error can say where the problem is;
* drops a byte-order mark, and splits lines on newlines only (a U+2028 inside a JSON
  string is text, not a line break);
* parses JSON with limits, so hostile input is an error naming its line instead of a crash:
  nesting deeper than `MAX_DEPTH` (100,000 nested brackets exhaust the parser's recursion),
  integers longer than `MAX_INT_DIGITS` digits (Python refuses to convert 4,300 and more);
* reads CSV strictly: a quote left open is an error naming the line where it opened (a
  lenient reader swallows the rest of the file into one field).

`string_field` is the one check of a text field: present (when required), a string, no NUL
character and no lone surrogate (which no database stores as text). `write_atomic` writes
through a temporary file renamed into place, so no reader ever sees half a file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from app.core.errors import InvalidInput

MAX_DEPTH = 64
MAX_INT_DIGITS = 100


class RecordError(InvalidInput):
    """A record file or field that cannot be read; the message names the line (and field)."""


@dataclass(frozen=True)
class Item:
    """One record and where it starts: `line` (1-based); `number` is its 1-based position in
    a JSON list (None in JSONL and CSV, where the line says it all)."""

    line: int
    value: Any
    number: int | None = None

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.number is None else f"line {self.line}, item {self.number}"


# --- text ----------------------------------------------------------------------------------
def read_text(path: str | Path, max_bytes: int | None = None) -> str:
    """A file's UTF-8 text without its byte-order mark; errors name the file."""
    p = Path(path)
    if not p.exists():
        raise RecordError(f"{p}: no such file")
    if not p.is_file():
        raise RecordError(f"{p}: not a file")
    try:
        if max_bytes is not None and p.stat().st_size > max_bytes:
            raise RecordError(f"{p}: larger than {max_bytes // (1024 * 1024)} MB")
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise RecordError(f"{p}: cannot read ({exc.strerror})") from None


def lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for each line that is not blank; only `\\n` (and `\\r\\n`) end a line."""
    out = []
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            out.append((number, line))
    return out


# --- JSON ------------------------------------------------------------------------------------
def _bounded_int(digits: str) -> int:
    if len(digits) - digits.startswith("-") > MAX_INT_DIGITS:
        raise _IntTooLong(len(digits) - digits.startswith("-"))
    return int(digits)


class _IntTooLong(Exception):
    def __init__(self, digits: int):
        super().__init__(digits)
        self.digits = digits


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_STRING_OR_LONG_INT = re.compile(rf'"(?:[^"\\]|\\.)*"|-?\d{{{MAX_INT_DIGITS + 1},}}', re.DOTALL)
_TOO_DEEP = object()


def _first_token(text: str, pattern: re.Pattern[str], accept: Callable[[str, int], bool]) -> int | None:
    """The offset of the first token of `pattern` outside strings that `accept(token, depth)` takes."""
    depth = 0
    for match in pattern.finditer(text):
        token = match.group()
        if token.startswith('"'):
            continue
        depth += 1 if token in "[{" else -1 if token in "]}" else 0
        if accept(token, depth):
            return match.start()
    return None


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def loads(text: str, first_line: int = 1) -> Any:
    """Parse JSON within the limits; a RecordError names the line (counted from `first_line`)."""
    text = text.removeprefix("\ufeff")
    try:
        value = json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise RecordError(f"line {first_line + exc.lineno - 1}: not valid JSON ({exc.msg} at column {exc.colno})") \
            from None
    except _IntTooLong as exc:
        at = _first_token(text, _STRING_OR_LONG_INT, lambda token, _: token[-1].isdigit())
        line = first_line + (_line_of(text, at) - 1 if at is not None else 0)
        raise RecordError(f"line {line}: an integer of {exc.digits} digits (at most {MAX_INT_DIGITS})") from None
    except RecursionError:
        value = _TOO_DEEP
    if value is _TOO_DEEP or (isinstance(value, (dict, list)) and _depth_exceeds(value, MAX_DEPTH)):
        at = _first_token(text, _STRING_OR_BRACKET, lambda _, depth: depth > MAX_DEPTH)
        line = first_line + (_line_of(text, at) - 1 if at is not None else 0)
        raise RecordError(f"line {line}: JSON nested deeper than {MAX_DEPTH} levels")
    return value


def json_list_items(text: str) -> list[Item]:
    """The items of a JSON list, each with the line it starts on and its number."""
    data = loads(text)
    if not isinstance(data, list):
        raise RecordError(f"line 1: expected a JSON list, got a JSON {_kind(data)}")
    return [Item(line, value, number) for number, (line, value) in enumerate(zip(_item_lines(text), data), start=1)]


def _item_lines(text: str) -> list[int]:
    """The line on which each top-level item of a JSON list starts (`text` parses as a list)."""
    decoder = json.JSONDecoder(parse_int=_bounded_int)
    pos = text.index("[") + 1
    out: list[int] = []
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return out
        out.append(_line_of(text, pos))
        _, pos = decoder.raw_decode(text, pos)


def jsonl_items(text: str, errors: list[str] | None = None) -> list[Item]:
    """One JSON value per non-blank line. A bad line raises, or, given an `errors` list, is
    described there and skipped (to report every bad line at once)."""
    items = []
    for number, line in lines(text):
        try:
            items.append(Item(number, loads(line, first_line=number)))
        except RecordError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
    return items


def _kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


# --- CSV -------------------------------------------------------------------------------------
def csv_rows(text: str) -> tuple[list[str], list[Item]]:
    """(header, rows as {column: value}) of a CSV file with a header line, read strictly."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    header: list[str] | None = None
    rows: list[Item] = []
    start = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problem = "a quoted field is never closed" if "end of data" in str(exc) else str(exc)
            raise RecordError(f"line {start}: not valid CSV ({problem})") from None
        line, start = start, reader.line_num + 1
        if not values or not any(v.strip() for v in values):
            continue
        if header is None:
            header = [v.strip() for v in values]
            continue
        if len(values) > len(header):
            raise RecordError(f"line {line}: more values than header columns")
        rows.append(Item(line, dict(zip(header, values + [""] * (len(header) - len(values))))))
    return header or [], rows


# --- fields --------------------------------------------------------------------------------
def string_field(record: dict[str, Any], key: str, required: bool = True) -> str:
    """`record[key]` as text: present when `required` (else ""), a string, storable."""
    value = record.get(key)
    if value is None:
        if required:
            raise RecordError(f"missing field {key!r}")
        return ""
    if not isinstance(value, str):
        raise RecordError(f"field {key!r} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise RecordError(f"field {key!r} contains a NUL character (at character {value.index(chr(0))})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError(f"field {key!r} is not valid Unicode (a lone surrogate such as \\ud800)") from None
    return value


# --- writing -------------------------------------------------------------------------------
def process_umask() -> int:
    """This process's umask, read without changing it (`/proc`; else set and put back)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode(mode: int | None = None) -> int:
    """The mode a new file gets: `mode`, else 0o666 less the umask (as `open` would give it;
    `tempfile.mkstemp` gives 0o600 whatever the umask)."""
    return mode if mode is not None else 0o666 & ~process_umask()


def folder_mode(mode: int | None = None) -> int:
    """The mode of a folder holding files of `file_mode(mode)`: searchable where readable."""
    files = file_mode(mode)
    return files | ((files & 0o444) >> 2)


def chmod_tree(folder: str | Path, mode: int | None = None) -> None:
    """Give `folder` and everything under it the modes of new files and folders
    (`file_mode`, `folder_mode`): a tree built from temporary files and folders is owner-only."""
    files, folders = file_mode(mode), folder_mode(mode)
    for root, _dirs, names in os.walk(folder):  # symlinked folders are not followed
        os.chmod(root, folders)
        for name in names:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, files)


class AtomicFile:
    """A file written under a temporary name next to `path` and renamed onto it by `commit`.

    `discard` (or an exception inside `atomic_file`) removes the temporary file, so the
    target is either the old file or the complete new one, never something between.
    """

    def __init__(self, path: str | Path, mode: str = "w", make_dirs: bool = True, permissions: int | None = None):
        self.path = Path(path)
        if make_dirs:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.fchmod(fd, file_mode(permissions))  # mkstemp's 0o600 would make every file owner-only
        self.tmp = Path(tmp)
        binary = "b" in mode
        self.fh: IO[Any] = os.fdopen(fd, mode, encoding=None if binary else "utf-8")

    def commit(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()
        self.tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w", make_dirs: bool = True,
                permissions: int | None = None) -> Iterator[IO[Any]]:
    """Open `path` for writing atomically: the file appears whole when the block ends, and
    not at all when it raises. It gets `permissions`, else the umask's mode, as `open` gives."""
    target = AtomicFile(path, mode, make_dirs, permissions)
    try:
        yield target.fh
    except BaseException:
        target.discard()
        raise
    target.commit()


def write_atomic(path: str | Path, write: Callable[[IO[str]], None] | str, make_dirs: bool = False) -> None:
    """Write `path` through `atomic_file`: `write` is the text, or a function that writes
    to the open file. OSErrors (a missing directory when not `make_dirs`, a full disk)
    propagate, and leave nothing behind."""
    with atomic_file(path, "w", make_dirs) as fh:
        if isinstance(write, str):
            fh.write(write)
        else:
            write(fh)
