"""Token budgets: a hard cap on what a generation job may spend, and what it spent per example.

A job's tokens are its LLM client's usage (prompt + completion, as the server reports it).
With `max_total_tokens`, or `max_cost` and a price, the jobs layer asks `Budget.reached`
after every decided candidate (the method's loop: a safe point, where everything decided
so far is committed) and stops the method there: the job keeps every accepted example and
ends `succeeded` with `result.stopped` saying the budget was reached.

Two prices, one at a time:

* `price_per_million_tokens`: what an API bills; cost = tokens x price / 1e6. Each role
  (generator, responder, judge) can have its own: the job's `responder_price_per_million_tokens`
  / `judge_price_per_million_tokens`, else the service's `SPROUT_<ROLE>_PRICE_PER_MILLION_TOKENS`
  (`prices`), else the generator's (`price_per_million_tokens`, else `SPROUT_LLM_PRICE_...`).
  With the job's counters per role (`counters.roles`), a cost is the sum of each role's
  tokens at its price (a role with no price costs nothing: a local model), and each role's
  cost is in its counters (`roles.<role>.cost`).
* `price_per_gpu_hour` (x `gpus`): what a rented model server bills, by the hour. Tokens
  become hours through a measured rate: a running job's own tokens over its wall time on
  the model servers (`llm_wall_s`, summed over its attempts), so its cost is simply that
  wall time; an estimate's expected tokens over the tokens/s its pilot (or the dataset's
  earlier builds) measured. Wall time, not busy time: a rented GPU bills while it idles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TOKEN_BUDGET_REACHED = "token budget reached"
COST_BUDGET_REACHED = "cost budget reached"
PER_MILLION_TOKENS = "per_million_tokens"
PER_GPU_HOUR = "per_gpu_hour"
ROLES = ("generator", "responder", "judge")


@dataclass(frozen=True)
class Budget:
    max_total_tokens: int | None = None
    max_cost: float | None = None
    price_per_million_tokens: float | None = None
    price_per_gpu_hour: float | None = None
    gpus: int = 1
    # the responder's and the judge's own prices per million tokens (absent: the generator's)
    role_prices: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, params: Any, prices: dict[str, float | None] | None = None) -> Budget:
        """The job's budget; `prices`: the service's price per million tokens of each role
        (`generator`, `responder`, `judge`), under the job's own."""
        prices = {role: price for role, price in (prices or {}).items() if price is not None}
        per_gpu_hour = getattr(params, "price_per_gpu_hour", None)
        generator = getattr(params, "price_per_million_tokens", None)
        if generator is None and per_gpu_hour is None:
            generator = prices.get("generator")
        own = {}
        if per_gpu_hour is None:  # a GPU-hour price is the whole job's: the servers' time, not tokens
            for role in ("responder", "judge"):
                price = getattr(params, f"{role}_price_per_million_tokens", None)
                price = prices.get(role) if price is None else price
                if price is not None:
                    own[role] = price
        return cls(getattr(params, "max_total_tokens", None), getattr(params, "max_cost", None),
                   generator, per_gpu_hour, getattr(params, "gpus", None) or 1, own)

    @property
    def rate(self) -> str | None:
        """Which price costs are computed at: `per_million_tokens`, `per_gpu_hour`, or None (unpriced)."""
        if self.price_per_million_tokens is not None or self.role_prices:
            return PER_MILLION_TOKENS
        return PER_GPU_HOUR if self.price_per_gpu_hour is not None else None

    def price_of(self, role: str) -> float | None:
        """A role's price per million tokens: its own, else the generator's."""
        return self.role_prices.get(role, self.price_per_million_tokens)

    def token_prices(self) -> dict[str, float]:
        """Each priced role's price per million tokens (for a client's cost metric); empty when
        not priced per token."""
        if self.rate != PER_MILLION_TOKENS:
            return {}
        return {role: price for role in ROLES if (price := self.price_of(role)) is not None}

    def role_costs(self, roles: dict[str, Any] | None) -> dict[str, float]:
        """Each priced role's cost from its tokens (`counters.roles`); empty when not priced per token."""
        if self.rate != PER_MILLION_TOKENS:
            return {}
        out = {}
        for role, used in (roles or {}).items():
            price = self.price_of(role)
            if price is not None:
                out[role] = round(total_tokens(used) * price / 1e6, 6)
        return out

    def with_role_costs(self, roles: dict[str, Any]) -> dict[str, Any]:
        """`counters.roles` with each priced role's `cost`."""
        costs = self.role_costs(roles)
        return {role: {**used, "cost": costs[role]} if role in costs else used for role, used in roles.items()}

    @property
    def capped(self) -> bool:
        return self.max_total_tokens is not None or (self.max_cost is not None and self.rate is not None)

    def cost(self, tokens: int, seconds: float | None = None, roles: dict[str, Any] | None = None) -> float | None:
        """The cost of `tokens` spent in `seconds` of wall time on the model servers; None when
        unpriced, or priced by the hour with no time measured. With the job's `roles`, each
        role's tokens at its price, and the tokens no role counted at the generator's."""
        if self.rate == PER_MILLION_TOKENS:
            if not roles:
                return tokens * (self.price_of("generator") or 0.0) / 1e6
            counted = sum(total_tokens(used) for used in roles.values())
            rest = max(0, tokens - counted) * (self.price_per_million_tokens or 0.0) / 1e6
            return sum(self.role_costs(roles).values()) + rest
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
        cost = self.cost(tokens, usage.get("llm_wall_s"), usage.get("roles"))
        if self.max_cost is not None and cost is not None and cost >= self.max_cost:
            return COST_BUDGET_REACHED
        return None

    def spending(self, counters: dict[str, Any], accepted: int | None = None) -> dict[str, Any]:
        """Tokens (and cost, when priced, with the rate used) in all and per accepted example,
        for a job's result. `accepted`: the examples the job made, when its `accepted`
        counter also counts what it did not make (Evol-Instruct's roots)."""
        # the jobs layer's model of a job's counters; imported here, not above: the jobs package
        # imports this module as it loads
        from app.core.jobs.results import Counters

        counted = Counters.model_validate(counters)
        tokens = counted.tokens()
        accepted = counted.accepted if accepted is None else accepted
        out: dict[str, Any] = {"total_tokens": tokens,
                               "tokens_per_accepted": round(tokens / accepted, 1) if accepted else None}
        seconds = counted.llm_wall_s
        if seconds:
            out["llm_wall_s"] = round(seconds, 3)
            out["tokens_per_second"] = round(tokens / seconds, 2)
        roles = counted.role_dicts()
        cost = self.cost(tokens, seconds, roles)
        if cost is not None:
            out["cost"] = round(cost, 6)
            out["cost_per_accepted"] = round(cost / accepted, 6) if accepted else None
            out["cost_rate"] = self.rate
            by_role = self.role_costs(roles)
            if by_role:
                out["cost_by_role"] = by_role
        return out


def total_tokens(usage: dict[str, Any]) -> int:
    return int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
