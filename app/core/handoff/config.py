"""The hand-off's settings as the core receives them (`SPROUT_HANDOFF__*` in the shells).

One pydantic model, like the trainer's `TrainParams`: it is the nested setting of the
service (`app.settings.Settings.handoff`) and what the core's functions take, so the core
never reads global settings. `backoff` is here because deliveries and webhooks retry alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

Format = Literal["alpaca", "sharegpt", "messages", "prompt-completion", "parquet"]
ALL_FORMATS: tuple[Format, ...] = ("alpaca", "sharegpt", "messages", "prompt-completion", "parquet")


class HandoffConfig(BaseModel):
    """How bundles are written and checked, where they may go, and how failures are retried."""

    model_config = ConfigDict(extra="forbid")

    formats: list[Format] = Field(
        default_factory=lambda: list(ALL_FORMATS),
        description="Formats written into a hand-off bundle (alpaca, sharegpt, messages, prompt-completion, parquet).",
    )
    rows_per_shard: int = Field(
        default=100_000, ge=1, le=100_000_000,
        description="Rows per Parquet shard (`data/train-0000K-of-0000N.parquet`).",
    )
    license: str = Field(default="other", description="License id written in the dataset card (a Hub license id).")
    language: list[str] = Field(default_factory=lambda: ["en"], description="Languages written in the dataset card.")
    tokenizer: str | None = Field(
        default=None,
        description="Tokenizer whose chat template the preflight check renders: a Hugging Face folder, a GGUF "
        "file or 'default'. Unset: SPROUT_TRAIN__BASE_MODEL.",
    )
    max_length: int | None = Field(
        default=None, ge=16, le=1_048_576,
        description="Token limit the preflight check holds rows to. Unset: SPROUT_TRAIN__MAX_LENGTH.",
    )
    allow_truncated: bool = Field(
        default=False,
        description="Let rows longer than max_length through the preflight check (they are still counted and "
        "listed); off: a truncated row blocks delivery.",
    )
    folder_roots: list[Path] = Field(
        default_factory=list,
        description="Folders under which API users may create folder destinations (a JSON list). "
        "Empty: `<SPROUT_DATA_DIR>/handoff/out` only. The CLI may name any folder.",
    )
    hub_token: SecretStr | None = Field(
        default=None, description="Hugging Face token used by Hub destinations (write access to their repos)."
    )
    hub_endpoint: str | None = Field(default=None, description="Hub URL; unset: huggingface_hub's default.")
    retry_base_s: float = Field(default=30.0, gt=0, description="First retry delay of a failed delivery or webhook.")
    retry_max_s: float = Field(default=3600.0, gt=0, description="Cap on one retry delay (the delay doubles per attempt).")
    max_attempts: int = Field(
        default=8, ge=1, le=100, description="Attempts of a delivery or a webhook before it is marked failed."
    )
    claim_timeout_s: float = Field(
        default=900.0, gt=0,
        description="A delivery or webhook attempt running longer than this is taken to have died and is retried.",
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Timeout of one webhook request.")
    retry_interval_s: float = Field(
        default=30.0, gt=0, description="How often `sprout beat` retries due deliveries and webhooks."
    )

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` failed ones: base, 2x base, 4x base, ... capped."""
        return min(self.retry_max_s, self.retry_base_s * 2.0 ** max(0, attempts - 1))

    def next_attempt_at(self, now: datetime, attempts: int) -> datetime:
        return now + timedelta(seconds=self.backoff(attempts))
