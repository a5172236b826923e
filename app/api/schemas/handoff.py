"""Hand-off bodies: destinations, deliveries (with their preflight report and attempts),
webhooks (with their deliveries and attempts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.schemas.common import Id, Text
from app.core.handoff.config import Format

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
    """Bundle a finished job's curated data, check it, and send it to a destination. The
    bundle lands at `<path>/<name>/job-<id>` (a folder) or is pushed and tagged `job-<id>` (Hub)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"job_id": 1, "destination_id": 1, "name": "grown-instructions"},
        {"job_id": 2, "destination_id": 1, "formats": ["sharegpt", "parquet"], "final_only": True},
    ]})
    job_id: Id
    destination_id: Id
    name: str | None = Field(default=None, pattern=NAME_PATTERN,
                             description="The dataset's name (its folder, its card's title). Default: sprout-job-<id>.")
    formats: list[Format] | None = Field(default=None, min_length=1, description="Default: SPROUT_HANDOFF__FORMATS.")
    system: Text | None = Field(default=None, max_length=10_000, description="A system prompt added to every row.")
    final_only: bool = Field(default=False, description="Evol-Instruct: only each lineage's last surviving generation.")
    include_roots: bool = Field(default=True, description="Evol-Instruct: include the starting pool (round 0).")


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
