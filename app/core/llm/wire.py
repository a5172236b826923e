"""A small HTTP/1.1 client for the one request a job sends thousands of times: a streamed
POST to a plain-`http` model server.

Why not httpx for it: against an instant server, httpx and httpcore cost about 2 ms of CPU
a streamed request on their own (the connection pool checks every connection's socket on
each request and on each release, headers and body leave in two sends, and each line
passes through four layers of iterators), which is more than all the rest of a job's work
per request. Here a request is one `write` of its head and body, the answer's head one
read, and the body's chunks are cut into lines as they come. Kept-alive connections wait
in a last-in-first-out list per server; one idle longer than `KEEPALIVE_S`, or that the
server has closed, is dropped when it is picked.

`LLMClient` sends through it only streamed POSTs to `http://` base URLs with no proxy in
the environment and no test transport; everything else (https, proxies, `GET`s,
unstreamed requests) still goes through httpx. Failures are raised as the httpx
exceptions of the same meaning (`ConnectError`, `ConnectTimeout`, `ReadError`,
`WriteError`, `RemoteProtocolError` with httpcore's words for a connection closed before
any byte of the answer), so the client's retries read them as they read httpx's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx

KEEPALIVE_S = 5.0  # as httpx: an idle connection older than this is not reused
STALE = "Server disconnected without sending a response."  # httpcore's words (`client.STALE_CONNECTION`)
_HEAD_LIMIT = 64 * 1024


def usable(url: str) -> bool:
    """Whether requests to `url` may go through `Wire`: plain http, and no proxy in the
    environment that httpx would send them through."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    proxies = getproxies()
    if not (proxies.get("http") or proxies.get("all")):
        return True
    return bool(proxy_bypass(parts.hostname))


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        self.writer.close()


@dataclass
class Answer:
    """An answer's status and head; `lines()` (an event stream) or `read()` (anything
    else) takes its body, once. `release()` gives the connection back (after a whole
    body) or closes it; `Wire.stream` calls it."""

    status: int
    headers: dict[str, str]
    _wire: Wire
    _key: tuple[str, int]
    _conn: _Connection
    _done: bool = field(default=False, init=False)

    async def _chunks(self) -> AsyncIterator[bytes]:
        reader = self._conn.reader
        try:
            if self.headers.get("transfer-encoding", "").lower().endswith("chunked"):
                while True:
                    size_line = await reader.readline()
                    if not size_line.endswith(b"\n"):
                        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")
                    try:
                        size = int(size_line.split(b";", 1)[0].strip(), 16)
                    except ValueError:
                        raise httpx.RemoteProtocolError("malformed chunk size") from None
                    if size == 0:
                        while (trailer := await reader.readline()) not in (b"\r\n", b"\n"):
                            if not trailer:
                                raise httpx.RemoteProtocolError(
                                    "peer closed connection without sending complete message body")
                        self._done = True
                        return
                    data = await reader.readexactly(size + 2)
                    yield data[:-2]
            elif (length := self.headers.get("content-length")) is not None:
                n = int(length)
                if n:
                    yield await reader.readexactly(n)
                self._done = True
            else:  # the body ends with the connection
                while data := await reader.read(65536):
                    yield data
                self.headers["connection"] = "close"
                self._done = True
        except asyncio.IncompleteReadError:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body") from None
        except (ConnectionError, OSError) as exc:
            raise httpx.ReadError(str(exc) or exc.__class__.__name__) from None

    async def lines(self) -> AsyncIterator[str]:
        """The body's lines (`\\n`, `\\r\\n` or `\\r` ends one), decoded as UTF-8."""
        rest = b""
        async for data in self._chunks():
            if b"\r" in data or rest.endswith(b"\r"):
                data = (rest + data).replace(b"\r\n", b"\n")
                keep_cr = data.endswith(b"\r")  # may be the first half of a \r\n
                data = data.replace(b"\r", b"\n")
                rest = b""
                if keep_cr:
                    data = data[:-1]
                    pieces = data.split(b"\n")
                    rest = pieces.pop() + b"\r"
                    for piece in pieces:
                        yield piece.decode("utf-8", "replace")
                    continue
            elif rest:
                data = rest + data
            pieces = data.split(b"\n")
            rest = pieces.pop()
            for piece in pieces:
                yield piece.decode("utf-8", "replace")
        if rest.rstrip(b"\r"):
            yield rest.rstrip(b"\r").decode("utf-8", "replace")

    async def read(self) -> bytes:
        return b"".join([data async for data in self._chunks()])

    def release(self) -> None:
        reusable = self._done and self.headers.get("connection", "").lower() != "close"
        self._wire._give_back(self._key, self._conn, reusable)


class Wire:
    """Kept-alive connections per server and the requests sent over them.

    `headers` go with every request (the API key's `Authorization`); `keepalive`: at most
    so many idle connections are kept per server; `connect_timeout_s`: for a new
    connection."""

    def __init__(self, headers: dict[str, str], keepalive: int, connect_timeout_s: float) -> None:
        self._head_extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.keepalive = keepalive
        self.connect_timeout_s = connect_timeout_s
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def _connect(self, host: str, port: int) -> _Connection:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await asyncio.open_connection(host, port, limit=_HEAD_LIMIT)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} within {self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or exc.__class__.__name__) from None
        return _Connection(reader, writer)

    def _take_idle(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if (now - conn.idle_since > KEEPALIVE_S or conn.reader.at_eof() or conn.writer.is_closing()
                    or conn.reader._buffer):  # type: ignore[attr-defined]  # bytes the server sent unasked
                conn.close()
                continue
            return conn
        return None

    def _give_back(self, key: tuple[str, int], conn: _Connection, reusable: bool) -> None:
        idle = self._idle.setdefault(key, [])
        if reusable and len(idle) < self.keepalive and not conn.writer.is_closing():
            conn.idle_since = time.monotonic()
            idle.append(conn)
        else:
            conn.close()

    async def open(self, url: str, body: bytes) -> Answer:
        """POST `body` (JSON) to `url`; the answer once its head has come. The caller
        reads its body and must `release()` it (`stream` does both ends)."""
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 80
        key = (host, port)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        head = (f"POST {target} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\nAccept: */*\r\n"
                "User-Agent: sprout\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{self._head_extra}\r\n")
        conn = self._take_idle(key) or await self._connect(host, port)
        try:
            conn.writer.write(head.encode("latin-1") + body)
            try:
                status_line = await conn.reader.readline()
            except (ConnectionError, OSError):
                status_line = b""
            if not status_line:  # closed before a byte of the answer: a kept-alive one the server dropped
                raise httpx.RemoteProtocolError(STALE)
            status, version = _parse_status(status_line)
            headers = await _read_head(conn.reader)
            if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
                headers["connection"] = "close"  # HTTP/1.0 closes after the answer unless it says otherwise
            answer = Answer(status, headers, self, key, conn)
        except BaseException:
            conn.close()
            raise
        return answer

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


def _parse_status(line: bytes) -> tuple[int, str]:
    try:
        version, status, *_ = line.decode("latin-1").split(" ", 2)
        if not version.startswith("HTTP/1."):
            raise ValueError(version)
        return int(status), version
    except ValueError:
        raise httpx.RemoteProtocolError(f"malformed status line {line[:80]!r}") from None


async def _read_head(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    try:
        block = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body") from None
    except asyncio.LimitOverrunError:
        raise httpx.RemoteProtocolError("the answer's head is too long") from None
    except (ConnectionError, OSError) as exc:
        raise httpx.ReadError(str(exc) or exc.__class__.__name__) from None
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def response_of(answer: Answer, body: bytes, url: str) -> httpx.Response:
    """A whole (non-streamed) answer as an httpx response, for the client's status checks."""
    headers: list[tuple[str, Any]] = [(k, v) for k, v in answer.headers.items()
                                      if k not in ("transfer-encoding", "content-encoding")]
    return httpx.Response(answer.status, headers=headers, content=body, request=httpx.Request("POST", url))
