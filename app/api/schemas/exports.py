"""Export bodies: a job's curated data written in a trainer's format."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import Id

ExportFormat = Literal["alpaca", "messages", "prompt-completion", "sharegpt", "parquet"]


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"job_id": 1, "format": "messages"}]})
    job_id: Id
    format: ExportFormat = Field(
        default="alpaca",
        description="alpaca (JSON list), messages (JSONL, chat turns), prompt-completion (JSONL), sharegpt "
        "(JSONL, LLaMA-Factory's conversations) or parquet (a zip of the Hugging Face Hub layout: "
        "`data/train-00000-of-0000N.parquet`; unzip it and `load_dataset(folder)`).",
    )
    final_only: bool = Field(default=False, description="Evol-Instruct: only each lineage's last surviving generation.")
    include_roots: bool = Field(default=True, description="Evol-Instruct: include the starting pool (round 0).")


class ExportOut(BaseModel):
    id: int
    job_id: int
    format: str
    options: dict[str, bool] = Field(default_factory=dict, description="final_only / include_roots as asked.")
    rows: int = Field(description="Curated examples written.")
    bytes: int
    filename: str
    download_url: str
    created_at: datetime
