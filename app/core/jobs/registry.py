"""The registry of job kinds: a kind is declared once, here, and every shell reads it.

A `JobKind` says everything the rest of Sprout needs to know about one kind of job:

* `params_model` validates its parameters (the service defaults overridden per job);
* `queue` is the Celery queue its workers listen on (`generation`, `training`, ...);
* `check` validates what a request references (seed set, source job, export) before a
  job row exists, raising `JobRequestError` naming the field;
* `run` does the work for the lifecycle (`app.core.jobs.lifecycle`), which claims,
  heartbeats, commits and finishes every kind the same way; it returns the job's result,
  or an `Outcome` that adds the follow-up jobs to make when it succeeds (`outcome.py`);
* `result_model` says what that result holds: the lifecycle stores the result through it,
  every reader reads it back through it (`read_result`, `result_of`), and the API publishes
  its schema (`GET /kinds`), so a client can show a new kind's figures without knowing it.
  A `JobKind[P, R]` is generic over its params model `P` and its result model `R`;
* `progress` says how far a job is (`done` of `target`), for the API and the CLI;
* `produces_examples`: its rows are curated examples (generation kinds), so it can be
  exported, evolved, trained on, or be a step of a dataset's recipe;
* `takes_source_job`: it can start from another job's curated data (a recipe step whose
  source is `previous`);
* `on_created` (optional) records what the new job row holds on to, in the transaction
  that creates it (e.g. a training run's use of a dataset version, which keeps the
  version from being deleted).

Adding a kind is one module that builds a `JobKind` and calls `register`, plus one import
line in `app/core/jobs/__init__.py`. The API's validation, the CLI, the Celery task and
the progress shown everywhere then know it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from app.core.jobs.outcome import Outcome
from app.core.jobs.results import JobResult, ResultField, dump_result, read_result
from app.core.jobs.results import result_fields as fields_of
from app.core.methods.candidates import JobInputError
from app.core.params import BuildOrigin
from app.models import Job

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

GENERATION_QUEUE = "generation"
TRAINING_QUEUE = "training"


class JobRequestError(JobInputError):
    """A job request the caller must fix; `field` names the request field at fault."""

    def __init__(self, field: str, message: str, kind: str = "value_error"):
        super().__init__(message)
        self.field, self.kind = field, kind


@dataclass
class JobRequest:
    """What a shell asks for: a kind, its parameters, and what it starts from.

    `owner` scopes the referenced rows (another owner's row is "not found"; None, the
    operator on the command line, sees every row);
    `data_root`, when set (the API), confines file paths in parameters to that folder;
    `build`, set by a dataset build only, makes the job one of its steps (`params.build`).
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    seed_set_id: int | None = None
    source_job_id: int | None = None
    export_id: int | None = None
    owner: str | None = None
    data_root: Path | None = None
    build: BuildOrigin | None = None


@dataclass
class Progress:
    target: int | None
    done: int
    eta_s: float | None = None  # when the kind knows better than done/rate


@dataclass
class JobKind(Generic[P, R]):
    name: str
    params_model: type[P]
    queue: str
    # (lifecycle.JobContext) -> the job's result: its model, or an Outcome carrying it (a plain
    # dict, or None, is read through `result_model` too)
    run: Callable[[Any], R | Outcome | dict[str, Any] | None]
    check: Callable[[Session, JobRequest, P], dict[str, Any]]  # -> extra `store.create_job` arguments
    progress: Callable[[Job], Progress]
    # what the job's `result` holds (default: any keys, for a kind that declares none)
    result_model: type[R] = cast(Any, JobResult)
    description: str = ""
    produces_examples: bool = True
    takes_source_job: bool = False  # can start from another job's curated data (a recipe's `previous`)
    needs_llm: bool = False
    # the `Settings` field holding this kind's service-wide defaults (`CoreConfig.defaults`)
    defaults_key: str | None = None
    # (session, the new job row): called by `requests.create_job` once the row exists
    on_created: Callable[[Session, Job], None] | None = None

    def validate_params(self, overrides: dict[str, Any], defaults: dict[str, dict[str, Any]] | None = None) -> P:
        """The service defaults for this kind overridden by `overrides`; raises pydantic's
        ValidationError naming the bad field."""
        base = (defaults or {}).get(self.defaults_key or self.name, {})
        fixed = server_set(self.params_model)  # never a service default
        return self.params_model.model_validate({**{k: v for k, v in base.items() if k not in fixed}, **overrides})

    def read_result(self, job: Job) -> R:
        """The job's stored result through this kind's model (old rows: missing fields default)."""
        return read_result(job, self.result_model)

    def store_result(self, result: BaseModel | dict[str, Any] | None) -> dict[str, Any]:
        """What the lifecycle stores for what `run` returned: validated by this kind's result
        model (a wrong type is a bug of the kind's, raised), dumped as JSON with the keys set."""
        if isinstance(result, self.result_model):
            return dump_result(result)
        if isinstance(result, BaseModel):  # another model (a shared one): its keys, checked here
            result = dump_result(result)
        return dump_result(self.result_model.model_validate(result or {}))


def server_set(model: type[BaseModel]) -> set[str]:
    """The parameters the service sets itself (`readOnly` in their schema, e.g. a build
    step's `build`): no caller and no service default gives them."""
    return {name for name, info in model.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("readOnly") is True}


def params_as(params: BaseModel, model: type[P]) -> P:
    """`params` as the kind's own params model, for the type checker: one `JobContext` type
    carries every kind's params (validated by the kind's `params_model`), so a kind's `run`
    reads its own fields through this."""
    if not isinstance(params, model):
        raise TypeError(f"expected {model.__name__} parameters, got {type(params).__name__}")
    return params


_KINDS: dict[str, JobKind[Any, Any]] = {}


def result_of(job: Job) -> BaseModel:
    """The job's stored result through its kind's model (`JobResult` for an unknown kind)."""
    kind = _KINDS.get(job.kind)
    model: type[BaseModel] = kind.result_model if kind is not None else JobResult
    return read_result(job, model)


def result_fields(job: Job) -> list[ResultField]:
    """The job's result fields as its kind's model describes them (`results.result_fields`);
    none for a row its model cannot read."""
    try:
        return fields_of(result_of(job))
    except ValidationError:
        return []


def register(kind: JobKind[P, R]) -> JobKind[P, R]:
    """Declare a job kind (a second declaration of one name replaces the first)."""
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _KINDS.pop(name, None)


def get(name: str) -> JobKind[Any, Any]:
    try:
        return _KINDS[name]
    except KeyError:
        raise JobRequestError("kind", f"unknown job kind {name!r}; known: {', '.join(names())}") from None


def names() -> list[str]:
    return sorted(_KINDS)


def queues() -> list[str]:
    return sorted({k.queue for k in _KINDS.values()})


def produces_examples(name: str) -> bool:
    kind = _KINDS.get(name)
    return bool(kind and kind.produces_examples)
