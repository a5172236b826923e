"""An async client for OpenAI-compatible servers (vLLM, llama.cpp, OpenAI itself).

Why our own and not the `openai` SDK: we need several endpoints behind one client (a
request goes to the least busy one), one concurrency bound across all of them, retries
that move to another endpoint, and token counts per job. It sends only fields that vLLM's
OpenAI server accepts; server-specific extras go through `extra`.

Retries ride out an outage. A request that fails on a connection error, a timeout, a 429
or a 5xx is retried `max_retries` times, and, while no request of this client has been
answered since its last attempt was sent (every endpoint is down, or restarting; an answer
to a request already in flight when the server went away does not count), for as long as
`outage_budget_s` lasts, with the delay capped at `backoff_max_s`. Then it raises
`LLMOutageError`, which names the endpoints and the last error: the job is paused and
retried later rather than failed. A request that keeps failing while others are answered
is not an outage: it ends with `LLMError` after its retries, as a bad request does.

Concurrency adapts per endpoint (`adaptive.AIMDLimit`): the configured concurrency is
split over the endpoints as their starting limits; each limit rises by one while latency
per token holds and halves on a 429, a 5xx or a timeout, between `concurrency_min` and
`concurrency_max`. `gauges()` gives the limits and the utilisation for the job's counters.

Completions are streamed (SSE) when `stream` is on, so a slow server that keeps sending
tokens is never cut: the timeouts are on the first token and on silence between tokens,
not on the whole request. Usage comes from the stream's last event
(`stream_options.include_usage`, vLLM and llama.cpp), else from llama.cpp's `timings`,
else the content events are counted. A server that answers a stream request with plain
JSON is read as such; `stream=False` sends plain requests with a whole-request timeout.
Requests go through httpx over aiohttp's connection pool (`httpx_aiohttp.AiohttpTransport`):
httpcore's pool cost more CPU per streamed request than the rest of a job's work. A test's
injected transport and proxies from the environment still go through httpx's own.

A request waits for a slot in line: a release hands its slot to the oldest waiter that can
use it (`_acquire`), rather than waking every waiting request to race for it.

Endpoints are named in messages, metrics and the job's counters through `urls.redact`
(a base URL may carry a password), and `Usage` keeps the last few failed attempts' messages
(`LAST_ERRORS`, with their time and endpoint) so a job can show why its requests failed,
not only how many did.

Dialects (`dialects.py`): `ask` takes a step's request builder and sends it through the
client's dialect, `completions` or `chat`; in `auto` the dialect is decided once (llama.cpp's
`/props`, Sprout's known embedded models) and a `/completions` answer that the model is a
chat model switches the client to `chat` for good. A forced `completions` meeting that
answer raises `ChatModelOnlyError` (a job fails at once, naming the endpoint).

Token log-probabilities, when a caller asks for them (`logprobs`, `top_logprobs`: the
judge's expected score), come back in `Completion.logprobs`, streamed or not.
"""

from __future__ import annotations

import asyncio
import codecs
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
import httpx_aiohttp
from pydantic_core import from_json

from app.core import metrics
from app.core.config import LLMConfig
from app.core.errors import Unavailable
from app.core.llm import dialects
from app.core.llm.adaptive import AIMDLimit, Utilisation
from app.core.llm.dialects import Dialect, Request
from app.core.urls import redact

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# answers that say the server is overloaded: they cut the endpoint's adaptive limit
OVERLOAD_STATUS = {408, 429, 500, 502, 503, 504}
# httpcore's words for a connection closed before any byte of the answer came back
STALE_CONNECTION = "without sending a response"
# what `str.splitlines` (and so httpx's `aiter_lines`) ends a line at
_NEWLINES = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
LAST_ERRORS = 5  # failed attempts whose messages a job keeps (the newest)
ERROR_MESSAGE_CHARS = 300


class LLMError(Unavailable, RuntimeError):
    """A request that failed for good (after retries, or a 4xx that no retry fixes)."""


class LLMUnavailableError(LLMError):
    """No endpoint could be reached."""


class LLMOutageError(LLMUnavailableError):
    """The model servers stayed away longer than the outage budget: the job waits, it
    does not fail (the jobs layer pauses it and the reaper sends it again)."""


class ChatModelOnlyError(LLMUnavailableError):
    """`/completions` answered that the model is served through the chat API only. In
    `auto` the client switches to `chat`; a forced `completions` cannot go on, so the job
    fails at once (an `LLMUnavailableError` is never one candidate's failure)."""


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    # the choice's `logprobs` as the server sent it (asked for with `logprobs`/`top_logprobs`),
    # streamed pieces joined: `{"content": [...]}` (chat, llama.cpp) or `{"tokens", "token_logprobs",
    # "top_logprobs"}` (legacy completions, vLLM); None when the server sent none
    logprobs: dict[str, Any] | None = None
    dialect: str = "completions"  # the API that answered: "completions" or "chat"


@dataclass
class Usage:
    """What one client sent and got; a job copies it into its counters (`added_to`)."""

    requests: int = 0
    errors: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    # the newest failed attempts, oldest first: {"at": ISO time (UTC), "endpoint", "message"};
    # replaced, never changed in place, so the heartbeat thread always reads a whole list
    last_errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "llm_requests": self.requests,
            "llm_errors": self.errors,
            "llm_retries": self.retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
        }

    def error(self, endpoint: str, message: str, at: datetime | None = None) -> None:
        """Count a failed attempt and keep its message (the caller has redacted both)."""
        self.errors += 1
        entry = {"at": (at or datetime.now(UTC)).isoformat(timespec="seconds"), "endpoint": endpoint,
                 "message": message[:ERROR_MESSAGE_CHARS]}
        self.last_errors = [*self.last_errors[-(LAST_ERRORS - 1):], entry]

    def merge(self, other: Usage) -> Usage:
        """A new Usage: both counted together (the last errors of both, newest last)."""
        out = Usage(**{k: getattr(self, k) + getattr(other, k) for k in
                       ("requests", "errors", "retries", "prompt_tokens", "completion_tokens", "cached_prompt_tokens")})
        out.last_errors = sorted([*self.last_errors, *other.last_errors], key=lambda e: e["at"])[-LAST_ERRORS:]
        return out

    def added_to(self, before: dict[str, Any]) -> dict[str, Any]:
        """The job's LLM counters: what its earlier attempts recorded (`before`, the stored
        counters when this attempt began) plus this client's. Counts add up; the last errors
        are the newest of both, so a worker that died leaves its errors to the next one."""
        out: dict[str, Any] = {k: int(before.get(k) or 0) + v for k, v in self.as_dict().items()}
        out["llm_last_errors"] = [*(before.get("llm_last_errors") or []), *self.last_errors][-LAST_ERRORS:]
        return out


def normalize_base_url(url: str) -> str:
    """`http://host:8000` and `http://host:8000/v1/` both mean `http://host:8000/v1`."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if not parts.path:
        url += "/v1"
    return url


@dataclass
class _Endpoint:
    base_url: str
    limit: AIMDLimit
    in_flight: int = 0
    failures: int = 0
    published_limit: int = 0  # what this client added to the limit gauge
    name: str = field(init=False)  # the base URL without its password: in messages, metrics and counters
    in_flight_metric: Any = field(init=False)  # this endpoint's child of LLM_IN_FLIGHT, looked up once
    answered_metrics: tuple[Any, ...] = field(init=False)
    urls: dict[str, httpx.URL] = field(init=False, default_factory=dict)  # path -> URL, parsed once

    def url(self, path: str) -> httpx.URL:
        """The endpoint's URL for `path`, parsed once (httpx parses a string URL on every
        request, a tenth of a request's time in httpx)."""
        url = self.urls.get(path)
        if url is None:
            url = self.urls[path] = httpx.URL(self.base_url + path)
        return url

    def __post_init__(self) -> None:
        self.name = redact(self.base_url)
        self.in_flight_metric = metrics.LLM_IN_FLIGHT.labels(self.name)
        # the children an answered request counts in, looked up once (a lookup per request cost
        # more than the counting)
        self.answered_metrics = (metrics.LLM_REQUESTS.labels(self.name, "ok"), metrics.LLM_LATENCY.labels(self.name),
                                 metrics.LLM_TOKENS.labels(self.name, "prompt"),
                                 metrics.LLM_TOKENS.labels(self.name, "completion"),
                                 metrics.LLM_TOKENS.labels(self.name, "cached_prompt"))


@contextmanager
def _httpx_errors(answering: bool = False) -> Iterator[None]:
    """httpx_aiohttp raises every aiohttp connection error it has no closer entry for as a
    `ConnectTimeout`; these keep the meanings httpcore gives them: a refused connection is a
    `ConnectError`, a kept-alive connection closed before a byte of the answer the
    `RemoteProtocolError` that `_send` sends again, a connection broken otherwise a `ReadError`.

    Before the answer has begun (`answering` False), a connection reset by the server is
    the same stale connection: a server that closes an idle connection just as a request
    arrives on it, with the request unread, closes it with a reset rather than a FIN, and the
    client sees "connection reset by peer" instead of a clean disconnect. Once the answer
    streams, a reset is a broken connection (`ReadError`)."""
    try:
        yield
    except httpx.ConnectTimeout as exc:
        cause = exc.__cause__
        if isinstance(cause, aiohttp.ClientConnectorError):
            raise httpx.ConnectError(str(exc)) from cause
        if isinstance(cause, aiohttp.ServerDisconnectedError) or (
                not answering and isinstance(cause, aiohttp.ClientOSError)):
            raise httpx.RemoteProtocolError(f"Server disconnected {STALE_CONNECTION}.") from cause
        if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, aiohttp.ServerTimeoutError):
            raise httpx.ReadError(str(exc)) from cause
        raise


class _AiohttpStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors(answering=True):
            async for chunk in self._inner:
                yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _AiohttpTransport(httpx_aiohttp.AiohttpTransport):
    """httpx over aiohttp's pool, with httpcore's exceptions (`_httpx_errors`), and for a base
    URL with a password too: httpx has already made the URL's user and password its
    `Authorization` header, and aiohttp refuses a URL that still carries them next to it."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.userinfo:
            request.url = request.url.copy_with(userinfo=b"")
        with _httpx_errors():
            response = await super().handle_async_request(request)
        inner = response.stream
        if not isinstance(inner, httpx.AsyncByteStream):  # an async transport's answer streams asynchronously
            raise TypeError(f"expected an async byte stream, got {type(inner).__name__}")
        response.stream = _AiohttpStream(inner)
        return response


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, which reads an answer only when it sets a cookie: httpx hands every
    answer to the jar through urllib's request and message wrappers (about 0.1 ms a request),
    and a model server seldom sets one; one that does (a load balancer's sticky session) still
    has it kept and sent back."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class _HttpClient(httpx.AsyncClient):
    """httpx's client with `_Cookies` for its jar."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cookies = kwargs.get("cookies") or {}

    @property
    def cookies(self) -> httpx.Cookies:
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._cookies = _Cookies(cookies)


class _Overload(Exception):
    """A 429, a 5xx or a timeout: retried, and the endpoint's limit is cut."""


class _Retryable(Exception):
    """A connection error or a broken answer: retried, the limit is left alone."""


class LLMClient:
    """A pool of OpenAI-compatible endpoints, built from one `LLMConfig` taken whole.

    `base_urls` overrides the configuration's endpoints (a job's own, or the embedded server it
    started); `transport` is httpx's, for tests that inject faults."""

    def __init__(self, config: LLMConfig, base_urls: list[str] | tuple[str, ...] | None = None, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.base_urls = list(base_urls or config.base_urls)
        self.model = config.model  # resolved from the server's list when None (`resolve_model`)
        self.usage = Usage()
        self.transport = transport
        if not self.base_urls:
            raise ValueError("LLMClient needs at least one base URL")
        dialects.check_dialect(self.config.dialect)
        self._dialect: Dialect | None = None if self.config.dialect == "auto" else self.config.dialect
        self._dialect_lock = asyncio.Lock()
        self.role_usage: dict[str, Usage] = {}  # what `ask` counted per role
        self.role_dialects: dict[str, str] = {}  # the API that last answered each role's step
        self.role_prices: dict[str, float] = {}  # role -> price per million tokens, for the cost metric
        self._role_metrics: dict[tuple[str, str], tuple[Any, ...]] = {}  # (role, dialect) -> its metric children
        n = len(self.base_urls)
        # the configured concurrency is for all endpoints together; each adapts on its own
        config = self.config
        starts = [config.concurrency // n + (1 if i < config.concurrency % n else 0) for i in range(n)]
        self._endpoints = [
            _Endpoint(normalize_base_url(u), AIMDLimit(starts[i], floor=min(config.concurrency_min, config.concurrency_max),
                                                       ceiling=config.concurrency_max, adaptive=config.adaptive_concurrency))
            for i, u in enumerate(self.base_urls)
        ]
        for ep in self._endpoints:
            self._publish_limit(ep)
        # requests waiting for a free slot, oldest first: (the endpoint to avoid, the future
        # a releasing request hands its slot through); see `_acquire`
        self._waiters: deque[tuple[_Endpoint | None, asyncio.Future[_Endpoint]]] = deque()
        self.utilisation = Utilisation()
        self._rr = 0
        self._last_answer = float("-inf")  # monotonic time of the last answered request
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        most = self.config.concurrency_max * n
        # idle connections dropped after 2 s: before the 5 s after which llama.cpp's server
        # and uvicorn (vLLM) close theirs, so a request seldom goes out on a connection the
        # server is closing (one that does is sent again, see `_httpx_errors`)
        limits = httpx.Limits(max_connections=most + 4, max_keepalive_connections=most, keepalive_expiry=2.0)
        # aiohttp's pool (the same limits) unless a test injects its transport
        transport = self.transport or _AiohttpTransport(limits=limits)
        # a streamed request's own timeouts (`_read_events` times the first token and silences)
        self._stream_timeout = httpx.Timeout(None, connect=min(10.0, self.config.first_token_timeout_s))
        self._http = _HttpClient(
            timeout=httpx.Timeout(self.config.timeout_s, connect=min(10.0, self.config.timeout_s)),
            headers=headers,
            limits=limits,
            transport=transport,
        )

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for ep in self._endpoints:
            metrics.LLM_LIMIT.labels(ep.name).dec(ep.published_limit)
            ep.published_limit = 0
        await self._http.aclose()

    def _publish_limit(self, ep: _Endpoint) -> None:
        if ep.limit.limit != ep.published_limit:
            metrics.LLM_LIMIT.labels(ep.name).inc(ep.limit.limit - ep.published_limit)
            ep.published_limit = ep.limit.limit

    @property
    def endpoints(self) -> list[str]:
        """The endpoints as messages and counters name them (without a password)."""
        return [e.name for e in self._endpoints]

    @property
    def capacity(self) -> int:
        """Requests the endpoints take at once now (the sum of their adaptive limits)."""
        return sum(e.limit.limit for e in self._endpoints)

    def limits(self) -> dict[str, int]:
        """Each endpoint's current concurrency limit."""
        return {e.name: e.limit.limit for e in self._endpoints}

    def gauges(self) -> dict[str, Any]:
        """What a job shows as it is now, not summed over attempts: the limit per
        endpoint and the utilisation since the client was made (the job's start)."""
        return {"llm_concurrency": self.limits(), **self.utilisation.figures()}

    # --- public calls --------------------------------------------------------------------
    async def resolve_model(self) -> str:
        """The configured model, or the first one the first reachable server lists."""
        if self.model:
            return self.model
        data = await self._request("GET", "/models", None)
        models = data.get("data") or data.get("models") or []
        if not models:
            raise LLMError(f"{self.endpoints[0]}/models lists no model; set SPROUT_LLM_MODEL")
        first = models[0]
        self.model = first.get("id") or first.get("name") or first.get("model")
        if not self.model:
            raise LLMError("the server's /models answer has no model id; set SPROUT_LLM_MODEL")
        return self.model

    @property
    def dialect_in_use(self) -> str | None:
        """The dialect decided (None: `auto`, not asked yet)."""
        return self._dialect

    async def resolve_dialect(self) -> Dialect:
        """The dialect requests go through; in `auto`, asked once (see `dialects`)."""
        if self._dialect is not None:
            return self._dialect
        async with self._dialect_lock:
            if self._dialect is None:
                found: Dialect | None = None
                for ep in self._endpoints:
                    found = dialects.from_props(await self._props(ep))
                    if found:
                        break
                if found is None and self.model in dialects.KNOWN_MODELS:
                    found = dialects.KNOWN_MODELS[self.model]
                self._dialect = found or "completions"
        return self._dialect

    async def props(self) -> dict[str, Any] | None:
        """The first endpoint's llama.cpp `/props` that answers (its chat template, its special
        tokens), or None (vLLM and hosted APIs have none); never raises, never counted."""
        for ep in self._endpoints:
            found = await self._props(ep)
            if isinstance(found, dict):
                return found
        return None

    async def _props(self, ep: _Endpoint) -> Any:
        """llama.cpp's `/props` (server root), or None: never raises, never counted."""
        try:
            r = await self._http.get(ep.base_url.removesuffix("/v1") + "/props", timeout=5.0)
            return r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    async def ask(self, build: Callable[[Dialect], Request], role: str = "generator") -> Completion:
        """One step's request, built by `build` for the client's dialect and sent through it.
        In `auto`, a chat-model answer from `/completions` switches the client to `chat`
        and the step is built again and sent through the chat API.

        `role` (generator, responder, judge): the step's tokens and failure are counted in
        `role_usage[role]` too, so a job shows what each role spent."""
        try:
            completion = await self._ask(build)
        except LLMError as exc:
            self.count_step(role, error=str(exc))
            raise
        self.count_step(role, completion)
        return completion

    def count_step(self, role: str, completion: Completion | None = None, error: str | None = None) -> None:
        """One step of `role` in `role_usage` and the metrics: its tokens (and, at the role's
        price in `role_prices`, its cost), or its failure. `ask` counts its own; a caller that
        sends through `complete`/`chat` itself (the LLM judge) counts here."""
        counted = self.role_usage.setdefault(role, Usage())
        counted.requests += 1
        if completion is None:
            counted.error(self.endpoints[0], error or "failed")
            metrics.LLM_ROLE_STEPS.labels(role, "error").inc()
            return
        counted.prompt_tokens += completion.prompt_tokens
        counted.completion_tokens += completion.completion_tokens
        counted.cached_prompt_tokens += completion.cached_tokens
        self.role_dialects[role] = completion.dialect  # a step may use another API than the client's dialect
        children = self._role_metrics.get((role, completion.dialect))
        if children is None:
            children = self._role_metrics[(role, completion.dialect)] = (
                metrics.LLM_ROLE_STEPS.labels(role, "ok"),
                metrics.LLM_ROLE_TOKENS.labels(role, completion.dialect, "prompt"),
                metrics.LLM_ROLE_TOKENS.labels(role, completion.dialect, "completion"))
        steps, prompt_tokens, completion_tokens = children
        steps.inc()
        prompt_tokens.inc(completion.prompt_tokens)
        completion_tokens.inc(completion.completion_tokens)
        price = self.role_prices.get(role)
        if price:
            metrics.LLM_ROLE_COST.labels(role).inc((completion.prompt_tokens + completion.completion_tokens) * price / 1e6)

    async def _ask(self, build: Callable[[Dialect], Request]) -> Completion:
        dialect = await self.resolve_dialect()
        request = build(dialect)
        if request.dialect == "chat":
            if request.messages is None:
                raise ValueError("a chat request needs messages")
            return await self.chat(request.messages, **request.chat_params())
        if request.prompt is None:
            raise ValueError("a completions request needs a prompt")
        try:
            return await self.complete(request.prompt, **request.params)
        except ChatModelOnlyError:
            if self.config.dialect != "auto":
                raise
            self._dialect = "chat"  # remembered: every later step goes through the chat API
            return await self._ask(build)

    async def complete(self, prompt: str, **params: Any) -> Completion:
        """POST /completions for one prompt; `params` are OpenAI sampling fields."""
        body = {"model": await self.resolve_model(), "prompt": prompt, **_clean(params)}
        data = await self._request("POST", "/completions", body)
        choice = _first_choice(data)
        return self._account(data, Completion(choice.get("text") or "", choice.get("finish_reason"),
                                              logprobs=_logprobs_of(choice)))

    async def chat(self, messages: list[dict[str, str]], **params: Any) -> Completion:
        """POST /chat/completions."""
        body = {"model": await self.resolve_model(), "messages": messages, **_clean(params)}
        data = await self._request("POST", "/chat/completions", body)
        choice = _first_choice(data)
        message = choice.get("message") or {}
        return self._account(data, Completion(message.get("content") or "", choice.get("finish_reason"),
                                              logprobs=_logprobs_of(choice), dialect="chat"))

    async def health(self) -> dict[str, str]:
        """Each endpoint's state: "ok" or why not; never raises."""
        out = {}
        for ep in self._endpoints:
            try:
                r = await self._http.get(ep.base_url + "/models", timeout=5.0)
                out[ep.name] = "ok" if r.status_code == 200 else f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                out[ep.name] = f"unreachable ({type(exc).__name__})"
        return out

    # --- machinery -----------------------------------------------------------------------
    def _account(self, data: dict[str, Any], completion: Completion) -> Completion:
        usage = data.get("usage") or {}
        completion.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion.completion_tokens = int(usage.get("completion_tokens") or 0)
        completion.cached_tokens = cached_prompt_tokens(data)
        self.usage.prompt_tokens += completion.prompt_tokens
        self.usage.completion_tokens += completion.completion_tokens
        self.usage.cached_prompt_tokens += completion.cached_tokens
        return completion

    def _failed(self, ep: _Endpoint, message: str) -> None:
        """Count a failed attempt and keep its message; a server that echoes the API key
        in its error does not put it in the job's counters."""
        message = message.replace(ep.base_url, ep.name)
        if self.config.api_key:
            message = message.replace(self.config.api_key, "***")
        self.usage.error(ep.name, message)

    def _pick(self, exclude: _Endpoint | None) -> _Endpoint | None:
        """The endpoint with the most free room under its limit, round-robin among equals;
        never the one that just failed while there is another. None: wait for room."""
        others = [e for e in self._endpoints if e is not exclude] or self._endpoints
        candidates = [e for e in others if e.in_flight < e.limit.limit]
        if not candidates:
            return None
        low = min(e.in_flight / e.limit.limit for e in candidates)
        least = [e for e in candidates if e.in_flight / e.limit.limit == low]
        self._rr += 1
        return least[self._rr % len(least)]

    def _track(self) -> None:
        self.utilisation.update(sum(e.in_flight for e in self._endpoints), self.capacity)

    def _take(self, ep: _Endpoint) -> _Endpoint:
        ep.in_flight += 1
        ep.in_flight_metric.inc()
        self._track()
        return ep

    async def _acquire(self, exclude: _Endpoint | None) -> _Endpoint:
        """A slot on an endpoint (`_pick`), waiting in line while there is none.

        Why not a condition that every release notifies: a job keeps many more requests
        waiting than there are slots, and waking all of them on each release (each to find
        the one slot gone) cost about a dozen wake-ups a request. A release hands its slot
        to the oldest waiter that can use it (`_release`), so each wait ends once. The event
        loop runs one request at a time, so the check and the take need no lock."""
        if not self._waiters and (ep := self._pick(exclude)) is not None:
            return self._take(ep)
        waiter: asyncio.Future[_Endpoint] = asyncio.get_running_loop().create_future()
        entry = (exclude, waiter)
        self._waiters.append(entry)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a slot just as it was cancelled
                self._release(waiter.result())
            else:
                try:
                    self._waiters.remove(entry)
                except ValueError:  # a release already dropped it
                    pass
            raise

    def _release(self, ep: _Endpoint) -> None:
        ep.in_flight -= 1
        ep.in_flight_metric.dec()
        self._publish_limit(ep)
        self._track()
        # hand the free room to the oldest waiters that can take it (a retry that avoids the
        # endpoint that failed it does not hold back the requests behind it)
        waiters = self._waiters
        for exclude, waiter in waiters:
            if waiter.done():
                continue
            ep_for = self._pick(exclude)
            if ep_for is not None:
                waiter.set_result(self._take(ep_for))
            elif not any(e.in_flight < e.limit.limit for e in self._endpoints):
                break  # no room left for anyone
        while waiters and waiters[0][1].done():  # served (or cancelled) ones leave from the front
            waiters.popleft()

    async def _send(self, ep: _Endpoint, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """One attempt at one endpoint: the answer, or `_Overload`/`_Retryable`/`LLMError`.

        A kept-alive connection the server closed just before the request went out (closed
        without a byte of answer: seen with the embedded llama.cpp server under load, a few
        requests in fifty) is sent again at once on a new connection, as HTTP clients do; it is
        no failure of the server's."""
        try:
            return await self._send_once(ep, method, path, body)
        except httpx.RemoteProtocolError as exc:
            if STALE_CONNECTION not in str(exc):
                raise
        return await self._send_once(ep, method, path, body)

    async def _send_once(self, ep: _Endpoint, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        url = ep.url(path)
        if not (self.config.stream and method == "POST" and body is not None):
            try:
                resp = await self._http.request(method, url, json=body)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout):
                    raise _Unreachable(f"{ep.name}: cannot connect ({exc.__class__.__name__})") from None
                raise _Overload(f"{ep.name}: no answer within {self.config.timeout_s:g} s") from None
            _check_status(resp, ep, path)
            return _json_object(resp, ep, path)
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        async with self._http.stream(method, url, json=body, timeout=self._stream_timeout) as resp:
            content_type = resp.headers.get("content-type", "")
            if resp.status_code != 200 or "text/event-stream" not in content_type:
                await _read_within(resp, self.config.first_token_timeout_s, ep)
                _check_status(resp, ep, path)
                return _json_object(resp, ep, path)  # a server that does not stream answers at once
            # the text as `aiter_text` decodes it, with two of its layers left out where they
            # do nothing: the body is read raw unless it has a content encoding (httpx's
            # decoder is then the identity), and without a charset the text is UTF-8 (httpx's
            # default, without its parse of the header through the `email` package each time)
            encoding = "utf-8" if "charset" not in content_type.lower() else resp.encoding or "utf-8"
            body_bytes = resp.aiter_raw() if "content-encoding" not in resp.headers else resp.aiter_bytes()
            return await self._read_events(body_bytes, encoding, ep, path)

    async def _read_events(self, chunks: AsyncIterator[bytes], encoding: str, ep: _Endpoint,
                           path: str) -> dict[str, Any]:
        """Assemble a streamed answer; time out on the first token and on silence.

        Decodes the body as it comes (as `aiter_text` does) and splits each piece into lines
        here, as `aiter_lines` does (the same line ends, `str.splitlines`'s): a whole piece's
        events are handled in one loop, not one async-generator step through httpx's line
        reader each (about 20 a request, a third of this method's time)."""
        parts: list[str] = []
        finish: str | None = None
        usage: dict[str, Any] = {}
        timings: dict[str, Any] = {}
        logprobs: dict[str, Any] | None = None
        chunks_seen = 0
        first = True
        # one timer for the whole stream (a `wait_for` per line cost a task and a timer per
        # token), moved on at most every `slack` seconds: a silence is cut after `limit`
        # seconds, at most `slack` later; the stream is read to its end, so the connection
        # goes back to the pool instead of being closed
        loop = asyncio.get_running_loop()
        limit = self.config.first_token_timeout_s
        moved = loop.time()
        try:
            async with asyncio.timeout_at(moved + limit) as deadline:
                async for lines in _line_runs(chunks, encoding):
                    if (now := loop.time()) - moved > (slack := min(1.0, limit / 10)):
                        moved = now
                        deadline.reschedule(now + limit + slack)
                    for line in lines:
                        if not line.startswith("data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == "[DONE]":
                            continue
                        try:
                            event = from_json(payload)  # pydantic's parser: a third of `json.loads`'s time
                        except ValueError:
                            raise _Retryable(f"{ep.name}{path}: a streamed event is not JSON") from None
                        if not isinstance(event, dict):
                            continue
                        if event.get("error"):
                            raise _Overload(f"{ep.name}{path}: the server broke off: {str(event['error'])[:200]}")
                        if first:
                            first, limit, moved = False, self.config.inactivity_timeout_s, loop.time()
                            deadline.reschedule(moved + limit + min(1.0, limit / 10))
                        usage = event.get("usage") or usage
                        timings = event.get("timings") or timings
                        for choice in event.get("choices") or ():
                            text = choice.get("text")
                            if text is None:
                                text = (choice.get("delta") or {}).get("content")
                            if text:
                                parts.append(text)
                                chunks_seen += 1
                            finish = choice.get("finish_reason") or finish
                            if (piece := choice.get("logprobs")) is not None:
                                logprobs = merge_logprobs(logprobs, piece)
        except TimeoutError:
            what = "no first token" if first else "no token"
            raise _Overload(f"{ep.name}{path}: {what} for {limit:g} s") from None
        text = "".join(parts)
        if not usage:
            usage = {"prompt_tokens": int(timings.get("prompt_n") or 0) + int(timings.get("cache_n") or 0),
                     "completion_tokens": int(timings.get("predicted_n") or chunks_seen)}
        out: dict[str, Any] = {"choices": [{"text": text, "message": {"content": text}, "finish_reason": finish,
                                            "logprobs": logprobs}],
                               "usage": usage}
        if timings:
            out["timings"] = timings
        return out

    async def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        last_error = ""
        unreachable = 0
        first_failure: float | None = None
        previous: _Endpoint | None = None
        attempt = 0
        while True:
            if attempt:
                self.usage.retries += 1
                delay = min(self.config.backoff_max_s, self.config.backoff_s * 2 ** min(attempt - 1, 32))
                await asyncio.sleep(random.uniform(0, delay))  # full jitter
            attempt += 1
            ep = await self._acquire(previous)
            previous = ep
            epoch = ep.limit.epoch
            self.usage.requests += 1
            sent = time.monotonic()
            outcome = "retryable"
            try:
                data = await self._send(ep, method, path, body)
            except _Unreachable as exc:
                unreachable += 1
                last_error = str(exc)
            except _Overload as exc:
                last_error, outcome = str(exc), "overload"
                ep.limit.overload(epoch)
            except _Retryable as exc:
                last_error = str(exc)
            except LLMError as exc:
                self._failed(ep, str(exc))
                metrics.LLM_REQUESTS.labels(ep.name, "error").inc()
                raise
            except asyncio.CancelledError:  # the job stopped waiting for it (target met, cancel)
                metrics.LLM_REQUESTS.labels(ep.name, "cancelled").inc()
                raise
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                unreachable += 1
                last_error = f"{ep.name}: cannot connect ({exc.__class__.__name__})"
            except httpx.TimeoutException:
                last_error, outcome = f"{ep.name}: no answer within {self.config.timeout_s:g} s", "overload"
                ep.limit.overload(epoch)
            except httpx.TransportError as exc:
                last_error = f"{ep.name}: connection broke ({exc.__class__.__name__})"
            else:
                self._last_answer = time.monotonic()
                usage = ((data.get("usage") or {}) if isinstance(data, dict) else {})
                tokens = int(usage.get("completion_tokens") or 0)
                answered, latency, prompt_tokens, completion_tokens, cached_tokens = ep.answered_metrics
                answered.inc()
                latency.observe(self._last_answer - sent)
                if usage:
                    prompt_tokens.inc(int(usage.get("prompt_tokens") or 0))
                    completion_tokens.inc(tokens)
                    cached_tokens.inc(cached_prompt_tokens(data))
                if self._waiters:
                    ep.limit.saturated()  # requests wait for a slot: the limit holds the job back
                ep.limit.success(self._last_answer - sent, tokens)
                return data
            finally:
                self._release(ep)
            self._failed(ep, last_error)
            metrics.LLM_REQUESTS.labels(ep.name, outcome).inc()
            now = time.monotonic()
            first_failure = now if first_failure is None else first_failure
            # no request of this client answered since this attempt was sent: an answer that
            # came in just after the first failure (a request already in flight when the server
            # went away) does not make a server that stopped answering look alive
            down = self._last_answer < sent
            if attempt <= self.config.max_retries or (down and now - first_failure < self.config.outage_budget_s):
                continue
            if down:
                raise LLMOutageError(
                    f"no answer from the model server{'s' if len(self.endpoints) > 1 else ''} at "
                    f"{', '.join(self.endpoints)} for {now - first_failure:.0f} s ({attempt} attempts); "
                    f"last error: {last_error}"
                )
            if unreachable == attempt:
                raise LLMUnavailableError(f"no LLM server reachable at {', '.join(self.endpoints)} ({last_error})")
            raise LLMError(f"gave up after {attempt} attempts: {last_error}")


async def _line_runs(chunks: AsyncIterator[bytes], encoding: str) -> AsyncIterator[list[str]]:
    """The lines of a streamed body, a list per piece that came: the text as httpx's
    `aiter_text` decodes it (incrementally, undecodable bytes replaced) and the lines its
    `aiter_lines` yields one by one (the same ends, a CR LF split over two pieces included),
    so a reader handles a piece's lines in one loop."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    buffer = ""  # the start of a line whose end has not come yet
    trailing_cr = False  # a piece ended in a carriage return: it may be half of CR LF

    def split(text: str) -> list[str]:
        """The lines that `text` ends, after what came before it."""
        nonlocal buffer, trailing_cr
        if trailing_cr:
            text, trailing_cr = "\r" + text, False
        if text.endswith("\r"):
            text, trailing_cr = text[:-1], True
        if not text:
            return []
        lines = text.splitlines()
        if buffer:
            lines[0] = buffer + lines[0]
            buffer = ""
        if text[-1] not in _NEWLINES:
            buffer = lines.pop()
        return lines

    async for chunk in chunks:
        if lines := split(decoder.decode(chunk)):
            yield lines
    if lines := split(decoder.decode(b"", True)):  # bytes cut off mid-character at the end
        yield lines
    if buffer or trailing_cr:
        yield [buffer]


class _Unreachable(_Retryable):
    """The endpoint could not be connected to."""


def _json_object(resp: httpx.Response, ep: _Endpoint, path: str) -> dict[str, Any]:
    """The answer's JSON object; anything else (not JSON, or JSON that is not an object) is
    retried like a garbled answer."""
    try:
        answer = resp.json()
    except ValueError:
        raise _Retryable(f"{ep.name}{path}: answer is not JSON") from None
    if not isinstance(answer, dict):
        raise _Retryable(f"{ep.name}{path}: answer is not a JSON object")
    return answer


def _check_status(resp: httpx.Response, ep: _Endpoint, path: str) -> None:
    if resp.status_code == 200:
        return
    message = f"{ep.name}{path}: HTTP {resp.status_code} {_snippet(resp)}"
    if path == "/completions" and resp.status_code < 500 and dialects.is_chat_model_error(resp.text):
        raise ChatModelOnlyError(
            f"{ep.name}{path} serves a chat model only (the server answered HTTP {resp.status_code}: "
            f"{_snippet(resp)}); this model server's dialect is `completions`: set it to `chat` or `auto`"
        )
    if resp.status_code in OVERLOAD_STATUS:
        raise _Overload(message)
    if resp.status_code in RETRY_STATUS:
        raise _Retryable(message)
    raise LLMError(message)


async def _read_within(resp: httpx.Response, seconds: float, ep: _Endpoint) -> None:
    try:
        await asyncio.wait_for(resp.aread(), seconds)
    except TimeoutError:
        raise _Overload(f"{ep.name}: no answer within {seconds:g} s") from None


def cached_prompt_tokens(data: dict[str, Any]) -> int:
    """Prompt tokens the server took from its cache: OpenAI/vLLM's
    `usage.prompt_tokens_details.cached_tokens`, or llama.cpp's `timings.cache_n`."""
    details = (data.get("usage") or {}).get("prompt_tokens_details") or {}
    if details.get("cached_tokens") is not None:
        return int(details["cached_tokens"] or 0)
    return int((data.get("timings") or {}).get("cache_n") or 0)


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    extra = params.pop("extra", None) or {}
    out = {k: v for k, v in params.items() if v is not None}
    out.update(extra)
    return out


def _logprobs_of(choice: dict[str, Any]) -> dict[str, Any] | None:
    logprobs = choice.get("logprobs")
    return logprobs if isinstance(logprobs, dict) else None


def merge_logprobs(acc: dict[str, Any] | None, piece: Any) -> dict[str, Any] | None:
    """Join a streamed event's `logprobs` onto what came before: each event carries the
    entries of its own tokens, in either shape (`content` list, or the legacy parallel
    lists `tokens`/`token_logprobs`/`top_logprobs`/`text_offset`)."""
    if not isinstance(piece, dict):
        return acc
    out = dict(acc or {})
    for key, value in piece.items():
        if isinstance(value, list):
            out[key] = [*(out.get(key) or []), *value]
        elif key not in out:
            out[key] = value
    return out


def _first_choice(data: dict[str, Any]) -> dict[str, Any]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LLMError("the server's answer has no choices")
    return choices[0]


def _snippet(resp: httpx.Response) -> str:
    text = resp.text.strip().replace("\n", " ")
    return text[:200]
