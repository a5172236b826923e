"""`sprout personas`: import a persona set (JSONL of `{"persona"}` or CSV) and list them.

The operator's sets (no API key owner), for `sprout jobs run persona -p persona_set_id=N`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from sqlmodel import select

from app.cli.common import CliError, console, database_url, load_settings
from app.core import store
from app.core.methods.personas import PersonaFormatError, load_persona_file
from app.db import session_scope
from app.models import PersonaSet

app = typer.Typer(help="Persona sets for the persona job kind.", no_args_is_help=True)


@app.command("import")
def import_cmd(
    path: Path = typer.Argument(..., help="A JSONL file of {\"persona\": ...} lines, or a CSV with a persona column."),
    name: str | None = typer.Option(None, "--name", help="Default: the file's name."),
    fmt: str | None = typer.Option(None, "--format", help="jsonl | csv (default: from the name and content)."),
) -> None:
    """Check the whole file, then store it as a persona set; prints its id."""
    try:
        fmt_name, personas = load_persona_file(path, fmt)
    except PersonaFormatError as exc:
        raise CliError(str(exc)) from None
    with session_scope(database_url(load_settings())) as session:
        persona_set = store.import_persona_set(session, (name or path.name)[:200], fmt_name, personas)
        ident = persona_set.id
    console.print(f"persona set {ident}: {len(personas)} personas")


@app.command("list")
def list_cmd() -> None:
    """The operator's persona sets."""
    with session_scope(database_url(load_settings())) as session:
        rows = session.exec(select(PersonaSet).where(PersonaSet.owner.is_(None)).order_by(PersonaSet.id)).all()
        for r in rows:
            console.print(f"{r.id}\t{r.name}\t{r.persona_count} personas\t{r.source_format}", markup=False)
