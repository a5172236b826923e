"""The small, typed configuration the domain core receives from a shell.

The core never reads global settings: the CLI, the API and the workers build a
`CoreConfig` from their `Settings` (`app.settings.Settings.core_config()`) and hand it
down. A test builds one directly. Frozen dataclasses, so a job cannot change the
configuration another job in the same process sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.handoff.config import HandoffConfig


@dataclass(frozen=True)
class LLMConfig:
    """How to reach the OpenAI-compatible model servers (empty `base_urls`: the embedded one)."""

    base_urls: tuple[str, ...] = ()
    model: str | None = None
    api_key: str | None = None
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    outage_budget_s: float = 120.0
    concurrency_min: int = 1
    concurrency_max: int = 64
    adaptive_concurrency: bool = True
    stream: bool = True
    first_token_timeout_s: float = 120.0
    inactivity_timeout_s: float = 30.0
    # "auto" (ask the server: `app.core.llm.dialects`), "completions" or "chat"
    dialect: str = "auto"
    # JSON-schema replies (`response_format`) for instances and judge scores on the chat API
    structured_outputs: bool = True


@dataclass(frozen=True)
class JudgeConfig:
    """The LLM judge's model server (`app.core.scoring`): its own endpoints and model, so
    a stronger model can judge what a small one generated. Empty `llm.base_urls`: the
    generator's endpoints (the servers a generation job uses, the configured ones, else the
    embedded model); `llm.model` and `llm.api_key` are then the generator's too."""

    llm: LLMConfig = field(default_factory=LLMConfig)
    api: str = "completions"  # or "chat"
    logprobs: bool = True


@dataclass(frozen=True)
class EmbeddedConfig:
    """The bundled model server a job starts when no endpoint is configured."""

    data_dir: Path = Path(".sprout")
    host: str = "127.0.0.1"
    port: int = 0
    parallel: int = 4
    threads: int = 0
    ctx_per_slot: int = 4096
    model_path: Path | None = None
    prompt_cache: bool = True
    model: str = "gemma-3-270m"  # or "smollm2-135m-instruct", the embedded chat model


@dataclass(frozen=True)
class JobConfig:
    """How the lifecycle batches, heartbeats and takes over jobs."""

    batch_size: int = 16
    flush_s: float = 2.0
    stale_s: float = 60.0


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
