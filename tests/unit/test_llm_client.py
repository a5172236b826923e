"""The LLM client's failure handling, against a fault-injecting server on loopback."""

import asyncio
import json
import socket
import struct
import threading
import time
from datetime import datetime

import pytest

from app.core.config import LLMConfig
from app.core.llm.client import LLMClient, LLMError, LLMOutageError, LLMUnavailableError, normalize_base_url
from tests.fault_server import FaultyLLMServer, completion_body


def client(urls, **kw):
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("max_retries", 3)
    kw.setdefault("outage_budget_s", 0)
    kw.setdefault("dialect", "completions")
    return LLMClient(LLMConfig(base_urls=urls, model=kw.pop("model", "m"), **kw))


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
    # the failing prompt takes 0.2 s to fail, the others 0.01 s to answer, and they are asked
    # for until it has given up: every failed attempt sees answers that came after it was sent
    def respond(path, body):
        if body and body.get("prompt") == "bad":
            time.sleep(0.2)
            return 500, '{"error": "this prompt breaks the server"}'
        return None

    with FaultyLLMServer(respond=respond, delay_s=0.01) as srv:
        async def go():
            async with client([srv.url], max_retries=2, backoff_s=0.05, outage_budget_s=600) as c:
                bad = asyncio.ensure_future(c.complete("bad"))

                async def others():
                    i = 0
                    while not bad.done():
                        await c.complete(str(i))
                        i += 1
                await asyncio.gather(bad, others(), others(), return_exceptions=True)
                return bad.exception()
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
            async with client([srv.url], concurrency=3, stream=False, adaptive_concurrency=False) as c:
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


# --- the last errors' messages, kept for the job's counters ----------------------------------------
def with_password(url: str) -> str:
    return url.replace("http://", "http://sprout:s3cret@")


def test_the_last_errors_are_kept_with_time_and_endpoint_without_secrets():
    """Each failed attempt leaves its message; the newest five are kept, oldest first, with the
    endpoint's password and the API key masked (a server may echo the key it refused)."""
    failures = [(500, f'{{"error": "engine crashed, attempt {i}"}}') for i in range(1, 7)]
    failures.append((503, '{"error": "bad key sk-live-123 for this model"}'))
    with FaultyLLMServer(script=[*failures, (200, completion_body("fine"))]) as srv:
        url = with_password(srv.url)

        async def go():
            async with client([url], max_retries=8, api_key="sk-live-123") as c:
                return await c.complete("hi"), c.usage, c.gauges()
        out, usage, gauges = run(go())
    assert out.text == "fine" and usage.errors == 7 and usage.requests == 8
    endpoint = srv.url.replace("http://", "http://sprout:***@")
    assert [e["endpoint"] for e in usage.last_errors] == [endpoint] * 5
    messages = [e["message"] for e in usage.last_errors]
    assert all("HTTP 500" in m and f"engine crashed, attempt {i}" in m for i, m in zip(range(3, 7), messages[:4]))
    assert "HTTP 503" in messages[4] and "bad key *** for this model" in messages[4]
    assert all(m.startswith(endpoint + "/completions: ") for m in messages)
    times = [datetime.fromisoformat(e["at"]) for e in usage.last_errors]
    assert all(t.tzinfo is not None for t in times) and times == sorted(times)
    assert list(gauges["llm_concurrency"]) == [endpoint]  # the counters name it without its password
    assert "s3cret" not in json.dumps([usage.last_errors, gauges]) and "sk-live-123" not in json.dumps(usage.last_errors)


def test_a_request_that_fails_for_good_leaves_its_message_too():
    dead = closed_port_url()
    with FaultyLLMServer(script=[(400, '{"error": "max_tokens must be positive"}')]) as srv:
        async def go():
            async with client([srv.url]) as c:
                with pytest.raises(LLMError):
                    await c.complete("hi", max_tokens=-1)
            async with client([with_password(dead)], max_retries=1) as d:
                with pytest.raises(LLMUnavailableError):
                    await d.complete("hi")
            return c.usage, d.usage
        refused, unreachable = run(go())
    assert refused.errors == 1 and "HTTP 400" in refused.last_errors[0]["message"]
    assert "max_tokens must be positive" in refused.last_errors[0]["message"]
    assert unreachable.errors == 2 and len(unreachable.last_errors) == 2
    assert all(e["message"] == dead.replace("http://", "http://sprout:***@") + ": cannot connect (ConnectError)"
               for e in unreachable.last_errors)


def test_a_jobs_counters_carry_the_errors_of_its_earlier_attempts():
    """`added_to`: what a worker that died had stored, plus this attempt's. Counts add up,
    the newest five messages are kept."""
    with FaultyLLMServer(script=[(502, '{"error": "gateway"}')] * 3) as srv:
        async def go():
            async with client([srv.url], max_retries=5) as c:
                await c.complete("hi")
                return c.usage
        usage = run(go())
    earlier = [{"at": f"2026-01-01T00:00:0{i}+00:00", "endpoint": "http://old:8000/v1", "message": f"old {i}"}
               for i in range(4)]
    before = {"llm_requests": 10, "llm_errors": 4, "llm_retries": 4, "prompt_tokens": 100, "completion_tokens": 50,
              "llm_last_errors": earlier, "accepted": 2}
    counters = usage.added_to(before)
    assert counters["llm_requests"] == 14 and counters["llm_errors"] == 7 and counters["llm_retries"] == 7
    assert counters["prompt_tokens"] == 103 and counters["completion_tokens"] == 52
    assert counters["cached_prompt_tokens"] == 0 and "accepted" not in counters
    kept = counters["llm_last_errors"]
    assert [e["message"] for e in kept[:2]] == ["old 2", "old 3"]
    assert all("HTTP 502" in e["message"] and e["endpoint"] == srv.url for e in kept[2:]) and len(kept) == 5
    assert usage.added_to({})["llm_last_errors"] == usage.last_errors  # a first attempt


class _DropsKeptAliveConnections:
    """A fault injector on loopback: it answers each connection's first request with a
    kept-alive completion, then closes that connection without a byte of answer when a
    second request comes on it (a server dropping an idle connection as it is reused). With
    `reset`, it closes with a TCP reset instead, as a server does that closes a connection
    with the request unread in its buffer (the client sees "connection reset by peer")."""

    def __init__(self, reset=False):
        self.reset = reset
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    @staticmethod
    def _request(conn, buffer=b""):
        while b"\r\n\r\n" not in buffer:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            buffer += chunk
        head, rest = buffer.split(b"\r\n\r\n", 1)
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
        while len(rest) < length:
            rest += conn.recv(65536)
        return rest

    def _one(self, conn):
        with conn:
            if self._request(conn) is None:
                return
            body = completion_body("kept").encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            self._request(conn)  # the next request on this connection: closed unanswered
            if self.reset:  # linger 0: close() sends a reset, not a FIN
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_a_kept_alive_connection_the_server_closed_is_sent_again_not_failed(reset):
    server = _DropsKeptAliveConnections(reset=reset)
    try:
        async def go():
            async with client([server.url], backoff_s=5.0) as c:
                first = await c.complete("one", max_tokens=5)
                second = await c.complete("two", max_tokens=5)  # goes out on the kept-alive connection
                return first, second, c.usage
        first, second, usage = run(go())
    finally:
        server.close()
    assert first.text == second.text == "kept"
    assert usage.errors == 0 and usage.retries == 0 and usage.requests == 2
    assert server.connections == 2  # the second request went again, on a new connection


def test_a_cookie_the_server_sets_is_sent_back():
    """The client's jar reads only answers that set a cookie (`_Cookies`), and still keeps
    those: a load balancer's sticky-session cookie goes back with the next request."""
    import httpx

    seen = []

    def handler(request):
        seen.append(request.headers.get("cookie"))
        headers = {"content-type": "application/json"}
        if len(seen) == 1:
            headers["set-cookie"] = "route=a; Path=/"
        return httpx.Response(200, content=completion_body("ok"), headers=headers)

    async def go():
        config = LLMConfig(base_urls=["http://llm.test"], model="m", stream=False, dialect="completions",
                           max_retries=0, outage_budget_s=0)
        async with LLMClient(config, transport=httpx.MockTransport(handler)) as c:
            for _ in range(3):
                await c.complete("hi")
    asyncio.run(go())
    assert seen == [None, "route=a", "route=a"]
