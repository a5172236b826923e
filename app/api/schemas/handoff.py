"""Hand-off bodies: destinations, deliveries (with their preflight report and attempts),
webhooks (with their deliveries and attempts), a dataset's hand-off settings (destinations,
training and its gate) and a version's gated training run."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.schemas.common import Id, Text
from app.core.handoff.config import Format
from app.core.handoff.gate import DEFAULT_TOLERANCE

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
Event = Literal[  # app.core.handoff.webhooks.EVENTS
    "version_created", "delivery_done", "training_finished", "job_finished"]


class DestinationCreate(BaseModel):
    """A folder on a disk the service writes to (inside `SPROUT_HANDOFF__FOLDER_ROOTS`), or a
    Hugging Face Hub dataset repo (the token is the service's `SPROUT_HANDOFF__HUB_TOKEN`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "cluster", "kind": "folder", "path": "/srv/sprout/handoff/out"},
        {"name": "hub", "kind": "hub", "repo_id": "my-org/grown-instructions", "private": True},
    ]})
    name: str = Field(pattern=NAME_PATTERN, description="Unique among your destinations.")
    kind: Literal["folder", "hub"]
    path: Text | None = Field(default=None, max_length=1000, description="folder: an absolute path.")
    repo_id: Text | None = Field(default=None, max_length=200, description="hub: `owner/name` of a dataset repo.")
    private: bool = Field(default=True, description="hub: create the repo private (the default).")
    mode: str | None = Field(default=None, max_length=4, examples=["644"],
                             description="folder: the delivered files' octal mode (folders get x where readable); "
                                         "default: the service's umask.")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> DestinationCreate:
        if self.kind == "folder" and (self.path is None or self.repo_id is not None):
            raise ValueError("a folder destination takes 'path' (and no 'repo_id')")
        if self.kind == "hub" and (self.repo_id is None or self.path is not None):
            raise ValueError("a hub destination takes 'repo_id' (and no 'path')")
        return self


class DestinationOut(BaseModel):
    id: int
    name: str
    kind: str
    config: dict[str, Any] = Field(examples=[{"path": "/srv/sprout/handoff/out"}])
    created_at: datetime


class DeliveryCreate(BaseModel):
    """Bundle a finished job's curated data, or a dataset version, check it, and send it to a
    destination. The bundle lands at `<path>/<name>/job-<id>` or `<path>/<name>/v<N>` (a
    folder; `latest` then points at the newest version), or is pushed and tagged (Hub)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"job_id": 1, "destination_id": 1, "name": "grown-instructions"},
        {"job_id": 2, "destination_id": 1, "formats": ["sharegpt", "parquet"], "final_only": True},
        {"dataset": "support-sft", "version": "latest", "destination_id": 1},
    ]})
    job_id: Id | None = Field(default=None, description="A finished job (or give `dataset`).")
    dataset: str | None = Field(default=None, pattern=NAME_PATTERN, description="One of your datasets (or give "
                                "`job_id`): its version `version` is delivered.")
    version: Id | Annotated[str, Field(min_length=1, max_length=64)] = Field(
        default="latest", description="With `dataset`: a version number, `latest` or a tag.")
    destination_id: Id
    name: str | None = Field(default=None, pattern=NAME_PATTERN,
                             description="The dataset's name (its folder, its card's title). Default: the dataset's "
                             "name, or sprout-job-<id>.")
    formats: list[Format] | None = Field(default=None, min_length=1, description="Default: SPROUT_HANDOFF__FORMATS.")
    system: Text | None = Field(default=None, max_length=10_000, description="A system prompt added to every row.")
    final_only: bool = Field(default=False, description="Evol-Instruct: only each lineage's last surviving generation.")
    include_roots: bool = Field(default=True, description="Evol-Instruct: include the starting pool (round 0).")

    @model_validator(mode="after")
    def _one_source(self) -> DeliveryCreate:
        if (self.job_id is None) == (self.dataset is None):
            raise ValueError("give exactly one of job_id or dataset")
        if self.dataset is not None and (self.final_only or not self.include_roots):
            raise ValueError("final_only and include_roots apply to a job; a dataset version is delivered whole")
        return self


class AttemptOut(BaseModel):
    number: int
    started_at: datetime
    ok: bool
    error: str | None
    status_code: int | None = Field(default=None, description="Webhooks: the receiver's HTTP status.")
    duration_ms: int | None = None


class DeliveryOut(BaseModel):
    id: int
    status: str = Field(examples=["done"], description="pending, running, done, failed or blocked (by preflight).")
    label: str = Field(examples=["job-1"])
    source_kind: str = Field(examples=["job"])
    source_id: int
    destination_id: int
    location: str | None = Field(description="Where the bundle landed: a folder path or a Hub URL.")
    rows: int
    formats: list[str]
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a failed attempt is tried again.")
    last_error: str | None
    preflight: dict[str, Any] = Field(description="The preflight report: `ok`, `checks`, `problems` (rows named).")
    created_at: datetime
    finished_at: datetime | None
    attempt_log: list[AttemptOut] = Field(default_factory=list)


class WebhookCreate(BaseModel):
    """A URL that receives signed JSON events. Each request carries `X-Sprout-Event`,
    `X-Sprout-Delivery` and `X-Sprout-Signature: sha256=<HMAC-SHA256 of the raw body with the secret>`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"url": "https://ci.example.com/hooks/sprout", "events": ["delivery_done", "training_finished"]},
    ]})
    url: Text = Field(max_length=2000)
    events: list[Event] = Field(min_length=1)
    secret: Text | None = Field(default=None, min_length=16, max_length=200,
                                description="Signing secret; generated when left out (shown once).")


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    active: bool
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Shown once: keep it to verify signatures.")


class WebhookDeliveryOut(BaseModel):
    id: int
    event: str = Field(examples=["delivery_done"])
    event_id: str
    status: str = Field(examples=["done"], description="pending, running, done or failed.")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    body: str = Field(description="The exact JSON body sent (the signature covers these bytes).")
    attempt_log: list[AttemptOut] = Field(default_factory=list)


# --- a dataset's hand-off settings, and a version's gated training run ---------------------------
class GateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str = Field(default="prod", min_length=1, max_length=64,
                     description="The tag moved to a new version whose run is not worse (not `latest`).")
    tolerance: dict[Literal["eval_loss_after", "rouge_l_after"], float] = Field(
        default_factory=lambda: dict(DEFAULT_TOLERANCE),
        description="How much worse (absolute) still passes, per metric: held-out loss (lower is better) and "
        "ROUGE-L (higher is better), both measured on the dataset's evaluation tasks.",
    )


class EvalTaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instruction: Text = Field(min_length=1, max_length=100_000)
    input: Text = Field(default="", max_length=100_000)
    output: Text = Field(min_length=1, max_length=100_000)


class TrainingIn(BaseModel):
    """Train each new version (an `sft` job on the training queue) and gate a tag on the result."""

    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the trainer's parameters (those of an `sft` job), checked "
        "now; file paths inside the service's data directory.",
        examples=[{"method": "lora", "max_steps": 200, "eval_max_tasks": 50}])
    gate: GateIn = Field(default_factory=GateIn)
    eval_tasks: list[EvalTaskIn] | None = Field(
        default=None, max_length=2000,
        description="The evaluation tasks every run is scored on (held-out loss and ROUGE-L), fixed now. "
        "Default: every instance with an output of the recipe's seed sets.")


class DatasetHandoffSet(BaseModel):
    """Where each new version goes, and whether it trains a model gated on the last one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"destination_ids": [1], "training": {"params": {"max_steps": 200}, "gate": {"tag": "prod"}}},
        {"destination_ids": [1, 2], "training": None},
    ]})
    destination_ids: list[Id] = Field(default_factory=list, max_length=100,
                                      description="Your destinations; every new version is delivered to each.")
    training: TrainingIn | None = Field(default=None, description="None: new versions are not trained on.")


class EvalSetOut(BaseModel):
    source: str
    tasks: int
    sha256: str
    path: str


class TrainingSettingsOut(BaseModel):
    params: dict[str, Any]
    gate: dict[str, Any] = Field(examples=[{"tag": "prod", "tolerance": DEFAULT_TOLERANCE}])
    eval: EvalSetOut


class DatasetHandoffOut(BaseModel):
    destinations: list[DestinationOut]
    training: TrainingSettingsOut | None


class GateOut(BaseModel):
    tag: str = Field(examples=["prod"])
    tolerance: dict[str, float]
    eval_sha256: str = Field(description="The evaluation tasks the run was scored on.")
    promoted: bool | None = Field(description="None until the run has ended and been compared.")
    decision: str | None = Field(examples=["promoted: not worse than the run on version 2 within the tolerance"])
    baseline_job_id: int | None = Field(description="The run it was compared with (on the version the tag held).")
    baseline_version: int | None
    table: list[dict[str, Any]] = Field(
        description="One row per metric: metric, previous, new, delta, better, tolerance, verdict.",
        examples=[[{"metric": "eval_loss_after", "previous": 1.92, "new": 1.71, "delta": -0.21, "better": "lower",
                    "tolerance": 0.05, "verdict": "better"}]])
    decided_at: str | None


class TrainingOut(BaseModel):
    """A version's gated training run: the `sft` job, its figures and the gate's decision."""

    job_id: int
    status: str = Field(examples=["succeeded"])
    error: str | None = None
    metrics: dict[str, Any] | None = Field(examples=[{"eval_loss_after": 1.71, "rouge_l_after": 0.34}])
    gate: GateOut
