"""Persona set bodies: a persona file's text (JSONL or CSV) or a list of personas."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.schemas.common import Text
from app.core.methods.personas import MAX_PERSONA_CHARS, MAX_PERSONAS

MAX_PERSONA_BYTES = 50 * 1024 * 1024


class PersonaSetCreate(BaseModel):
    """A persona set from a file's text (`content`: JSONL of `{"persona"}` or CSV with a `persona`
    column) or from `personas` (a list of texts)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "nurses", "format": "jsonl",
         "content": '{"persona": "A nurse working night shifts in an emergency department."}\n'},
        {"name": "inline", "personas": ["A beekeeper with twenty hives.", "A city bus driver."]},
    ]})
    name: Text = Field(min_length=1, max_length=200)
    format: Literal["jsonl", "csv"] | None = Field(default=None, description="Format of `content`; detected "
                                                   "when left out.")
    content: Text | None = Field(default=None, max_length=MAX_PERSONA_BYTES, description="The file's text.")
    personas: list[Text] | None = Field(default=None, min_length=1, max_length=MAX_PERSONAS)

    @model_validator(mode="after")
    def _one_source(self) -> PersonaSetCreate:
        if (self.content is None) == (self.personas is None):
            raise ValueError("give exactly one of 'content' (a persona file's text) or 'personas' (a list)")
        if self.personas is not None and self.format is not None:
            raise ValueError("'format' applies to 'content' only")
        if self.personas is not None and any(len(p) > MAX_PERSONA_CHARS for p in self.personas):
            raise ValueError(f"personas: each at most {MAX_PERSONA_CHARS} characters")
        return self


class PersonaSetOut(BaseModel):
    id: int
    name: str
    source_format: str = Field(examples=["jsonl"])
    persona_count: int
    created_at: datetime


class PersonaSetDetail(PersonaSetOut):
    personas: list[str]
