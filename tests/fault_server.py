"""A fault-injecting stand-in for an LLM server, for tests of failure handling only.

It answers from a script of (status, body) pairs — 500s, 429s, garbage, slow replies —
so the client's retries, backoff and error messages can be checked. Tests of what the
model produces use the real embedded model, never this.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion_body(text: str = "ok", finish_reason: str = "stop") -> str:
    return json.dumps(
        {
            "choices": [{"text": text, "index": 0, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }
    )


class FaultyLLMServer:
    """`script` is consumed one entry per request; when empty, `default` answers."""

    def __init__(self, script=(), default=(200, None), delay_s: float = 0.0):
        self.script = list(script)
        self.default = default
        self.delay_s = delay_s
        self.requests: list[tuple[str, dict | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                outer.requests.append((self.path, body))
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                status, payload = outer.script.pop(0) if outer.script else outer.default
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

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
