"""`sprout export ID`: write a job's curated data in a trainer's format."""

from __future__ import annotations

from pathlib import Path

import typer

from app.cli.common import CliError, console, database_url
from app.core import export as exporter
from app.core import store
from app.db import session_scope


def export_job(url: str, job_id: int, fmt: str, out: Path) -> int:
    if fmt not in exporter.FORMATS:
        raise CliError(f"unknown format {fmt!r}; use one of {', '.join(exporter.FORMATS)}")
    with session_scope(url) as session:
        try:
            store.get_job(session, job_id)
        except store.NotFound as exc:
            raise CliError(str(exc)) from None
        rows = store.curated_examples(session, job_id)
    try:
        return exporter.write(rows, fmt, out)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror}") from None


def register(cli: typer.Typer) -> None:
    @cli.command("export")
    def export_cmd(
        job_id: int = typer.Argument(..., help="The job whose curated data to write."),
        fmt: str = typer.Option("alpaca", "--format", "-f", help="alpaca | messages | prompt-completion"),
        out: Path = typer.Option(..., "--out", "-o", help="File to write."),
    ) -> None:
        """Write a job's curated data (accepted instructions with their instances)."""
        n = export_job(database_url(), job_id, fmt, out)
        console.print(f"wrote {n} examples to {out} ({fmt})")
