"""Adaptive concurrency (AIMD) and utilisation: the rules alone, then against fault-injecting
servers on loopback (one that refuses with 429 when its slots are full)."""

import asyncio

import pytest

from app.core.config import LLMConfig
from app.core.llm.adaptive import AIMDLimit, Utilisation
from app.core.llm.client import LLMClient
from tests.fault_server import FaultyLLMServer, OverloadingLLMServer


def test_raises_by_one_per_saturated_window_while_latency_holds():
    lim = AIMDLimit(2, floor=1, ceiling=4)
    lim.saturated()
    lim.success(1.0, 10)
    assert lim.limit == 2  # one success is not a window of two
    lim.success(1.0, 10)
    assert lim.limit == 3
    for _ in range(3):  # a window without waiting requests: the limit is not what holds back
        lim.success(1.0, 10)
    assert lim.limit == 3
    for _ in range(10):
        lim.saturated()
        lim.success(1.0, 10)
    assert lim.limit == 4  # the ceiling


def test_no_raise_when_latency_per_token_degrades():
    lim = AIMDLimit(2, ceiling=10)
    lim.saturated()
    lim.success(1.0, 10)
    lim.success(1.0, 10)
    assert lim.limit == 3
    for _ in range(6):
        lim.saturated()
        lim.success(10.0, 10)  # ten times slower per token
    assert lim.limit == 3


def test_overload_halves_once_per_wave_and_never_below_the_floor():
    lim = AIMDLimit(16, floor=3, ceiling=32)
    sent = lim.epoch
    assert lim.overload(sent) and lim.limit == 8
    assert not lim.overload(sent) and lim.limit == 8  # same wave of requests: one cut
    assert lim.overload(lim.epoch) and lim.limit == 4
    assert lim.overload(lim.epoch) and lim.limit == 3
    assert lim.overload(lim.epoch) and lim.limit == 3


def test_fixed_when_not_adaptive_and_bad_bounds_refused():
    lim = AIMDLimit(5, adaptive=False)
    lim.saturated()
    for _ in range(20):
        lim.success(1.0, 1)
    assert not lim.overload(lim.epoch) and lim.limit == 5
    with pytest.raises(ValueError, match="floor"):
        AIMDLimit(2, floor=5, ceiling=4)


def test_utilisation_integrates_in_flight_over_the_limit():
    u = Utilisation(start=0.0)
    u.update(2, 4, now=0.0)   # 0-10 s: 2 of 4 slots
    u.update(4, 4, now=10.0)  # 10-20 s: all 4
    u.update(0, 4, now=20.0)  # 20-40 s: idle
    figures = u.figures(now=40.0)
    assert figures == {"llm_utilisation": (10 * 0.5 + 10 * 1.0) / 40, "llm_busy_share": 0.5}


def test_aimd_against_a_server_that_refuses_when_full():
    floor = 2
    with OverloadingLLMServer(capacity=4, latency_s=0.1) as srv:
        seen: list[int] = []

        async def go():
            async with LLMClient(LLMConfig(base_urls=[srv.url], model="m", concurrency=2, concurrency_min=floor, concurrency_max=16,
                                 max_retries=50, backoff_s=0.01, backoff_max_s=0.05, outage_budget_s=0, dialect="completions")) as c:
                async def one(i):
                    out = await c.complete(str(i))
                    seen.append(c.limits()[c.endpoints[0]])
                    return out
                outs = await asyncio.gather(*(one(i) for i in range(120)))
                return outs, c._endpoints[0].limit.epoch
        outs, cuts = asyncio.run(go())
    assert len(outs) == 120 and all(o.text == "ok" for o in outs)
    assert max(seen) > 2  # raised from the configured value
    assert srv.refused > 0 and cuts > 0  # 429s cut it...
    assert any(b < a for a, b in zip(seen, seen[1:]))  # ...and the limit went down
    assert min(seen) >= floor  # never below the floor


def test_utilisation_of_a_saturated_client_equals_its_busy_share():
    """With one slot and requests always waiting, every busy moment is a full one."""
    with FaultyLLMServer(delay_s=0.05) as srv:
        async def go():
            async with LLMClient(LLMConfig(base_urls=[srv.url], model="m", concurrency=1, adaptive_concurrency=False, stream=False, dialect="completions")) as c:
                await asyncio.gather(*(c.complete(str(i)) for i in range(8)))
                return c.gauges()
        gauges = asyncio.run(go())
    assert gauges["llm_concurrency"] == {srv.url: 1}
    assert 0 < gauges["llm_busy_share"] <= 1
    assert gauges["llm_utilisation"] == pytest.approx(gauges["llm_busy_share"], abs=1e-3)
