"""What a generation job will spend, before it runs: a pilot of a few real requests.

A pilot runs the method itself (its prompts, filters and requests, at the job's
parameters) on a small sample, stores nothing, and extrapolates what it measured:

* **Self-Instruct** runs until `pilot` examples are curated, noting the tokens spent at each
  accepted example. Expected: the pilot's tokens per accepted example x the target; the
  range: its cheapest and dearest accepted example x the target.
* **Evol-Instruct** evolves a seeded sample of `pilot` lineages of the pool through every
  round (later rounds rewrite longer texts, so all rounds are piloted), counting each
  evolution's tokens to its lineage (an evolution's requests run in one asyncio task; a
  context variable holds its tally). Expected: the pilot's tokens per lineage x the pool;
  the range: its cheapest and dearest lineage x the pool. The target is the job's
  evolutions (pool x rounds); the examples it will keep are the pilot's accepted share.

Cost: at a price per million tokens, of the tokens; at a price per GPU-hour, of the hours
those tokens take at the pilot's measured rate (its tokens over its wall time, at the
job's concurrency); `cost_rate` says which. A pilot cannot see what grows with the run
(the novelty pool rejects more as it fills), so a long job tends to cost more per example
than its pilot: cap it with `max_total_tokens` or `max_cost`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

from app.core.budget import PER_GPU_HOUR, Budget
from app.core.config import CoreConfig
from app.core.jobs.generation import llm_endpoints
from app.core.llm.client import Completion, LLMClient
from app.core.methods.evol_instruct import EvolInstruct, Lineage
from app.core.methods.self_instruct import SelfInstruct
from app.core.params import EvolInstructParams, SelfInstructParams
from app.core.seeds import SeedTaskData

PILOT = 3  # Self-Instruct: curated examples
PILOT_LINEAGES = 3  # Evol-Instruct: lineages evolved through every round
# the pilot's own parameters: no cap (it is small), no shared near-duplicate index
_PILOT_OVERRIDES = {"max_total_tokens": None, "max_cost": None, "near_duplicate_threshold": 0.0}


@dataclass
class Estimate:
    target: int  # what the job counts to: curated examples, evolutions, examples a build adds
    pilot_accepted: int | None  # the pilot's accepted examples (Evol-Instruct: accepted evolutions)
    pilot_prompt_tokens: int | None
    pilot_completion_tokens: int | None
    tokens_per_accepted: float | None
    expected_prompt_tokens: int | None
    expected_completion_tokens: int | None
    expected_total_tokens: int | None
    low_total_tokens: int | None
    high_total_tokens: int | None
    expected_cost: float | None = None
    low_cost: float | None = None
    high_cost: float | None = None
    kind: str = "self_instruct"
    basis: str = "pilot"  # pilot | history (a dataset's earlier builds) | none
    unit: str = "curated examples"  # what `target` counts
    expected_accepted: int | None = None  # examples the run is expected to keep
    seconds: float | None = None  # the pilot's wall time (history: the builds' time on the model servers)
    tokens_per_second: float | None = None  # measured: tokens over `seconds`
    cost_rate: str | None = None  # the price the costs are at: per_million_tokens | per_gpu_hour
    note: str | None = None
    pilot_unit_tokens: list[int] | None = None  # the pilot's tokens per accepted example (Evol-Instruct: per lineage)
    steps: list[dict[str, Any]] | None = None  # a dataset build's pilot: one estimate per recipe step
    history: list[dict[str, Any]] | None = None  # a dataset build's earlier builds the estimate comes from

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def empty(target: int, kind: str, basis: str, unit: str, note: str | None = None) -> Estimate:
    """An estimate without figures (nothing measured, or nothing to do)."""
    return Estimate(target, None, None, None, None, None, None, None, None, None, kind=kind, basis=basis, unit=unit,
                    note=note)


# --- Self-Instruct ---------------------------------------------------------------------------------
def estimate_self_instruct(params: SelfInstructParams, seeds: list[SeedTaskData], config: CoreConfig,
                           base_urls: list[str] | None = None, pilot: int = PILOT) -> Estimate:
    """Run the pilot against the configured (or given, or embedded) model servers."""
    pilot_params = params.model_copy(update={"target": min(pilot, params.target), **_PILOT_OVERRIDES})
    with llm_endpoints(config, base_urls) as urls:
        marks, usage, seconds = asyncio.run(_pilot(pilot_params, seeds, config, urls))
    return extrapolate(params.target, marks, usage, Budget.of(params, config.prices), seconds)


async def _pilot(params: SelfInstructParams, seeds: list[SeedTaskData], config: CoreConfig,
                 urls: list[str]) -> tuple[list[int], dict[str, int], float]:
    client = LLMClient(config.llm, base_urls=urls)
    started = time.monotonic()
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
        return marks, _usage(client), time.monotonic() - started
    finally:
        await client.aclose()


def extrapolate(target: int, marks: list[int], usage: dict[str, int], budget: Budget,
                seconds: float | None = None) -> Estimate:
    """The estimate from a Self-Instruct pilot's marks (cumulative tokens at each accepted example)."""
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    base = Estimate(target, len(marks), prompt, completion, None, None, None, None, None, None,
                    expected_accepted=target)
    _measured(base, prompt + completion, seconds)
    if not marks:
        base.note = "the pilot accepted nothing: no basis for an estimate"
        return base
    steps = [b - a for a, b in zip([0, *marks], marks)]
    base.pilot_unit_tokens = steps
    base.tokens_per_accepted = round((prompt + completion) / len(marks), 1)
    return scale(base, (prompt + completion) / len(marks), steps, target, prompt, completion, budget)


# --- Evol-Instruct ---------------------------------------------------------------------------------
_TALLY: ContextVar[list[int] | None] = ContextVar("sprout_pilot_tally", default=None)


class _CountingClient(LLMClient):
    """The client, also adding each completion's tokens to the running task's tally."""

    async def complete(self, prompt: str, **params: Any) -> Completion:
        reply = await super().complete(prompt, **params)
        tally = _TALLY.get()
        if tally is not None:
            tally[0] += reply.prompt_tokens + reply.completion_tokens
        return reply


class _PilotEvolInstruct(EvolInstruct):
    """The engine, with each evolution's tokens counted to its lineage: the engine runs one
    evolution (rewrite, judge, response) per asyncio task, and a context variable set in
    that task is that task's alone."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.spent: Counter[int] = Counter()

    async def _evolve(self, lineage: Lineage, round_: int) -> Any:
        tally = [0]
        token = _TALLY.set(tally)
        try:
            return await super()._evolve(lineage, round_)
        finally:
            _TALLY.reset(token)
            self.spent[lineage.index] += tally[0]


def estimate_evol_instruct(params: EvolInstructParams, pool: list[SeedTaskData], config: CoreConfig,
                           base_urls: list[str] | None = None, pilot: int = PILOT_LINEAGES,
                           pool_size: int | None = None) -> Estimate:
    """Pilot `pilot` lineages of `pool` (a seeded sample) through every round. `pool_size`:
    the size of the pool the job will evolve when `pool` only stands in for it (a dataset
    build's step that evolves the step before it)."""
    pool = list(pool)[: params.max_pool] if params.max_pool else list(pool)
    if not pool:
        raise ValueError("Evol-Instruct needs at least one instruction to evolve")
    size = pool_size or len(pool)
    sample = random.Random(params.seed or 0).sample(pool, min(pilot, len(pool)))
    pilot_params = params.model_copy(update={"max_pool": None, **_PILOT_OVERRIDES})
    with llm_endpoints(config, base_urls) as urls:
        spent, accepted, usage, seconds = asyncio.run(_evol_pilot(pilot_params, sample, config, urls))
    return extrapolate_lineages(size, params.rounds, [spent[i] for i in range(len(sample))], accepted, usage,
                                Budget.of(params, config.prices), seconds)


async def _evol_pilot(params: EvolInstructParams, sample: list[SeedTaskData], config: CoreConfig,
                      urls: list[str]) -> tuple[Counter[int], int, dict[str, int], float]:
    client = _CountingClient(config.llm, base_urls=urls)
    started = time.monotonic()
    try:
        method = _PilotEvolInstruct(params, client, sample, concurrency=config.llm.concurrency)
        accepted = 0
        gen = method.run()
        try:
            async for record in gen:
                accepted += int(record.accepted and record.operation is not None)  # roots are not evolutions
        finally:
            await gen.aclose()
        return method.spent, accepted, _usage(client), time.monotonic() - started
    finally:
        await client.aclose()


def extrapolate_lineages(pool_size: int, rounds: int, per_lineage: list[int], accepted: int,
                         usage: dict[str, int], budget: Budget, seconds: float | None = None) -> Estimate:
    """The estimate from an Evol-Instruct pilot: tokens per lineage (all rounds), scaled to the pool."""
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    total, lineages = prompt + completion, len(per_lineage)
    base = Estimate(pool_size * rounds, accepted, prompt, completion, None, None, None, None, None, None,
                    kind="evol_instruct", unit="evolutions", pilot_unit_tokens=list(per_lineage))
    _measured(base, total, seconds)
    if not lineages or not total:
        base.note = "the pilot spent no tokens: no basis for an estimate"
        return base
    base.expected_accepted = round(accepted / lineages * pool_size)
    base.tokens_per_accepted = round(total / accepted, 1) if accepted else None
    if not accepted:
        base.note = "the pilot kept no evolution: tokens are estimated, examples are not"
    return scale(base, total / lineages, per_lineage, pool_size, prompt, completion, budget)


# --- shared -----------------------------------------------------------------------------------------
def scale(base: Estimate, per_unit: float, unit_costs: list[int], units: int, prompt: int, completion: int,
          budget: Budget) -> Estimate:
    """Fill the expected tokens (`per_unit` x `units`, split as the pilot's prompt and completion
    were), the range (cheapest and dearest unit x `units`) and the costs."""
    total = prompt + completion
    expected = round(per_unit * units)
    base.expected_total_tokens = expected
    base.expected_prompt_tokens = round(expected * (prompt / total if total else 0.0))
    base.expected_completion_tokens = expected - base.expected_prompt_tokens
    base.low_total_tokens = min(min(unit_costs) * units, expected)
    base.high_total_tokens = max(max(unit_costs) * units, expected)
    return price(base, budget)


def price(base: Estimate, budget: Budget) -> Estimate:
    """The costs of the expected tokens and the range, at the budget's price."""
    tokens = (base.expected_total_tokens, base.low_total_tokens, base.high_total_tokens)
    if budget.rate is None or None in tokens:  # the range is set with the expected tokens
        return base
    expected, low, high = (budget.cost_at(t, base.tokens_per_second) for t in tokens if t is not None)
    if expected is None or low is None or high is None:  # all three or none (no tokens/s measured)
        base.note = base.note or "priced per GPU-hour, but no tokens/s was measured: no cost"
        return base
    base.expected_cost, base.low_cost, base.high_cost = round(expected, 6), round(low, 6), round(high, 6)
    base.cost_rate = budget.rate
    if budget.rate == PER_GPU_HOUR:
        base.note = base.note or (f"GPU-hours at the measured {base.tokens_per_second:,.1f} tokens/s "
                                  f"on {budget.gpus} GPU(s)")
    return base


def _measured(base: Estimate, tokens: int, seconds: float | None) -> None:
    if seconds:
        base.seconds = round(seconds, 3)
        base.tokens_per_second = round(tokens / seconds, 2) if tokens else None


def _usage(client: LLMClient) -> dict[str, int]:
    return {"prompt_tokens": client.usage.prompt_tokens, "completion_tokens": client.usage.completion_tokens}
