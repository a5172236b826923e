"""The LLM judge's figures as table rows: a `score` job's table, and the rows a generation
job's summary adds when it scored its examples (`score_with_judge`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from app.core.jobs.results import read_result
from app.core.jobs.score import ScoreResult


def _number(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def judge_rows(table: Table, summary: dict[str, Any]) -> None:
    """The judge's summary (`judging.score_job`) as rows of a job's table."""
    table.add_row("judge", str(summary.get("judge")))
    table.add_row("examples judged", f"{summary.get('judged', 0)} of {summary.get('examples', 0)}")
    for aspect in ("quality", "complexity"):
        figures = summary.get(aspect)
        if not isinstance(figures, dict):
            continue
        table.add_row(f"  {aspect}: mean / median", f"{_number(figures['mean'])} / {_number(figures['median'])}")
        table.add_row(f"  {aspect}: digits 1-6", " ".join(str(n) for n in figures["histogram"].values()))
        table.add_row(f"  {aspect}: unparseable / errors", f"{figures['unparseable']} / {figures['errors']}")


def score_table(job: Any) -> Table:
    table = Table(title=f"job {job.id} ({job.kind} of job {job.source_job_id}): {job.status}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    result = read_result(job, ScoreResult)
    if result.judge:
        judge_rows(table, result.model_dump(exclude_unset=True))
    c = job.counters or {}
    table.add_row("judge requests (errors)", f"{c.get('judge_llm_requests', 0)} ({c.get('judge_llm_errors', 0)})")
    table.add_row("judge tokens (prompt / completion)",
                  f"{c.get('judge_prompt_tokens', 0)} / {c.get('judge_completion_tokens', 0)}")
    if job.started_at and job.finished_at:
        table.add_row("time", f"{(job.finished_at - job.started_at).total_seconds():.1f} s")
    return table
