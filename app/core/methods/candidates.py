"""The method contract: what a generation method hands the jobs layer, and what it gets back on resume.

The contract between a method (Self-Instruct, Evol-Instruct) and `app.core.jobs`:

* a method is built from its parameters, an `LLMClient`, the seed tasks and the
  `StoredCandidate`s a previous attempt of the same job already committed (so a resumed
  job rebuilds its pool and goes on where it stopped);
* `method.run()` is an async iterator of `CandidateRecord`s, accepted and rejected alike,
  in the order they were decided; it stops by itself when its target is met, and the
  jobs layer may stop it early (cancel) by closing the iterator;
* the jobs layer numbers the records, writes them in batches and sets `row_id` on each after
  its row exists, so a later record can name an earlier one as `parent` (lineage).

Methods know nothing of SQL; the jobs layer (`app.core.jobs`) knows nothing of prompts.
This module also holds what every method shares (the instance candidate, the
near-duplicate protocol, the errors that end a job), so no method imports another and
nothing but the shells imports the jobs layer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.core.errors import InvalidInput
from app.core.llm.client import LLMError


class JobInputError(InvalidInput):
    """The job cannot run as specified (no seed set, too few seeds, a bad source, ...)."""


class TooManyFailures(LLMError):
    """The model server kept failing; the job stops rather than spin."""


@dataclass
class InstanceCandidate:
    """An (input, output) pair a method produced, with the rule that rejected it (if any)."""

    input: str
    output: str
    rule: str | None = None  # None: accepted
    # a conversation's later turns after (input, output): `app.core.conversation`; [] for one exchange
    turns: list[dict[str, str]] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.rule is None


class NearDuplicates(Protocol):
    """A near-duplicate index (`app.core.filters.dedup.NearDupIndex`)."""

    def check_and_add(self, key: str, text: str) -> str | None: ...

    def check_and_add_many(self, items: Iterable[tuple[str, str]]) -> list[str | None]: ...


@dataclass
class CandidateRecord:
    instruction: str
    accepted: bool
    rule: str | None = None  # why rejected; None when accepted
    in_pool: bool = False  # joined the novelty pool
    max_rouge_l: float | None = None
    most_similar: list[dict[str, Any]] = field(default_factory=list)  # [{"instruction", "rouge_l"}]
    mean_rouge_l: float | None = None
    is_classification: bool | None = None
    instances: list[InstanceCandidate] = field(default_factory=list)
    # lineage (Evol-Instruct): the record this one was evolved from, the operation, the round
    parent: CandidateRecord | StoredCandidate | None = None
    operation: str | None = None
    round: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    row_id: int | None = None  # set by the jobs layer once stored

    @property
    def fate(self) -> str:
        return "accepted" if self.accepted else "rejected"


@dataclass
class StoredCandidate:
    """A candidate already committed by an earlier attempt of the same job."""

    row_id: int
    instruction: str
    accepted: bool
    rule: str | None
    in_pool: bool
    parent_id: int | None
    operation: str | None
    round: int
    is_classification: bool | None
    instances: list[dict[str, Any]]  # the accepted ones: [{"input", "output"}] (a conversation: also its "turns")
    detail: dict[str, Any] = field(default_factory=dict)


class Method(Protocol):
    def run(self) -> AsyncGenerator[CandidateRecord, None]: ...
