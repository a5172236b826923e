"""The LLM client's own HTTP/1.1 path for streamed requests (`app.core.llm.wire`), against
a raw server on loopback that cuts its answers at awkward places."""

import asyncio
import json

from app.core.config import LLMConfig
from app.core.llm import wire
from app.core.llm.client import LLMClient

WORDS = ["Hé", " là", " ünïcode", " and", " more"]


def sse_chunks(line_end: bytes) -> list[bytes]:
    """An event stream of WORDS, then usage and [DONE], cut into chunks that split lines,
    line ends and a multi-byte character."""
    events = [{"choices": [{"index": 0, "text": w, "finish_reason": None}]} for w in WORDS]
    events.append({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
    events.append({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": len(WORDS)}})
    stream = b"".join(b"data: " + json.dumps(e, ensure_ascii=False).encode() + line_end * 2 for e in events)
    stream += b"data: [DONE]" + line_end * 2
    cuts = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
    out, at = [], 0
    for n in cuts * 20:
        if at >= len(stream):
            break
        out.append(stream[at:at + n])
        at += n
    if at < len(stream):
        out.append(stream[at:])
    return out


class RawServer:
    """Answers each POST with a chunked event stream; counts connections and requests.
    `break_first`: the first answer stops mid-stream and the connection is closed."""

    def __init__(self, line_end: bytes = b"\n", break_first: bool = False):
        self.line_end, self.break_first = line_end, break_first
        self.connections = self.requests = 0
        self.bodies: list[dict] = []

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                self.bodies.append(json.loads(await reader.readexactly(length)))
                self.requests += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                chunks = sse_chunks(self.line_end)
                if self.break_first and self.requests == 1:
                    chunks = chunks[: len(chunks) // 2]
                for chunk in chunks:
                    writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    await writer.drain()
                if self.break_first and self.requests == 1:
                    writer.close()
                    return
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        finally:
            writer.close()


def client(url: str, **kw) -> LLMClient:
    return LLMClient(LLMConfig(base_urls=[url], model="m", dialect="completions", backoff_s=0.01, **kw))


def test_streamed_answers_cut_anywhere_are_read_whole_over_one_kept_alive_connection():
    for line_end in (b"\n", b"\r\n", b"\r"):
        server = RawServer(line_end)

        async def run(server=server):
            async with server as url, client(url) as c:
                assert c._endpoints[0].wire
                answers = [await c.complete(f"prompt {i}", max_tokens=9) for i in range(4)]
                return answers, c.usage

        answers, usage = asyncio.run(run())
        for a in answers:
            assert a.text == "".join(WORDS)
            assert a.finish_reason == "stop"
            assert (a.prompt_tokens, a.completion_tokens) == (7, len(WORDS))
        assert server.requests == 4 and server.connections == 1, line_end  # kept alive, reused
        assert usage.errors == 0 and usage.requests == 4
        assert server.bodies[0]["prompt"] == "prompt 0" and server.bodies[0]["stream"] is True
        assert server.bodies[0]["stream_options"] == {"include_usage": True}


def test_the_same_answer_as_through_httpx():
    server = RawServer(b"\r\n")

    async def run():
        async with server as url, client(url) as c:
            by_wire = await c.complete("p", max_tokens=9)
            c._endpoints[0].wire = False
            by_httpx = await c.complete("p", max_tokens=9)
            return by_wire, by_httpx

    by_wire, by_httpx = asyncio.run(run())
    assert by_wire == by_httpx
    assert server.bodies[0] == server.bodies[1]


def test_a_stream_broken_midway_is_retried_on_a_new_connection():
    server = RawServer(break_first=True)

    async def run():
        async with server as url, client(url, max_retries=2) as c:
            return await c.complete("p", max_tokens=9), c.usage

    answer, usage = asyncio.run(run())
    assert answer.text == "".join(WORDS)
    assert usage.requests == 2 and usage.errors == 1 and usage.retries == 1
    assert "connection broke (RemoteProtocolError)" in usage.last_errors[0]["message"]
    assert server.connections == 2


def test_only_plain_http_without_a_proxy_goes_through_the_wire(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert wire.usable("http://127.0.0.1:8000/v1")
    assert not wire.usable("https://api.example.com/v1")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert not wire.usable("http://10.1.2.3:8000/v1")  # httpx would send it through the proxy
    monkeypatch.setenv("NO_PROXY", "10.1.2.3")
    assert wire.usable("http://10.1.2.3:8000/v1")

    async def proxied() -> bool:
        async with LLMClient(LLMConfig(base_urls=["http://10.9.9.9:8000/v1"], model="m")) as c:
            return c._endpoints[0].wire

    assert not asyncio.run(proxied())
