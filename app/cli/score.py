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
from app.core.jobs import JobRequest, requests
from app.core.jobs.score import KIND
from app.core.llm.client import normalize_base_url
from app.db import session_scope


def register(cli: typer.Typer) -> None:
    @cli.command("score")
    def score_cmd(
        job_id: int = typer.Argument(..., help="The finished generation job whose examples to score."),
        judge_url: list[str] = typer.Option(
            [], "--judge-url", help="The judge's OpenAI-compatible endpoint (repeatable). Default: SPROUT_JUDGE_BASE_URLS, "
            "else the generator's servers, else the embedded model."),
        judge_model: str | None = typer.Option(None, "--judge-model", help="The judge's model name on that server."),
        aspects: list[str] = typer.Option([], "--aspects", "-a", help="quality and/or complexity (repeatable; "
                                          "default both)."),
        api: str | None = typer.Option(None, "--api", help="completions (default) or chat."),
        every: bool = typer.Option(False, "--all", help="Score every instance the job stored, rejected ones too."),
        rescore: bool = typer.Option(False, "--rescore", help="Ask again for examples this judge scored before."),
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
            config = replace(config, judge=replace(config.judge, llm=replace(config.judge.llm, base_urls=urls,
                                                                              model=settings.judge_model,
                                                                              api_key=settings.judge_api_key)))
        params: dict[str, Any] = {"only_accepted": not every, "rescore": rescore}
        if judge_model:
            params["judge_model"] = judge_model
        if aspects:
            params["aspects"] = [a.strip().lower() for a in aspects]
        if api:
            params["api"] = api.strip().lower()
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
