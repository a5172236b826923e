"""The train-on-new-version gate over stored runs: the run a new one is compared with, the
decision, and the move of the gate tag.

A dataset with training settings (`dataset_settings.TrainingSettings`) gets one training
run per new version (queued by the `version_handoff` job, `app.core.jobs.version_handoff`),
recorded here as a `DatasetTrainingRun` with the gate tag, the tolerance and the sha256 of
its evaluation tasks as they were when it was queued (`record_run`). When the run has
trained, the training kind calls `decide`:

* the *baseline* is the run of the version the gate tag points at now: its latest decided
  run on the same evaluation tasks (same sha256). No tag yet, or a tagged version without
  such a run (tagged by hand, or the evaluation tasks changed): the new run is a first run
  and is promoted;
* `gate.compare_runs(baseline, new, tolerance)` on held-out loss and ROUGE-L, both measured
  on the dataset's fixed evaluation tasks (`dataset_settings`), so both runs are scored on
  the same rows;
* promoted: the tag moves to the new version in the transaction that records the decision,
  with the dataset row locked, so two runs that end at once are decided one after the
  other. The tag only moves forward: a run whose version is older than the one the tag
  points at is not promoted ("superseded").

A run is decided once: a run taken over after its worker died finds its decision made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from app.core.datasets import versions as v
from app.core.handoff.gate import compare_runs
from app.core.store import get_row, id_of
from app.models import Dataset, DatasetTag, DatasetTrainingRun, DatasetVersion, Job, utcnow

# the figures a run shows beside the gate's table (all of `metrics.json` stays in the job's result)
SHOWN_METRICS = ("eval_loss_before", "eval_loss_after", "rouge_l_before", "rouge_l_after", "train_loss", "steps",
                 "train_rows", "held_out_rows", "eval_tasks")


def record_run(session: Session, dataset: Dataset, version: DatasetVersion, job_id: int, tag: str,
               tolerance: Mapping[str, float], eval_sha256: str) -> DatasetTrainingRun:
    """The record of a gated run of `version` by job `job_id` (flushed, not committed)."""
    run = DatasetTrainingRun(dataset_id=id_of(dataset), version_id=id_of(version), job_id=job_id, gate_tag=tag,
                             tolerance=dict(tolerance), eval_sha256=eval_sha256)
    session.add(run)
    session.flush()
    return run


def run_of_job(session: Session, job_id: int) -> DatasetTrainingRun | None:
    return session.exec(select(DatasetTrainingRun).where(DatasetTrainingRun.job_id == job_id)).first()


def runs_of_version(session: Session, version_id: int) -> list[DatasetTrainingRun]:
    return list(session.exec(select(DatasetTrainingRun).where(DatasetTrainingRun.version_id == version_id)
                             .order_by(col(DatasetTrainingRun.id))).all())


def _clean(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe figures: a NaN or an infinity (a run that diverged) is stored as null."""
    return {k: (None if isinstance(x, float) and not math.isfinite(x) else x) for k, x in metrics.items()}


def _tagged(session: Session, dataset_id: int, tag: str) -> DatasetVersion | None:
    return session.exec(
        select(DatasetVersion).join(DatasetTag, col(DatasetTag.version_id) == col(DatasetVersion.id))
        .where(DatasetTag.dataset_id == dataset_id, DatasetTag.name == tag)
    ).first()


def baseline_of(session: Session, run: DatasetTrainingRun, tagged: DatasetVersion | None) -> DatasetTrainingRun | None:
    """The decided run of the tagged version on the same evaluation tasks, latest first."""
    if tagged is None or tagged.id == run.version_id:
        return None
    return session.exec(
        select(DatasetTrainingRun)
        .where(DatasetTrainingRun.version_id == tagged.id, DatasetTrainingRun.eval_sha256 == run.eval_sha256,
               col(DatasetTrainingRun.decided_at).is_not(None), col(DatasetTrainingRun.metrics).is_not(None))
        .order_by(col(DatasetTrainingRun.decided_at).desc(), col(DatasetTrainingRun.id).desc())
    ).first()


def decide(session: Session, job_id: int, metrics: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any] | None:
    """Decide the gated run of job `job_id` on its `metrics` and move the gate tag if it is
    promoted (flushed; the caller commits). Returns the gate's record (`gate_of`), or None
    when the job is not a gated run."""
    run = run_of_job(session, job_id)
    if run is None:
        return None
    session.exec(select(Dataset).where(Dataset.id == run.dataset_id).with_for_update()
                 .execution_options(populate_existing=True)).one()  # one decision at a time per dataset
    session.refresh(run)
    if run.decided_at is not None:
        return gate_of(run)
    version = get_row(session, DatasetVersion, run.version_id)
    tagged = _tagged(session, run.dataset_id, run.gate_tag)
    baseline = baseline_of(session, run, tagged)
    clean = _clean(metrics)
    promote, table = compare_runs(baseline.metrics if baseline is not None else None, clean, run.tolerance)
    if tagged is not None and tagged.number > version.number:
        promote = False
        decision = (f"superseded: {run.gate_tag} points at version {tagged.number}, newer than this one "
                    "(the tag only moves forward)")
    elif tagged is not None and tagged.id == version.id:
        promote, decision = True, f"promoted: {run.gate_tag} already points at this version"
    elif promote:
        decision = (f"promoted: not worse than the run on version {tagged.number} within the tolerance"
                    if baseline is not None and tagged is not None else
                    "promoted: the first run on these evaluation tasks")
        v.move_tag(session, run.dataset_id, run.gate_tag, id_of(version))
    else:
        worse = [f"{row['metric']} {row['verdict']}" for row in table if row["verdict"] in ("worse", "missing")]
        decision = f"held: {', '.join(worse)}; {run.gate_tag} stays on version {tagged.number if tagged else '-'}"
    run.metrics, run.comparison, run.promoted, run.decision = clean, table, promote, decision
    run.baseline_job_id = baseline.job_id if baseline is not None else None
    run.baseline_version = tagged.number if baseline is not None and tagged is not None else None
    run.decided_at = now or utcnow()
    session.add(run)
    session.flush()
    return gate_of(run)


def gate_of(run: DatasetTrainingRun) -> dict[str, Any]:
    """What the gate says about a run: its tag and tolerance, the decision and its table."""
    return {"tag": run.gate_tag, "tolerance": run.tolerance, "eval_sha256": run.eval_sha256,
            "promoted": run.promoted, "decision": run.decision, "baseline_job_id": run.baseline_job_id,
            "baseline_version": run.baseline_version, "table": run.comparison,
            "decided_at": run.decided_at.isoformat(timespec="seconds") if run.decided_at else None}


def describe(run: DatasetTrainingRun, job: Job | None) -> dict[str, Any]:
    """A version's training run as the API, the CLI and the card show it."""
    metrics = run.metrics if run.metrics is not None else ((job.result or {}).get("metrics") if job else None)
    shown = {k: metrics.get(k) for k in SHOWN_METRICS if k in metrics} if metrics else None
    return {"job_id": run.job_id, "status": job.status if job is not None else "deleted",
            "error": job.error if job is not None else None, "metrics": shown, "gate": gate_of(run)}


def latest_runs(session: Session, version_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Version id -> its latest training run (`describe`), for the versions that have one; two queries."""
    if not version_ids:
        return {}
    runs = session.exec(select(DatasetTrainingRun).where(col(DatasetTrainingRun.version_id).in_(list(version_ids)))
                        .order_by(col(DatasetTrainingRun.id))).all()
    latest = {r.version_id: r for r in runs}
    jobs = {j.id: j for j in session.exec(select(Job).where(col(Job.id).in_([r.job_id for r in latest.values()])))}
    return {vid: describe(r, jobs.get(r.job_id)) for vid, r in latest.items()}


def verdict_line(training: Mapping[str, Any] | None) -> str:
    """One line for a table cell: `job 12 succeeded: promoted (...)`."""
    if not training:
        return "-"
    gate = training.get("gate") or {}
    line = f"job {training['job_id']} {training['status']}"
    if gate.get("decision"):
        line += f": {gate['decision']}"
    return line
