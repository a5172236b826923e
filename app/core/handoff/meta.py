"""What a hand-off says about its rows: `HandoffMeta`, filled by a source, read by the card.

A source (a job, or a dataset version) fills what it knows; every field but the name and
the source is optional, and the card leaves out what is unknown instead of inventing it.
The dataset-version fields (`version`, `parent_version`, `content_hash`, `diff`, and
`training`: the version's gated training run once it is decided) are empty for a job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SOURCE_KINDS = ("job", "dataset_version")


@dataclass(frozen=True)
class SeedSetInfo:
    """The seed tasks a dataset was grown from, and their sha256 (canonical JSON of the tasks)."""

    name: str
    tasks: int
    sha256: str
    id: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    """A model that wrote rows, and the decoding settings it was sampled with."""

    name: str
    role: str = "generator"
    decoding: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HandoffMeta:
    """Where a row source came from; `name` names the bundle's folder and its Hub repo."""

    name: str
    source_kind: str  # one of SOURCE_KINDS
    source_id: int
    title: str = ""
    description: str = ""
    license: str = "other"
    language: tuple[str, ...] = ("en",)
    tags: tuple[str, ...] = ()
    system: str | None = None  # a system prompt given to every row that has none
    recipe: dict[str, Any] = field(default_factory=dict)  # method and its parameters
    models: tuple[ModelInfo, ...] = ()
    seed_set: SeedSetInfo | None = None
    rejections: dict[str, int] = field(default_factory=dict)  # rejection rule -> candidates rejected by it
    created_at: datetime | None = None
    # filled when a dataset version is the source
    version: int | None = None
    parent_version: int | None = None
    content_hash: str | None = None
    diff: dict[str, Any] | None = None  # e.g. {"added": 120, "removed": 3}
    # the version's gated training run (`training_gate.describe`): job, metrics, the gate's decision and table
    training: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.source_kind not in SOURCE_KINDS:
            raise ValueError(f"source_kind must be one of {', '.join(SOURCE_KINDS)}, got {self.source_kind!r}")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"a hand-off name must be a plain folder name, got {self.name!r}")

    @property
    def label(self) -> str:
        """The folder a delivery of this source lands in: `v<N>` for a version, `job-<id>` for a job."""
        return f"v{self.version}" if self.version is not None else f"{self.source_kind.replace('_', '-')}-{self.source_id}"


@dataclass
class RowStats:
    """What one pass over the rows counted: rows, rows per method, and a sha256 of the rows
    (canonical JSON, in order) that changes when any row does."""

    rows: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    sha256: str = ""
    conversations: int = 0  # rows with later turns (multi-turn conversations)
    most_exchanges: int = 0  # the longest conversation's user-assistant exchanges
