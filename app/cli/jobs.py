"""`sprout jobs list|show|cancel`: look at jobs in the database."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table
from sqlmodel import select

from app.cli.common import CliError, console, database_url
from app.core import runner, store
from app.db import session_scope
from app.models import Job

app = typer.Typer(help="Jobs: list, show, cancel.", no_args_is_help=True)


def job_dict(job: Job) -> dict[str, Any]:
    data = job.model_dump(mode="json")
    return data


@app.command("list")
def list_jobs(
    limit: int = typer.Option(20, help="Newest jobs to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The newest jobs, newest first."""
    with session_scope(database_url()) as session:
        jobs = session.exec(select(Job).order_by(Job.id.desc()).limit(limit)).all()
    if as_json:
        print(json.dumps([job_dict(j) for j in jobs], indent=2))
        return
    table = Table("id", "kind", "status", "accepted", "generated", "created")
    for j in jobs:
        c = j.counters or {}
        table.add_row(str(j.id), j.kind, j.status, str(c.get("accepted", 0)), str(c.get("generated", 0)),
                      j.created_at.strftime("%Y-%m-%d %H:%M:%S"))
    console.print(table)


@app.command("show")
def show(
    job_id: int = typer.Argument(..., help="Job id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One job: its parameters, counters and status."""
    from app.cli.generate import summary_table

    with session_scope(database_url()) as session:
        try:
            job = store.get_job(session, job_id)
        except store.NotFound as exc:
            raise CliError(str(exc)) from None
    if as_json:
        print(json.dumps(job_dict(job), indent=2))
        return
    console.print(summary_table(job))
    if job.error:
        console.print(f"[red]error:[/] {job.error}")
    console.print("parameters: " + json.dumps(job.params), highlight=False)


@app.command("cancel")
def cancel(job_id: int = typer.Argument(..., help="Job id.")) -> None:
    """Ask a job to stop; what it accepted so far is kept."""
    with session_scope(database_url()) as session:
        try:
            job = store.get_job(session, job_id)
        except store.NotFound as exc:
            raise CliError(str(exc)) from None
        runner.request_cancel(session, job)
        status = job.status
    console.print(f"job {job_id}: cancel requested (status {status})")
