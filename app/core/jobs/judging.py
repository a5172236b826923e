"""Scoring a job's examples with the LLM judge, for the `score` kind and as the last step
of a generation job (`score_with_judge`): one driver, so both resume, commit and stop alike.

* **endpoints** — the judge's own (`--judge-url`, `SPROUT_JUDGE_BASE_URLS`), else the
  generator's (a generation job's servers, already running; `SPROUT_LLM_BASE_URLS`), else
  the embedded model, started for the scoring;
* **resume** — examples the judge has answered for are skipped (`storage.to_score`), so a
  job taken over after a crash asks only for the rest;
* **commit** — scores are stored a batch at a time in one transaction with the job's
  counters and heartbeat, which fails for a worker that lost its claim;
* **stop** — a cancel is honoured between batches (`JobStopped`);
* **counting** — the judge's tokens are the `judge` role's (`counters.roles.judge`, with its
  cost at the judge's price), added to what earlier steps and attempts counted there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.core import store
from app.core.budget import Budget
from app.core.config import CoreConfig
from app.core.jobs.lifecycle import JobContext, JobStopped
from app.core.llm.client import LLMClient
from app.core.llm.embedded import EmbeddedServer
from app.core.scoring import storage
from app.core.scoring.judge import ERROR, OK, UNPARSEABLE, Judge


@contextlib.contextmanager
def judge_endpoints(config: CoreConfig, base_urls: Sequence[str] | None = None,
                    generator_urls: Sequence[str] | None = None) -> Iterator[list[str]]:
    """The judge's endpoints: given (`--judge-url`), the judge's own (`SPROUT_JUDGE_BASE_URLS`),
    the servers a generation job is using, the generator's configured ones, or the embedded
    model started for the duration."""
    urls = list(base_urls or config.judge.llm.base_urls or generator_urls or config.llm.base_urls or ())
    if urls:
        yield urls
        return
    with EmbeddedServer.from_config(config.embedded, config.data_dir) as url:
        yield [url]


@dataclass
class Scoring:
    """What to score and how: the job whose examples (`examples_job_id`), the aspects,
    and the judge's model and API when the job names them (else the configured ones)."""

    examples_job_id: int
    aspects: Sequence[str]
    judge_model: str | None = None
    api: Literal["completions", "chat"] | None = None
    only_accepted: bool = True
    concurrency: int | None = None
    rescore: bool = False  # ask again for examples this judge scored in an earlier job


def _dialect(api: str) -> Literal["completions", "chat"]:
    """The judge's API as the configuration names it (a plain string there), checked as
    `Judge` checks it."""
    if api == "chat":
        return "chat"
    if api == "completions":
        return "completions"
    raise ValueError(f"api must be 'completions' or 'chat', not {api!r}")


def score_job(ctx: JobContext, scoring: Scoring, urls: Sequence[str],
              base_counters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score the examples with the judge at `urls`; returns the summary (`storage.summary`)."""
    return asyncio.run(_score(ctx, scoring, list(urls), dict(base_counters or {})))


async def _score(ctx: JobContext, scoring: Scoring, urls: list[str], base: dict[str, Any]) -> dict[str, Any]:
    judge_config = ctx.config.judge
    llm = judge_config.llm
    client = LLMClient(llm, base_urls=urls)
    if scoring.judge_model:
        client.model = scoring.judge_model
    try:
        judge = Judge(client, api=scoring.api or _dialect(judge_config.api), logprobs=judge_config.logprobs,
                      concurrency=scoring.concurrency or llm.concurrency, structured=llm.structured_outputs)
        name = await judge.name()
        with ctx.session() as session:
            every = storage.examples_of(session, scoring.examples_job_id, only_accepted=scoring.only_accepted)
            done = storage.done_by(session, scoring.examples_job_id, name, scoring.aspects,
                                   scoring_job_id=ctx.job_id if scoring.rescore else None)
            before = storage.summary(session, scoring.examples_job_id, name, scoring.aspects,
                                     scoring_job_id=ctx.job_id if scoring.rescore else None)
        todo = [e for e in every if e.instance_id not in done]
        live = _Live(name, len(every), len(done), before)
        budget = Budget.of(ctx.params, ctx.config.prices)
        client.role_prices = budget.token_prices()
        judged_before = dict((base.get("roles") or {}).get("judge") or {})

        def counters() -> dict[str, Any]:
            roles = dict(base.get("roles") or {})
            if "judge" in client.role_usage:
                roles["judge"] = {**{k: v for k, v in client.role_usage["judge"].added_to(judged_before).items()
                                     if k != "llm_last_errors"}, "dialect": judge.api}
            return {**base, **live.counters(), **{f"judge_{k}": v for k, v in client.usage.as_dict().items()
                                                  if k in ("llm_requests", "llm_errors", "prompt_tokens",
                                                           "completion_tokens")},
                    "roles": budget.with_role_costs(roles)}

        ctx.heartbeat.counters = counters
        chunk = max(ctx.config.jobs.batch_size, 4 * (scoring.concurrency or llm.concurrency))
        for start in range(0, len(todo), chunk):
            if ctx.heartbeat.stop_requested:
                raise JobStopped()
            batch = todo[start:start + chunk]
            results = await judge.score_many(batch, scoring.aspects)
            with ctx.heartbeat.lock, ctx.session() as session:
                storage.save(session, scoring.examples_job_id, ctx.job_id,
                             [(e.instance_id, r) for e, r in zip(batch, results, strict=True)])
                for result in results:
                    live.add(result)
                store.heartbeat(session, ctx.job_id, ctx.worker, counters())  # LostClaim: nothing is stored
            ctx.report(counters())
        with ctx.session() as session:
            summary = storage.summary(session, scoring.examples_job_id, name, scoring.aspects)
            answered = len(storage.done_by(session, scoring.examples_job_id, name, scoring.aspects))
        live = _Live(name, len(every), answered, summary)  # the job's last counters: what is stored
        return {**summary, "examples": len(every), "judged": answered}
    finally:
        await client.aclose()


class _Live:
    """The scoring's live counters: examples answered, unparseable and failed answers, and
    the mean of each aspect's scores, starting from what earlier attempts stored."""

    def __init__(self, judge: str, total: int, answered: int, before: dict[str, Any]):
        self.judge, self.total, self.answered = judge, total, answered
        aspects = {k: v for k, v in before.items() if isinstance(v, dict)}
        self.unparseable = sum(v["unparseable"] for v in aspects.values())
        self.errors = sum(v["errors"] for v in aspects.values())
        self.sums = {a: (v["mean"] or 0.0) * v["scored"] for a, v in aspects.items()}
        self.counts = {a: v["scored"] for a, v in aspects.items()}

    def add(self, scores: dict[str, Any]) -> None:
        if all(s.status != ERROR for s in scores.values()):
            self.answered += 1
        for aspect, s in scores.items():
            if s.status == OK and s.score is not None:
                self.sums[aspect] = self.sums.get(aspect, 0.0) + s.score
                self.counts[aspect] = self.counts.get(aspect, 0) + 1
            self.unparseable += s.status == UNPARSEABLE
            self.errors += s.status == ERROR

    def counters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"judge": self.judge, "judge_examples": self.total, "judged": self.answered,
                               "judge_unparseable": self.unparseable, "judge_errors": self.errors}
        for aspect, n in self.counts.items():
            out[f"mean_{aspect}"] = round(self.sums[aspect] / n, 4) if n else None
        return out
