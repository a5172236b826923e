"""`sprout generate`: run a generation job in this process, with a progress bar."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.cli.common import CliError, console, database_url, describe_validation_error, load_settings
from app.cli.export import export_job
from app.core import runner, store
from app.core.seeds import SeedFormatError, load_seed_file
from app.db import session_scope

DEFAULT_SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "default.jsonl"


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--param key=value` pairs; values are JSON when they parse as JSON, else strings."""
    import json

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--param expects key=value, got {pair!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _progress_line(counters: dict[str, Any]) -> str:
    rejected = counters.get("rejected", {})
    top = sorted(rejected.items(), key=lambda kv: -kv[1])[:4]
    parts = ", ".join(f"{rule} {n}" for rule, n in top) or "none"
    return f"generated {counters.get('generated', 0)} · rejected: {parts}"


def summary_table(job) -> Table:
    c = job.counters
    table = Table(title=f"job {job.id} ({job.kind}): {job.status}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("candidates generated", str(c.get("generated", 0)))
    table.add_row("accepted (curated)", str(c.get("accepted", 0)))
    for rule, n in sorted(c.get("rejected", {}).items(), key=lambda kv: -kv[1]):
        table.add_row(f"  rejected: {rule}", str(n))
    table.add_row("instances kept", str(c.get("instances", 0)))
    for rule, n in sorted(c.get("instances_rejected", {}).items(), key=lambda kv: -kv[1]):
        table.add_row(f"  instances rejected: {rule}", str(n))
    for op, fates in sorted(c.get("operations", {}).items()):
        table.add_row(f"  operation {op}", f"{fates.get('accepted', 0)} kept / {fates.get('rejected', 0)} failed")
    table.add_row("LLM requests (errors)", f"{c.get('llm_requests', 0)} ({c.get('llm_errors', 0)})")
    table.add_row("tokens (prompt / completion)", f"{c.get('prompt_tokens', 0)} / {c.get('completion_tokens', 0)}")
    if job.started_at and job.finished_at:
        table.add_row("time", f"{(job.finished_at - job.started_at).total_seconds():.1f} s")
    return table


def run_with_progress(url: str, job_id: int, settings: Any, target: int) -> Any:
    progress = Progress(
        TextColumn("[bold]accepted"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[line]}"),
        console=console,
        transient=False,
    )
    with progress:
        bar = progress.add_task("generate", total=target, line="starting the model server…")
        last = [0.0]

        def update(counters: dict[str, Any]) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.2:
                last[0] = now
                progress.update(bar, completed=counters.get("accepted", 0), line=_progress_line(counters))

        job = runner.run_job(url, job_id, settings, progress=update)
        progress.update(bar, completed=job.counters.get("accepted", 0), line=_progress_line(job.counters))
    return job


def register(cli: typer.Typer) -> None:
    @cli.command("generate")
    def generate(
        seeds: Path = typer.Option(DEFAULT_SEEDS, "--seeds", "-s", help="Seed file: Self-Instruct JSONL, Alpaca JSON or CSV."),
        target: int = typer.Option(100, "--target", "-n", help="Curated instructions to produce."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Also write the curated data here."),
        fmt: str = typer.Option("alpaca", "--format", "-f", help="alpaca | messages | prompt-completion"),
        seed: int | None = typer.Option(None, "--seed", help="Random seed (prompt sampling and requests)."),
        param: list[str] = typer.Option([], "--param", "-p", help="Any method parameter, as key=value (repeatable)."),
        examples: int = typer.Option(3, "--examples", help="Accepted examples to print at the end."),
    ) -> None:
        """Run a Self-Instruct job here and now, and print what it produced."""
        settings = load_settings()
        overrides = {"target": target, **_parse_overrides(param)}
        if seed is not None:
            overrides["seed"] = seed
        try:
            params = runner.validate_params("self_instruct", overrides, settings)
        except ValidationError as exc:
            raise CliError(f"bad parameter: {describe_validation_error(exc)}") from None
        try:
            fmt_name, tasks = load_seed_file(seeds)
        except SeedFormatError as exc:
            raise CliError(f"{seeds}: {exc}") from None
        if out is not None and fmt not in ("alpaca", "messages", "prompt-completion"):
            raise CliError(f"unknown format {fmt!r}; use alpaca, messages or prompt-completion")
        url = database_url(settings)
        with session_scope(url) as session:
            seed_set = store.import_seed_set(session, seeds.name, fmt_name, tasks)
            job = store.create_job(session, "self_instruct", params.model_dump(), seed_set_id=seed_set.id)
            job_id = job.id
        console.print(f"job {job_id}: Self-Instruct from {len(tasks)} seed tasks ({seeds.name}), target {params.target}")
        job = run_with_progress(url, job_id, settings, params.target)
        console.print(summary_table(job))
        if job.status == "failed":
            raise CliError(f"job {job_id} failed: {job.error}")
        with session_scope(url) as session:
            rows = store.curated_examples(session, job_id)
        seen: set[int] = set()
        for row in rows:
            if len(seen) >= examples:
                break
            if row["id"] in seen:
                continue
            seen.add(row["id"])
            console.rule(f"example (instruction #{row['id']})", style="dim")
            console.print(f"[bold]instruction:[/] {row['instruction']}", highlight=False)
            if row["input"]:
                console.print(f"[bold]input:[/] {row['input']}", highlight=False)
            console.print(f"[bold]output:[/] {row['output']}", highlight=False)
        if out is not None:
            n = export_job(url, job_id, fmt, out)
            console.print(f"wrote {n} examples to {out} ({fmt})")
        console.print(f"job id: {job_id}  (sprout jobs show {job_id} · sprout export {job_id} --format messages --out data.jsonl)")
