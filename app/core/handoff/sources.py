"""Row sources: what the hand-off reads, as (rows, `HandoffMeta`). A job is one today.

`job_source` gives a generation job's curated rows — the same rows as `sprout export`
(`lineage.export_rows`: lineage, final-only, no-roots) — with their provenance (`method`,
`job_id`, `scores`: the novelty filter's max and mean ROUGE-L of the row's instruction),
and what the card says about the job: its recipe and parameters, the decoding settings,
the seed set and its sha256, and its rejections by rule. A dataset version will be
another function returning the same pair; nothing downstream needs to change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from sqlmodel import Session, select

from app.core import lineage, store
from app.core.handoff.meta import HandoffMeta, ModelInfo, SeedSetInfo
from app.models import Instruction, Job, SeedSet, SeedTask

DECODING_KEYS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "max_tokens", "seed")


def seed_set_sha256(tasks: list[dict[str, Any]]) -> str:
    """sha256 of the seed tasks as canonical JSON (sorted keys, in order): the same tasks
    give the same hash wherever they were imported from."""
    blob = json.dumps(tasks, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def seed_set_info(session: Session, seed_set_id: int) -> SeedSetInfo | None:
    seed_set = session.get(SeedSet, seed_set_id)
    if seed_set is None:
        return None
    tasks = session.exec(select(SeedTask).where(SeedTask.seed_set_id == seed_set_id).order_by(SeedTask.position)).all()
    canonical = [{"instruction": t.instruction, "instances": t.instances, "is_classification": t.is_classification,
                  "name": t.name} for t in tasks]
    return SeedSetInfo(name=seed_set.name, tasks=len(tasks), sha256=seed_set_sha256(canonical), id=seed_set.id)


def _root_seed_set(session: Session, job: Job) -> int | None:
    """The seed set a job grew from, following `source_job_id` (an evolution of a job's output)."""
    seen: set[int] = set()
    while job is not None and job.id not in seen:
        if job.seed_set_id is not None:
            return job.seed_set_id
        seen.add(job.id)
        job = session.get(Job, job.source_job_id) if job.source_job_id is not None else None
    return None


def decoding(params: dict[str, Any]) -> dict[str, Any]:
    """The sampling settings among a job's parameters (every key naming one, for any method)."""
    return {k: v for k, v in params.items() if any(key in k for key in DECODING_KEYS) and v is not None}


def job_scores(session: Session, job_id: int) -> dict[int, dict[str, float]]:
    rows = session.exec(select(Instruction.id, Instruction.max_rouge_l, Instruction.mean_rouge_l)
                        .where(Instruction.job_id == job_id)).all()
    return {r.id: {k: v for k, v in (("max_rouge_l", r.max_rouge_l), ("mean_rouge_l", r.mean_rouge_l))
                   if v is not None} for r in rows}


def job_rows(session: Session, job: Job, *, final_only: bool = False,
             include_roots: bool = True) -> Iterator[dict[str, Any]]:
    """The job's export rows with their provenance. Raises `JobRequestError` (a ValueError)
    for a job without curated data or options that do not apply to it."""
    rows = lineage.export_rows(session, job, final_only=final_only, include_roots=include_roots)
    scores = job_scores(session, job.id)
    for row in rows:
        yield {**row, "method": job.kind, "job_id": job.id, "scores": scores.get(row["id"]) or None}


def job_meta(session: Session, job: Job, *, name: str | None = None, model: str | None = None,
             license: str = "other", language: tuple[str, ...] = ("en",), system: str | None = None,
             options: dict[str, Any] | None = None) -> HandoffMeta:
    """What the card says about a job. `model` names the model that served the job when the
    caller knows it (the job does not record it)."""
    params = dict(job.params or {})
    counters = job.counters or {}
    rejections = {str(k): int(v) for k, v in (counters.get("rejected") or {}).items()}
    rejections.update({f"instance:{k}": int(v) for k, v in (counters.get("instances_rejected") or {}).items()})
    seed_set_id = _root_seed_set(session, job)
    recipe: dict[str, Any] = {"method": job.kind, "params": params, "job status": job.status}
    if options:
        recipe["export options"] = options
    if job.source_job_id is not None:
        recipe["evolved from job"] = job.source_job_id
    return HandoffMeta(
        name=name or f"sprout-job-{job.id}",
        source_kind="job",
        source_id=job.id,
        title=f"Sprout {job.kind.replace('_', '-')} job {job.id}",
        license=license,
        language=tuple(language),
        system=system,
        recipe=recipe,
        models=(ModelInfo(model or "not recorded by the job", "generator", decoding(params)),),
        seed_set=seed_set_info(session, seed_set_id) if seed_set_id is not None else None,
        rejections=rejections,
        created_at=job.finished_at or job.created_at,
    )


def job_source(session: Session, job_id: int, *, owner: str | None = None, final_only: bool = False,
               include_roots: bool = True, **card: Any) -> tuple[list[dict[str, Any]], HandoffMeta]:
    """(rows, meta) of a job; `owner` set: only that owner's job (else `store.NotFound`)."""
    job = store.get_job(session, job_id)
    if owner is not None and job.owner != owner:
        raise store.NotFound(f"no job with id {job_id}")
    rows = list(job_rows(session, job, final_only=final_only, include_roots=include_roots))
    options = {"final_only": final_only, "include_roots": include_roots} if (final_only or not include_roots) else None
    return rows, job_meta(session, job, options=options, **card)


PROVENANCE_FORMATS = ("sharegpt", "parquet")


def export_rows(session: Session, job: Job, fmt: str, *, final_only: bool = False,
                include_roots: bool = True) -> list[dict[str, Any]]:
    """What `sprout export` and `POST /api/v1/exports` write for `fmt`, the same through both
    doors: sharegpt and parquet rows carry provenance (`job_rows`); alpaca, messages and
    prompt-completion keep the rows they always had (`lineage.export_rows`)."""
    if fmt in PROVENANCE_FORMATS:
        return list(job_rows(session, job, final_only=final_only, include_roots=include_roots))
    return lineage.export_rows(session, job, final_only=final_only, include_roots=include_roots)
