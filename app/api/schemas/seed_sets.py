"""Seed set bodies: a file's text (any supported format) or a list of tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.api.schemas.common import Text
from app.core.seeds import MAX_SEED_BYTES

SeedFormat = Literal["self-instruct", "alpaca", "csv"]


class SeedInstance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: Text = Field(default="", max_length=100_000)
    output: Text = Field(max_length=100_000)


class SeedTaskIn(BaseModel):
    """One seed task, as in the Self-Instruct seed file (its `id` is accepted and ignored)."""

    model_config = ConfigDict(extra="forbid")
    id: str | int | None = Field(default=None, description="Ignored; seed files carry one.")
    name: Text | None = Field(default=None, max_length=200)
    instruction: Text = Field(min_length=1, max_length=100_000)
    is_classification: bool = False
    instances: list[SeedInstance] = Field(default_factory=list, max_length=1000)

    @field_validator("instruction")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the instruction is empty")
        return value.strip()


class SeedSetCreate(BaseModel):
    """A seed set from a file's text (`content`, with `format` or detected) or from `tasks`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "my-seeds",
                    "format": "self-instruct",
                    "content": '{"instruction": "Give three tips for staying healthy.", '
                    '"instances": [{"input": "", "output": "Eat well, sleep, move."}], "is_classification": false}\n',
                },
                {
                    "name": "inline",
                    "tasks": [
                        {"instruction": "Classify the sentiment of the review.",
                         "instances": [{"input": "Loved it!", "output": "Positive"}], "is_classification": True}
                    ],
                },
            ]
        },
    )
    name: Text = Field(min_length=1, max_length=200)
    format: SeedFormat | None = Field(default=None, description="Format of `content`; detected when left out.")
    content: Text | None = Field(default=None, max_length=MAX_SEED_BYTES, description="The file's text.")
    tasks: list[SeedTaskIn] | None = Field(default=None, min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _one_source(self) -> SeedSetCreate:
        if (self.content is None) == (self.tasks is None):
            raise ValueError("give exactly one of 'content' (a seed file's text) or 'tasks' (a list)")
        if self.tasks is not None and self.format is not None:
            raise ValueError("'format' applies to 'content' only")
        return self


class SeedSetOut(BaseModel):
    id: int
    name: str
    source_format: str = Field(examples=["self-instruct"])
    task_count: int
    created_at: datetime


class SeedTaskOut(BaseModel):
    position: int
    name: str | None
    instruction: str
    is_classification: bool
    instances: list[dict[str, str]]


class SeedSetDetail(SeedSetOut):
    tasks: list[SeedTaskOut]
