"""`sprout jobs list|show|cancel|run|kinds`: look at jobs, and run one of any registered kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlmodel import select

from app.cli.common import CliError, console, database_url, describe_validation_error, load_settings
from app.core import jobs, store
from app.core.jobs import requests
from app.db import session_scope
from app.models import Job

app = typer.Typer(help="Jobs: list, show, cancel, run, kinds.", no_args_is_help=True)


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
        store.request_cancel(job)
        status = job.status
    console.print(f"job {job_id}: cancel requested (status {status})")


@app.command("run")
def run(
    kind: str = typer.Argument(..., help="A job kind (see `sprout jobs kinds`)."),
    seeds: Path | None = typer.Option(None, "--seeds", "-s", help="A seed file to start from (imported as a seed set)."),
    source: int | None = typer.Option(None, "--from", help="A finished job to start from (its curated data)."),
    export_id: int | None = typer.Option(None, "--export", help="An export to start from (training kinds)."),
    param: list[str] = typer.Option([], "--param", "-p", help="A parameter of the kind, as key=value (repeatable)."),
) -> None:
    """Create a job of any registered kind and run it here and now, with a progress bar."""
    from app.cli.generate import parse_overrides, run_with_progress, summary_table
    from app.core.seeds import SeedFormatError, load_seed_file

    settings = load_settings()
    url = database_url(settings)
    try:
        spec = jobs.get(kind)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    loaded = None
    if seeds is not None:
        try:
            loaded = load_seed_file(seeds)
        except SeedFormatError as exc:
            raise CliError(f"{seeds}: {exc}") from None
    with session_scope(url) as session:  # one transaction: no seed set without its job
        seed_set_id = store.import_seed_set(session, seeds.name, *loaded).id if loaded and seeds else None
        request = jobs.JobRequest(kind, parse_overrides(param), seed_set_id=seed_set_id, source_job_id=source,
                                  export_id=export_id)
        try:
            job = requests.create_job(session, request, settings.core_config().defaults)
        except ValidationError as exc:
            raise CliError(f"bad parameter: {describe_validation_error(exc)}") from None
        except ValueError as exc:
            raise CliError(str(exc)) from None
        job_id = job.id
    console.print(f"job {job_id}: {kind}")

    job = run_with_progress(url, job_id, settings, label=kind, measure=spec.progress)
    console.print(summary_table(job))
    if job.status == "failed":
        raise CliError(f"job {job_id} failed: {job.error}")


@app.command("kinds")
def kinds() -> None:
    """The registered job kinds, their queues and what they do."""
    table = Table("kind", "queue", "what it does")
    for name in jobs.names():
        spec = jobs.get(name)
        table.add_row(name, spec.queue, spec.description)
    console.print(table)
