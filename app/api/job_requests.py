"""Turn a `JobCreate` body into the arguments of `store.create_job`, or a 4xx naming why.

Kinds: every generation method in `runner.METHODS` (its params validated by
`runner.validate_params`, the service defaults overridden by the caller's), and `sft`
(params validated by the trainer's `TrainParams`). Referenced ids must exist and belong
to the caller; an unknown id is a 422 on the field that names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session

from app.api.errors import field_error, request_error
from app.api.schemas.jobs import JobCreate
from app.core import runner
from app.models import Export, Job, JobStatus, SeedSet
from app.settings import Settings


def known_kinds() -> list[str]:
    return sorted({*runner.METHODS, "sft"})


def _owned(session: Session, model: type, ident: int, owner: str, field: str, what: str) -> Any:
    row = session.get(model, ident)
    if row is None or row.owner != owner:
        raise field_error(("body", field), f"no {what} with id {ident}")
    return row


def creation_args(session: Session, body: JobCreate, owner: str, settings: Settings) -> dict[str, Any]:
    if body.kind not in known_kinds():
        raise field_error(("body", "kind"), f"unknown job kind {body.kind!r}; known: {', '.join(known_kinds())}")
    if body.kind == "sft":
        return _training(session, body, owner, settings)
    return _generation(session, body, owner, settings)


def _generation(session: Session, body: JobCreate, owner: str, settings: Settings) -> dict[str, Any]:
    if body.export_id is not None:
        raise field_error(("body", "export_id"), f"a {body.kind} job takes no export_id (only sft does)")
    try:
        params = runner.validate_params(body.kind, body.params, settings)
    except ValidationError as exc:
        raise request_error(exc, "body", "params") from None
    if body.seed_set_id is None and (body.kind == "self_instruct" or body.source_job_id is None):
        needs = "seed_set_id" if body.kind == "self_instruct" else "seed_set_id or source_job_id"
        raise field_error(("body", "seed_set_id"), f"a {body.kind} job needs {needs}", "missing")
    if body.seed_set_id is not None:
        seed_set = _owned(session, SeedSet, body.seed_set_id, owner, "seed_set_id", "seed set")
        _check_enough_seeds(body.kind, params.model_dump(), seed_set)
    if body.source_job_id is not None:
        source = _owned(session, Job, body.source_job_id, owner, "source_job_id", "job")
        _check_source(body, source)
    return {"kind": body.kind, "params": params.model_dump(mode="json"), "seed_set_id": body.seed_set_id,
            "source_job_id": body.source_job_id}


def _check_source(body: JobCreate, source: Job) -> None:
    """A generation job's source job: a finished generation job with accepted instructions."""
    def refuse(msg: str) -> None:
        raise field_error(("body", "source_job_id"), msg)

    if body.seed_set_id is not None:
        refuse(f"a {body.kind} job starts from a seed set or a source job, not both")
    if source.kind == "sft":
        refuse(f"job {source.id} is a training job; start from a generation job")
    if not JobStatus(source.status).finished:
        refuse(f"job {source.id} is still {source.status}; start from it once it has finished")
    if not (source.counters or {}).get("accepted"):
        refuse(f"job {source.id} has no accepted instructions")


def _check_enough_seeds(kind: str, params: dict[str, Any], seed_set: SeedSet) -> None:
    """Self-Instruct draws `prompt_instructions - prompt_machine_instructions` seeds per prompt."""
    if kind != "self_instruct":
        return
    needed = params["prompt_instructions"] - params["prompt_machine_instructions"]
    if seed_set.task_count < needed:
        raise field_error(
            ("body", "seed_set_id"),
            f"seed set {seed_set.id} has {seed_set.task_count} task(s); a prompt needs {needed} human seeds "
            "(lower params.prompt_instructions or upload more seeds)",
        )


def _training(session: Session, body: JobCreate, owner: str, settings: Settings) -> dict[str, Any]:
    from app.core.training import TrainParams  # cheap: no torch until training runs

    if body.seed_set_id is not None:
        raise field_error(("body", "seed_set_id"), "an sft job trains on a job's curated data: "
                          "give source_job_id or export_id, not seed_set_id")
    if (body.source_job_id is None) == (body.export_id is None):
        raise field_error(("body", "source_job_id"), "an sft job needs exactly one of source_job_id or export_id",
                          "missing")
    _check_training_paths(body.params, settings)
    try:
        # the service's training defaults (SPROUT_TRAIN__*), overridden by the request
        params = TrainParams.model_validate({**settings.train.model_dump(exclude_unset=True), **body.params})
    except ValidationError as exc:
        raise request_error(exc, "body", "params") from None
    source_job_id, export_id = body.source_job_id, body.export_id
    if export_id is not None:
        source_job_id = _owned(session, Export, export_id, owner, "export_id", "export").job_id
    else:
        source = _owned(session, Job, source_job_id, owner, "source_job_id", "job")
        if source.kind == "sft":
            raise field_error(("body", "source_job_id"), f"job {source.id} is a training job; train on a generation job")
    return {"kind": "sft", "params": params.model_dump(mode="json"), "source_job_id": source_job_id,
            "result": {"source": {"job_id": source_job_id, "export_id": export_id}}}


def _check_training_paths(params: dict[str, Any], settings: Settings) -> None:
    """Paths in a request name files on the workers: only inside the data dir.

    `model_cache_dir` is the service's own business; `base_model` is "default" or a model
    under `<data_dir>`; `eval_tasks` a file under `<data_dir>`. A caller with a key cannot
    make a worker read (or write) elsewhere on its disk.
    """
    if "model_cache_dir" in params:
        raise field_error(("body", "params", "model_cache_dir"), "set by the service (SPROUT_DATA_DIR), not per job")
    root = Path(settings.data_dir).resolve()
    for field in ("base_model", "eval_tasks"):
        value = params.get(field)
        if value is None or (field == "base_model" and value == "default"):
            continue
        if not isinstance(value, str) or not Path(value).resolve().is_relative_to(root):
            allowed = "'default' or a path" if field == "base_model" else "a path"
            raise field_error(("body", "params", field), f"must be {allowed} inside the service's data directory ({root})")
