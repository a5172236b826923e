"""FAKE OpenAI-compatible model server, for benchmarks only: it measures Sprout's own cost.

This is not a model. It answers `/v1/models`, `/v1/completions` and `/v1/chat/completions`
at once (or after `--latency-s`, then at `--tokens-per-s` per request), with text shaped like
what Sprout's prompts ask for, made of random made-up words so that nearly every generated
instruction is novel:

* a Self-Instruct list prompt (ends with a number and a dot): a continuation of numbered
  instructions, cut at the request's `stop` strings as a real server does;
* "Is it classification?": " No";
* an instances prompt (ends with "Task: ..."): one or two "Example N / Input / Output" blocks;
* anything else (chat, judges, evolutions): a sentence of random words.

With `copies` (for tests of the novelty guarantee), instructions are drawn from a bank of
30 fixed ones with one word changed (two draws of the same one score ROUGE-L about 0.87),
and each task's one instance has an output drawn from a bank of 40 fixed 120-word texts
(two examples with the same output are near-duplicates), so requests sent in parallel
keep making candidates that only a job-wide check can reject.

Streamed answers (`"stream": true`) are server-sent events, one event per word (a word is
counted as a token), with a final usage event, as vLLM and llama.cpp send them; unstreamed
answers are one JSON body. The server is a plain asyncio protocol in its own process
(`python benchmarks/fake_llm_server.py --port N`, or `FakeServer` from a benchmark), so its
CPU is not counted as Sprout's; but it shares the cores with what it serves, so it is made
cheap: each event is rendered once per word and kept (`_Events`), an instant answer is
written at once (one `transport.write`, no task), and benchmarks read its CPU
(`FakeServer.cpu_s`, or `GET /v1/fake-stats`: requests answered and CPU seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import socket
import time

_SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vo", "pel", "dri", "sun", "mar", "zet", "qui", "bor", "fen",
              "lu", "gat", "nim", "os", "tre", "yal", "cor", "dem", "hix", "jup"]
_rng = random.Random(7)
VOCAB = sorted({"".join(_rng.choice(_SYLLABLES) for _ in range(_rng.randint(2, 3))) for _ in range(20000)})
VERBS = ["Describe", "Explain", "List", "Summarize", "Classify", "Compare", "Suggest", "Rewrite", "Find", "Plan"]
_NUMBERED_END = re.compile(r"(\d+)\.\s*$")


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(VOCAB, k=n))


_bank = random.Random(11)
BASES = [f"{_bank.choice(VERBS)} the {' '.join(_bank.choice(VOCAB) for _ in range(6))}." for _ in range(30)]
DOCS = [" ".join(_bank.choice(VOCAB) for _ in range(120)) for _ in range(40)]


def near_copy(rng: random.Random) -> str:
    words = rng.choice(BASES).split()
    words[rng.randrange(2, len(words))] = rng.choice(VOCAB)
    return " ".join(words)


def answer_text(prompt: str, rng: random.Random, copies: bool = False) -> str:
    """What the fake says to a prompt (see the module docstring)."""
    tail = prompt[-200:]
    if tail.rstrip().endswith("Is it classification?"):
        return " No"
    numbered = _NUMBERED_END.search(tail)
    if "\nTask:" in tail and not numbered:
        if copies:
            return f"Example 1\nInput: none\nOutput: {rng.choice(DOCS)}\n"
        n = rng.randint(1, 2)
        return "".join(f"Example {i}\nInput: {words(rng, rng.randint(4, 9))}\n"
                       f"Output: {words(rng, rng.randint(5, 12))}\n" for i in range(1, n + 1))
    if numbered:
        start = int(numbered.group(1))
        items = [near_copy(rng) if copies else f"{rng.choice(VERBS)} the {words(rng, rng.randint(6, 12))}."
                 for _ in range(8)]
        return " " + items[0] + "".join(f"\n{start + i}. {text}" for i, text in enumerate(items[1:], start=1))
    return words(rng, rng.randint(15, 40))


def cut(text: str, stop: list[str] | str | None) -> tuple[str, str]:
    """The text up to the first stop string, and the finish reason."""
    if isinstance(stop, str):
        stop = [stop]
    at = min((i for s in stop or [] if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:at], "stop") if at >= 0 else (text, "stop")


_PIECES = re.compile(r"\s*\S+")


class _Events:
    """Server-sent events rendered once per piece of text and kept (the fake's own CPU is
    on the same cores as the client it serves, so it should spend as little as it can).

    A piece is a word with the whitespace before it (" word", "\\n3."): the vocabulary is
    small, so after the bank rendered at start nearly every event is a dict look-up. Only
    the last piece (with its finish reason) and the usage event are rendered per answer."""

    def __init__(self) -> None:
        self.chat: dict[str, bytes] = {}
        self.text: dict[str, bytes] = {}
        for word in (*VOCAB, *VERBS, "the"):
            for piece in (f" {word}", f" {word}.", f"\n{word}"):
                self.event(piece, True)
                self.event(piece, False)

    def event(self, piece: str, chat: bool, finish: str | None = None) -> bytes:
        cache = self.chat if chat else self.text
        if finish is None and (hit := cache.get(piece)) is not None:
            return hit
        choice = ({"index": 0, "delta": {"content": piece}, "finish_reason": finish}
                  if chat else {"index": 0, "text": piece, "finish_reason": finish})
        data = b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n"
        if finish is None and len(cache) < 500_000:
            cache[piece] = data
        return data


class _Protocol(asyncio.Protocol):
    events: _Events | None = None  # built once per server process
    served = 0

    def __init__(self, latency_s: float, tokens_per_s: float, copies: bool = False, rng: random.Random | None = None):
        self.copies = copies
        self.latency_s = latency_s
        self.tokens_per_s = tokens_per_s
        self.rng = rng or random.Random()
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        if _Protocol.events is None:
            _Protocol.events = _Events()

    def connection_made(self, transport):  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end]
            length = 0
            at = head.lower().find(b"\r\ncontent-length:")
            if at >= 0:
                end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17: end if end >= 0 else None].strip())
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4: head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length:]
            method, path = head[: head.find(b"\r\n")].decode("latin-1").split(" ", 2)[:2]
            if self.latency_s or self.tokens_per_s:
                asyncio.ensure_future(self.answer(method, path, body))
            else:  # an instant answer needs no task
                self.answer_now(path, body)

    def send(self, status: int, content_type: str, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(b"HTTP/1.1 %d OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
                             % (status, content_type.encode(), len(data), data))

    def prepare(self, path: str, raw: bytes) -> tuple[dict, bool, str, list[str], str, dict]:
        body = json.loads(raw or b"{}")
        chat = path.endswith("/chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body.get("prompt", "")
        text, finish = cut(answer_text(prompt, self.rng, self.copies), body.get("stop"))
        pieces = _PIECES.findall(text) or [text]
        usage = {"prompt_tokens": max(1, len(prompt) // 4), "completion_tokens": len(pieces),
                 "total_tokens": max(1, len(prompt) // 4) + len(pieces)}
        _Protocol.served += 1
        return body, chat, text, pieces, finish, usage

    def rendered(self, chat: bool, pieces: list[str], finish: str, usage: dict) -> list[bytes]:
        """The answer's events, `[DONE]` included, each `data: ...\\n\\n`."""
        assert self.events is not None
        out = [self.events.event(piece, chat) for piece in pieces[:-1]]
        out.append(self.events.event(pieces[-1], chat, finish))
        out.append(b'data: {"choices": [], "usage": %s}\n\n' % json.dumps(usage).encode())
        out.append(b"data: [DONE]\n\n")
        return out

    def special(self, path: str) -> bool:
        if path.endswith("/models"):
            self.send(200, "application/json", b'{"object":"list","data":[{"id":"fake-model"}]}')
            return True
        if path.endswith("/fake-stats"):  # the fake's own counts, for benchmarks
            import resource

            r = resource.getrusage(resource.RUSAGE_SELF)
            self.send(200, "application/json",
                      json.dumps({"served": _Protocol.served, "cpu_s": r.ru_utime + r.ru_stime}).encode())
            return True
        return False

    def answer_now(self, path: str, raw: bytes) -> None:
        if self.special(path):
            return
        body, chat, text, pieces, finish, usage = self.prepare(path, raw)
        if not body.get("stream"):
            self.send(200, "application/json", self.whole(chat, text, finish, usage))
            return
        self.send(200, "text/event-stream", b"".join(self.rendered(chat, pieces, finish, usage)))

    @staticmethod
    def whole(chat: bool, text: str, finish: str, usage: dict) -> bytes:
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                  if chat else {"index": 0, "text": text, "finish_reason": finish})
        return json.dumps({"choices": [choice], "usage": usage}).encode()

    async def answer(self, method: str, path: str, raw: bytes) -> None:
        if self.special(path):
            return
        body, chat, text, pieces, finish, usage = self.prepare(path, raw)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if not body.get("stream"):
            self.send(200, "application/json", self.whole(chat, text, finish, usage))
            return
        events = self.rendered(chat, pieces, finish, usage)
        if not self.tokens_per_s:
            self.send(200, "text/event-stream", b"".join(events))
            return
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for e in events[:-1]:
            await asyncio.sleep(1.0 / self.tokens_per_s)
            self._chunk(e)
        self._chunk(events[-1])
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"%x\r\n%s\r\n" % (len(data), data))


def serve(sock: socket.socket, latency_s: float, tokens_per_s: float, copies: bool = False) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        _Protocol.events = _Events()  # rendered before the first request
        rng = random.Random()
        server = await loop.create_server(lambda: _Protocol(latency_s, tokens_per_s, copies, rng), sock=sock,
                                          backlog=1024)
        await server.serve_forever()

    asyncio.run(main())


class FakeServer:
    """The FAKE server in a child process: `with FakeServer(latency_s=0) as url: ...`."""

    def __init__(self, latency_s: float = 0.0, tokens_per_s: float = 0.0, copies: bool = False):
        self.latency_s, self.tokens_per_s, self.copies = latency_s, tokens_per_s, copies
        self.process: multiprocessing.Process | None = None

    def __enter__(self) -> str:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        port = sock.getsockname()[1]
        self.process = multiprocessing.get_context("fork").Process(
            target=serve, args=(sock, self.latency_s, self.tokens_per_s, self.copies), daemon=True)
        self.process.start()
        sock.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        return f"http://127.0.0.1:{port}/v1"

    def cpu_s(self) -> float:
        """The server process's CPU seconds so far (user and system, from /proc): it runs on
        the same cores as the processes it serves, so benchmarks count its share."""
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.join(5)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8199)
    ap.add_argument("--latency-s", type=float, default=0.0, help="wait before the first token")
    ap.add_argument("--tokens-per-s", type=float, default=0.0, help="per request; 0: all at once")
    ap.add_argument("--copies", action="store_true", help="near-copies of a few instructions and outputs")
    args = ap.parse_args()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", args.port))
    s.listen(1024)
    print(f"FAKE model server (not a model) on http://127.0.0.1:{args.port}/v1", flush=True)
    serve(s, args.latency_s, args.tokens_per_s, args.copies)
