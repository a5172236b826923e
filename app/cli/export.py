"""`sprout export ID`: write a job's curated data in a trainer's format.

`parquet` writes a folder (`OUT/data/train-0000K-of-0000N.parquet`, the Hugging Face Hub
layout that `datasets.load_dataset(OUT)` reads); every other format writes one file.
"""

from __future__ import annotations

from pathlib import Path

import typer

from app.cli.common import CliError, console, database_url, load_settings
from app.core import export as exporter
from app.core import store
from app.core.handoff import formats, sources
from app.db import session_scope


def export_job(url: str, job_id: int, fmt: str, out: Path, final_only: bool = False,
               include_roots: bool = True, rows_per_shard: int = 100_000) -> int:
    """Write the job's rows; an Evol-Instruct job's rows carry their `lineage`."""
    if fmt not in formats.FORMATS:
        raise CliError(f"unknown format {fmt!r}; use one of {', '.join(formats.FORMATS)}")
    with session_scope(url) as session:
        try:
            job = store.get_job(session, job_id)
            rows = sources.rows_for_format(session, job, fmt, final_only=final_only, include_roots=include_roots)
        except store.NotFound as exc:
            raise CliError(str(exc)) from None
        except ValueError as exc:
            raise CliError(str(exc)) from None
    try:
        if fmt == "parquet":
            return formats.write_parquet_folder(rows, out, rows_per_shard).rows
        return exporter.write(rows, fmt, out)
    except FileExistsError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror}") from None


def register(cli: typer.Typer) -> None:
    @cli.command("export")
    def export_cmd(
        job_id: int = typer.Argument(..., help="The job whose curated data to write."),
        fmt: str = typer.Option("alpaca", "--format", "-f",
                                help="alpaca | messages | prompt-completion | sharegpt | parquet (a folder)"),
        out: Path = typer.Option(..., "--out", "-o", help="File to write (parquet: the folder to write `data/` in)."),
        final_only: bool = typer.Option(
            False, "--final-only", help="Evol-Instruct: only each lineage's last surviving generation."
        ),
        roots: bool = typer.Option(
            True, "--roots/--no-roots", help="Evol-Instruct: include the starting pool (round 0)."
        ),
    ) -> None:
        """Write a job's curated data (accepted instructions with their instances).

        An Evol-Instruct job's rows carry `lineage`: root first, each generation's
        instruction, operation and round. Default: every surviving generation."""
        settings = load_settings()
        n = export_job(database_url(settings), job_id, fmt, out, final_only=final_only, include_roots=roots,
                       rows_per_shard=settings.handoff.rows_per_shard)
        console.print(f"wrote {n} examples to {out} ({fmt})")
