"""The LLM client's failure handling, against a fault-injecting server on loopback."""

import asyncio
import socket
import threading
import time

import pytest

from app.core.llm.client import LLMClient, LLMError, LLMOutageError, LLMUnavailableError, normalize_base_url
from tests.fault_server import FaultyLLMServer, completion_body


def client(urls, **kw):
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("max_retries", 3)
    kw.setdefault("outage_budget_s", 0)
    return LLMClient(base_urls=urls, model=kw.pop("model", "m"), **kw)


def run(coro):
    return asyncio.run(coro)


def closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


def test_normalize_base_url():
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert normalize_base_url("https://api.example.com/openai/v1") == "https://api.example.com/openai/v1"
    with pytest.raises(ValueError):
        normalize_base_url("h:8000")


def test_retries_500_and_429_then_succeeds():
    with FaultyLLMServer(script=[(500, "{}"), (429, "{}"), (200, completion_body("hello"))]) as srv:
        async def go():
            async with client([srv.url]) as c:
                out = await c.complete("hi", max_tokens=5, temperature=0)
                return out, c.usage
        out, usage = run(go())
    assert out.text == "hello" and out.finish_reason == "stop"
    assert usage.retries == 2 and usage.errors == 2 and usage.requests == 3
    assert usage.prompt_tokens == 3 and usage.completion_tokens == 2
    # only OpenAI fields are sent; None values are left out; the request asks for a stream
    # (with usage), and a server that answers plain JSON instead is read all the same
    assert srv.requests[-1][1] == {"model": "m", "prompt": "hi", "max_tokens": 5, "temperature": 0,
                                   "stream": True, "stream_options": {"include_usage": True}}


def test_gives_up_after_retries_with_the_last_error():
    with FaultyLLMServer(default=(503, '{"error": "overloaded"}')) as srv:
        async def go():
            async with client([srv.url], max_retries=2) as c:
                await c.complete("hi")
        with pytest.raises(LLMOutageError, match=r"\(3 attempts\); last error: .*HTTP 503.*overloaded"):
            run(go())


def test_a_request_that_fails_while_others_are_answered_is_not_an_outage():
    def respond(path, body):
        return (500, '{"error": "this prompt breaks the server"}') if body and body.get("prompt") == "bad" else None

    with FaultyLLMServer(respond=respond, delay_s=0.01) as srv:
        async def go():
            async with client([srv.url], max_retries=2, backoff_s=0.05, outage_budget_s=600) as c:
                async def others():
                    for i in range(40):
                        await c.complete(str(i))
                results = await asyncio.gather(c.complete("bad"), others(), return_exceptions=True)
                return results[0]
        error = run(go())
    assert isinstance(error, LLMError) and not isinstance(error, LLMUnavailableError), error
    assert "gave up after 3 attempts" in str(error) and "this prompt breaks the server" in str(error)


def test_retries_ride_out_an_outage_within_the_budget():
    url = closed_port_url()  # nothing listens there yet
    async def go():
        async with client([url], max_retries=1, backoff_s=0.05, backoff_max_s=0.2, outage_budget_s=300) as c:
            return await c.complete("hi"), c.usage

    started = {}

    def come_back():
        time.sleep(1.0)  # longer than max_retries' few tries
        started["server"] = FaultyLLMServer(port=int(url.rsplit(":", 1)[1].split("/")[0])).__enter__()

    thread = threading.Thread(target=come_back)
    thread.start()
    try:
        out, usage = run(go())
    finally:
        thread.join()
        started["server"].__exit__(None, None, None)
    assert out.text == "ok" and usage.retries > 1


def test_an_outage_longer_than_the_budget_names_the_endpoint_and_the_last_error():
    dead = closed_port_url()
    async def go():
        async with client([dead], max_retries=1, backoff_s=0.01, backoff_max_s=0.05, outage_budget_s=0.3) as c:
            await c.complete("hi")
    with pytest.raises(LLMOutageError) as err:
        run(go())
    message = str(err.value)
    assert f"no answer from the model server at {dead}" in message and "cannot connect" in message
    assert "sprout model serve" not in message and "start" not in message


def test_client_error_is_not_retried():
    with FaultyLLMServer(script=[(400, '{"error": "bad max_tokens"}')]) as srv:
        async def go():
            async with client([srv.url]) as c:
                await c.complete("hi", max_tokens=-1)
        with pytest.raises(LLMError, match="HTTP 400.*bad max_tokens"):
            run(go())
        assert len(srv.requests) == 1


def test_garbage_answers_are_errors():
    with FaultyLLMServer(default=(200, "this is not json")) as srv:
        async def go():
            async with client([srv.url], max_retries=1) as c:
                await c.complete("hi")
        with pytest.raises(LLMError, match="not JSON"):
            run(go())
    with FaultyLLMServer(default=(200, '{"choices": []}')) as srv:
        async def go2():
            async with client([srv.url]) as c:
                await c.complete("hi")
        with pytest.raises(LLMError, match="no choices"):
            run(go2())


def test_unreachable_server_gives_a_clear_error():
    async def go():
        async with client([closed_port_url()], max_retries=1) as c:
            await c.complete("hi")
    with pytest.raises(LLMUnavailableError, match="no answer from the model server at .*cannot connect"):
        run(go())


def test_timeout_is_retried_then_reported():
    with FaultyLLMServer(delay_s=0.5) as srv:
        async def go():
            async with client([srv.url], timeout_s=0.1, max_retries=1, stream=False) as c:
                await c.complete("hi")
        with pytest.raises(LLMError, match="no answer within 0.1 s"):
            run(go())


def test_requests_spread_over_endpoints_and_fail_over():
    with FaultyLLMServer() as a, FaultyLLMServer() as b:
        async def go():
            async with client([a.url, b.url], concurrency=4) as c:
                await asyncio.gather(*(c.complete(str(i)) for i in range(20)))
        run(go())
        assert len(a.requests) >= 5 and len(b.requests) >= 5
    dead = closed_port_url()
    with FaultyLLMServer() as live:
        async def go2():
            async with client([dead, live.url], concurrency=2) as c:
                return await asyncio.gather(*(c.complete(str(i)) for i in range(6)))
        outs = run(go2())
        assert len(outs) == 6 and all(o.text == "ok" for o in outs)


def test_model_resolved_from_the_server():
    with FaultyLLMServer() as srv:
        async def go():
            async with client([srv.url], model=None) as c:
                await c.complete("hi")
                return c.model
        assert run(go()) == "fault-model"


def test_concurrency_is_bounded():
    with FaultyLLMServer(delay_s=0.05) as srv:
        active = {"now": 0, "max": 0}
        async def go():
            async with client([srv.url], concurrency=3, stream=False, adaptive=False) as c:
                orig = c._http.request
                async def counting(*a, **k):
                    active["now"] += 1
                    active["max"] = max(active["max"], active["now"])
                    try:
                        return await orig(*a, **k)
                    finally:
                        active["now"] -= 1
                c._http.request = counting
                await asyncio.gather(*(c.complete(str(i)) for i in range(12)))
        run(go())
        assert active["max"] == 3
