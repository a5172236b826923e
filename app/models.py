"""SQL tables (SQLModel). The SQL row is the source of truth for every job.

A job's candidates are written in batches by the jobs layer (`app.core.jobs`); each candidate carries a
per-job sequence number (`seq`) under a unique constraint, so a batch replayed after a
crash cannot store the same candidate twice. Schema changes go through Alembic
(`migrations/`); `tests/unit/test_migrations.py` fails when the two disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobStatus(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class Fate(str, Enum):
    accepted = "accepted"
    rejected = "rejected"


class ApiKey(SQLModel, table=True):
    """An API key, stored as a SHA-256 hash; `owner` scopes the resources it may see."""

    __tablename__ = "api_keys"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    owner: str = Field(max_length=200, index=True)
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: Optional[datetime] = None


class SeedSet(SQLModel, table=True):
    __tablename__ = "seed_sets"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    owner: Optional[str] = Field(default=None, max_length=200, index=True)
    source_format: str = Field(max_length=32)
    task_count: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class SeedTask(SQLModel, table=True):
    __tablename__ = "seed_tasks"
    __table_args__ = (UniqueConstraint("seed_set_id", "position"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    seed_set_id: int = Field(foreign_key="seed_sets.id", index=True, ondelete="CASCADE")
    position: int
    name: Optional[str] = Field(default=None, max_length=200)
    instruction: str = Field(sa_column=Column(Text, nullable=False))
    is_classification: bool = False
    instances: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Job(SQLModel, table=True):
    """One generation, evolution or training job; `params` holds the validated parameters."""

    __tablename__ = "jobs"
    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)  # a kind of the job registry (`app.core.jobs`)
    status: str = Field(default=JobStatus.queued.value, max_length=16, index=True)  # a JobStatus value
    owner: Optional[str] = Field(default=None, max_length=200, index=True)
    seed_set_id: Optional[int] = Field(default=None, foreign_key="seed_sets.id", index=True)
    source_job_id: Optional[int] = Field(default=None, foreign_key="jobs.id")
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    counters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: Optional[str] = Field(default=None, sa_column=Column(Text))
    cancel_requested: bool = False
    worker: Optional[str] = Field(default=None, max_length=200)
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: Optional[datetime] = None
    heartbeat_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None


class Instruction(SQLModel, table=True):
    """Every candidate instruction a job produced, with its fate and why.

    `in_pool` is true once the instruction passed the instruction filters and joined the
    novelty pool (it stays there even if its instances are later rejected, as in the
    paper). `parent_id`, `operation` and `round` record Evol-Instruct lineage.
    """

    __tablename__ = "instructions"
    __table_args__ = (
        UniqueConstraint("job_id", "seq"),
        Index("ix_instructions_job_fate", "job_id", "fate"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True, ondelete="CASCADE")
    seq: int
    instruction: str = Field(sa_column=Column(Text, nullable=False))
    fate: str = Field(max_length=16)  # a Fate value
    rule: Optional[str] = Field(default=None, max_length=64, index=True)
    max_rouge_l: Optional[float] = None
    most_similar: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    mean_rouge_l: Optional[float] = None
    in_pool: bool = False
    is_classification: Optional[bool] = None
    parent_id: Optional[int] = Field(default=None, foreign_key="instructions.id")
    operation: Optional[str] = Field(default=None, max_length=64)
    round: int = 0
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Instance(SQLModel, table=True):
    """An (input, output) pair of an instruction, with its fate and why."""

    __tablename__ = "instances"
    id: Optional[int] = Field(default=None, primary_key=True)
    instruction_id: int = Field(foreign_key="instructions.id", index=True, ondelete="CASCADE")
    job_id: int = Field(foreign_key="jobs.id", index=True, ondelete="CASCADE")
    position: int
    input: str = Field(default="", sa_column=Column(Text, nullable=False))
    output: str = Field(default="", sa_column=Column(Text, nullable=False))
    fate: str = Field(max_length=16)  # a Fate value
    rule: Optional[str] = Field(default=None, max_length=64)


class Export(SQLModel, table=True):
    __tablename__ = "exports"
    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True, ondelete="CASCADE")
    owner: Optional[str] = Field(default=None, max_length=200, index=True)
    format: str = Field(max_length=32)
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    path: str = Field(max_length=1000)
    rows: int = 0
    bytes: int = 0
    created_at: datetime = Field(default_factory=utcnow)


# --- hand-off: destinations, deliveries, webhooks (`app.core.handoff`) ---------------------
# A delivery or a webhook names its source generically, (`source_kind`, `source_id`): a job
# ("job") today, a dataset version ("dataset_version") as well, without a schema change.


class Destination(SQLModel, table=True):
    """Where bundles go: a folder (`config.path`) or a Hugging Face Hub dataset repo
    (`config.repo_id`, `config.private`); the Hub token comes from the settings, never a row."""

    __tablename__ = "destinations"
    __table_args__ = (UniqueConstraint("owner", "name"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    owner: Optional[str] = Field(default=None, max_length=200, index=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=16)  # "folder" | "hub"
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Delivery(SQLModel, table=True):
    """One bundle of one source sent to one destination, with its retries.

    status: pending (waiting for its first or next attempt), running, done, failed (gave
    up, or an error no retry can fix), blocked (the preflight check failed)."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "status", "next_attempt_at"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    owner: Optional[str] = Field(default=None, max_length=200, index=True)
    destination_id: int = Field(foreign_key="destinations.id", index=True, ondelete="CASCADE")
    source_kind: str = Field(max_length=32)
    source_id: int
    label: str = Field(max_length=200)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: Optional[datetime] = None
    claimed_at: Optional[datetime] = None
    last_error: Optional[str] = Field(default=None, sa_column=Column(Text))
    location: Optional[str] = Field(default=None, max_length=1000)
    bundle_path: Optional[str] = Field(default=None, max_length=1000)
    rows: int = 0
    formats: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    preflight: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: Optional[datetime] = None


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempts"
    id: Optional[int] = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="deliveries.id", index=True, ondelete="CASCADE")
    number: int
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: Optional[datetime] = None
    ok: bool = False
    error: Optional[str] = Field(default=None, sa_column=Column(Text))


class Webhook(SQLModel, table=True):
    """A URL that receives signed JSON events (`events`: names of `app.core.handoff.webhooks.EVENTS`)."""

    __tablename__ = "webhooks"
    id: Optional[int] = Field(default=None, primary_key=True)
    owner: Optional[str] = Field(default=None, max_length=200, index=True)
    url: str = Field(max_length=2000)
    secret: str = Field(max_length=200)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """One event for one webhook: the exact body signed and sent (each retry sends the same
    bytes), its status (pending, running, done, failed) and retries."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    webhook_id: int = Field(foreign_key="webhooks.id", index=True, ondelete="CASCADE")
    event: str = Field(max_length=64)
    event_id: str = Field(max_length=64)
    source_kind: Optional[str] = Field(default=None, max_length=32)
    source_id: Optional[int] = None
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: Optional[datetime] = None
    claimed_at: Optional[datetime] = None
    last_status_code: Optional[int] = None
    last_error: Optional[str] = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: Optional[datetime] = None


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempts"
    id: Optional[int] = Field(default=None, primary_key=True)
    webhook_delivery_id: int = Field(foreign_key="webhook_deliveries.id", index=True, ondelete="CASCADE")
    number: int
    started_at: datetime = Field(default_factory=utcnow)
    duration_ms: Optional[int] = None
    status_code: Optional[int] = None
    error: Optional[str] = Field(default=None, sa_column=Column(Text))
