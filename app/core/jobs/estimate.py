"""What a Self-Instruct job will spend, before it runs: a pilot of a few real requests.

The pilot runs the method itself (its prompts, filters and instance requests, at the job's
parameters) until `pilot` examples are curated, without storing anything, and notes the
tokens spent at each accepted example. The estimate for the target is the pilot's mean
tokens per accepted example times the target; the range is the pilot's cheapest and
dearest accepted example times the target. A pilot cannot see what grows with the run
(the novelty pool rejects more as it fills), so a long job tends to cost more per example
than its pilot: cap it with `max_total_tokens`.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

from app.core.budget import Budget
from app.core.config import CoreConfig
from app.core.jobs.generation import llm_endpoints
from app.core.llm.client import LLMClient
from app.core.params import SelfInstructParams
from app.core.seeds import SeedTaskData
from app.core.self_instruct import SelfInstruct

PILOT = 3


@dataclass
class Estimate:
    target: int
    pilot_accepted: int
    pilot_prompt_tokens: int
    pilot_completion_tokens: int
    tokens_per_accepted: float | None
    expected_prompt_tokens: int | None
    expected_completion_tokens: int | None
    expected_total_tokens: int | None
    low_total_tokens: int | None
    high_total_tokens: int | None
    expected_cost: float | None = None
    low_cost: float | None = None
    high_cost: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_self_instruct(params: SelfInstructParams, seeds: list[SeedTaskData], config: CoreConfig,
                           base_urls: list[str] | None = None, pilot: int = PILOT) -> Estimate:
    """Run the pilot against the configured (or given, or embedded) model servers."""
    pilot_params = params.model_copy(update={"target": min(pilot, params.target), "max_total_tokens": None,
                                             "max_cost": None, "near_duplicate_threshold": 0.0})
    with llm_endpoints(config, base_urls) as urls:
        marks, usage = asyncio.run(_pilot(pilot_params, seeds, config, urls))
    return extrapolate(params.target, marks, usage, Budget.of(params))


async def _pilot(params: SelfInstructParams, seeds: list[SeedTaskData], config: CoreConfig,
                 urls: list[str]) -> tuple[list[int], dict[str, int]]:
    client = LLMClient.from_config(config.llm, base_urls=urls)
    try:
        method = SelfInstruct(params, client, seeds, concurrency=config.llm.concurrency)
        marks = []  # tokens spent when each accepted example was decided
        gen = method.run()
        try:
            async for record in gen:
                if record.accepted:
                    marks.append(client.usage.prompt_tokens + client.usage.completion_tokens)
        finally:
            await gen.aclose()
        return marks, {"prompt_tokens": client.usage.prompt_tokens, "completion_tokens": client.usage.completion_tokens}
    finally:
        await client.aclose()


def extrapolate(target: int, marks: list[int], usage: dict[str, int], budget: Budget) -> Estimate:
    """The estimate from a pilot's marks (cumulative tokens at each accepted example)."""
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    base = Estimate(target, len(marks), prompt, completion, None, None, None, None, None, None)
    if not marks:
        return base  # nothing accepted: no basis for an estimate
    total = prompt + completion
    steps = [b - a for a, b in zip([0, *marks], marks)]
    per = total / len(marks)
    share = prompt / total if total else 0.0
    expected = round(per * target)
    base.tokens_per_accepted = round(per, 1)
    base.expected_total_tokens = expected
    base.expected_prompt_tokens = round(expected * share)
    base.expected_completion_tokens = expected - base.expected_prompt_tokens
    base.low_total_tokens, base.high_total_tokens = min(steps) * target, max(max(steps) * target, expected)
    if budget.price_per_million_tokens is not None:
        base.expected_cost, base.low_cost, base.high_cost = (
            round(budget.cost(t), 6) for t in (expected, base.low_total_tokens, base.high_total_tokens))
    return base
