"""Token budgets: a hard cap on what a generation job may spend, and what it spent per example.

A job's tokens are its LLM client's usage (prompt + completion, as the server reports it).
With `max_total_tokens`, or `max_cost` and a price, the jobs layer asks `Budget.reached`
after every decided candidate (the method's loop: a safe point, where everything decided
so far is committed) and stops the method there: the job keeps every accepted example and
ends `succeeded` with `result.stopped` saying the budget was reached.

Two prices, one at a time:

* `price_per_million_tokens`: what an API bills; cost = tokens x price / 1e6.
* `price_per_gpu_hour` (x `gpus`): what a rented model server bills, by the hour. Tokens
  become hours through a measured rate: a running job's own tokens over its wall time on
  the model servers (`llm_wall_s`, summed over its attempts), so its cost is simply that
  wall time; an estimate's expected tokens over the tokens/s its pilot (or the dataset's
  earlier builds) measured. Wall time, not busy time: a rented GPU bills while it idles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TOKEN_BUDGET_REACHED = "token budget reached"
COST_BUDGET_REACHED = "cost budget reached"
PER_MILLION_TOKENS = "per_million_tokens"
PER_GPU_HOUR = "per_gpu_hour"


@dataclass(frozen=True)
class Budget:
    max_total_tokens: int | None = None
    max_cost: float | None = None
    price_per_million_tokens: float | None = None
    price_per_gpu_hour: float | None = None
    gpus: int = 1

    @classmethod
    def of(cls, params: Any) -> Budget:
        return cls(getattr(params, "max_total_tokens", None), getattr(params, "max_cost", None),
                   getattr(params, "price_per_million_tokens", None), getattr(params, "price_per_gpu_hour", None),
                   getattr(params, "gpus", None) or 1)

    @property
    def rate(self) -> str | None:
        """Which price costs are computed at: `per_million_tokens`, `per_gpu_hour`, or None (unpriced)."""
        if self.price_per_million_tokens is not None:
            return PER_MILLION_TOKENS
        return PER_GPU_HOUR if self.price_per_gpu_hour is not None else None

    @property
    def capped(self) -> bool:
        return self.max_total_tokens is not None or (self.max_cost is not None and self.rate is not None)

    def cost(self, tokens: int, seconds: float | None = None) -> float | None:
        """The cost of `tokens` spent in `seconds` of wall time on the model servers; None when
        unpriced, or priced by the hour with no time measured."""
        if self.price_per_million_tokens is not None:
            return tokens * self.price_per_million_tokens / 1e6
        if self.price_per_gpu_hour is not None and seconds is not None:
            return seconds / 3600 * self.gpus * self.price_per_gpu_hour
        return None

    def cost_at(self, tokens: int, tokens_per_second: float | None) -> float | None:
        """The cost of `tokens` still to be spent, at a measured rate (an estimate's)."""
        if self.rate == PER_GPU_HOUR:
            return self.cost(tokens, tokens / tokens_per_second) if tokens_per_second else None
        return self.cost(tokens)

    def reached(self, usage: dict[str, Any]) -> str | None:
        """Why the job must stop now, or None."""
        tokens = total_tokens(usage)
        if self.max_total_tokens is not None and tokens >= self.max_total_tokens:
            return TOKEN_BUDGET_REACHED
        cost = self.cost(tokens, usage.get("llm_wall_s"))
        if self.max_cost is not None and cost is not None and cost >= self.max_cost:
            return COST_BUDGET_REACHED
        return None

    def spending(self, counters: dict[str, Any], accepted: int | None = None) -> dict[str, Any]:
        """Tokens (and cost, when priced, with the rate used) in all and per accepted example,
        for a job's result. `accepted`: the examples the job made, when its `accepted`
        counter also counts what it did not make (Evol-Instruct's roots)."""
        tokens = total_tokens(counters)
        accepted = int(counters.get("accepted") or 0) if accepted is None else accepted
        out: dict[str, Any] = {"total_tokens": tokens,
                               "tokens_per_accepted": round(tokens / accepted, 1) if accepted else None}
        seconds = counters.get("llm_wall_s")
        if seconds:
            out["llm_wall_s"] = round(seconds, 3)
            out["tokens_per_second"] = round(tokens / seconds, 2)
        cost = self.cost(tokens, seconds)
        if cost is not None:
            out["cost"] = round(cost, 6)
            out["cost_per_accepted"] = round(cost / accepted, 6) if accepted else None
            out["cost_rate"] = self.rate
        return out


def total_tokens(usage: dict[str, Any]) -> int:
    return int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
