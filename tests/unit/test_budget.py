"""Token budgets and the estimates' arithmetic, without a model: prices per million tokens and
per GPU-hour, the caps, the spending in a job's result, and the extrapolation of a pilot's
measurements (Self-Instruct's accepted examples, Evol-Instruct's lineages)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core import jobs
from app.core.budget import COST_BUDGET_REACHED, PER_GPU_HOUR, PER_MILLION_TOKENS, TOKEN_BUDGET_REACHED, Budget
from app.core.jobs.estimate import extrapolate, extrapolate_lineages
from app.settings import Settings


def params(kind: str, **values):
    return jobs.get(kind).validate_params(values, Settings().core_config().defaults)


# --- prices and caps -------------------------------------------------------------------------------
def test_a_price_per_million_tokens_costs_the_tokens():
    budget = Budget(max_cost=0.5, price_per_million_tokens=2.0)
    assert budget.rate == PER_MILLION_TOKENS and budget.capped
    assert budget.cost(100_000) == pytest.approx(0.2)
    assert budget.reached({"prompt_tokens": 200_000, "completion_tokens": 49_999}) is None
    assert budget.reached({"prompt_tokens": 200_000, "completion_tokens": 50_000}) == COST_BUDGET_REACHED


def test_a_price_per_gpu_hour_costs_the_wall_time_on_the_model_servers():
    budget = Budget(max_cost=1.0, price_per_gpu_hour=3.0, gpus=2)  # 6 per hour: 1.0 is reached at 600 s
    assert budget.rate == PER_GPU_HOUR and budget.capped
    assert budget.cost(10**6) is None  # no time measured: no cost
    assert budget.cost(10**6, seconds=1800) == pytest.approx(3.0)
    assert budget.reached({"prompt_tokens": 10**9, "llm_wall_s": 599}) is None  # tokens do not count, time does
    assert budget.reached({"prompt_tokens": 10, "llm_wall_s": 600}) == COST_BUDGET_REACHED
    # an estimate converts tokens to hours at a measured rate: 36,000 tokens at 10 tokens/s is one hour
    assert budget.cost_at(36_000, 10.0) == pytest.approx(6.0)
    assert budget.cost_at(36_000, None) is None


def test_the_token_cap_comes_first_and_an_unpriced_budget_is_not_capped_by_cost():
    assert Budget(max_total_tokens=100).reached({"prompt_tokens": 60, "completion_tokens": 40}) == TOKEN_BUDGET_REACHED
    assert not Budget().capped and Budget().rate is None


def test_spending_says_the_rate_and_the_measured_tokens_per_second():
    counters = {"prompt_tokens": 3000, "completion_tokens": 1000, "accepted": 10, "llm_wall_s": 40.0}
    priced = Budget(price_per_gpu_hour=36.0).spending(counters)  # 40 s at 36 per hour = 0.4
    assert priced == {"total_tokens": 4000, "tokens_per_accepted": 400.0, "llm_wall_s": 40.0, "tokens_per_second": 100.0,
                      "cost": 0.4, "cost_per_accepted": 0.04, "cost_rate": PER_GPU_HOUR}
    # Evol-Instruct: the `accepted` counter also counts the roots; the examples made are given
    assert Budget().spending(counters, accepted=4)["tokens_per_accepted"] == 1000.0
    assert "cost" not in Budget().spending(counters)


@pytest.mark.parametrize("kind", ["self_instruct", "evol_instruct"])
def test_prices_are_checked_in_both_methods(kind):
    with pytest.raises(ValidationError, match="max_cost needs price_per_million_tokens or price_per_gpu_hour"):
        params(kind, max_cost=1)
    with pytest.raises(ValidationError, match="not both"):
        params(kind, price_per_million_tokens=1, price_per_gpu_hour=1)
    with pytest.raises(ValidationError, match="gpus"):
        params(kind, gpus=0)
    assert Budget.of(params(kind, max_cost=2, price_per_gpu_hour=1.5, gpus=4)) == Budget(None, 2, None, 1.5, 4)


# --- a Self-Instruct pilot's extrapolation ------------------------------------------------------------
def test_self_instruct_extrapolation_with_a_range_and_both_prices():
    marks = [1000, 1600, 3000]  # accepted examples costing 1000, 600, 1400 tokens
    usage = {"prompt_tokens": 2400, "completion_tokens": 600}
    est = extrapolate(10, marks, usage, Budget(price_per_million_tokens=1.0), seconds=30.0)
    assert (est.tokens_per_accepted, est.expected_total_tokens) == (1000.0, 10_000)
    assert est.pilot_unit_tokens == [1000, 600, 1400]
    assert (est.expected_prompt_tokens, est.expected_completion_tokens) == (8000, 2000)
    assert (est.low_total_tokens, est.high_total_tokens) == (6000, 14_000)
    assert (est.expected_cost, est.low_cost, est.high_cost) == (0.01, 0.006, 0.014)
    assert est.cost_rate == PER_MILLION_TOKENS and est.tokens_per_second == 100.0 and est.seconds == 30.0
    # per GPU-hour: 10,000 tokens at the pilot's 100 tokens/s = 100 s; 2 GPUs at 36 per hour = 2.0
    hourly = extrapolate(10, marks, usage, Budget(price_per_gpu_hour=36.0, gpus=2), seconds=30.0)
    assert hourly.expected_cost == pytest.approx(2.0) and hourly.cost_rate == PER_GPU_HOUR
    assert (hourly.low_cost, hourly.high_cost) == (pytest.approx(1.2), pytest.approx(2.8))
    assert "100.0 tokens/s" in hourly.note


def test_a_pilot_that_accepted_nothing_gives_no_estimate():
    est = extrapolate(10, [], {"prompt_tokens": 500, "completion_tokens": 20}, Budget(price_per_million_tokens=1.0))
    assert est.expected_total_tokens is None and est.expected_cost is None and "accepted nothing" in est.note


# --- an Evol-Instruct pilot's extrapolation -------------------------------------------------------------
def test_evol_instruct_extrapolation_scales_lineages_to_the_pool():
    # three lineages through 4 rounds: 2000, 3000 and 4000 tokens; 6 of the 12 evolutions kept
    est = extrapolate_lineages(50, 4, [2000, 3000, 4000], 6, {"prompt_tokens": 6000, "completion_tokens": 3000},
                               Budget(price_per_gpu_hour=3.6), seconds=90.0)
    assert (est.kind, est.unit, est.target) == ("evol_instruct", "evolutions", 200)
    assert est.expected_total_tokens == 150_000 and (est.low_total_tokens, est.high_total_tokens) == (100_000, 200_000)
    assert (est.expected_prompt_tokens, est.expected_completion_tokens) == (100_000, 50_000)
    assert est.expected_accepted == 100 and est.tokens_per_accepted == 1500.0
    assert est.pilot_unit_tokens == [2000, 3000, 4000]
    # 150,000 tokens at the pilot's 100 tokens/s = 1500 s = 1.5 (price 3.6 per hour)
    assert est.tokens_per_second == 100.0 and est.expected_cost == pytest.approx(1.5)
    assert est.cost_rate == PER_GPU_HOUR


def test_an_evol_pilot_that_kept_nothing_still_estimates_tokens():
    est = extrapolate_lineages(10, 2, [300, 500], 0, {"prompt_tokens": 600, "completion_tokens": 200}, Budget())
    assert est.expected_total_tokens == 4000 and est.tokens_per_accepted is None and est.expected_accepted == 0
    assert "kept no evolution" in est.note and est.expected_cost is None


# --- a dataset build's pilot: the steps' estimates added up ------------------------------------------------
def test_a_builds_pilot_adds_up_its_steps():
    from app.core.jobs.build_estimate import combine

    first = extrapolate(10, [1000, 2000], {"prompt_tokens": 1500, "completion_tokens": 500},
                        Budget(price_per_million_tokens=1.0), seconds=20.0)
    second = extrapolate_lineages(10, 1, [400, 600], 2, {"prompt_tokens": 800, "completion_tokens": 200},
                                  Budget(price_per_million_tokens=1.0), seconds=10.0)
    est = combine(10, [first, second])
    assert (est.basis, est.kind, est.unit, est.target) == ("pilot", "dataset_build", "examples added", 10)
    assert est.expected_total_tokens == 10_000 + 5_000 and est.tokens_per_accepted == 1500.0
    assert (est.low_total_tokens, est.high_total_tokens) == (10_000 + 4_000, 10_000 + 6_000)
    assert est.expected_cost == 0.015 and est.cost_rate == PER_MILLION_TOKENS
    assert est.seconds == 30.0 and est.tokens_per_second == 100.0 and len(est.steps) == 2 and est.note is None
    nothing = extrapolate(10, [], {"prompt_tokens": 10, "completion_tokens": 0}, Budget())
    partial = combine(10, [first, nothing])
    assert partial.expected_total_tokens is None and partial.note.startswith("step 2: the pilot accepted nothing")


def test_each_role_is_priced_apart_and_a_role_without_a_price_takes_the_generators():
    from app.core.params import SelfInstructParams

    params = SelfInstructParams(price_per_million_tokens=2.0, responder_price_per_million_tokens=0.0)
    budget = Budget.of(params, {"generator": 9.0, "responder": 9.0, "judge": 5.0})
    assert budget.price_of("generator") == 2.0  # the job's own over the service's
    assert budget.price_of("responder") == 0.0  # 0 is a price (a local model), not "unset"
    assert budget.price_of("judge") == 5.0  # the service's judge price
    roles = {"generator": {"prompt_tokens": 400_000, "completion_tokens": 100_000},
             "responder": {"prompt_tokens": 1_000_000, "completion_tokens": 0},
             "judge": {"prompt_tokens": 100_000, "completion_tokens": 100_000}}
    assert budget.role_costs(roles) == {"generator": 1.0, "responder": 0.0, "judge": 1.0}
    spent = budget.spending({"prompt_tokens": 1_500_000, "completion_tokens": 200_000, "accepted": 4, "roles": roles})
    assert spent["cost"] == 2.0 and spent["cost_per_accepted"] == 0.5
    assert spent["cost_by_role"] == {"generator": 1.0, "responder": 0.0, "judge": 1.0}
    assert budget.with_role_costs(roles)["judge"]["cost"] == 1.0
    # the cost budget counts each role at its price
    assert Budget.of(SelfInstructParams(price_per_million_tokens=2.0, responder_price_per_million_tokens=0.0,
                                        judge_price_per_million_tokens=5.0, max_cost=2.0)).reached(
        {"prompt_tokens": 1_500_000, "completion_tokens": 200_000, "roles": roles}) == COST_BUDGET_REACHED


def test_a_role_price_alone_prices_the_job_and_the_service_prices_fill_in():
    from app.core.params import SelfInstructParams

    only_responder = Budget.of(SelfInstructParams(responder_price_per_million_tokens=1.0))
    assert only_responder.rate == PER_MILLION_TOKENS and only_responder.price_of("generator") is None
    roles = {"generator": {"prompt_tokens": 500_000}, "responder": {"prompt_tokens": 500_000}}
    assert only_responder.cost(1_000_000, roles=roles) == 0.5  # the unpriced generator costs nothing
    assert Budget.of(SelfInstructParams(), {"generator": None, "responder": None}).rate is None
    assert Budget.of(SelfInstructParams(), {"generator": 1.0}).cost(1_000_000) == 1.0


def test_role_prices_and_a_gpu_hour_price_are_refused_together():
    from pydantic import ValidationError

    from app.core.params import SelfInstructParams

    with pytest.raises(ValidationError, match="judge_price_per_million_tokens or price_per_gpu_hour"):
        SelfInstructParams(judge_price_per_million_tokens=1.0, price_per_gpu_hour=2.0)
    SelfInstructParams(responder_price_per_million_tokens=1.0, max_cost=3.0)  # a role's price is enough for max_cost


def test_tokens_no_role_counted_cost_the_generators_price():
    budget = Budget(price_per_million_tokens=1.0, role_prices={"responder": 3.0})
    roles = {"responder": {"prompt_tokens": 1_000_000}}
    assert budget.cost(3_000_000, roles=roles) == 3.0 + 2.0


def test_a_priced_roles_steps_move_the_cost_metric():
    from app.core import metrics
    from app.core.config import LLMConfig
    from app.core.llm.client import Completion, LLMClient

    client = LLMClient(LLMConfig(base_urls=["http://127.0.0.1:9/v1"], dialect="completions"))
    client.role_prices = {"judge": 4.0}

    def cost(role):
        return metrics.registry().get_sample_value("sprout_llm_role_cost_total", {"role": role}) or 0.0

    judge, generator = cost("judge"), cost("generator")
    client.count_step("judge", Completion("4", "stop", prompt_tokens=200_000, completion_tokens=50_000))
    client.count_step("generator", Completion("x", "stop", prompt_tokens=1_000, completion_tokens=1_000))
    assert cost("judge") - judge == pytest.approx(1.0)
    assert cost("generator") == generator  # unpriced: nothing added
    assert client.role_usage["judge"].prompt_tokens == 200_000
    client.count_step("judge", error="HTTP 500")
    assert client.role_usage["judge"].requests == 2
