"""The `sft` job kind: fine-tune a model on a generation job's curated data, an export, or a
dataset version.

The data is the source job's curated rows (`store.curated_examples`), or, when the job was
created from an export, that export's file (the result's `source.export_id`, `SftResult`),
or a dataset version's rows (`params.dataset` and `params.dataset_version`, resolved to a
version number in the result's `source` when the job is created; the version's use is
recorded then, so it cannot be deleted). A gated run of a new version (queued by the
`version_handoff` kind) ends with the gate's decision (`handoff.training_gate.decide`) in
the result's `gate`. The run folder is `<data_dir>/runs/job-<id>/`; the metrics land in the
result's `metrics`.
Progress (stage, step, max_steps, loss, eta) reaches `job.counters` through the
lifecycle's heartbeat; a cancel is noticed there and the next training step stops the run;
a job taken over after its worker died resumes from the run folder's latest checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from app.core import store
from app.core.datasets import deletion as ds_deletion
from app.core.datasets import tags as ds_tags
from app.core.datasets import versions as ds_versions
from app.core.datasets.errors import DatasetError
from app.core.handoff import training_gate
from app.core.jobs.lifecycle import JobContext, JobStopped
from app.core.jobs.registry import (
    TRAINING_QUEUE,
    JobKind,
    JobRequest,
    JobRequestError,
    Progress,
    params_as,
    produces_examples,
    register,
)
from app.core.jobs.requests import owned_row
from app.core.jobs.results import Counters, JobResult, dump_result, read_result
from app.core.methods.candidates import JobInputError
from app.core.seeds import SeedFormatError
from app.core.training.config import TrainParams
from app.models import Export, Job

KIND = "sft"
PROGRESS_KEYS = ("stage", "step", "max_steps", "epoch", "loss", "tokens_per_s", "eta_s")


class SftParams(TrainParams):
    """The trainer's parameters, and, to train on a dataset version, which one."""

    dataset: str | None = Field(
        default=None, max_length=100,
        description="Train on a version of this dataset (one of yours) instead of a job or an export.",
    )
    dataset_version: int | str = Field(
        default="latest", description="With `dataset`: a version number, `latest` or a tag (resolved when the job "
        "is created).",
    )


class SftSource(BaseModel):
    """What a training job trains on, resolved when the job is made."""

    model_config = ConfigDict(extra="allow")

    job_id: int | None = Field(default=None, description="The generation job whose curated data it trains on.")
    export_id: int | None = Field(default=None, description="The export whose file it trains on.")
    dataset_id: int | None = Field(default=None, description="The dataset whose version it trains on.")
    dataset: str | None = Field(default=None, description="That dataset's name.")
    version: int | None = Field(default=None, description="That version's number.")
    version_id: int | None = Field(default=None, description="That version's row.")


class SftResult(JobResult):
    """A training job's result: its source, its run folder, its metrics and (a gated run) the gate's decision."""

    source: SftSource = Field(default_factory=SftSource, description="What it trains on.")
    run_dir: str | None = Field(default=None, description="The run folder (checkpoints, the trained model).")
    metrics: dict[str, Any] = Field(default_factory=dict, description="The run's metrics (losses, ROUGE-L, ...).")
    gate: dict[str, Any] | None = Field(default=None, description="A gated run's decision: the tag, the "
                                        "decision, and the table of metrics it compared.")


def check(session: Session, request: JobRequest, params: SftParams) -> dict[str, Any]:
    """Exactly one of a source job (a finished generation job), an export or a dataset
    version; file paths in the parameters confined to `request.data_root` when the caller set
    one (the API)."""
    if request.seed_set_id is not None:
        raise JobRequestError("seed_set_id", f"an {KIND} job trains on a job's curated data: "
                              "give source_job_id or export_id, not seed_set_id")
    sources = [(request.source_job_id, "source_job_id"), (request.export_id, "export_id"),
               (params.dataset, "params.dataset")]
    given = [name for value, name in sources if value is not None]
    if len(given) != 1:
        raise JobRequestError(given[1] if given else "source_job_id", f"an {KIND} job needs exactly one of "
                              "source_job_id or export_id, or params.dataset (a dataset version)",
                              "value_error" if given else "missing")
    if request.data_root is not None:
        _check_paths(request.params, request.data_root)
    if params.dataset is not None:
        return _dataset_source(session, request, params, params.dataset)
    source_job_id, export_id = request.source_job_id, request.export_id
    if export_id is not None:
        source_job_id = owned_row(session, Export, export_id, request.owner, "export_id", "export").job_id
    else:
        source = owned_row(session, Job, source_job_id, request.owner, "source_job_id", "job")
        if not produces_examples(source.kind):
            raise JobRequestError("source_job_id", f"job {source.id} is a {source.kind} job, which has no curated "
                                  "data; train on a generation job")
    return {"source_job_id": source_job_id,
            "result": dump_result(SftResult(source=SftSource(job_id=source_job_id, export_id=export_id))),
            "counters": {"stage": "queued", "step": 0, "max_steps": None, "loss": None}}


def _check_paths(params: dict[str, Any], root: Path) -> None:
    """Paths in a request name files on the workers: only inside the data dir.

    `model_cache_dir` is the service's own business; `base_model` is "default" or a model
    under `root`; `eval_tasks` a file under `root`. A caller with a key cannot make a worker
    read (or write) elsewhere on its disk.
    """
    if "model_cache_dir" in params:
        raise JobRequestError("params.model_cache_dir", "set by the service (SPROUT_DATA_DIR), not per job")
    root = Path(root).resolve()
    for name in ("base_model", "eval_tasks", "held_out_file"):
        value = params.get(name)
        if value is None or (name == "base_model" and value == "default"):
            continue
        if not isinstance(value, str) or not Path(value).resolve().is_relative_to(root):
            allowed = "'default' or a path" if name == "base_model" else "a path"
            raise JobRequestError(f"params.{name}", f"must be {allowed} inside the service's data directory ({root})")


# --- a dataset version as the source ---------------------------------------------------------
def _dataset_source(session: Session, request: JobRequest, params: SftParams, name: str) -> dict[str, Any]:
    """The version `params.dataset_version` of the caller's dataset `name` (`params.dataset`), resolved now."""
    try:
        dataset = ds_versions.get_dataset(session, request.owner, name)
    except DatasetError:
        raise JobRequestError("params.dataset", f"no dataset named {name!r}") from None
    try:
        version = ds_tags.resolve(session, store.id_of(dataset), params.dataset_version)
    except DatasetError as exc:
        raise JobRequestError("params.dataset_version", str(exc)) from None
    source = SftSource(job_id=None, export_id=None, dataset_id=dataset.id, dataset=dataset.name,
                       version=version.number, version_id=version.id)
    return {"result": dump_result(SftResult(source=source)), "counters": {"stage": "queued", "step": 0, "max_steps": None, "loss": None}}


def _record_use(session: Session, job: Job) -> None:
    """`on_created`: a version a training job uses is kept (`datasets.deletion.record_use`)."""
    source = read_result(job, SftResult).source
    if source.version_id is not None and source.dataset_id is not None and source.version is not None:
        version = ds_versions.get_version(session, source.dataset_id, source.version)
        ds_deletion.record_use(session, version, store.id_of(job))


def _version_rows(source: SftSource, session: Session) -> list[dict[str, Any]]:
    if source.dataset_id is None or source.version is None:
        raise JobInputError(f"dataset {source.dataset!r}: the training job names no version")
    try:
        rows = [{"instruction": r["instruction"], "input": r["input"], "output": r["output"]}
                for r in ds_versions.version_rows(session, source.dataset_id, source.version,
                                                  fields=("instruction", "input", "output"))]
    except DatasetError as exc:
        raise JobInputError(f"dataset {source.dataset!r} version {source.version}: {exc}") from None
    if not rows:
        raise JobInputError(f"dataset {source.dataset!r} version {source.version} has no rows to train on")
    return rows


def training_data(session: Session, job: Job) -> Any:
    """The rows (or the export file) a training job trains on."""
    source = read_result(job, SftResult).source
    if source.dataset_id is not None:
        return _version_rows(source, session)
    export_id = source.export_id
    if export_id is not None:
        export = session.get(Export, export_id)
        if export is None or not Path(export.path).is_file():
            raise JobInputError(f"export {export_id} (the training data) no longer exists")
        return Path(export.path)
    if job.source_job_id is None:
        raise JobInputError(f"an {KIND} job needs a source job or an export")
    rows = store.curated_examples(session, job.source_job_id)
    if not rows:
        raise JobInputError(f"job {job.source_job_id} has no curated examples to train on")
    return rows


def run(ctx: JobContext) -> SftResult:
    from app.core.training import TrainingError, run_training  # torch loads only when a job trains

    with ctx.session() as session:
        job = store.get_job(session, ctx.job_id)
        from_version = read_result(job, SftResult).source.dataset_id is not None
        data = training_data(session, job)
    out = ctx.config.run_dir(ctx.job_id)
    params = params_as(ctx.params, SftParams)
    updates: dict[str, Any] = {}
    if params.model_cache_dir is None:
        updates["model_cache_dir"] = ctx.config.model_cache_dir
    if any((out / "checkpoints").glob("checkpoint-*")):
        updates["resume"] = True  # a worker died mid-run: continue from its checkpoint
    params = params.model_copy(update=updates)
    live: dict[str, Any] = {}
    ctx.heartbeat.counters = lambda: dict(live) if live else None

    def progress(info: dict[str, Any]) -> None:
        live.update({k: info.get(k) for k in PROGRESS_KEYS if k in info})
        ctx.report(dict(live))
        ctx.check_stop()

    try:
        metrics = run_training(params, data, out, progress=progress)
    except JobStopped:
        raise
    except (TrainingError, SeedFormatError) as exc:
        raise JobInputError(str(exc)) from None
    result = SftResult(run_dir=str(out), metrics=metrics)
    if from_version:  # a new version's gated run: decide it, only while this worker holds the job
        with ctx.heartbeat.lock, ctx.session() as session:
            store.heartbeat(session, ctx.job_id, ctx.worker)
            decision = training_gate.decide(session, ctx.job_id, metrics)
        if decision is not None:
            result.gate = decision
    return result


def progress(job: Job) -> Progress:
    counters = Counters.of(job)
    return Progress(target=counters.max_steps, done=counters.step, eta_s=counters.eta_s)


SFT = register(JobKind(
    name=KIND,
    params_model=SftParams,
    result_model=SftResult,
    queue=TRAINING_QUEUE,
    run=run,
    check=check,
    progress=progress,
    description="Supervised fine-tuning (TRL + PEFT) on a generation job's curated data, an export or a "
    "dataset version.",
    produces_examples=False,
    defaults_key="train",
    on_created=_record_use,
))
