"""`sprout score JOB_ID`: an LLM judge's quality and complexity scores for a finished job's
examples, run here and now (a `score` job, as `POST /api/v1/jobs` with kind "score" makes).

The judge's server may be named here (`--judge-url`, `--judge-model`), which the API does
not allow: an API caller names a model, the operator names servers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import typer
from pydantic import ValidationError

from app.cli.common import CliError, console, database_url, describe_validation_error, load_settings
from app.cli.judge_summary import score_table
from app.cli.params_options import params_options
from app.core.jobs import JobRequest, requests
from app.core.jobs.score import KIND, ScoreParams
from app.core.llm.client import normalize_base_url
from app.db import session_scope


def register(cli: typer.Typer) -> None:
    @cli.command("score")
    @params_options(ScoreParams, into="options", only=["judge_model", "aspects", "api", "concurrency", "rescore"],
                    names={"aspects": ["--aspects", "-a"]})
    def score_cmd(
        job_id: int = typer.Argument(..., help="The finished generation job whose examples to score."),
        judge_url: list[str] = typer.Option(
            [], "--judge-url", help="The judge's OpenAI-compatible endpoint (repeatable). Default: SPROUT_JUDGE_BASE_URLS, "
            "else the generator's servers, else the embedded model."),
        every: bool = typer.Option(False, "--all", help="Score every instance the job stored, rejected ones too."),
        options: dict[str, Any] | None = None,
    ) -> None:
        """Score a finished job's examples with an LLM judge (1-6 quality and complexity, Deita-style)."""
        from app.cli.generate import run_with_progress

        settings = load_settings()
        url = database_url(settings)
        config = settings.core_config()
        if judge_url:
            try:
                urls = tuple(normalize_base_url(u) for u in judge_url)
            except ValueError as exc:
                raise CliError(f"--judge-url: {exc}") from None
            # a server of its own: not the generator's model name or key
            config = replace(config, judge=replace(config.judge, llm=config.judge.llm.model_copy(update={
                "base_urls": urls, "model": settings.judge.model, "api_key": settings.judge.api_key})))
        params: dict[str, Any] = {"only_accepted": not every, **(options or {})}
        if "aspects" in params:
            params["aspects"] = [a.strip().lower() for a in params["aspects"]]
        if "api" in params:
            params["api"] = params["api"].strip().lower()
        with session_scope(url) as session:
            try:
                job = requests.create_job(session, JobRequest(KIND, params, source_job_id=job_id), config.defaults)
            except ValidationError as exc:
                raise CliError(f"bad option: {describe_validation_error(exc)}") from None
            except ValueError as exc:
                raise CliError(str(exc)) from None
            new_id = job.id
        console.print(f"job {new_id}: {KIND} of job {job_id}")
        job = run_with_progress(url, new_id, settings, label="judged", config=config)
        console.print(score_table(job))
        if job.status == "failed":
            raise CliError(f"job {new_id} failed: {job.error}")
        if job.status == "queued":
            raise CliError(f"job {new_id} is paused, {job.error}; the scores stored so far are kept")
        console.print(f"job id: {new_id}  (GET /api/v1/jobs/{job_id}/instances?min_quality=4 · "
                      f"sprout export {job_id} --format parquet --out DIR)", highlight=False)
