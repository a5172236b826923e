"""Jobs a finished job queued after it, run here and now: what a worker would do next.

A build that commits a version queues its `version_handoff` job; a hand-off queues the
version's gated training run (`job.result["followups"]`). Workers enqueue them
(`workers.handoff.enqueue_followups`); the CLI, which has no worker, runs them in-process
one after the other with a progress bar, and sends their `job_finished` /
`training_finished` webhooks as a worker does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.cli.common import console
from app.core import store
from app.core.handoff import webhooks
from app.db import session_scope
from app.models import Job, JobStatus, utcnow


def run_followups(url: str, settings: Any, job_ids: Sequence[int]) -> list[Job]:
    """Run each queued follow-up job and, in turn, its own follow-ups; returns them all."""
    from app.cli.generate import run_with_progress

    done: list[Job] = []
    for job_id in job_ids:
        with session_scope(url) as session:
            job = store.get_job(session, job_id)
        if job.status != JobStatus.queued.value:
            continue
        console.print(f"job {job_id}: {job.kind}", highlight=False)
        job = run_with_progress(url, job_id, settings, label=job.kind)
        _send_events(url, settings, job)
        print_outcome(job)
        done.append(job)
        if job.status == JobStatus.succeeded.value:
            done += run_followups(url, settings, (job.result or {}).get("followups") or [])
    return done


def _send_events(url: str, settings: Any, job: Job) -> None:
    now = utcnow()
    with session_scope(url) as session:
        emitted = webhooks.emit_job_finished(session, job, now)
        webhooks.send_now(session, emitted, settings.handoff_config(), now)


def print_outcome(job: Job) -> None:
    """One or a few lines on what a follow-up job did."""
    result = job.result or {}
    if job.status != JobStatus.succeeded.value:
        console.print(f"  job {job.id} {job.status}: {job.error}", highlight=False)
        return
    for delivery in result.get("deliveries") or []:
        console.print(f"  delivery {delivery['id']} to {delivery['destination']}: {delivery['status']}"
                      f"{' -> ' + delivery['location'] if delivery.get('location') else ''}"
                      f"{' (' + delivery['error'] + ')' if delivery.get('error') else ''}", highlight=False)
    if "webhooks" in result:
        console.print(f"  version_created sent to {result['webhooks']} webhook(s)", highlight=False)
    training = result.get("training")
    if isinstance(training, dict) and training.get("skipped"):
        console.print(f"  training skipped: {training['skipped']}", highlight=False)
    gate = result.get("gate")
    if gate:
        metrics = result.get("metrics") or {}
        figures = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("eval_loss_after", "rouge_l_after")
                            if isinstance(metrics.get(k), (int, float)))
        console.print(f"  {figures}; gate {gate['tag']}: {gate['decision']}", highlight=False)
        for row in gate.get("table") or []:
            console.print("    " + training_gate_row(row), highlight=False)


def training_gate_row(row: dict[str, Any]) -> str:
    def num(x: Any) -> str:
        return f"{x:.4f}" if isinstance(x, (int, float)) else "-"

    return (f"{row['metric']}: previous {num(row['previous'])}, new {num(row['new'])}, delta {num(row['delta'])} "
            f"({row['better']} is better, tolerance {row['tolerance']}): {row['verdict']}")

