"""The `version_handoff` job kind: what a new dataset version goes through once committed.

1. the `version_created` webhook event (once per version);
2. a delivery to each of the dataset's destinations (`handoff.dataset_settings`), checked
   first: a version whose preflight check fails is recorded `blocked` with the report
   naming its rows, and goes nowhere;
3. when the dataset names training settings and the check passed, a training job on the
   version (the `sft` kind, on the training queue) with the dataset's fixed evaluation
   tasks, recorded as a gated run (`handoff.training_gate`); it decides the gate when it
   ends. The job returns it as its follow-up (`outcome.FollowUp`): the lifecycle makes it
   as this job succeeds, and a dispatcher sends it to run.

Why a job of its own, queued after the version's transaction (`queue`, called by the
`dataset_build` kind once its version is committed, and by the curation doors), rather
than work inside the build: the version is committed and the build has succeeded whatever
happens next; a destination that is away, a tokenizer that cannot load or a slow check of
a large version never fails, holds or re-runs a build; the hand-off has its own status,
error and retry in the jobs list, and a worker that dies mid-way leaves it to be taken
over like any job (every step above is idempotent). `queue` makes one per version, and
none when there is nothing to do (no destination, no training, no webhook listening to
`version_created`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, col, select

from app.core import store
from app.core.datasets import versions as ds_versions
from app.core.datasets.errors import DatasetError
from app.core.handoff import dataset_settings, deliveries, on_version, training_gate
from app.core.handoff.preflight import Preflight, PreflightOptions
from app.core.jobs.lifecycle import JobContext
from app.core.jobs.outcome import FollowUp, Outcome
from app.core.jobs.registry import GENERATION_QUEUE, JobKind, JobRequest, JobRequestError, Progress, params_as, register
from app.core.jobs.requests import create_job
from app.core.jobs.results import Counters, JobResult, dump_result
from app.core.jobs.sft import KIND as TRAINING_KIND
from app.core.methods.candidates import JobInputError
from app.models import Dataset, DatasetVersion, Job, JobStatus, utcnow

KIND = "version_handoff"


class VersionHandoffParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: int = Field(ge=1, le=2**31 - 1, description="The dataset.")
    version: int = Field(ge=1, le=2**31 - 1, description="The version number to hand off.")


class DeliveryLine(BaseModel):
    """One delivery the hand-off made (`handoff.on_version.delivery_line`)."""

    model_config = ConfigDict(extra="allow")

    id: int | None = None
    destination: str = ""
    status: str = ""
    location: str | None = None
    error: str | None = None
    preflight_ok: bool | None = None


class PreflightLine(BaseModel):
    model_config = ConfigDict(extra="allow")

    ok: bool = Field(description="The version passed its preflight check.")
    summary: str = ""
    problems: list[str] | None = None


class TrainingLine(BaseModel):
    """The gated training run: the job made, or why there is none."""

    model_config = ConfigDict(extra="allow")

    job_id: int | None = None
    gate_tag: str | None = None
    eval_sha256: str | None = None
    skipped: str | None = None


class VersionHandoffResult(JobResult):
    """What a version's hand-off did: its webhooks, its deliveries, its check and its training run."""

    dataset_id: int | None = Field(default=None, description="The dataset.")
    dataset: str | None = Field(default=None, description="The dataset's name.")
    version: int | None = Field(default=None, description="The version handed off.")
    webhooks: int | None = Field(default=None, description="Webhooks the version_created event was sent to.")
    deliveries: list[DeliveryLine] = Field(default_factory=list, description="A delivery per destination.")
    preflight: PreflightLine | None = Field(default=None, description="The version's preflight check.")
    training: TrainingLine | None = Field(default=None, description="The gated training run, or why none.")


def check(session: Session, request: JobRequest, params: VersionHandoffParams) -> dict[str, Any]:
    for name in ("seed_set_id", "source_job_id", "export_id"):
        if getattr(request, name) is not None:
            raise JobRequestError(name, f"a {KIND} job names its dataset and version in params only")
    dataset = _dataset(session, params.dataset_id, request.owner)
    try:
        ds_versions.get_version(session, store.id_of(dataset), params.version)
    except DatasetError as exc:
        raise JobRequestError("params.version", str(exc)) from None
    return {"result": dump_result(VersionHandoffResult(dataset_id=dataset.id, dataset=dataset.name,
                                                       version=params.version)),
            "counters": {"stage": "queued", "deliveries": 0, "destinations": 0}}


def _dataset(session: Session, dataset_id: int, owner: str | None) -> Dataset:
    try:
        dataset = ds_versions.get_dataset_by_id(session, dataset_id)
    except DatasetError:
        dataset = None
    if dataset is None or (owner is not None and dataset.owner != ds_versions.owner_key(owner)):
        raise JobRequestError("params.dataset_id", f"no dataset with id {dataset_id}")
    return dataset


def find(session: Session, dataset_id: int, number: int) -> Job | None:
    """The hand-off job of version `number` of the dataset, if one was made."""
    for job in session.exec(select(Job).where(Job.kind == KIND).order_by(col(Job.id))):
        if (job.params or {}).get("dataset_id") == dataset_id and (job.params or {}).get("version") == number:
            return job
    return None


def queue(session: Session, dataset: Dataset, version: DatasetVersion,
          defaults: dict[str, dict[str, Any]] | None = None, force: bool = False) -> int | None:
    """The id of the hand-off job of `version` (made now, or before); None when the version has
    nothing to go through. `force`: make one even if one was made and has ended (a hand-off
    asked for again). Flushed, not committed: the caller commits, then enqueues it."""
    made = find(session, store.id_of(dataset), version.number)
    if made is not None and (not force or not JobStatus(made.status).finished):
        return store.id_of(made)  # one at a time: a hand-off asked for again while one waits or runs is that one
    if not force and not (dataset_settings.needs_handoff(session, dataset) or on_version.subscribed(session, dataset)):
        return None
    request = JobRequest(KIND, {"dataset_id": dataset.id, "version": version.number},
                         owner=on_version.owner_of(dataset))
    return store.id_of(create_job(session, request, defaults))


def _preflight_factory(ctx: JobContext) -> Any:
    """A fresh `Preflight` per use, on one tokenizer loaded once (the service's hand-off tokenizer)."""
    from app.core.training.base_model import load_tokenizer

    config = ctx.config.handoff
    train = ctx.config.defaults.get("train", {})
    spec = str(config.tokenizer or train.get("base_model") or "default")
    try:
        tokenizer = load_tokenizer(spec, ctx.config.model_cache_dir)
    except ValueError as exc:
        raise JobInputError(f"the preflight check cannot run: {exc}") from None
    options = PreflightOptions(max_length=config.max_length or train.get("max_length") or 1024,
                               allow_truncated=config.allow_truncated)
    return lambda: Preflight(tokenizer, options, template=spec)


def run(ctx: JobContext) -> VersionHandoffResult | Outcome:
    params = params_as(ctx.params, VersionHandoffParams)
    config = ctx.config.handoff
    live: dict[str, Any] = {"stage": "announce", "deliveries": 0, "destinations": 0}
    ctx.heartbeat.counters = lambda: dict(live)
    with ctx.session() as session:
        try:
            dataset = ds_versions.get_dataset_by_id(session, params.dataset_id)
            version = ds_versions.get_version(session, store.id_of(dataset), params.version)
        except DatasetError as exc:  # deleted since the job was queued
            raise JobInputError(f"dataset {params.dataset_id} version {params.version}: {exc}") from None
        destinations = dataset_settings.destinations_of(session, dataset)
        training = dataset_settings.training_of(dataset)
        data = on_version.version_event(dataset, version, destinations, training is not None)
        sent = on_version.announce(session, dataset, version, data, config, utcnow())
    live.update(destinations=len(destinations))
    result: dict[str, Any] = {"dataset_id": dataset.id, "dataset": dataset.name, "version": version.number,
                              "webhooks": sent, "deliveries": [], "preflight": None, "training": None,
                              "followups": []}
    if not destinations and training is None:
        return VersionHandoffResult.model_validate(result)
    make_preflight = _preflight_factory(ctx)
    blocked = []
    for destination in destinations:
        ctx.check_stop()
        live["stage"] = f"deliver to {destination.name}"
        with ctx.session() as session:
            delivery = on_version.deliver(session, dataset, version, destination, make_preflight(), config,
                                          Path(ctx.config.data_dir), utcnow(), model=ctx.config.llm.model)
            result["deliveries"].append(on_version.delivery_line(delivery, destination))
            if delivery.status == deliveries.BLOCKED:
                blocked.append(delivery.last_error or "preflight failed")
        live["deliveries"] += 1
    if destinations:
        result["preflight"] = {"ok": not blocked, "summary": blocked[0] if blocked else "passed"}
    if training is None:
        return VersionHandoffResult.model_validate(result)
    ctx.check_stop()
    if not destinations:
        live["stage"] = "preflight"
        with ctx.session() as session:
            report = on_version.check(session, dataset, version, make_preflight())
        result["preflight"] = {"ok": report.ok, "summary": report.summary(),
                               "problems": [str(p) for p in report.problems[:20]]}
    if not result["preflight"]["ok"]:
        result["training"] = {"skipped": f"the version failed its preflight check ({result['preflight']['summary']})"}
        return VersionHandoffResult.model_validate(result)
    live["stage"] = "queue training"
    dataset_id, number, defaults = store.id_of(dataset), version.number, ctx.config.defaults

    def make(session: Session, out: dict[str, Any]) -> int | None:
        """The gated training run, made as this job succeeds (a JobInputError fails it)."""
        ds = ds_versions.get_dataset_by_id(session, dataset_id)
        job = start_training(session, ds, ds_versions.get_version(session, store.id_of(ds), number), training, defaults)
        out["training"] = {"job_id": job.id, "gate_tag": training.gate.tag, "eval_sha256": training.eval.sha256}
        return store.id_of(job) if job.status == JobStatus.queued.value else None

    return Outcome(VersionHandoffResult.model_validate(result), [FollowUp(make)])


def start_training(session: Session, dataset: Dataset, version: DatasetVersion,
                   settings: dataset_settings.TrainingSettings, defaults: dict[str, dict[str, Any]]) -> Job:
    """The gated training job of `version` (made once; a second call returns the first)."""
    made = training_gate.runs_of_version(session, store.id_of(version))
    if made:
        return store.get_job(session, made[-1].job_id)
    if not Path(settings.eval.path).is_file():
        raise JobInputError(f"the evaluation tasks file {settings.eval.path} is gone; set the dataset's training "
                            "settings again")
    request = JobRequest(TRAINING_KIND, dataset_settings.run_params(settings, dataset, version.number),
                         owner=on_version.owner_of(dataset))
    try:
        job = create_job(session, request, defaults)
    except (ValidationError, ValueError) as exc:
        raise JobInputError(f"the training job of version {version.number} cannot be made: {exc}") from None
    training_gate.record_run(session, dataset, version, store.id_of(job), settings.gate.tag, settings.gate.tolerance,
                             settings.eval.sha256)
    return job


def progress(job: Job) -> Progress:
    counters = Counters.of(job)
    return Progress(target=counters.destinations or None, done=counters.deliveries)


VERSION_HANDOFF = register(JobKind(
    name=KIND,
    params_model=VersionHandoffParams,
    result_model=VersionHandoffResult,
    queue=GENERATION_QUEUE,
    run=run,
    check=check,
    progress=progress,
    description="Hand a new dataset version off: the version_created webhook, checked deliveries to the "
    "dataset's destinations, and its gated training run.",
    produces_examples=False,
))
