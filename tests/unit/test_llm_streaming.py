"""Streaming completions: a slow but steady server finishes, a stalled one is cut.

The issue's check is a server that streams a token a second for three minutes; here it is
20 tokens at 0.5 s with a 3 s inactivity limit (10 s of streaming, longer than the limit
many times over), which tests the same rule in CI time.
"""

import asyncio

import pytest

from app.core.config import LLMConfig
from app.core.llm.client import LLMClient, LLMError
from tests.fault_server import StreamingLLMServer


def client(url, **kw):
    kw.setdefault("max_retries", 0)
    kw.setdefault("outage_budget_s", 0)
    kw.setdefault("dialect", "completions")
    return LLMClient(LLMConfig(base_urls=[url], model="m", **kw))


def test_slow_but_steady_stream_completes_with_usage_and_cached_tokens():
    with StreamingLLMServer(tokens=20, interval_s=0.5) as srv:
        async def go():
            async with client(srv.url, inactivity_timeout_s=3, first_token_timeout_s=3, timeout_s=1) as c:
                return await c.complete("hi", max_tokens=50), c.usage
        out, usage = asyncio.run(go())
    assert out.text == "".join(f"t{i} " for i in range(20))
    assert out.finish_reason == "stop"
    assert (out.prompt_tokens, out.completion_tokens, out.cached_tokens) == (7, 20, 5)
    assert usage.cached_prompt_tokens == 5 and usage.errors == 0
    assert srv.requests[-1]["stream"] is True and srv.requests[-1]["stream_options"] == {"include_usage": True}


def test_stalled_stream_is_cut_after_the_inactivity_limit():
    with StreamingLLMServer(tokens=20, interval_s=0.05, stall_after=3, stall_s=10) as srv:
        async def go():
            async with client(srv.url, inactivity_timeout_s=1) as c:
                await c.complete("hi")
        with pytest.raises(LLMError, match="no token for 1 s"):
            asyncio.run(go())


def test_no_first_token_is_cut_after_the_first_token_limit():
    with StreamingLLMServer(tokens=2, first_token_delay_s=5) as srv:
        async def go():
            async with client(srv.url, first_token_timeout_s=1) as c:
                await c.complete("hi")
        with pytest.raises(LLMError, match="no first token for 1 s"):
            asyncio.run(go())
