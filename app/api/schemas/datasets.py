"""Dataset bodies: a dataset and its recipe, versions and their rows, diffs, tags, curation,
schedules and their fires.

A recipe is taken as a JSON object and validated by the core (`datasets.recipe.parse_recipe`
with the job registry's step check), so each error names its field under `body.recipe`;
the OpenAPI document shows it as the core's `Recipe` schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from app.api.schemas.common import Id, JsonObject, Text
from app.api.schemas.handoff import TrainingOut
from app.api.schemas.reviews import ReviewOut
from app.core.datasets.curation import ExampleQuery
from app.models import Dataset, DatasetVersion, ScheduleFire

RecipeBody = Annotated[JsonObject, WithJsonSchema({"allOf": [{"$ref": "#/components/schemas/Recipe"}]})]
ExportFormat = Literal["alpaca", "messages", "prompt-completion", "sharegpt"]  # app.core.export.FORMATS
DatasetName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
                                   examples=["support-sft"])]

RECIPE_EXAMPLE: dict[str, Any] = {
    "seed_set_ids": [1],
    "steps": [
        {"kind": "self_instruct", "params": {"temperature": 0.7}},
        {"kind": "evol_instruct", "params": {"rounds": 1}, "source": "previous"},
    ],
    "grow_by": 100,
    "export_formats": ["messages", "alpaca"],
    "size_cap": 10000,
}


def aware(moment: datetime | None) -> datetime | None:
    """SQLite drops the zone of the UTC times we store."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


# --- datasets ---------------------------------------------------------------------------------
class DatasetCreate(BaseModel):
    """A new dataset: a unique name (per API key owner), what it is, and its recipe."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "support-sft", "description": "Support answers, grown nightly.", "license": "apache-2.0",
                 "recipe": RECIPE_EXAMPLE},
            ]
        },
    )
    name: DatasetName
    description: Text = Field(default="", max_length=10_000)
    license: Text | None = Field(default=None, min_length=1, max_length=100, examples=["apache-2.0"])
    recipe: RecipeBody = Field(description="Seed sets, generation steps, `grow_by`, export formats, size cap.")
    from_job_id: Id | None = Field(
        default=None, description="Version 1 holds this finished generation job's curated rows (with their judge "
        "scores), e.g. to review a job's rows; without it the dataset has no version until its first build.")


class DatasetUpdate(BaseModel):
    """Fields to change; those left out are kept. `license: null` clears the license.
    A new recipe applies to the builds to come; versions already made keep their card."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"description": "Support answers, grown nightly from two seed sets."},
                                        {"recipe": {**RECIPE_EXAMPLE, "grow_by": 200}}]},
    )
    description: Text | None = Field(default=None, max_length=10_000)
    license: Text | None = Field(default=None, min_length=1, max_length=100)
    recipe: RecipeBody | None = None

    @model_validator(mode="after")
    def _something(self) -> DatasetUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one of description, license, recipe")
        if "description" in self.model_fields_set and self.description is None:
            raise ValueError("description: must be text (an empty text clears it)")
        if "recipe" in self.model_fields_set and self.recipe is None:
            raise ValueError("recipe: a dataset always has a recipe")
        return self


class VersionSummary(BaseModel):
    """A version without its card; `parent` is the version it was made from."""

    number: int = Field(examples=[2])
    parent: int | None = Field(examples=[1])
    kind: str = Field(description="What made it: build, removal or correction.", examples=["build"])
    build_job_id: int | None = Field(description="The build job that made it (builds only).", examples=[12])
    created_at: datetime
    row_count: int = Field(examples=[200])
    counts: dict[str, Any] = Field(
        description="added, removed, corrected, added_by_method, by_method (live rows per method) and, for a "
        "build, `build`: its candidates and rejections by rule, what each step spent (`steps`: tokens and seconds "
        "on the model servers, read by the next build's estimate) and `contamination` (the steps' reports "
        "summed: candidates hit, and items hit by benchmark and evaluation task).",
        examples=[{"added": 100, "removed": 0, "corrected": 0, "added_by_method": {"self_instruct": 100},
                   "by_method": {"self_instruct": 200}, "build": {"rejected_by_rule": {"rouge_similarity": 41}}}],
    )
    content_hash: str = Field(description="sha256 of the canonical rows: the download's ETag.",
                              examples=["9f2c0e6b1d5a3e8f4c7b2a1d0e9f8c7b6a5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f"])
    tags: list[str] = Field(default_factory=list, examples=[["latest", "prod"]])
    training: TrainingOut | None = Field(
        default=None, description="The version's gated training run (its latest), when the dataset trains new "
        "versions: job, status, metrics and the gate's decision with its table.")

    @classmethod
    def of(cls, version: DatasetVersion, tags: list[str] | None = None,
           training: dict[str, Any] | None = None) -> VersionSummary:
        return cls(**_version_fields(version), tags=tags or [], training=training)


def _version_fields(version: DatasetVersion) -> dict[str, Any]:
    return {
        "number": version.number, "parent": version.number - 1 if version.parent_id is not None else None,
        "kind": version.kind, "build_job_id": version.build_job_id, "created_at": aware(version.created_at),
        "row_count": version.row_count, "counts": version.counts or {}, "content_hash": version.content_hash,
    }


class VersionOut(VersionSummary):
    """One version with its dataset card (Markdown with YAML front matter)."""

    card: str = Field(examples=["---\nlicense: apache-2.0\n---\n# support-sft, version 2\n"])
    handoff_job_id: int | None = Field(default=None, description="The `version_handoff` job of this version "
                                       "(its webhook, deliveries and training run), if one was queued.")

    @classmethod
    def of(cls, version: DatasetVersion, tags: list[str] | None = None, training: dict[str, Any] | None = None,
           handoff_job_id: int | None = None) -> VersionOut:
        return cls(**_version_fields(version), tags=tags or [], card=version.card, training=training,
                   handoff_job_id=handoff_job_id)


class ScheduleSummary(BaseModel):
    """A dataset's schedule: when it fires, and whether it is paused (and why)."""

    cron: str | None = Field(examples=["0 3 * * *"])
    timezone: str = Field(examples=["Europe/Paris"])
    missed_fire_policy: str = Field(description="skip or run_once", examples=["skip"])
    paused: bool
    pause_reason: str | None = Field(examples=[None])
    next_fires: list[datetime] = Field(description="The next five fire times (UTC); none when paused or unset.")

    @classmethod
    def of(cls, dataset: Dataset, next_fires: list[datetime]) -> ScheduleSummary:
        return cls(cron=dataset.schedule_cron, timezone=dataset.schedule_timezone,
                   missed_fire_policy=dataset.missed_fire_policy, paused=dataset.schedule_paused,
                   pause_reason=dataset.pause_reason, next_fires=next_fires)


class DatasetOut(BaseModel):
    id: int
    name: str = Field(examples=["support-sft"])
    description: str
    license: str | None = Field(examples=["apache-2.0"])
    created_at: datetime
    updated_at: datetime
    latest: VersionSummary | None = Field(description="The latest version; none before the first build.")
    scheduled: bool = Field(description="A schedule is set (it may be paused).")

    @classmethod
    def fields_of(cls, dataset: Dataset, latest: DatasetVersion | None) -> dict[str, Any]:
        return {"id": dataset.id, "name": dataset.name, "description": dataset.description,
                "license": dataset.license, "created_at": aware(dataset.created_at),
                "updated_at": aware(dataset.updated_at), "latest": VersionSummary.of(latest) if latest else None,
                "scheduled": dataset.schedule_cron is not None}


class DatasetDetail(DatasetOut):
    """A dataset with its recipe, its tags and its schedule."""

    recipe: dict[str, Any] = Field(examples=[RECIPE_EXAMPLE])
    tags: dict[str, int] = Field(description="Tag name -> version number.", examples=[{"latest": 2, "prod": 1}])
    schedule: ScheduleSummary | None = Field(description="None when no schedule is set.")
    builds_in_progress: list[int] = Field(default_factory=list,
                                          description="Ids of the dataset's build jobs queued or running.")


# --- rows and diffs ---------------------------------------------------------------------------
class ExampleOut(BaseModel):
    """One example as a version holds it; `id` names it in removals and corrections."""

    id: int = Field(examples=[41])
    instruction: str = Field(examples=["Summarise the customer's complaint in one sentence."])
    input: str = Field(examples=["My order arrived late and the box was damaged."])
    output: str = Field(examples=["The order was late and arrived damaged."])
    method: str = Field(description="The job kind that made it.", examples=["self_instruct"])
    lineage: list[dict[str, Any]] = Field(description="Evol-Instruct: the rewrites that led to it.")
    scores: dict[str, Any] = Field(examples=[{"max_rouge_l": 0.42}])
    source_job_id: int | None
    source_instruction_id: int | None
    replaces_id: int | None = Field(description="A correction: the example it replaces.")
    added_in: int = Field(description="The version that added it.", examples=[2])
    position: int
    turns: list[dict[str, Any]] = Field(
        default_factory=list, description="A multi-turn conversation's later turns after (input, output), "
        "alternating user and assistant messages; empty for one exchange.",
        examples=[[{"role": "user", "content": "Shorter?"}, {"role": "assistant", "content": "Late, damaged."}]])
    review: ReviewOut | None = Field(
        default=None, description="A version's rows: the pending review decision on the row, if any. A diff's "
        "rows: the committed decision that removed (rejected) or replaced (edited) it.")


class DiffRowOut(ExampleOut):
    change: Literal["added", "removed"]


class DiffOut(BaseModel):
    """What changed from version `from` to version `to` (any order), with one page of the rows:
    the added rows first, then the removed ones."""

    model_config = ConfigDict(populate_by_name=True)
    from_: int = Field(alias="from", examples=[1])
    to: int = Field(examples=[2])
    added: int = Field(examples=[100])
    removed: int = Field(examples=[3])
    corrected: int = Field(description="Added rows that replace a removed row.", examples=[1])
    added_by_method: dict[str, int] = Field(examples=[{"self_instruct": 100}])
    removed_by_method: dict[str, int] = Field(examples=[{"self_instruct": 3}])
    content_changed: bool = Field(description="The two content hashes differ.")
    rows: list[DiffRowOut]
    total: int = Field(description="Rows of the diff (of `side` when given), all pages together.")
    limit: int
    offset: int


# --- tags ---------------------------------------------------------------------------------------
class TagSet(BaseModel):
    """Point a tag at a version: a number, `latest`, or another tag. Moving a tag back is the rollback."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": 3}, {"version": "latest"}]})
    version: Id | Annotated[str, Field(min_length=1, max_length=64)]


class TagOut(BaseModel):
    name: str = Field(examples=["prod"])
    version: int = Field(examples=[3])
    tags: dict[str, int] = Field(description="Every tag of the dataset now.", examples=[{"latest": 4, "prod": 3}])


# --- curation -----------------------------------------------------------------------------------
class RemoveSpec(BaseModel):
    """Examples of the latest version to leave out of the new one: by id, by query, or both."""

    model_config = ConfigDict(extra="forbid")
    ids: list[Id] | None = Field(default=None, min_length=1, max_length=100_000, examples=[[41, 42]])
    query: ExampleQuery | None = Field(default=None, examples=[{"rules": ["too_short"]}, {"text": "as an AI"}])

    @model_validator(mode="after")
    def _some(self) -> RemoveSpec:
        if self.ids is None and self.query is None:
            raise ValueError("give ids, query, or both")
        return self


class CorrectionIn(BaseModel):
    """New text for one example of the latest version; fields left out keep their text."""

    model_config = ConfigDict(extra="forbid")
    id: Id
    output: Text | None = Field(default=None, max_length=100_000, examples=["A corrected answer."])
    instruction: Text | None = Field(default=None, min_length=1, max_length=100_000)
    input: Text | None = Field(default=None, max_length=100_000)

    @model_validator(mode="after")
    def _some(self) -> CorrectionIn:
        if self.output is None and self.instruction is None and self.input is None:
            raise ValueError("give at least one of output, instruction, input")
        return self


class CurationCreate(BaseModel):
    """A new version from the latest one: some examples removed, or some corrected (one of the two).

    `expected_latest`: the version you looked at; when it is no longer the latest the
    answer is 409 and nothing changes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"remove": {"ids": [41, 42]}, "expected_latest": 3},
                {"remove": {"query": {"rules": ["too_short"]}}},
                {"correct": [{"id": 41, "output": "A corrected answer."}], "expected_latest": 3},
            ]
        },
    )
    remove: RemoveSpec | None = None
    correct: list[CorrectionIn] | None = Field(default=None, min_length=1, max_length=10_000)
    expected_latest: Id | None = None

    @model_validator(mode="after")
    def _one(self) -> CurationCreate:
        if (self.remove is None) == (self.correct is None):
            raise ValueError("give exactly one of remove or correct: each change makes its own version")
        return self


# --- schedule -----------------------------------------------------------------------------------
class ScheduleSet(BaseModel):
    """Build the dataset on a cron schedule, read in `timezone`; due times start now."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"cron": "0 3 * * *", "timezone": "Europe/Paris", "missed_fire_policy": "skip"}]},
    )
    cron: str = Field(min_length=1, max_length=120, description="Five fields (minute hour day month weekday) or "
                      "a macro such as @daily.", examples=["0 3 * * *"])
    timezone: str = Field(default="UTC", min_length=1, max_length=64, examples=["Europe/Paris"])
    missed_fire_policy: Literal["skip", "run_once"] = Field(
        default="skip", description="Due times missed while no scheduler ran: skip them, or build once for all."
    )


class SchedulePause(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "holiday freeze"}]})
    reason: Text = Field(default="paused by request", min_length=1, max_length=500)


class FireOut(BaseModel):
    """One due time of the schedule and what became of it."""

    due_at: datetime
    status: str = Field(description="started, built, skipped, failed or missed.", examples=["built"])
    reason: str | None = Field(description="Why it was skipped, failed or missed.",
                               examples=["build job 12 was still running"])
    job_id: int | None = Field(description="The build job it started.", examples=[13])
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, fire: ScheduleFire) -> FireOut:
        return cls(due_at=aware(fire.due_at), status=fire.status, reason=fire.reason, job_id=fire.job_id,
                   created_at=aware(fire.created_at), updated_at=aware(fire.updated_at))


class ScheduleOut(ScheduleSummary):
    """The schedule with its fire history, latest first."""

    history: list[FireOut]


class BuildCreate(BaseModel):
    """A build now; with `dry_run`, only what it is expected to spend."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"dry_run": True}]})
    dry_run: bool = Field(
        default=False, description="Store and enqueue nothing; answer (200) the tokens, and cost when the recipe's "
        "steps are priced, the next build is expected to spend: from the dataset's earlier builds (tokens per added "
        "example), else from a pilot of a few real requests per step.")
    pilot: bool = Field(default=True, description="dry_run without earlier builds: run the pilot (false: answer that "
                        "there is no history, and send no request).")
