"""What a dataset's next build will spend: from its earlier builds, else from a pilot.

**History** (no request sent): each earlier build's tokens (every step job's prompt and
completion tokens) per example it added to the dataset. Expected: all of them together
(tokens over examples added) x what the next build adds (`grow_by`, less near the size
cap); the range: the cheapest and the dearest build per example x that. Only the last
`HISTORY` builds count, and only those whose steps are the recipe's steps now (a build
made under another recipe says little about this one). Measured rate: their tokens over
their time on the model servers; a cost is each step's at that step's price (per million
tokens, or per GPU-hour of the time the step took), so a GPU-hour price needs no
conversion here.

**Pilot** (no history, and `pilot` allowed): each recipe step is piloted as its job would
run (`app.core.jobs.estimate`), on the recipe's seed tasks; a step that evolves the step
before it is piloted on the seeds as stand-ins for that step's output (the build's
target of them). The steps' estimates add up. A pilot does not see the dataset's content,
which a real build is kept novel against, so a grown dataset costs more per example than
its pilot says; its history does not have that bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from app.core import store
from app.core.budget import Budget
from app.core.config import CoreConfig
from app.core.datasets import fires, versions
from app.core.jobs import registry
from app.core.jobs.dataset_build import step_params, step_spending
from app.core.jobs.estimate import Estimate, empty, estimate_evol_instruct, estimate_self_instruct
from app.core.jobs.generation import llm_endpoints
from app.core.params import EvolInstructParams, SelfInstructParams
from app.models import Dataset, DatasetVersion, VersionKind

HISTORY = 10  # the most recent builds an estimate learns from
KIND = "dataset_build"
UNIT = "examples added"


def estimate_build(session: Session, dataset: Dataset, config: CoreConfig, base_urls: list[str] | None = None,
                   pilot: bool = True) -> Estimate:
    """The next build's estimate: from history when there is some, else a pilot (or, with
    `pilot` False, an answer that says there is no history)."""
    recipe = versions.recipe_of(dataset)
    latest = versions.latest_version(session, store.id_of(dataset))
    row_count = latest.row_count if latest is not None else 0
    target = fires.build_target(dataset, row_count)
    if target <= 0:
        return empty(0, KIND, "none", UNIT, f"the dataset holds {row_count} examples, its size cap: a build adds nothing")
    kinds = [s.kind for s in recipe.steps]
    params = [registry.get(s.kind).validate_params(step_params(s.kind, s.params, target), config.defaults)
              for s in recipe.steps]
    budgets = [Budget.of(p, config.prices) for p in params]
    history = build_history(session, store.id_of(dataset), kinds)
    if history:
        return from_history(target, history, budgets)
    if not pilot:
        return empty(target, KIND, "none", UNIT, "no earlier build of this dataset to learn from; "
                     "ask again with a pilot, or build once")
    seeds = [task for ident in recipe.seed_set_ids for task in store.seed_tasks(session, ident)]
    with llm_endpoints(config, base_urls) as urls:  # one model server for every step's pilot
        steps = []
        for step, step_params_ in zip(recipe.steps, params):
            if step.kind == "self_instruct":
                steps.append(estimate_self_instruct(registry.params_as(step_params_, SelfInstructParams), seeds, config, base_urls=urls))
            elif step.kind == "evol_instruct":
                stand_in = target if step.source == "previous" else None
                steps.append(estimate_evol_instruct(registry.params_as(step_params_, EvolInstructParams), seeds, config, base_urls=urls, pool_size=stand_in))
            else:
                raise ValueError(f"no pilot for a {step.kind} step")
    return combine(target, steps)


def build_history(session: Session, dataset_id: int, kinds: Sequence[str], limit: int = HISTORY) -> list[dict[str, Any]]:
    """The dataset's last `limit` builds made with steps of these kinds that added examples and
    spent tokens, newest first: each with what it spent and added."""
    rows = session.exec(select(DatasetVersion).where(
        DatasetVersion.dataset_id == dataset_id, DatasetVersion.kind == VersionKind.build.value,
        col(DatasetVersion.build_job_id).is_not(None)).order_by(col(DatasetVersion.number).desc())).all()
    out = []
    for version in rows:
        build = (version.counts or {}).get("build") or {}
        steps = build.get("steps")
        if steps is None:  # a version made before builds recorded their spending: read the step jobs
            steps = []
            for ident in build.get("step_jobs") or []:
                try:
                    steps.append(step_spending(store.get_job(session, ident)))
                except store.NotFound:
                    steps = []
                    break
        added = int((version.counts or {}).get("added") or 0)
        tokens = sum(s["prompt_tokens"] + s["completion_tokens"] for s in steps)
        if [s["kind"] for s in steps] != list(kinds) or not added or not tokens:
            continue
        out.append({"version": version.number, "build_job_id": version.build_job_id, "added": added,
                    "prompt_tokens": sum(s["prompt_tokens"] for s in steps),
                    "completion_tokens": sum(s["completion_tokens"] for s in steps), "total_tokens": tokens,
                    "tokens_per_added": round(tokens / added, 1),
                    "seconds": None if any(s["seconds"] is None for s in steps) else
                    round(sum(s["seconds"] for s in steps), 3),
                    "steps": steps})
        if len(out) >= limit:
            break
    return out


def from_history(target: int, history: list[dict[str, Any]], budgets: Sequence[Budget]) -> Estimate:
    """Scale the earlier builds' tokens (and costs) per added example to `target`."""
    added = sum(b["added"] for b in history)
    prompt = sum(b["prompt_tokens"] for b in history)
    completion = sum(b["completion_tokens"] for b in history)
    total = prompt + completion
    per = [b["total_tokens"] / b["added"] for b in history]
    expected = round(total / added * target)
    est = Estimate(target, None, None, None, round(total / added, 1), round(expected * prompt / total),
                   expected - round(expected * prompt / total), expected, round(min(per) * target),
                   round(max(per) * target), kind=KIND, basis="history", unit=UNIT, expected_accepted=target,
                   history=history)
    if all(b["seconds"] for b in history):
        est.seconds = round(sum(b["seconds"] for b in history), 3)
        est.tokens_per_second = round(total / est.seconds, 2)
    costs = [_build_cost(b, budgets) for b in history]
    rates = sorted({b.rate for b in budgets if b.rate is not None})
    priced = [c for c in costs if c is not None]
    if rates and len(priced) == len(costs):
        per_cost = [c / b["added"] for c, b in zip(priced, history)]
        est.expected_cost = round(sum(priced) / added * target, 6)
        est.low_cost, est.high_cost = round(min(per_cost) * target, 6), round(max(per_cost) * target, 6)
        est.cost_rate = "+".join(rates)
    elif rates:
        est.note = "not every step has a price (or a measured time, for a price per GPU-hour): no cost"
    return est


def _build_cost(build: dict[str, Any], budgets: Sequence[Budget]) -> float | None:
    """An earlier build's cost at today's prices: each step at its own, each role at its own
    (when the build recorded its steps' roles)."""
    total = 0.0
    for step, budget in zip(build["steps"], budgets):
        cost = budget.cost(step["prompt_tokens"] + step["completion_tokens"], step["seconds"], step.get("roles"))
        if cost is None:
            return None
        total += cost
    return total


def combine(target: int, steps: list[Estimate]) -> Estimate:
    """The steps' pilot estimates added up (every figure, when every step has it)."""
    est = empty(target, KIND, "pilot", UNIT)
    est.steps = [s.as_dict() for s in steps]
    est.expected_accepted = target

    def total(name: str) -> Any:
        values = [getattr(s, name) for s in steps]
        return None if any(v is None for v in values) else sum(values)

    for name in ("pilot_prompt_tokens", "pilot_completion_tokens", "expected_prompt_tokens",
                 "expected_completion_tokens", "expected_total_tokens", "low_total_tokens", "high_total_tokens",
                 "expected_cost", "low_cost", "high_cost", "seconds"):
        setattr(est, name, total(name))
    if est.expected_cost is not None:
        for name in ("expected_cost", "low_cost", "high_cost"):
            setattr(est, name, round(getattr(est, name), 6))
        est.cost_rate = "+".join(sorted({s.cost_rate for s in steps if s.cost_rate}))
    if est.expected_total_tokens is not None:
        est.tokens_per_accepted = round(est.expected_total_tokens / target, 1)
    spent = total("pilot_prompt_tokens")
    if est.seconds and spent is not None:
        est.tokens_per_second = round((spent + est.pilot_completion_tokens) / est.seconds, 2)
    missing = [f"step {i + 1}: {s.note}" for i, s in enumerate(steps) if s.expected_total_tokens is None]
    est.note = "; ".join(missing) or None
    return est
