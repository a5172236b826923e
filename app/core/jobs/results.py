"""What a job records, read through models: the base of every kind's result model, and its counters.

A job's `result` and `counters` are JSON columns, written by several hands over a job's life
(the kind's `check` when the job is made, the kind's `run`, the lifecycle's follow-ups), and
read by every shell. Reading them through a model says in one place what each key is, lets
the type checker follow a key from its writer to its readers, and lets the API publish a
kind's result schema (`GET /kinds`) so a client shows a new kind's figures without knowing it.

Every model here tolerates the rows already stored: keys it does not declare are kept
(`extra="allow"`), a key it declares but the row lacks takes its default, and a counter
stored as null reads as its default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.params import BuildOrigin
from app.models import Job

R = TypeVar("R", bound=BaseModel)


class JobResult(BaseModel):
    """What every job's result may hold, whatever its kind: the ids of the follow-up jobs the
    lifecycle made as it succeeded (`outcome.py`). A kind's result model extends it."""

    model_config = ConfigDict(extra="allow")

    followups: list[int] | None = Field(default=None, description="The follow-up jobs made as the job succeeded.")


def dump_result(result: BaseModel) -> dict[str, Any]:
    """The JSON stored for `result`: the fields it was given (a field left at its default is
    not written, so a kind's stored keys are the ones it sets, as before the models)."""
    return result.model_dump(mode="json", exclude_unset=True)


def read_result(job: Job, model: type[R]) -> R:
    """The job's stored result read through `model` (an old row's missing fields default)."""
    return model.model_validate(job.result or {})


@dataclass(frozen=True)
class ResultField:
    """One field a job's result holds, as its model describes it (for a client to show)."""

    name: str
    title: str
    description: str | None
    value: Any


def result_fields(result: BaseModel) -> list[ResultField]:
    """The declared fields `result` holds (those its row sets), in the model's order, each with
    its model's title and description: what a client shows of a kind it does not know."""
    data = result.model_dump(mode="json")
    return [ResultField(name, info.title or name.replace("_", " "), info.description, data[name])
            for name, info in type(result).model_fields.items() if name in result.model_fields_set]


class RoleUsage(BaseModel):
    """One role's share of a job's model requests (`counters.roles[role]`)."""

    model_config = ConfigDict(extra="allow")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_requests: int = 0
    llm_errors: int = 0
    dialect: str | None = None
    cost: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _nulls_default(cls, data: Any) -> Any:
        return _drop_nulls(cls, data)


class OperationFates(BaseModel):
    """One Evol-Instruct operation's outcomes (`counters.operations[op]`)."""

    model_config = ConfigDict(extra="allow")

    accepted: int = 0
    rejected: int = 0

    @model_validator(mode="before")
    @classmethod
    def _nulls_default(cls, data: Any) -> Any:
        return _drop_nulls(cls, data)


class Counters(BaseModel):
    """A job's live counters (`job.counters`), as the kinds write them: the generation kinds'
    candidates and rejections, the model servers' usage, a judge's progress, a training
    run's step, a build's step, a hand-off's deliveries. A kind writes only its own."""

    model_config = ConfigDict(extra="allow")

    generated: int = 0
    accepted: int = 0
    rejected: dict[str, int] = Field(default_factory=dict)
    instances: int = 0
    instances_rejected: dict[str, int] = Field(default_factory=dict)
    operations: dict[str, OperationFates] = Field(default_factory=dict)
    llm_requests: int = 0
    llm_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_wall_s: float | None = None
    roles: dict[str, RoleUsage] = Field(default_factory=dict)
    # a judge (the score kind, or a generation job's score_with_judge)
    judge: str | None = None
    judged: int = 0
    judge_examples: int | None = None
    judge_unparseable: int = 0
    # a training run
    stage: str | None = None
    step: int = 0
    max_steps: int | None = None
    loss: float | None = None
    eta_s: float | None = None
    # a dataset build (`step` of `steps`, `accepted` of `target`)
    steps: int | None = None
    target: int | None = None
    # a version's hand-off
    destinations: int | None = None
    deliveries: int = 0

    @model_validator(mode="before")
    @classmethod
    def _nulls_default(cls, data: Any) -> Any:
        return _drop_nulls(cls, data)

    @classmethod
    def of(cls, job: Job) -> Counters:
        return cls.model_validate(job.counters or {})

    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def role_dicts(self) -> dict[str, dict[str, Any]]:
        """`roles` as the JSON the counters hold (what `budget.Budget` prices)."""
        return {role: used.model_dump(exclude_none=True) for role, used in self.roles.items()}

    def operation_dicts(self) -> dict[str, dict[str, int]]:
        return {op: fates.model_dump() for op, fates in self.operations.items()}


def _drop_nulls(model: type[BaseModel], data: Any) -> Any:
    """A declared field stored as null reads as its default (rows written before a counter
    had one); undeclared keys are kept as they are."""
    if not isinstance(data, dict):
        return data
    return {k: v for k, v in data.items() if v is not None or k not in model.model_fields}


class _StepParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    build: BuildOrigin | None = None


def step_origin(job: Job | None) -> BuildOrigin | None:
    """Which dataset build `job` is a step of (its `params.build`), or None. A step made
    before the origin was a parameter holds it in its result (`result["build"]`): read too."""
    if job is None:
        return None
    return (_StepParams.model_validate(job.params or {}).build
            or _StepParams.model_validate(job.result or {}).build)
