"""The `score` job kind: an LLM judge's quality and complexity scores for the examples of
a finished generation job (`source_job_id`).

A job of its own, so old data can be scored again later, by a better judge: each judge's
scores are stored beside the others' (`app.core.scoring.storage`), and the same judge
scoring again asks only for what it has not answered (or, with `rescore`, everything,
replacing its own rows). The judge's endpoints come from the CLI (`--judge-url`) or the
settings (`SPROUT_JUDGE_BASE_URLS`), never from a job's parameters: an API caller names a
model, not a server.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session

from app.core.jobs.judging import Scoring, judge_endpoints, score_job
from app.core.jobs.lifecycle import JobContext
from app.core.jobs.registry import (
    GENERATION_QUEUE,
    JobKind,
    JobRequest,
    JobRequestError,
    Progress,
    params_as,
    produces_examples,
    register,
)
from app.core.jobs.requests import owned_row
from app.core.jobs.results import Counters, JobResult
from app.core.methods.candidates import JobInputError
from app.core.params import JUDGE_ASPECTS
from app.models import Job, JobStatus

KIND = "score"


class ScoreParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    judge_model: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="The judge's model name on the judge's server. Default: SPROUT_JUDGE_MODEL, else the "
        "first model the server lists.",
    )
    aspects: list[Literal["quality", "complexity"]] = Field(
        default_factory=lambda: list(JUDGE_ASPECTS), min_length=1, max_length=2,
        description="quality (the whole example) and/or complexity (the instruction and its input).",
    )
    api: Literal["completions", "chat"] | None = Field(
        default=None, description="How the judge is asked. Default: SPROUT_JUDGE_API.",
    )
    only_accepted: bool = Field(
        default=True, description="Score the curated examples only (else every instance the job stored).",
    )
    concurrency: int | None = Field(
        default=None, ge=1, le=256, description="Examples in flight at once. Default: SPROUT_JUDGE_CONCURRENCY.",
    )
    rescore: bool = Field(
        default=False,
        description="Ask the judge again for examples it scored before (its earlier scores are replaced); "
        "default: score only what this judge has not answered.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> ScoreParams:
        if len(set(self.aspects)) != len(self.aspects):
            raise ValueError("aspects: each aspect once")
        return self


def check(session: Session, request: JobRequest, params: ScoreParams) -> dict[str, Any]:
    """A finished generation job of the caller's."""
    for name in ("seed_set_id", "export_id"):
        if getattr(request, name) is not None:
            raise JobRequestError(name, f"a {KIND} job scores a job's examples: give source_job_id only")
    if request.source_job_id is None:
        raise JobRequestError("source_job_id", f"a {KIND} job needs source_job_id (the job to score)", "missing")
    source = owned_row(session, Job, request.source_job_id, request.owner, "source_job_id", "job")
    if not produces_examples(source.kind):
        raise JobRequestError("source_job_id", f"job {source.id} is a {source.kind} job; it has no examples to score")
    if not JobStatus(source.status).finished:
        raise JobRequestError("source_job_id", f"job {source.id} is still {source.status}; score it once it has "
                              "finished")
    return {"source_job_id": source.id, "counters": {"judged": 0}}


class ScoreResult(JobResult):
    """A scoring job's result: the judge, how many examples it scored, and per aspect
    (`quality`, `complexity`, each a key of its own) the summary of the scores."""

    source_job_id: int | None = Field(default=None, description="The job whose examples were scored.")
    judge: str | None = Field(default=None, description="The judge's name.")
    examples: int | None = Field(default=None, description="The examples to score.")
    judged: int | None = Field(default=None, description="The examples the judge answered for.")


def run(ctx: JobContext) -> ScoreResult:
    params = params_as(ctx.params, ScoreParams)
    source_id = ctx.job.source_job_id
    if source_id is None:  # `check` asks for it; a row edited since has none
        raise JobInputError(f"a {KIND} job needs source_job_id, the job whose examples it scores")
    scoring = Scoring(source_id, list(params.aspects), judge_model=params.judge_model, api=params.api,
                      only_accepted=params.only_accepted, concurrency=params.concurrency, rescore=params.rescore)
    with judge_endpoints(ctx.config, ctx.base_urls) as urls:
        summary = score_job(ctx, scoring, urls)
    return ScoreResult.model_validate({"source_job_id": source_id, **summary})


def progress(job: Job) -> Progress:
    counters = Counters.of(job)
    return Progress(target=counters.judge_examples, done=counters.judged)


SCORE = register(JobKind(
    name=KIND,
    params_model=ScoreParams,
    result_model=ScoreResult,
    queue=GENERATION_QUEUE,
    run=run,
    check=check,
    progress=progress,
    description="LLM-judge scores (Deita / AlpaGasus): a 1-6 quality and complexity score for each example of a "
    "finished generation job, stored with the judge's name.",
    produces_examples=False,
    needs_llm=True,
))
