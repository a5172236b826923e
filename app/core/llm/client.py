"""An async client for OpenAI-compatible servers (vLLM, llama.cpp, OpenAI itself).

Why our own and not the `openai` SDK: we need several endpoints behind one client (a
request goes to the least busy one), one concurrency bound across all of them, retries
that move to another endpoint, and token counts per job. It sends only fields that vLLM's
OpenAI server accepts; server-specific extras go through `extra`.

Retries ride out an outage. A request that fails on a connection error, a timeout, a 429
or a 5xx is retried `max_retries` times, and, while no request of this client has been
answered since it first failed (every endpoint is down, or restarting), for as long as
`outage_budget_s` lasts, with the delay capped at `backoff_max_s`. Then it raises
`LLMOutageError`, which names the endpoints and the last error: the job is paused and
retried later rather than failed. A request that keeps failing while others are answered
is not an outage: it ends with `LLMError` after its retries, as a bad request does.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.core.config import LLMConfig

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class LLMError(RuntimeError):
    """A request that failed for good (after retries, or a 4xx that no retry fixes)."""


class LLMUnavailableError(LLMError):
    """No endpoint could be reached."""


class LLMOutageError(LLMUnavailableError):
    """The model servers stayed away longer than the outage budget: the job waits, it
    does not fail (the jobs layer pauses it and the reaper sends it again)."""


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Usage:
    """What one client sent and got; a job copies it into its counters."""

    requests: int = 0
    errors: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "llm_requests": self.requests,
            "llm_errors": self.errors,
            "llm_retries": self.retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


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
    in_flight: int = 0
    failures: int = 0


@dataclass
class LLMClient:
    base_urls: list[str]
    model: str | None = None
    api_key: str | None = None
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    outage_budget_s: float = 120.0
    transport: httpx.AsyncBaseTransport | None = None
    usage: Usage = field(default_factory=Usage)

    def __post_init__(self) -> None:
        if not self.base_urls:
            raise ValueError("LLMClient needs at least one base URL")
        self._endpoints = [_Endpoint(normalize_base_url(u)) for u in self.base_urls]
        self._semaphore = asyncio.Semaphore(self.concurrency)
        self._rr = 0
        self._last_answer = float("-inf")  # monotonic time of the last answered request
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency + 4, max_keepalive_connections=self.concurrency)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s)),
            headers=headers,
            limits=limits,
            transport=self.transport,
        )

    @classmethod
    def from_config(cls, config: LLMConfig, base_urls: list[str] | None = None) -> LLMClient:
        return cls(
            base_urls=list(base_urls or config.base_urls),
            model=config.model,
            api_key=config.api_key,
            concurrency=config.concurrency,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            backoff_s=config.backoff_s,
            backoff_max_s=config.backoff_max_s,
            outage_budget_s=config.outage_budget_s,
        )

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def endpoints(self) -> list[str]:
        return [e.base_url for e in self._endpoints]

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

    async def complete(self, prompt: str, **params: Any) -> Completion:
        """POST /completions for one prompt; `params` are OpenAI sampling fields."""
        body = {"model": await self.resolve_model(), "prompt": prompt, **_clean(params)}
        data = await self._request("POST", "/completions", body)
        choice = _first_choice(data)
        return self._account(data, Completion(choice.get("text") or "", choice.get("finish_reason")))

    async def chat(self, messages: list[dict[str, str]], **params: Any) -> Completion:
        """POST /chat/completions."""
        body = {"model": await self.resolve_model(), "messages": messages, **_clean(params)}
        data = await self._request("POST", "/chat/completions", body)
        choice = _first_choice(data)
        message = choice.get("message") or {}
        return self._account(data, Completion(message.get("content") or "", choice.get("finish_reason")))

    async def health(self) -> dict[str, str]:
        """Each endpoint's state: "ok" or why not; never raises."""
        out = {}
        for ep in self._endpoints:
            try:
                r = await self._http.get(ep.base_url + "/models", timeout=5.0)
                out[ep.base_url] = "ok" if r.status_code == 200 else f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                out[ep.base_url] = f"unreachable ({type(exc).__name__})"
        return out

    # --- machinery -----------------------------------------------------------------------
    def _account(self, data: dict[str, Any], completion: Completion) -> Completion:
        usage = data.get("usage") or {}
        completion.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion.completion_tokens = int(usage.get("completion_tokens") or 0)
        self.usage.prompt_tokens += completion.prompt_tokens
        self.usage.completion_tokens += completion.completion_tokens
        return completion

    def _pick(self, exclude: _Endpoint | None) -> _Endpoint:
        """The least busy endpoint, round-robin among equals; avoid the one that just failed."""
        candidates = [e for e in self._endpoints if e is not exclude] or self._endpoints
        low = min(e.in_flight for e in candidates)
        least = [e for e in candidates if e.in_flight == low]
        self._rr += 1
        return least[self._rr % len(least)]

    async def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        last_error = ""
        unreachable = 0
        first_failure: float | None = None
        previous: _Endpoint | None = None
        async with self._semaphore:
            attempt = 0
            while True:
                if attempt:
                    self.usage.retries += 1
                    delay = min(self.backoff_max_s, self.backoff_s * 2 ** min(attempt - 1, 32))
                    await asyncio.sleep(random.uniform(0, delay))  # full jitter
                attempt += 1
                ep = self._pick(previous)
                previous = ep
                ep.in_flight += 1
                self.usage.requests += 1
                try:
                    resp = await self._http.request(method, ep.base_url + path, json=body)
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    unreachable += 1
                    last_error = f"{ep.base_url}: cannot connect ({exc.__class__.__name__})"
                except httpx.TimeoutException:
                    last_error = f"{ep.base_url}: no answer within {self.timeout_s:g} s"
                except httpx.TransportError as exc:
                    last_error = f"{ep.base_url}: connection broke ({exc.__class__.__name__})"
                else:
                    if resp.status_code == 200:
                        self._last_answer = time.monotonic()
                        try:
                            return resp.json()
                        except ValueError:
                            last_error = f"{ep.base_url}{path}: answer is not JSON"
                    elif resp.status_code in RETRY_STATUS:
                        last_error = f"{ep.base_url}{path}: HTTP {resp.status_code} {_snippet(resp)}"
                    else:
                        self.usage.errors += 1
                        raise LLMError(f"{ep.base_url}{path}: HTTP {resp.status_code} {_snippet(resp)}")
                finally:
                    ep.in_flight -= 1
                self.usage.errors += 1
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                down = self._last_answer < first_failure  # no request of this client answered since
                if attempt <= self.max_retries or (down and now - first_failure < self.outage_budget_s):
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


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    extra = params.pop("extra", None) or {}
    out = {k: v for k, v in params.items() if v is not None}
    out.update(extra)
    return out


def _first_choice(data: dict[str, Any]) -> dict[str, Any]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LLMError("the server's answer has no choices")
    return choices[0]


def _snippet(resp: httpx.Response) -> str:
    text = resp.text.strip().replace("\n", " ")
    return text[:200]
