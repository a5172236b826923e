"""Benchmark set bodies: a file's text in any seed format, or JSONL with named text fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import Text
from app.core.seeds import MAX_SEED_BYTES

BenchmarkFormat = Literal["self-instruct", "alpaca", "csv", "jsonl"]


class BenchmarkSetCreate(BaseModel):
    """A benchmark from a file's text: a seed format (each instance an item), or `jsonl` with
    `prompt_fields` (joined as an item's prompt) and `output_field`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"name": "my-eval", "format": "jsonl", "prompt_fields": ["question"], "output_field": "answer",
             "content": '{"id": "q1", "question": "Natalia sold clips to 48 of her friends in April...", '
                        '"answer": "72"}\n'},
        ]},
    )
    name: Text = Field(min_length=1, max_length=200)
    format: BenchmarkFormat | None = Field(default=None, description="Default: detected (named fields select jsonl).")
    content: Text = Field(min_length=1, max_length=2 * MAX_SEED_BYTES)
    prompt_fields: list[Text] = Field(default_factory=list, max_length=10,
                                      description="jsonl: the fields joined as an item's prompt (default: 'prompt').")
    output_field: Text | None = Field(default=None, max_length=200, description="jsonl: the field of an item's output.")


class BenchmarkSetOut(BaseModel):
    id: int
    name: str
    source_format: str
    item_count: int
    created_at: datetime


class BenchmarkItemOut(BaseModel):
    position: int
    item: str
    prompt: str
    output: str


class ContaminationReport(BaseModel):
    """A job's contamination report: items hit, by benchmark."""

    job_id: int
    benchmark_sets: list[int]
    eval_tasks: list[str] = Field(default_factory=list, description="The evaluation tasks the trainer scores that the "
                                  "job was also checked against (`decontaminate_eval_tasks`), as named in `benchmarks`.")
    candidates_hit: int
    benchmarks: dict[str, dict[str, Any]]
