"""Fault injection for tests of failure handling only.

`FaultyLLMServer` is a stand-in for an LLM server that answers from a script of (status,
body) pairs — 500s, 429s, garbage, slow replies — so the client's retries, backoff and
error messages can be checked. It has no `/props` (a dialect probe, recorded in `probes`,
gets a 404 and consumes no scripted answer). `ChatOnlyProxy` fronts a real model server
and answers `/completions` with a hosted API's chat-model error. `OutageProxy` sits in front of a real model server and can
be taken down and brought back on the same port, as a restarting server would. Tests of
what the model produces use the real embedded model, never a stand-in.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import urlsplit


def completion_body(text: str = "ok", finish_reason: str = "stop") -> str:
    return json.dumps(
        {
            "choices": [{"text": text, "index": 0, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }
    )


class FaultyLLMServer:
    """`script` is consumed one entry per request; when empty, `default` answers. `respond`,
    when given, picks the answer from (path, body) first (None: the script's)."""

    def __init__(self, script=(), default=(200, None), delay_s: float = 0.0, port: int = 0, respond=None):
        self.script = list(script)
        self.default = default
        self.delay_s = delay_s
        self.respond = respond
        self.requests: list[tuple[str, dict | None]] = []
        self.probes: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                chosen = outer.respond(self.path, body) if outer.respond else None
                if chosen is None and self.path.endswith("/props"):  # the dialect probe: not scripted
                    outer.probes.append(self.path)
                    chosen = (404, json.dumps({"error": "not found"}))
                else:
                    outer.requests.append((self.path, body))
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                status, payload = chosen or (outer.script.pop(0) if outer.script else outer.default)
                if payload is None:
                    payload = json.dumps({"data": [{"id": "fault-model"}]}) if self.path.endswith("/models") else completion_body()
                data = payload.encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _answer
            do_POST = _answer

        class QuietServer(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # a client that hung up on a slow reply
                pass

        QuietServer.allow_reuse_address = True
        self.httpd = QuietServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class OutageProxy:
    """A TCP proxy to `target_url`'s host and port, on a port of its own that stays the same
    across `stop()` (connections refused, open ones cut) and `start()` (served again)."""

    def __init__(self, target_url: str):
        parts = urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}{parts.path}"
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _FaultHTTPServer:
    """What the fault servers below share: a threaded HTTP server on a free loopback port."""

    def _serve(self, handler_answer) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _answer(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                handler_answer(self, body)

            do_GET = _answer
            do_POST = _answer

        class QuietServer(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # a client that hung up
                pass

        QuietServer.allow_reuse_address = True
        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        del outer

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _send_json(handler, status: int, payload: dict) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class StreamingLLMServer(_FaultHTTPServer):
    """A slow server that streams (SSE) `tokens` tokens, one every `interval_s`, then usage;
    with `stall_after`, it sends that many tokens and then goes silent for `stall_s`."""

    def __init__(self, tokens: int = 20, interval_s: float = 0.5, stall_after: int | None = None,
                 stall_s: float = 30.0, first_token_delay_s: float = 0.0):
        self.requests: list[dict | None] = []

        def answer(handler, body):
            self.requests.append(body)
            if handler.path.endswith("/models"):
                return _send_json(handler, 200, {"data": [{"id": "fault-model"}]})
            handler.send_response(200)
            handler.send_header("content-type", "text/event-stream")
            handler.send_header("connection", "close")
            handler.end_headers()
            handler.close_connection = True

            def event(payload):
                handler.wfile.write(f"data: {payload}\n\n".encode())
                handler.wfile.flush()

            time.sleep(first_token_delay_s)
            for i in range(tokens):
                if stall_after is not None and i == stall_after:
                    time.sleep(stall_s)
                    return
                event(json.dumps({"choices": [{"index": 0, "text": f"t{i} ", "finish_reason": None}]}))
                if i + 1 < tokens:
                    time.sleep(interval_s)
            event(json.dumps({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}))
            event(json.dumps({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": tokens,
                                                       "prompt_tokens_details": {"cached_tokens": 5}}}))
            event("[DONE]")

        self._serve(answer)


class OverloadingLLMServer(_FaultHTTPServer):
    """A server with `capacity` slots that answers each request after `latency_s` and
    refuses (429) a request that finds every slot busy, as an overloaded server does.
    `in_flight_max` records the most requests it held at once."""

    def __init__(self, capacity: int = 4, latency_s: float = 0.05, completion_tokens: int = 10):
        self.capacity = capacity
        self.in_flight = 0
        self.in_flight_max = 0
        self.refused = 0
        self.served = 0
        lock = threading.Lock()

        def answer(handler, body):
            if handler.path.endswith("/models"):
                return _send_json(handler, 200, {"data": [{"id": "fault-model"}]})
            with lock:
                if self.in_flight >= self.capacity:
                    self.refused += 1
                    busy = True
                else:
                    busy = False
                    self.in_flight += 1
                    self.in_flight_max = max(self.in_flight_max, self.in_flight)
            if busy:
                return _send_json(handler, 429, {"error": "too many requests"})
            try:
                time.sleep(latency_s)
            finally:
                with lock:
                    self.in_flight -= 1
                    self.served += 1
            _send_json(handler, 200, {
                "choices": [{"text": "ok", "index": 0, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": completion_tokens},
            })

        self._serve(answer)


CHAT_MODEL_ERROR = {"error": {
    "message": "This is a chat model and not supported in the v1/completions endpoint. "
               "Did you mean to use v1/chat/completions?",
    "type": "invalid_request_error", "param": "model", "code": None}}


class ChatOnlyProxy(_FaultHTTPServer):
    """Fault injector: a hosted API's behaviour in front of a real model server. It answers
    `/v1/completions` with the chat-model error (HTTP 404, OpenAI's body), has no `/props`,
    and forwards everything else (`/models`, `/chat/completions`) to `target_url`, asking the
    real server for a plain JSON answer. `paths` records what each request asked for."""

    def __init__(self, target_url: str):
        import httpx

        target = target_url.rstrip("/")
        self.paths: list[str] = []

        def answer(handler, body):
            path = handler.path
            self.paths.append(path)
            if path.endswith("/props"):
                return _send_json(handler, 404, {"error": {"message": "not found"}})
            if path.endswith("/completions") and not path.endswith("/chat/completions"):
                return _send_json(handler, 404, CHAT_MODEL_ERROR)
            suffix = path.removeprefix("/v1")
            if body is None:
                r = httpx.get(target + suffix, timeout=60)
            else:
                body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
                r = httpx.post(target + suffix, json=body, timeout=600)
            return _send_json(handler, r.status_code, r.json())

        self._serve(answer)
