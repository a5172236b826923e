"""Persona sets: the people persona-driven generation writes as (PersonaHub's idea: the same
model asked to write a task as a thousand different people writes a thousand different tasks).

A persona file is JSONL (`{"persona": "..."}` per line, PersonaHub's shape; other keys are
ignored) or CSV with a `persona` column, read by the one record reader (`records.py`), so
every error names its line. A persona is one line of text, 3 to `MAX_PERSONA_CHARS`
characters; an exact repeat is an error (it would be sampled twice). The whole file is
checked before anything is stored.

`seeds/personas.jsonl` is the small set shipped with Sprout, used when a job names none.
"""

from __future__ import annotations

from pathlib import Path

from app.core import records
from app.core.records import RecordError

FORMATS = ("jsonl", "csv")
MAX_PERSONA_CHARS = 2000
MAX_PERSONAS = 200_000
MAX_ERRORS = 5
SHIPPED = Path(__file__).resolve().parents[3] / "seeds" / "personas.jsonl"


class PersonaFormatError(RecordError):
    """A persona file that cannot be used; the message names the lines at fault."""


def detect_format(filename: str | None, text: str) -> str:
    if filename and filename.lower().endswith(".csv"):
        return "csv"
    if filename and filename.lower().endswith((".jsonl", ".json")):
        return "jsonl"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def parse_personas(text: str, fmt: str | None = None, filename: str | None = None) -> tuple[str, list[str]]:
    """(format, personas) of a persona file's text; raises `PersonaFormatError` naming the lines."""
    fmt = fmt or detect_format(filename, text)
    if fmt not in FORMATS:
        raise PersonaFormatError(f"unknown persona format {fmt!r}; use one of {', '.join(FORMATS)}")
    errors: list[str] = []
    if fmt == "jsonl":
        items = records.jsonl_items(text, errors)
    else:
        try:
            header, items = records.csv_rows(text)
        except RecordError as exc:
            raise PersonaFormatError(str(exc)) from None
        if header and "persona" not in header:
            raise PersonaFormatError(f"line 1: the CSV header has no 'persona' column (columns: {', '.join(header)})")
    personas: list[str] = []
    seen: dict[str, int] = {}
    for item in items:
        try:
            persona = _persona(item.value)
        except RecordError as exc:
            errors.append(f"{item.where}: {exc}")
            continue
        if persona in seen:
            errors.append(f"{item.where}: the same persona as line {seen[persona]}")
            continue
        seen[persona] = item.line
        personas.append(persona)
    if errors:
        more = f" (and {len(errors) - MAX_ERRORS} more)" if len(errors) > MAX_ERRORS else ""
        raise PersonaFormatError("; ".join(errors[:MAX_ERRORS]) + more)
    if not personas:
        raise PersonaFormatError("the file holds no persona")
    if len(personas) > MAX_PERSONAS:
        raise PersonaFormatError(f"{len(personas)} personas; at most {MAX_PERSONAS} per set")
    return fmt, personas


def _persona(value: object) -> str:
    if not isinstance(value, dict):
        raise RecordError("expected an object with a 'persona' field")
    persona = " ".join(records.string_field(value, "persona").split())
    if len(persona) < 3:
        raise RecordError("field 'persona' is empty or too short (3 characters at least)")
    if len(persona) > MAX_PERSONA_CHARS:
        raise RecordError(f"field 'persona' is longer than {MAX_PERSONA_CHARS} characters")
    return persona


def load_persona_file(path: str | Path, fmt: str | None = None) -> tuple[str, list[str]]:
    p = Path(path)
    try:
        text = records.read_text(p)
    except RecordError as exc:
        raise PersonaFormatError(str(exc)) from None
    try:
        return parse_personas(text, fmt, p.name)
    except PersonaFormatError as exc:
        raise PersonaFormatError(f"{p}: {exc}") from None


def shipped() -> list[str]:
    """The persona set shipped in `seeds/personas.jsonl`."""
    return load_persona_file(SHIPPED)[1]
