"""Job bodies: what to run, and a job with its live counters and progress."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import Id, JsonObject
from app.core import jobs
from app.core.jobs import sft
from app.models import Job, JobStatus


class JobCreate(BaseModel):
    """A job to run. `kind` picks the method; `params` are that method's parameters.

    * `self_instruct`: needs `seed_set_id`; params: the Self-Instruct parameters;
    * `evol_instruct`: needs `seed_set_id` or `source_job_id`;
    * `sft`: trains on `source_job_id`'s curated data or on `export_id`; params: the
      trainer's settings.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"kind": "self_instruct", "seed_set_id": 1, "params": {"target": 100, "seed": 7}},
                {"kind": sft.KIND, "source_job_id": 1, "params": {"method": "lora", "max_steps": 200}},
            ]
        },
    )
    kind: str = Field(max_length=32, description="A registered job kind: self_instruct, evol_instruct, sft.",
                      examples=["self_instruct"])
    seed_set_id: Id | None = None
    source_job_id: Id | None = Field(default=None, description="Evol-Instruct's or SFT's source job.")
    export_id: Id | None = Field(default=None, description="SFT only: train on this export's file.")
    params: JsonObject = Field(default_factory=dict, description="Method parameters; unset ones take the defaults.")
    dry_run: bool = Field(default=False, description="Self-Instruct and Evol-Instruct: store nothing; run a pilot of "
                          "a few real requests and answer (200) the tokens, and cost when priced (per million tokens, "
                          "or per GPU-hour at the pilot's tokens/s), expected to reach the target.")


class JobProgress(BaseModel):
    """Where a job stands: `done` of `target` (curated instructions, or training steps)."""

    target: int | None
    done: int
    percent: float | None
    elapsed_s: float | None
    rate_per_min: float | None = Field(description="Curated instructions (or steps) per minute so far.")
    eta_s: float | None = Field(description="Seconds left at the current rate; None when unknown or finished.")


class ResultFieldOut(BaseModel):
    name: str = Field(examples=["tokens_per_accepted"])
    title: str = Field(examples=["Tokens Per Accepted"])
    description: str | None = Field(default=None, examples=["Tokens per accepted example."])
    value: Any = Field(description="The stored value (JSON).")


class JobOut(BaseModel):
    id: int
    kind: str
    status: str = Field(examples=["running"])
    seed_set_id: int | None
    source_job_id: int | None
    params: dict[str, Any]
    counters: dict[str, Any] = Field(
        description="Generation: generated, accepted, rejected (per rule), instances, instances_rejected, "
        "llm_requests, llm_errors, llm_retries, prompt_tokens, completion_tokens, cached_prompt_tokens, "
        "llm_last_errors (the last five failed requests: at, endpoint, message), llm_concurrency (limit per "
        "endpoint), llm_utilisation, llm_busy_share, llm_wall_s (wall time on the model servers, what a price "
        "per GPU-hour bills), roles (per role: generator, responder, judge: llm_requests, llm_errors, "
        "prompt_tokens, completion_tokens, dialect, and cost at the role's price when priced per token). "
        "Training: stage, step, max_steps, loss, eta_s."
    )
    result: dict[str, Any] = Field(description="The kind's result; a generation job's holds total_tokens, "
                                   "tokens_per_accepted, and when priced cost, cost_per_accepted, cost_rate and "
                                   "cost_by_role (each priced role's cost).")
    result_fields: list[ResultFieldOut] = Field(
        default_factory=list,
        description="The result's fields as the kind's result model describes them (title, description, "
        "value), in the model's order: what a client shows of any kind (`GET /kinds` gives each kind's "
        "`result_schema`).")
    error: str | None
    cancel_requested: bool
    attempts: int
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    progress: JobProgress

    @classmethod
    def of(cls, job: Job) -> JobOut:
        data = job.model_dump()
        fields = [ResultFieldOut(name=f.name, title=f.title, description=f.description, value=f.value)
                  for f in jobs.registry.result_fields(job)]
        return cls(**{k: data[k] for k in cls.model_fields if k not in ("progress", "result_fields")},
                   progress=progress_of(job), result_fields=fields)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)  # SQLite drops the zone; we store UTC
    return moment


def progress_of(job: Job) -> JobProgress:
    """Done of target by the kind's own measure (the registry's), with rate and ETA."""
    measure = jobs.get(job.kind).progress(job)
    target, done = measure.target, measure.done
    started, finished = _aware(job.started_at), _aware(job.finished_at)
    elapsed = ((finished or datetime.now(UTC)) - started).total_seconds() if started else None
    rate = done / elapsed * 60 if elapsed and elapsed > 0 else None
    eta = None
    if not JobStatus(job.status).finished and target:
        if measure.eta_s is not None:
            eta = measure.eta_s
        elif rate:
            eta = max(0, target - done) / rate * 60
    return JobProgress(
        target=target,
        done=done,
        percent=round(min(100.0, 100 * done / target), 1) if target else None,
        elapsed_s=round(elapsed, 1) if elapsed is not None else None,
        rate_per_min=round(rate, 2) if rate is not None else None,
        eta_s=round(eta, 1) if eta is not None else None,
    )
