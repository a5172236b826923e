"""Curation without regeneration: a new version from the latest one minus some examples,
or with some examples corrected.

Nothing is edited in place. A removal sets `removed_in = N+1` on the rows it drops (they
stay in every earlier version); a correction does the same to the old row and adds the
corrected one as a new row of version N+1 whose `replaces_id` names the row it replaces.
Versions are linear, so a change always starts from the latest version; a caller that
looked at an older one passes `expected_latest` and gets `VersionConflict` instead of a
silent change on top of versions it did not see. A change that would change nothing is
refused (`EmptyChange`).

Examples to remove are named by id or found by an `ExampleQuery` over their text,
method, scores and the filter rules (`rules`: the rule today's filters would reject the
example with, the same names a job stores). A query scans the latest version's rows once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import update
from sqlmodel import Session, col, select

from app.core.datasets import versions as v
from app.core.datasets.errors import DatasetError, EmptyChange, VersionNotFound
from app.core.filters.heuristics import INSTANCE_RULES, INSTRUCTION_RULES, instruction_rule
from app.core.params import PAPER_BLACKLIST
from app.core.store import id_of
from app.models import Dataset, DatasetExample, DatasetVersion, VersionKind

# the rules a stored example can be checked against again (the others need the model's response or the pool)
TEXT_INSTRUCTION_RULES = ("empty", "too_short", "too_long", "blacklisted_word", "write_a_program",
                          "starts_with_punctuation", "starts_with_non_ascii")
TEXT_INSTANCE_RULES = ("empty_output", "input_equals_output", "ends_with_colon")
QUERY_RULES = TEXT_INSTRUCTION_RULES + TEXT_INSTANCE_RULES
_ID_CHUNK = 1000
TextField = Literal["instruction", "input", "output"]
_TEXT_FIELDS: tuple[TextField, ...] = ("instruction", "input", "output")

assert set(TEXT_INSTRUCTION_RULES) <= set(INSTRUCTION_RULES) and set(TEXT_INSTANCE_RULES) <= set(INSTANCE_RULES)


class ExampleQuery(BaseModel):
    """Which examples of a version match: every criterion given must hold (AND)."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, min_length=1, description="Case-insensitive substring of `fields`.")
    fields: list[TextField] = Field(
        default_factory=lambda: list(_TEXT_FIELDS), min_length=1, description="Where `text` is looked for."
    )
    method: str | None = Field(default=None, description="The job kind that made the example.")
    score: str | None = Field(default=None, description="A key of the example's scores, e.g. `max_rouge_l`.")
    score_min: float | None = Field(default=None, description="Match when scores[score] >= this.")
    score_max: float | None = Field(default=None, description="Match when scores[score] <= this.")
    rules: list[str] | None = Field(
        default=None, min_length=1,
        description=f"Match when today's filters would reject the example with one of these rules: {', '.join(QUERY_RULES)}.",
    )
    min_words: int = Field(default=4, ge=1, description="The instruction rules' parameters (defaults: the paper's).")
    max_words: int = Field(default=150, ge=1)
    blacklist: list[str] = Field(default_factory=lambda: list(PAPER_BLACKLIST))

    @model_validator(mode="after")
    def _check(self) -> ExampleQuery:
        if self.text is None and self.method is None and self.score is None and self.rules is None:
            raise ValueError("give at least one of text, method, score (with score_min or score_max), rules")
        if self.score is not None and self.score_min is None and self.score_max is None:
            raise ValueError("score needs score_min or score_max")
        if self.score is None and (self.score_min is not None or self.score_max is not None):
            raise ValueError("score_min and score_max need score (the name of the score)")
        unknown = [r for r in self.rules or [] if r not in QUERY_RULES]
        if unknown:
            raise ValueError(f"unknown rule(s) {', '.join(unknown)}; a query can check {', '.join(QUERY_RULES)}")
        return self

    def matches(self, row: dict[str, Any]) -> bool:
        if self.method is not None and row["method"] != self.method:
            return False
        if self.text is not None:
            needle = self.text.casefold()
            if not any(needle in row[f].casefold() for f in self.fields):
                return False
        if self.score is not None:
            value = (row["scores"] or {}).get(self.score)
            if not isinstance(value, int | float) or isinstance(value, bool):
                return False
            if self.score_min is not None and value < self.score_min:
                return False
            if self.score_max is not None and value > self.score_max:
                return False
        return self.rules is None or bool({self._instruction_rule(row), _instance_rule(row)} & set(self.rules))

    def _instruction_rule(self, row: dict[str, Any]) -> str | None:
        return instruction_rule(row["instruction"], self.min_words, self.max_words, self.blacklist)


def _instance_rule(row: dict[str, Any]) -> str | None:
    """The instance rule of `heuristics.filter_instances` an (input, output) pair breaks."""
    i, o = row["input"].strip(), row["output"].strip()
    if not o:
        return "empty_output"
    if i == o:
        return "input_equals_output"
    if i.endswith(":") or o.endswith(":"):
        return "ends_with_colon"
    return None


def find_examples(session: Session, dataset_id: int, number: int, query: ExampleQuery) -> Iterator[dict[str, Any]]:
    """The rows of version `number` that `query` matches, streamed (e.g. to preview a removal)."""
    return (row for row in v.version_rows(session, dataset_id, number) if query.matches(row))


@dataclass
class Correction:
    """New text for an example of the latest version; fields left None keep their value."""

    example_id: int
    output: str | None = None
    instruction: str | None = None
    input: str | None = None


def live_rows(session: Session, dataset_id: int, ids: Sequence[int], number: int) -> dict[int, DatasetExample]:
    """The rows `ids` of the latest version (`number`); `VersionNotFound` names any other."""
    return _live_rows(session, dataset_id, ids, number)


def _live_rows(session: Session, dataset_id: int, ids: Sequence[int], number: int) -> dict[int, DatasetExample]:
    """The rows `ids` of the latest version (`number`); VersionNotFound names any other."""
    found: dict[int, DatasetExample] = {}
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        for row in session.exec(
            select(DatasetExample).where(
                col(DatasetExample.id).in_(chunk), DatasetExample.dataset_id == dataset_id,
                col(DatasetExample.removed_in).is_(None),
            )
        ).all():
            found[id_of(row)] = row
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
        raise VersionNotFound(f"not in version {number} (the latest) of the dataset: example(s) {shown}")
    return found


def _mark_removed(session: Session, ids: Sequence[int], number: int) -> None:
    for start in range(0, len(ids), _ID_CHUNK):
        session.execute(
            update(DatasetExample)
            .where(col(DatasetExample.id).in_(ids[start : start + _ID_CHUNK]), col(DatasetExample.removed_in).is_(None))
            .values(removed_in=number)
            .execution_options(synchronize_session=False)
        )


def _start(session: Session, dataset: Dataset, expected_latest: int | None) -> tuple[v.Change, DatasetVersion]:
    """The change and its parent version (a curation changes one: a dataset without any is refused)."""
    change = v.begin_change(session, dataset, expected_latest)
    return change, _parent(change)


def _parent(change: v.Change) -> DatasetVersion:
    if change.parent is None:
        raise EmptyChange(f"dataset {change.dataset.name!r} has no version yet: nothing to curate")
    return change.parent


def remove_examples(
    session: Session,
    dataset: Dataset,
    *,
    example_ids: Sequence[int] | None = None,
    query: ExampleQuery | None = None,
    expected_latest: int | None = None,
) -> DatasetVersion:
    """A new version: the latest minus the examples named by id and/or matched by `query`.

    The caller commits. Raises `VersionNotFound` (an id not in the latest version),
    `EmptyChange` (nothing to remove), `VersionConflict`."""
    if example_ids is None and query is None:
        raise DatasetError("name the examples to remove: example_ids or query")
    change, parent = _start(session, dataset, expected_latest)
    latest = parent.number
    dataset_id = id_of(dataset)
    removed: dict[int, tuple[int, str]] = {}  # id -> (added_in, method)
    if example_ids:
        ids = list(dict.fromkeys(example_ids))
        for row in _live_rows(session, dataset_id, ids, latest).values():
            removed[id_of(row)] = (row.added_in, row.method)
    if query is not None:
        for found in find_examples(session, dataset_id, latest, query):
            removed[found["id"]] = (found["added_in"], found["method"])
    if not removed:
        raise EmptyChange(f"no example of version {latest} matches: nothing to remove")
    _mark_removed(session, list(removed), change.number)
    v.rehash_segments(session, dataset_id, change.number, [a for a, _ in removed.values()])
    gone = Counter(m for _, m in removed.values())
    counts = {
        "added": 0, "removed": len(removed), "corrected": 0,
        "removed_by_method": dict(sorted(gone.items())),
        "by_method": {k: n for k, n in sorted((v.method_counts(parent) - gone).items()) if n > 0},
        "query": query.model_dump(exclude_defaults=True) if query is not None else None,
    }
    return v.finish_version(session, change, VersionKind.removal, counts, parent.row_count - len(removed))


def apply_review(
    session: Session,
    change: v.Change,
    remove_ids: Sequence[int],
    corrections: Sequence[Correction],
    review_counts: dict[str, Any],
) -> DatasetVersion:
    """Version `change.number` from a review: the rows `remove_ids` removed and the
    `corrections` applied (each a new row replacing the old, as `correct_examples` does),
    with the review's own figures under `counts.review`. The caller checked the ids are
    live and commits."""
    parent = _parent(change)
    dataset_id = id_of(change.dataset)
    ids = [c.example_id for c in corrections]
    old = _live_rows(session, dataset_id, [*remove_ids, *ids], parent.number)
    new_rows: list[tuple[v.NewExample, str]] = []
    for i, c in enumerate(corrections):
        row = old[c.example_id]
        ex = v.NewExample(
            instruction=row.instruction if c.instruction is None else c.instruction,
            input=row.input if c.input is None else c.input,
            output=row.output if c.output is None else c.output,
            method=row.method, lineage=list(row.lineage), scores=dict(row.scores),
            source_job_id=row.source_job_id, source_instruction_id=row.source_instruction_id,
        )
        new_rows.append((ex, v.checked_digest(ex, f"edited[{i}]")))
    if new_rows:
        v.insert_examples(session, dataset_id, change.number, new_rows, replaces=ids)
    gone_ids = [*remove_ids, *ids]
    _mark_removed(session, gone_ids, change.number)
    v.rehash_segments(session, dataset_id, change.number, [old[i].added_in for i in gone_ids])
    if new_rows:
        v.add_segment(session, dataset_id, change.number, change.number, [d for _, d in new_rows])
    gone = Counter(old[i].method for i in remove_ids)
    counts = {
        "added": len(new_rows), "removed": len(gone_ids), "corrected": len(new_rows),
        "removed_by_method": dict(sorted(gone.items())),
        "by_method": {k: n for k, n in sorted((v.method_counts(parent) - gone).items()) if n > 0},
        "review": review_counts,
    }
    return v.finish_version(session, change, VersionKind.review, counts, parent.row_count - len(remove_ids))


def correct_examples(
    session: Session,
    dataset: Dataset,
    corrections: Sequence[Correction],
    *,
    expected_latest: int | None = None,
) -> DatasetVersion:
    """A new version where each corrected example is replaced by a new row (`replaces_id` =
    the old row, added at the end of the version's order); the old row is removed from it.

    The caller commits. Raises `VersionNotFound`, `EmptyChange` (no correction, or one
    that changes nothing), `DatasetError` (an id corrected twice), `VersionConflict`."""
    if not corrections:
        raise EmptyChange("no correction given")
    ids = [c.example_id for c in corrections]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise DatasetError(f"example(s) {', '.join(map(str, twice))} corrected twice in one change")
    change, parent = _start(session, dataset, expected_latest)
    dataset_id = id_of(dataset)
    old = _live_rows(session, dataset_id, ids, parent.number)
    new_rows: list[tuple[v.NewExample, str]] = []
    for i, c in enumerate(corrections):
        row = old[c.example_id]
        ex = v.NewExample(
            instruction=row.instruction if c.instruction is None else c.instruction,
            input=row.input if c.input is None else c.input,
            output=row.output if c.output is None else c.output,
            method=row.method, lineage=list(row.lineage), scores=dict(row.scores), turns=list(row.turns or []),
            source_job_id=row.source_job_id, source_instruction_id=row.source_instruction_id,
        )
        if (ex.instruction, ex.input, ex.output) == (row.instruction, row.input, row.output):
            raise EmptyChange(f"corrections[{i}]: example {row.id} already reads so: nothing to correct")
        new_rows.append((ex, v.checked_digest(ex, f"corrections[{i}]")))
    v.insert_examples(session, dataset_id, change.number, new_rows, replaces=ids)
    _mark_removed(session, ids, change.number)
    v.rehash_segments(session, dataset_id, change.number, [old[i].added_in for i in ids])
    v.add_segment(session, dataset_id, change.number, change.number, [d for _, d in new_rows])
    counts = {
        "added": len(new_rows), "removed": len(new_rows), "corrected": len(new_rows),
        "by_method": dict((parent.counts or {}).get("by_method", {})),
    }
    return v.finish_version(session, change, VersionKind.correction, counts, parent.row_count)
