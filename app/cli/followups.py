"""The CLI's dispatcher: follow-up jobs run here and now, each with a progress bar.

A build that commits a version makes its `version_handoff` job; a hand-off makes the
version's gated training run (the jobs layer makes them as the job succeeds,
`app.core.jobs.outcome`). Workers enqueue them; the CLI, which has no worker, hands them to
the core's `InProcessDispatcher`, which runs them one after the other (and theirs in turn);
this module only draws and prints. Their `job_finished` webhooks are the jobs layer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.cli.common import console
from app.core import jobs
from app.core.jobs import dispatch
from app.core.jobs.sft import SftResult
from app.core.jobs.version_handoff import VersionHandoffResult
from app.models import Job, JobStatus


def dispatcher(url: str, settings: Any) -> dispatch.InProcessDispatcher:
    """An in-process dispatcher that shows each job's progress and prints how it ended."""
    from app.cli.generate import run_with_progress

    def run(job: Job) -> Job:
        return run_with_progress(url, int(job.id), settings, label=job.kind)

    def start(job: Job) -> None:
        console.print(f"job {job.id}: {job.kind}", highlight=False)

    return dispatch.InProcessDispatcher(url, settings.core_config(), run=run, on_start=start, on_end=print_outcome)


def run_followups(url: str, settings: Any, job: Job | None = None, job_ids: Sequence[int] = ()) -> list[Job]:
    """Run `job`'s follow-ups (it ran already), or the queued jobs `job_ids`, and, in turn,
    their own follow-ups; returns every job run."""
    runner = dispatcher(url, settings)
    if job is not None:
        dispatch.submit_followups(url, job, runner)
    for job_id in job_ids:
        runner.submit(job_id, "")  # the in-process dispatcher reads the kind from the row
    return runner.done


def print_outcome(job: Job) -> None:
    """One or a few lines on what a follow-up job did (its result read through its kind's model)."""
    if job.status != JobStatus.succeeded.value:
        console.print(f"  job {job.id} {job.status}: {job.error}", highlight=False)
        return
    result = jobs.registry.result_of(job)
    if isinstance(result, VersionHandoffResult):
        _print_handoff(result)
    if isinstance(result, SftResult) and result.gate:
        gate, metrics = result.gate, result.metrics
        figures = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("eval_loss_after", "rouge_l_after")
                            if isinstance(metrics.get(k), (int, float)))
        console.print(f"  {figures}; gate {gate['tag']}: {gate['decision']}", highlight=False)
        for row in gate.get("table") or []:
            console.print("    " + training_gate_row(row), highlight=False)


def _print_handoff(result: VersionHandoffResult) -> None:
    for delivery in result.deliveries:
        console.print(f"  delivery {delivery.id} to {delivery.destination}: {delivery.status}"
                      f"{' -> ' + delivery.location if delivery.location else ''}"
                      f"{' (' + delivery.error + ')' if delivery.error else ''}", highlight=False)
    if "webhooks" in result.model_fields_set:
        console.print(f"  version_created sent to {result.webhooks} webhook(s)", highlight=False)
    if result.training is not None and result.training.skipped:
        console.print(f"  training skipped: {result.training.skipped}", highlight=False)


def training_gate_row(row: dict[str, Any]) -> str:
    def num(x: Any) -> str:
        return f"{x:.4f}" if isinstance(x, (int, float)) else "-"

    return (f"{row['metric']}: previous {num(row['previous'])}, new {num(row['new'])}, delta {num(row['delta'])} "
            f"({row['better']} is better, tolerance {row['tolerance']}): {row['verdict']}")

