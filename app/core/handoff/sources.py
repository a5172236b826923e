"""Row sources: what the hand-off reads, as (rows, `HandoffMeta`): a job, or a dataset version.

`job_source` gives a generation job's curated rows — the same rows as `sprout export`
(`lineage.export_rows`: lineage, final-only, no-roots) — with their provenance (`method`,
`job_id`, `scores`: the novelty filter's max and mean ROUGE-L of the row's instruction, and
the LLM judge's `quality`, `complexity` and `judge` when the job was scored),
and what the card says about the job: its recipe and parameters, the decoding settings,
the seed set and its sha256, and its rejections by rule.

`dataset_version_source` streams a version's rows (`datasets.versions.version_rows`, a
page at a time) with the same provenance keys (`id` is the example's id in the dataset,
`job_id` the job that made it), and fills the card's version fields: the version, its
parent, its content hash, the diff to the parent (`datasets.diff`), the counts by method
and by rejection rule of the build that made it (the version's `counts`), the recipe and
the seed sets, and the version's gated training run once it is decided.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlmodel import Session, col, select

from app.core import lineage, store
from app.core.datasets import diff as ds_diff
from app.core.datasets import tags as ds_tags
from app.core.datasets import versions as ds_versions
from app.core.handoff import training_gate
from app.core.handoff.meta import HandoffMeta, ModelInfo, SeedSetInfo
from app.core.scoring import storage as scoring_storage
from app.models import Dataset, DatasetVersion, Instruction, Job, SeedSet, SeedTask

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
    tasks = session.exec(select(SeedTask).where(SeedTask.seed_set_id == seed_set_id)
                         .order_by(col(SeedTask.position))).all()
    canonical = [{"instruction": t.instruction, "instances": t.instances, "is_classification": t.is_classification,
                  "name": t.name} for t in tasks]
    return SeedSetInfo(name=seed_set.name, tasks=len(tasks), sha256=seed_set_sha256(canonical), id=store.id_of(seed_set))


def _root_seed_set(session: Session, job: Job) -> int | None:
    """The seed set a job grew from, following `source_job_id` (an evolution of a job's output)."""
    seen: set[int] = set()
    current: Job | None = job
    while current is not None and store.id_of(current) not in seen:
        if current.seed_set_id is not None:
            return current.seed_set_id
        seen.add(store.id_of(current))
        current = session.get(Job, current.source_job_id) if current.source_job_id is not None else None
    return None


def decoding(params: dict[str, Any]) -> dict[str, Any]:
    """The sampling settings among a job's parameters (every key naming one, for any method)."""
    return {k: v for k, v in params.items() if any(key in k for key in DECODING_KEYS) and v is not None}


def job_scores(session: Session, job_id: int) -> dict[int, dict[str, float]]:
    rows = session.exec(select(col(Instruction.id), col(Instruction.max_rouge_l), col(Instruction.mean_rouge_l))
                        .where(Instruction.job_id == job_id)).all()
    return {ident: {k: v for k, v in (("max_rouge_l", max_rouge_l), ("mean_rouge_l", mean_rouge_l))
                    if v is not None} for ident, max_rouge_l, mean_rouge_l in rows if ident is not None}


def job_rows(session: Session, job: Job, *, final_only: bool = False,
             include_roots: bool = True) -> Iterator[dict[str, Any]]:
    """The job's export rows with their provenance. Raises `JobRequestError` (a ValueError)
    for a job without curated data or options that do not apply to it."""
    rows = lineage.export_rows(session, job, final_only=final_only, include_roots=include_roots)
    scores = job_scores(session, store.id_of(job))
    judged = scoring_storage.job_example_scores(session, store.id_of(job))  # the LLM judge's, when the job was scored
    for row in rows:
        own = {**(scores.get(row["id"]) or {}), **judged.get((row["id"], row["input"], row["output"]), {})}
        yield {**row, "method": job.kind, "job_id": job.id, "scores": own or None}


def job_meta(session: Session, job: Job, *, name: str | None = None, model: str | None = None,
             license: str = "other", language: tuple[str, ...] = ("en",), system: str | None = None,
             options: dict[str, Any] | None = None) -> HandoffMeta:
    """What the card says about a job. `model` names the model that served the job when the
    caller knows it (the job does not record it)."""
    from app.core.jobs.results import Counters  # here: the jobs package imports the hand-off as it loads

    params = dict(job.params or {})
    counters = Counters.of(job)
    rejections = {str(k): int(v) for k, v in counters.rejected.items()}
    rejections.update({f"instance:{k}": int(v) for k, v in counters.instances_rejected.items()})
    seed_set_id = _root_seed_set(session, job)
    recipe: dict[str, Any] = {"method": job.kind, "params": params, "job status": job.status}
    if options:
        recipe["export options"] = options
    if job.source_job_id is not None:
        recipe["evolved from job"] = job.source_job_id
    return HandoffMeta(
        name=name or f"sprout-job-{job.id}",
        source_kind="job",
        source_id=store.id_of(job),
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


def rows_for_format(session: Session, job: Job, fmt: str, *, final_only: bool = False,
                    include_roots: bool = True) -> list[dict[str, Any]]:
    """What `sprout export` and `POST /api/v1/exports` write for `fmt`, the same through both
    doors: sharegpt and parquet rows carry provenance (`job_rows`); alpaca, messages and
    prompt-completion keep the rows they always had (`lineage.export_rows`)."""
    if fmt in PROVENANCE_FORMATS:
        return list(job_rows(session, job, final_only=final_only, include_roots=include_roots))
    return lineage.export_rows(session, job, final_only=final_only, include_roots=include_roots)


# --- a dataset version -----------------------------------------------------------------------
VERSION_ROW_FIELDS = ("id", "instruction", "input", "output", "method", "lineage", "scores", "source_job_id",
                      "turns")


def version_rows(session: Session, dataset_id: int, number: int) -> Iterator[dict[str, Any]]:
    """The version's rows in their stable order, streamed, with provenance (`job_id`: the job
    that made the example; `lineage` and `scores` as stored, empty ones left out)."""
    for row in ds_versions.version_rows(session, dataset_id, number, fields=VERSION_ROW_FIELDS):
        yield store.with_turns(
            {"id": row["id"], "instruction": row["instruction"], "input": row["input"], "output": row["output"],
             "method": row["method"], "job_id": row["source_job_id"], "lineage": row["lineage"] or None,
             "scores": row["scores"] or None}, row["turns"])


def seed_sets_info(session: Session, seed_set_ids: Sequence[int]) -> SeedSetInfo | None:
    """One seed set as `seed_set_info`; several as one (names joined, tasks summed, one sha256
    over all their tasks in the recipe's order)."""
    infos = [i for i in (seed_set_info(session, ident) for ident in seed_set_ids) if i is not None]
    if len(infos) <= 1:
        return infos[0] if infos else None
    return SeedSetInfo(name=" + ".join(i.name for i in infos), tasks=sum(i.tasks for i in infos),
                       sha256=hashlib.sha256("".join(i.sha256 for i in infos).encode()).hexdigest())


def version_meta(session: Session, dataset: Dataset, version: DatasetVersion, *, name: str | None = None,
                 model: str | None = None, license: str = "other", language: tuple[str, ...] = ("en",),
                 system: str | None = None) -> HandoffMeta:
    """What the card says about a dataset version."""
    counts = version.counts or {}
    recipe = dict(dataset.recipe or {})
    steps = recipe.get("steps") or []
    parent = session.get(DatasetVersion, version.parent_id) if version.parent_id is not None else None
    change = None
    if parent is not None:
        d = ds_diff.diff(session, parent, version)
        change = {"added": d.added, "removed": d.removed, "corrected": d.corrected}
    card_recipe: dict[str, Any] = {"method": " -> ".join(str(s.get("kind")) for s in steps) or None,
                                   "params": recipe, "made by": version.kind}
    if version.build_job_id is not None:
        card_recipe["build job"] = version.build_job_id
    tagged = [t for t, n in ds_tags.list_tags(session, store.id_of(dataset)).items() if n == version.number]
    if tagged:
        card_recipe["tags"] = ", ".join(tagged)
    rejected = (counts.get("build") or {}).get("rejected_by_rule") or {}
    training = training_gate.latest_runs(session, [store.id_of(version)]).get(store.id_of(version))
    return HandoffMeta(
        name=name or dataset.name,
        source_kind="dataset_version",
        source_id=store.id_of(version),
        title=f"{dataset.name}, version {version.number}",
        description=dataset.description or "",
        license=dataset.license or license,
        language=tuple(language),
        system=system,
        recipe=card_recipe,
        models=tuple(ModelInfo(model or "not recorded by the dataset", f"step {i + 1}: {s.get('kind')}",
                               decoding(s.get("params") or {})) for i, s in enumerate(steps)),
        seed_set=seed_sets_info(session, recipe.get("seed_set_ids") or []),
        rejections={str(k): int(n) for k, n in rejected.items()},
        created_at=version.created_at,
        version=version.number,
        parent_version=parent.number if parent is not None else None,
        content_hash=version.content_hash,
        diff=change,
        training=training,
    )


def dataset_version_source(session: Session, dataset: Dataset, ref: int | str, **card: Any
                           ) -> tuple[Iterator[dict[str, Any]], HandoffMeta]:
    """(rows, meta) of version `ref` of `dataset` (a number, `latest` or a tag). The rows are a
    stream read on `session`, which must stay open while they are consumed. Raises
    `VersionNotFound` (a `DatasetError`) for a missing version."""
    version = ds_tags.resolve(session, store.id_of(dataset), ref)
    return version_rows(session, store.id_of(dataset), version.number), version_meta(session, dataset, version, **card)
