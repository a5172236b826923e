"""Review bodies: one decision on a row, a bulk decision over a query, the progress of a
review, and its commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.schemas.common import Text
from app.core.datasets.curation import ExampleQuery

Status = Literal["accepted", "rejected", "edited"]


class ReviewOut(BaseModel):
    """A reviewer's decision on one row: pending while `committed_in` is null."""

    status: Status
    reason: str | None = Field(default=None, examples=["wrong answer"])
    rating: int | None = Field(default=None, ge=1, le=5)
    output: str | None = Field(default=None, description="edited: the new output.")
    reviewer: str = Field(description="The owner of the API key that decided.", examples=["alice"])
    reviewed_at: datetime
    committed_in: int | None = Field(default=None, description="The version the decision went into.")


class ReviewMark(BaseModel):
    """Accept, reject (with a reason) or edit one row of the latest version; a rating 1-5 may ride along."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"status": "rejected", "reason": "wrong answer", "rating": 1},
                     {"status": "edited", "output": "The corrected answer.", "rating": 4}]})
    status: Status
    reason: Text | None = Field(default=None, max_length=500)
    rating: int | None = Field(default=None, ge=1, le=5)
    output: Text | None = Field(default=None, min_length=1, max_length=100_000,
                                description="The new output; required when status is `edited`, refused otherwise.")

    @model_validator(mode="after")
    def _output(self) -> ReviewMark:
        if self.status == "edited" and self.output is None:
            raise ValueError("output: an edit needs the new output")
        if self.status != "edited" and self.output is not None:
            raise ValueError(f"output: only an edit carries a new output (status is {self.status})")
        return self


class BulkReview(BaseModel):
    """Accept or reject every row of the latest version that `query` matches (e.g. judge quality <= 2)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"query": {"score": "quality", "score_max": 2}, "status": "rejected", "reason": "low quality"}]})
    query: ExampleQuery
    status: Literal["accepted", "rejected"]
    reason: Text | None = Field(default=None, max_length=500)
    preview: bool = Field(default=False, description="Only count the matching rows; nothing is written.")


class ReviewProgress(BaseModel):
    version: int | None = Field(description="The latest version, the one under review.")
    total: int
    reviewed: int
    unreviewed: int
    accepted: int
    rejected: int
    edited: int
    rated: int
    reviewers: list[str]


class ReviewState(ReviewProgress):
    reasons: list[str] = Field(description="The short list of reasons offered (any other may be typed).")


class BulkOut(BaseModel):
    marked: int = Field(description="Rows the query matched, now decided (or, previewed, that would be).")
    preview: bool = False
    progress: ReviewProgress


class ReviewCommit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expected_latest: int | None = Field(default=None, ge=1, description="Refuse (409) unless this is the latest.")


def review_out(data: dict[str, Any] | None) -> ReviewOut | None:
    return ReviewOut(**data) if data else None
