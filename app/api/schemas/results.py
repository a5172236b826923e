"""A job's candidates (instructions) and their instances, with fates and reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic

from pydantic import BaseModel, Field, model_validator

from app.api.schemas.common import Page, T


class ScoreOut(BaseModel):
    """One aspect of an example as an LLM judge scored it (a `score` job, or `score_with_judge`)."""

    score: float | None = Field(examples=[4.31], description="The expected score over the score tokens' "
                                "probabilities, else the digit answered; null when unparseable.")
    parsed: int | None = Field(examples=[4], description="The digit (1-6) the judge answered.")
    status: str = Field(examples=["ok"], description="ok, unparseable or error.")
    raw: str = Field(examples=[" 4\n"], description="The judge's answer as it was.")
    from_logprobs: bool
    judge: str = Field(examples=["gemma-3-270m"], description="The judge model's name.")
    created_at: datetime


class JudgeOut(BaseModel):
    """A judge that scored a job's examples (pick it with `judge=` on the job's rows)."""

    judge: str = Field(examples=["gemma-3-270m"], description="The judge model's name.")
    aspects: list[str] = Field(examples=[["quality", "complexity"]])
    examples: int = Field(examples=[15], description="Examples it has a score row for (on any aspect).")
    last_scored_at: datetime


class JudgeList(BaseModel):
    items: list[JudgeOut] = Field(description="The latest first.")


class InstanceOut(BaseModel):
    id: int
    instruction_id: int
    position: int
    input: str
    output: str
    turns: list[dict[str, Any]] = Field(
        default_factory=list, description="A multi-turn conversation's later turns after (input, output), "
        "alternating user and assistant messages; empty for one exchange.")
    fate: str = Field(examples=["accepted"])
    rule: str | None = Field(description="Why it was rejected (a filter rule), if it was.")
    scores: dict[str, ScoreOut] = Field(
        default_factory=dict, description="The LLM judge's scores by aspect (quality, complexity): the judge "
        "asked for with `judge=`, else the latest score of each aspect.",
    )


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
    most_similar: list[dict[str, Any]] = Field(
        description="The most similar pool instructions when it was decided ({instruction, rouge_l}), the "
        "closest first; one that is a row of this job also carries that row's id, seq and the fate and rule "
        "it ended with (e.g. rejected, over_target: it joined the pool but was dropped later).")
    in_pool: bool
    is_classification: bool | None
    parent_id: int | None
    operation: str | None
    round: int
    created_at: datetime
    instances: list[InstanceOut]
    contamination: list[dict[str, Any]] = Field(
        default_factory=list, description="Benchmark items this candidate or its instances reproduce "
        "(benchmark, item, field, overlap, exact, instance); see decontaminate_against.",
    )

    @model_validator(mode="before")
    @classmethod
    def _contamination_from_detail(cls, data: Any) -> Any:
        if isinstance(data, dict) and "contamination" not in data:
            data = {**data, "contamination": (data.get("detail") or {}).get("contamination") or []}
        return data


class ResultsPage(Page[T], Generic[T]):
    """A page of a job's rows: `Page`, with a `total` that a page by `after` leaves out unless
    asked, since counting a million-row job's rows costs as much as reading its page."""

    total: int | None = Field(  # type: ignore[assignment]
        description="Rows matching the filters, all pages together: counted on a page by offset (the first "
                    "page among them) and with `count=true`; null on a page by `after` without `count=true` "
                    "(the total of the page it started from still holds, unless rows were added since).")
