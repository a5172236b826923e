"""A job's candidates (instructions) and their instances, with fates and reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class InstanceOut(BaseModel):
    id: int
    instruction_id: int
    position: int
    input: str
    output: str
    fate: str = Field(examples=["accepted"])
    rule: str | None = Field(description="Why it was rejected (a filter rule), if it was.")


class InstanceWithInstruction(InstanceOut):
    instruction: str


class InstructionOut(BaseModel):
    id: int
    seq: int = Field(description="Order in which the job decided it.")
    instruction: str
    fate: str = Field(examples=["rejected"])
    rule: str | None = Field(examples=["too_similar"], description="The rejection rule, if rejected.")
    max_rouge_l: float | None
    mean_rouge_l: float | None
    most_similar: list[dict[str, Any]]
    in_pool: bool
    is_classification: bool | None
    parent_id: int | None
    operation: str | None
    round: int
    created_at: datetime
    instances: list[InstanceOut]
