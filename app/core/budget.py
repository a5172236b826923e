"""Token budgets: a hard cap on what a generation job may spend, and what it spent per example.

A job's tokens are its LLM client's usage (prompt + completion, as the server reports it).
With `max_total_tokens`, or `max_cost` and a price per million tokens, the jobs layer asks
`Budget.reached` after every decided candidate (the method's loop: a safe point, where
everything decided so far is committed) and stops the method there: the job keeps every
accepted example and ends `succeeded` with `result.stopped` saying the budget was reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TOKEN_BUDGET_REACHED = "token budget reached"
COST_BUDGET_REACHED = "cost budget reached"


@dataclass(frozen=True)
class Budget:
    max_total_tokens: int | None = None
    max_cost: float | None = None
    price_per_million_tokens: float | None = None

    @classmethod
    def of(cls, params: Any) -> Budget:
        return cls(getattr(params, "max_total_tokens", None), getattr(params, "max_cost", None),
                   getattr(params, "price_per_million_tokens", None))

    @property
    def capped(self) -> bool:
        return self.max_total_tokens is not None or (self.max_cost is not None and self.price_per_million_tokens is not None)

    def cost(self, tokens: int) -> float | None:
        return None if self.price_per_million_tokens is None else tokens * self.price_per_million_tokens / 1e6

    def reached(self, usage: dict[str, Any]) -> str | None:
        """Why the job must stop now, or None."""
        tokens = total_tokens(usage)
        if self.max_total_tokens is not None and tokens >= self.max_total_tokens:
            return TOKEN_BUDGET_REACHED
        cost = self.cost(tokens)
        if self.max_cost is not None and cost is not None and cost >= self.max_cost:
            return COST_BUDGET_REACHED
        return None

    def spending(self, counters: dict[str, Any]) -> dict[str, Any]:
        """Tokens (and cost, when priced) in all and per accepted example, for a job's result."""
        tokens, accepted = total_tokens(counters), int(counters.get("accepted") or 0)
        out: dict[str, Any] = {"total_tokens": tokens,
                               "tokens_per_accepted": round(tokens / accepted, 1) if accepted else None}
        cost = self.cost(tokens)
        if cost is not None:
            out["cost"] = round(cost, 6)
            out["cost_per_accepted"] = round(cost / accepted, 6) if accepted else None
        return out


def total_tokens(usage: dict[str, Any]) -> int:
    return int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
