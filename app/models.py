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


class PersonaSet(SQLModel, table=True):
    """A persona set (`app.core.methods.personas`): the people a `persona` job writes tasks as."""

    __tablename__ = "persona_sets"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    owner: Optional[str] = Field(default=None, max_length=200, index=True)
    source_format: str = Field(max_length=32)
    persona_count: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class Persona(SQLModel, table=True):
    """One persona of a set, at its position (the id a job records with what it wrote)."""

    __tablename__ = "personas"
    __table_args__ = (UniqueConstraint("persona_set_id", "position"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    persona_set_id: int = Field(foreign_key="persona_sets.id", index=True, ondelete="CASCADE")
    position: int
    text: str = Field(sa_column=Column(Text, nullable=False))


class TopicTree(SQLModel, table=True):
    """A topic tree (`app.core.methods.topic_tree`): nested `{"topic", "children"}`, grown by a `topic_tree`
    job from `root` or uploaded, and replaced whole when edited."""

    __tablename__ = "topic_trees"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    owner: Optional[str] = Field(default=None, max_length=200, index=True)
    tree: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    made_by: str = Field(default="upload", max_length=16)  # upload | grown | edited
    grown_by_job_id: Optional[int] = None  # the job that grew it (no foreign key: the tree outlives it)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


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


class BenchmarkSet(SQLModel, table=True):
    """Evaluation items that generated data must not reproduce (`decontaminate_against`)."""

    __tablename__ = "benchmark_sets"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    owner: Optional[str] = Field(default=None, max_length=200, index=True)
    source_format: str = Field(max_length=32)
    item_count: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class BenchmarkItemRow(SQLModel, table=True):
    """One benchmark item: a prompt (instruction + input) and an output, compared field by field."""

    __tablename__ = "benchmark_items"
    __table_args__ = (UniqueConstraint("benchmark_set_id", "position"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    benchmark_set_id: int = Field(foreign_key="benchmark_sets.id", index=True, ondelete="CASCADE")
    position: int
    item: str = Field(max_length=200)
    prompt: str = Field(sa_column=Column(Text, nullable=False))
    output: str = Field(default="", sa_column=Column(Text, nullable=False))


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
        # the score sorts' order (results sorted by max ROUGE-L, ties by seq): a page deep in
        # a million-row job starts from the index instead of sorting the rows before it
        Index("ix_instructions_job_score", "job_id", "max_rouge_l", "seq"),
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
    # a conversation's later turns after (input, output), `app.core.conversation`; [] for one exchange
    turns: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False,
                                                                               server_default="[]"))
    fate: str = Field(max_length=16)  # a Fate value
    rule: Optional[str] = Field(default=None, max_length=64)


class ExampleScore(SQLModel, table=True):
    """A judge's score of one example (an instance) on one aspect (`quality`, `complexity`).

    One row per (instance, aspect, judge): the same judge scoring again replaces its row
    (and a resumed scoring job never stores twice); another judge's scores stand beside.
    `score` is null unless `status` is "ok" (an unparseable answer is kept as `raw`);
    `scoring_job_id` is the job that asked (a `score` job, or the generation job itself
    when it scored its own examples).
    """

    __tablename__ = "example_scores"
    __table_args__ = (
        UniqueConstraint("instance_id", "aspect", "judge"),
        Index("ix_example_scores_job_aspect", "job_id", "aspect"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    instance_id: int = Field(foreign_key="instances.id", ondelete="CASCADE")
    job_id: int = Field(foreign_key="jobs.id", ondelete="CASCADE")  # the job the instance belongs to
    scoring_job_id: Optional[int] = Field(default=None, foreign_key="jobs.id", ondelete="SET NULL")
    aspect: str = Field(max_length=32)
    judge: str = Field(max_length=200)  # the judge model's name
    score: Optional[float] = None
    parsed: Optional[int] = None
    raw: str = Field(default="", sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=16)  # ok | unparseable | error
    from_logprobs: bool = False
    created_at: datetime = Field(default_factory=utcnow)


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


# --- datasets: named, versioned, growing collections of curated examples -------------------
# Membership is stored once per example: a row belongs to version v when
# added_in <= v and (removed_in is null or removed_in > v). Storage grows with the
# examples, never with examples x versions. See app/core/datasets/__init__.py.


class VersionKind(str, Enum):
    build = "build"
    removal = "removal"
    correction = "correction"
    review = "review"  # a committed review: rejected rows removed, edited rows corrected


class ReviewStatus(str, Enum):
    accepted = "accepted"
    rejected = "rejected"
    edited = "edited"


class MissedFirePolicy(str, Enum):
    skip = "skip"
    run_once = "run_once"


class FireStatus(str, Enum):
    started = "started"  # claimed and its build job created; becomes built or failed
    built = "built"
    skipped = "skipped"  # a build of the dataset was still running
    failed = "failed"
    missed = "missed"  # due while no beat was running, and the policy let it go


class Dataset(SQLModel, table=True):
    """A named dataset: its recipe, its schedule, and (in other tables) its versions."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("owner", "name"),)  # also the index of an owner's datasets
    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=200)
    name: str = Field(max_length=100)
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    license: str | None = Field(default=None, max_length=100)
    recipe: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    schedule_cron: str | None = Field(default=None, max_length=120)
    schedule_timezone: str = Field(default="UTC", max_length=64)
    missed_fire_policy: str = Field(default=MissedFirePolicy.skip.value, max_length=16)  # a MissedFirePolicy value
    schedule_paused: bool = False
    pause_reason: str | None = Field(default=None, sa_column=Column(Text))
    # fires are due after this instant (set when a schedule is set or resumed)
    schedule_anchor_at: datetime | None = None
    # hand-off: train each new version and gate a tag on the result (`app.core.handoff.dataset_settings`);
    # null: no training on new versions
    training: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DatasetVersion(SQLModel, table=True):
    """One immutable version: its place in the line, what made it, its size, hash and card."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="datasets.id", ondelete="CASCADE")
    number: int
    parent_id: int | None = Field(default=None, foreign_key="dataset_versions.id")
    # unique: a build resumed after its worker died commits at most one version
    build_job_id: int | None = Field(default=None, foreign_key="jobs.id", unique=True)
    kind: str = Field(max_length=16)  # a VersionKind value
    created_at: datetime = Field(default_factory=utcnow)
    row_count: int = 0
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    content_hash: str = Field(max_length=64)
    card: str = Field(default="", sa_column=Column(Text, nullable=False))


class DatasetExample(SQLModel, table=True):
    """One example of a dataset, stored once, with the versions that added and removed it.

    `position` orders the rows a version added; (`added_in`, `position`) is the stable
    order of every version. `digest` is the sha256 of the row's canonical content, so a
    version's hash is updated without re-reading the content of unchanged rows.
    """

    __tablename__ = "dataset_examples"
    __table_args__ = (
        UniqueConstraint("dataset_id", "added_in", "position"),
        Index("ix_dataset_examples_removed", "dataset_id", "removed_in"),
    )
    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="datasets.id", ondelete="CASCADE")
    instruction: str = Field(sa_column=Column(Text, nullable=False))
    input: str = Field(default="", sa_column=Column(Text, nullable=False))
    output: str = Field(default="", sa_column=Column(Text, nullable=False))
    # a conversation's later turns (`app.core.conversation`); [] for one exchange
    turns: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False,
                                                                               server_default="[]"))
    method: str = Field(max_length=32)
    # provenance, as recorded at build time; no foreign keys: the example outlives the job
    # rows it came from, and a key would make deleting a job scan this table
    source_job_id: int | None = None
    source_instruction_id: int | None = None
    lineage: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    scores: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    digest: str = Field(max_length=64)
    added_in: int
    removed_in: int | None = None
    replaces_id: int | None = Field(default=None, foreign_key="dataset_examples.id", index=True)
    position: int


class ExampleReview(SQLModel, table=True):
    """A reviewer's decision on one example of a dataset: accepted, rejected (with its
    reason), or edited (the new output; the example's own text stays the original), with
    an optional 1-5 rating, who decided and when.

    Pending while `committed_in` is null (one per example: the latest decision replaces
    the earlier); committing the review makes version `committed_in` and keeps the rows,
    so a version's diff and card can say why each row left.
    """

    __tablename__ = "example_reviews"
    __table_args__ = (Index("ix_example_reviews_pending", "dataset_id", "committed_in"),)
    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="datasets.id", ondelete="CASCADE")
    example_id: int = Field(foreign_key="dataset_examples.id", ondelete="CASCADE", index=True)
    status: str = Field(max_length=16)  # a ReviewStatus value
    reason: str | None = Field(default=None, sa_column=Column(Text))
    rating: int | None = None
    output: str | None = Field(default=None, sa_column=Column(Text))  # edited: the new output
    reviewer: str = Field(max_length=200)
    reviewed_at: datetime = Field(default_factory=utcnow)
    committed_in: int | None = None


class DatasetHashSegment(SQLModel, table=True):
    """The digest of the live rows one version added, valid for versions [from_version, to_version).

    A version's content hash combines the digests of its segments; a build adds one
    segment and a removal replaces the segments it touches, so a commit never re-reads
    the rows it leaves alone (see app/core/datasets/content.py).
    """

    __tablename__ = "dataset_hash_segments"
    __table_args__ = (UniqueConstraint("dataset_id", "added_in", "from_version"),)
    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="datasets.id", ondelete="CASCADE")
    added_in: int
    from_version: int
    to_version: int | None = None
    row_count: int
    digest: str = Field(max_length=64)


class DatasetTag(SQLModel, table=True):
    """A named pointer to a version: `latest` moves at each commit, user tags on request."""

    __tablename__ = "dataset_tags"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="datasets.id", ondelete="CASCADE")
    name: str = Field(max_length=64)
    version_id: int = Field(foreign_key="dataset_versions.id")
    updated_at: datetime = Field(default_factory=utcnow)


class DatasetVersionUse(SQLModel, table=True):
    """A job (a training run) that used a version: such a version can no longer be deleted."""

    __tablename__ = "dataset_version_uses"
    __table_args__ = (UniqueConstraint("version_id", "job_id"),)
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="dataset_versions.id", index=True)
    job_id: int = Field(foreign_key="jobs.id")
    purpose: str = Field(default="training", max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


class ScheduleFire(SQLModel, table=True):
    """One due time of a dataset's schedule; the unique row makes each due time fire once."""

    __tablename__ = "schedule_fires"
    __table_args__ = (UniqueConstraint("dataset_id", "due_at"),)
    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="datasets.id", ondelete="CASCADE")
    due_at: datetime
    status: str = Field(max_length=16)  # a FireStatus value
    reason: str | None = Field(default=None, sa_column=Column(Text))
    job_id: int | None = Field(default=None, foreign_key="jobs.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


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


# --- hand-off of dataset versions (`app.core.handoff.dataset_settings`, `.training_gate`) ----


class DatasetDestination(SQLModel, table=True):
    """A destination each new version of a dataset is delivered to."""

    __tablename__ = "dataset_destinations"
    __table_args__ = (UniqueConstraint("dataset_id", "destination_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="datasets.id", ondelete="CASCADE")
    destination_id: int = Field(foreign_key="destinations.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)


class DatasetTrainingRun(SQLModel, table=True):
    """A training run (an `sft` job) of a new version, and the gate's decision on it.

    Written when the run is queued (gate tag, tolerance and the sha256 of its evaluation
    tasks as they were then); `metrics`, `promoted`, `comparison` (the table of
    `handoff.gate.compare_runs`), the baseline run and `decided_at` when it ends."""

    __tablename__ = "dataset_training_runs"
    id: Optional[int] = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="datasets.id", index=True, ondelete="CASCADE")
    version_id: int = Field(foreign_key="dataset_versions.id", index=True, ondelete="CASCADE")
    job_id: int = Field(foreign_key="jobs.id", unique=True, ondelete="CASCADE")
    gate_tag: str = Field(max_length=64)
    tolerance: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    eval_sha256: str = Field(max_length=64)
    metrics: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON, nullable=True))
    baseline_job_id: Optional[int] = None
    baseline_version: Optional[int] = None
    promoted: Optional[bool] = None
    decision: Optional[str] = Field(default=None, sa_column=Column(Text))
    comparison: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    decided_at: Optional[datetime] = None
