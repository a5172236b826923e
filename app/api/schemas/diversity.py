"""The diversity report of a job or a dataset version (`app.core.diversity`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class RougeHistogram(BaseModel):
    edges: list[float] = Field(description="Bin edges over [0, 1]; the last bin includes 1.0.")
    counts: list[int]


class MaxRougeL(BaseModel):
    rows_scored: int
    sampled: bool = Field(description="True when a seeded sample of the rows was looked up (each against all).")
    mean: float | None
    median: float | None
    p90: float | None
    histogram: RougeHistogram


class NounCount(BaseModel):
    noun: str
    count: int


class VerbCount(BaseModel):
    verb: str
    count: int
    nouns: list[NounCount] = Field(description="Its most common direct objects.")


class VerbNoun(BaseModel):
    instructions: int
    with_verb: int
    with_verb_noun: int
    coverage: float | None = Field(description="Share of instructions with a root verb and a direct object.")
    distinct_verbs: int
    distinct_pairs: int
    top_verbs: list[VerbCount]


class DiversitySummary(BaseModel):
    rows: int = Field(description="Instructions (each counted once).")
    distinct_1: float | None = Field(description="Distinct word unigrams over all unigrams.")
    distinct_2: float | None = Field(description="Distinct word bigrams over all bigrams.")
    max_rouge_l: MaxRougeL = Field(description="Each instruction's maximum ROUGE-L F to every other one.")
    verb_noun: VerbNoun


class DiversityReport(BaseModel):
    source: dict[str, Any] = Field(examples=[{"kind": "job", "id": 12, "method": "self_instruct"}])
    overall: DiversitySummary
    by: dict[str, dict[str, DiversitySummary]] = Field(
        description="By `method`, `persona` and `topic` (the keys the rows have), then by group name.")
    notes: dict[str, str]
