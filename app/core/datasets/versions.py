"""Datasets and their versions: create a dataset, commit a version, read a version's rows.

A version is never rewritten. A build commits version N+1 by inserting its new examples
with `added_in = N+1`, one hash segment, the version row and the `latest` tag, all in the
caller's transaction; the rows of earlier versions are not read or touched, so a commit
costs O(new rows + versions) whatever the dataset's size. Rows of version v are those
with `added_in <= v` and (`removed_in` null or `> v`), read in the stable order
(`added_in`, `position`) a page at a time (keyset pagination on the unique index), so a
reader of any size holds one page in memory and no long-lived cursor. One part of a commit
reads the whole version: its diversity report (`version_diversity`, stored in
`counts["diversity"]` and printed in the card): one pass over the rows' ids and sources
that keeps a seeded sample of at most `DIVERSITY_SAMPLE_ROWS` instructions (constant memory),
then the sampled rows' fields read by id; the report is computed over the sample and says
so, with the ROUGE-L lookups made for a seeded sample of `DIVERSITY_ROUGE_SAMPLE` of those.

Writers lock the dataset row (`SELECT ... FOR UPDATE` on PostgreSQL) and number the new
version after the latest one; `expected_latest` lets a build refuse to commit on top of a
version it did not see (`VersionConflict`). On SQLite, where writers are serialised by the
database, a concurrent commit fails on the unique (dataset, number) instead.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, cast, func, insert, or_, tuple_
from sqlmodel import Session, col, select

from app.core import diversity
from app.core.conversation import TurnsError, check_turns
from app.core.datasets import content
from app.core.datasets.errors import (
    DatasetError,
    DatasetNotFound,
    DuplicateDataset,
    EmptyChange,
    InvalidName,
    VersionConflict,
    VersionNotFound,
)
from app.core.datasets.recipe import Recipe
from app.core.datasets.version_card import render_card
from app.core.store import id_of
from app.models import (
    Dataset,
    DatasetExample,
    DatasetHashSegment,
    DatasetTag,
    DatasetVersion,
    SeedSet,
    VersionKind,
    utcnow,
)

LOCAL_OWNER = ""  # the owner of datasets made without an API key (the CLI's)
LATEST_TAG = "latest"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_DESCRIPTION = 10_000
PAGE_SIZE = 2000
# A commit's diversity report is over at most this many of the version's instructions (a
# seeded hash sample): the report costs 7-9 s per 100K instructions, so a 1M-row version's
# would add minutes to its commit; a version at or under the bound is reported whole.
DIVERSITY_SAMPLE_ROWS = 20_000
DIVERSITY_ROUGE_SAMPLE = 1000  # rows whose max ROUGE-L to the rest a commit looks up (each against all)
MAX_NUMBER = 2**31 - 1  # version numbers and ids are SQL integers
_INSERT_CHUNK = 5000

# the columns a version's row is read with by default, in this order; `removed_in` is left
# out: it tells of later versions, and a version must read the same forever
ROW_FIELDS = (
    "id", "instruction", "input", "output", "method", "lineage", "scores", "source_job_id",
    "source_instruction_id", "replaces_id", "added_in", "position", "turns",
)


def owner_key(owner: str | None) -> str:
    return LOCAL_OWNER if owner is None else owner


# --- datasets -------------------------------------------------------------------------------
def validate_name(name: str, what: str = "dataset name") -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidName(
            f"{what} {name!r} is invalid: use 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_seed_sets(session: Session, seed_set_ids: Sequence[int], owner: str | None) -> None:
    """Every seed set exists and belongs to `owner` (None or "": the local, owner-less ones)."""
    wanted = [i for i in dict.fromkeys(seed_set_ids) if 1 <= i <= MAX_NUMBER]  # others exist nowhere
    found = {
        r.id: r.owner for r in session.exec(select(SeedSet).where(col(SeedSet.id).in_(wanted))).all()
    }
    expected = owner or None
    for i, ident in enumerate(seed_set_ids):
        if ident not in found or (found[ident] or None) != expected:
            raise DatasetError(f"recipe.seed_set_ids[{i}]: no seed set with id {ident}")


def create_dataset(
    session: Session,
    owner: str | None,
    name: str,
    recipe: Recipe,
    *,
    description: str = "",
    license: str | None = None,
) -> Dataset:
    """A new dataset with no version yet (the caller commits).

    `recipe` must come from `recipe.parse_recipe` (with the job registry's step check);
    its seed sets must exist and belong to `owner`. Raises `InvalidName`,
    `DuplicateDataset` (the owner has one of that name) or `DatasetError`.
    """
    validate_name(name)
    check_details(description, license)
    owner = owner_key(owner)
    if session.exec(select(Dataset.id).where(Dataset.owner == owner, Dataset.name == name)).first() is not None:
        raise DuplicateDataset(f"a dataset named {name!r} already exists")
    check_seed_sets(session, recipe.seed_set_ids, owner)
    dataset = Dataset(owner=owner, name=name, description=description, license=license, recipe=recipe.model_dump())
    session.add(dataset)
    session.flush()
    return dataset


def check_details(description: str | None, license: str | None) -> None:
    """A description of at most `MAX_DESCRIPTION` characters; a license of 1 to 100 (or none)."""
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise DatasetError(f"description: at most {MAX_DESCRIPTION} characters, got {len(description)}")
    if license is not None and not 1 <= len(license) <= 100:
        raise DatasetError("license: 1 to 100 characters")


_KEEP: Any = object()  # `update_dataset`: leave the field as it is


def update_dataset(
    session: Session,
    dataset: Dataset,
    *,
    description: str | None = _KEEP,
    license: str | None = _KEEP,
    recipe: Recipe | None = None,
) -> Dataset:
    """Change what describes a dataset, or its recipe, for the builds to come (the caller commits).

    Versions already made keep the card and the rows they had; fields left out are kept
    (`license=None` clears the license). `recipe` must come from `recipe.parse_recipe`
    (with the job registry's step check) and its seed sets must belong to the dataset's
    owner. Raises `DatasetError` naming the field; nothing is changed then."""
    check_details(None if description is _KEEP else description, None if license is _KEEP else license)
    if description is not _KEEP and description is None:
        raise DatasetError("description: must be text (an empty text clears it)")
    if recipe is not None:
        check_seed_sets(session, recipe.seed_set_ids, dataset.owner)
    if description is not _KEEP:
        dataset.description = description
    if license is not _KEEP:
        dataset.license = license
    if recipe is not None:
        dataset.recipe = recipe.model_dump()
    dataset.updated_at = utcnow()
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(session: Session, owner: str | None, name: str) -> Dataset:
    dataset = session.exec(select(Dataset).where(Dataset.owner == owner_key(owner), Dataset.name == name)).first()
    if dataset is None:
        raise DatasetNotFound(f"no dataset named {name!r}")
    return dataset


def get_dataset_by_id(session: Session, dataset_id: int) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise DatasetNotFound(f"no dataset with id {dataset_id}")
    return dataset


def list_datasets(session: Session, owner: str | None) -> list[Dataset]:
    return list(session.exec(select(Dataset).where(Dataset.owner == owner_key(owner)).order_by(Dataset.name)).all())


def recipe_of(dataset: Dataset) -> Recipe:
    """The stored recipe (validated when it was stored)."""
    return Recipe.model_validate(dataset.recipe)


# --- versions -------------------------------------------------------------------------------
def latest_version(session: Session, dataset_id: int) -> DatasetVersion | None:
    return session.exec(
        select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id).order_by(col(DatasetVersion.number).desc())
    ).first()


def latest_number(session: Session, dataset_id: int) -> int:
    """The latest version's number; 0 when the dataset has none."""
    return session.exec(
        select(func.coalesce(func.max(DatasetVersion.number), 0)).where(DatasetVersion.dataset_id == dataset_id)
    ).one()


def get_version(session: Session, dataset_id: int, number: int) -> DatasetVersion:
    if not 1 <= number <= MAX_NUMBER:  # no such version, and no query a database would refuse
        raise VersionNotFound(f"the dataset has no version {number}")
    version = session.exec(
        select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id, DatasetVersion.number == number)
    ).first()
    if version is None:
        raise VersionNotFound(f"the dataset has no version {number}")
    return version


def list_versions(session: Session, dataset_id: int) -> list[DatasetVersion]:
    return list(
        session.exec(
            select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id).order_by(col(DatasetVersion.number))
        ).all()
    )


@dataclass
class NewExample:
    """One example a build adds. `method` is the job kind that made it (e.g. `self_instruct`);
    `lineage` and `scores` are kept with the row (and are part of its content hash), and so
    are a conversation's later `turns` (`app.core.conversation`) when there are any."""

    instruction: str
    input: str
    output: str
    method: str
    lineage: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, Any] = field(default_factory=dict)
    source_job_id: int | None = None
    source_instruction_id: int | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], method: str, source_job_id: int | None = None) -> NewExample:
        """From a job's curated row (`store.curated_examples`, `lineage.lineage_examples`)."""
        return cls(
            instruction=row["instruction"],
            input=row.get("input", ""),
            output=row.get("output", ""),
            method=method,
            lineage=lineage_with_origin(row),
            scores=dict(row.get("scores") or {}),
            source_job_id=source_job_id,
            source_instruction_id=row.get("id"),
            turns=list(row.get("turns") or []),
        )

    def content(self) -> dict[str, Any]:
        """The content fields (`turns` only for a conversation, as `content.canonical_json` hashes it)."""
        return {name: getattr(self, name) for name in content.ROW_CONTENT_FIELDS
                if name in content.CONTENT_FIELDS or getattr(self, name)}


def lineage_with_origin(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A job row's lineage, with the persona or topic path it was written for (`store.origin`) kept
    on its root entry (made when the row has no lineage), so they stay with the example."""
    lineage = [dict(step) for step in row.get("lineage") or []]
    origin = {k: row[k] for k in ("persona", "topic_path") if row.get(k)}
    if origin:
        if not lineage:
            lineage = [{"instruction": row["instruction"], "operation": None, "round": 0}]
        lineage[0].update(origin)
    return lineage


def checked_digest(ex: NewExample, where: str) -> str:
    for name in ("instruction", "input", "output", "method"):
        if not isinstance(getattr(ex, name), str):
            raise DatasetError(f"{where}.{name}: must be text")
    if not ex.instruction.strip():
        raise DatasetError(f"{where}.instruction: empty")
    if not 1 <= len(ex.method) <= 32:
        raise DatasetError(f"{where}.method: 1 to 32 characters")
    if not isinstance(ex.lineage, list) or not isinstance(ex.scores, dict):
        raise DatasetError(f"{where}: lineage must be a list and scores an object")
    try:
        ex.turns = check_turns(ex.turns, f"{where}.turns")
    except TurnsError as exc:
        raise DatasetError(str(exc)) from None
    try:
        return content.row_digest(ex.content())
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: not JSON content ({exc})") from None


@dataclass
class Change:
    """A version being made (by `begin_change`): the locked dataset, its parent, the new number."""

    dataset: Dataset
    parent: DatasetVersion | None
    number: int


def begin_change(session: Session, dataset: Dataset, expected_latest: int | None) -> Change:
    """Lock the dataset and number the next version; `expected_latest` (when given) must be the latest."""
    locked = session.exec(
        select(Dataset).where(Dataset.id == dataset.id).with_for_update().execution_options(populate_existing=True)
    ).one()
    parent = latest_version(session, id_of(locked))
    change = Change(locked, parent, (parent.number if parent else 0) + 1)
    check_expected(change, expected_latest)
    return change


def check_expected(change: Change, expected_latest: int | None) -> None:
    latest = change.number - 1
    if expected_latest is not None and expected_latest != latest:
        raise VersionConflict(
            f"version {expected_latest} is not the latest version of {change.dataset.name!r} ({latest or 'none'}): "
            "versions are linear, so a change must start from the latest"
        )


def insert_examples(session: Session, dataset_id: int, number: int, rows: Sequence[tuple[NewExample, str]],
                    replaces: Sequence[int | None] | None = None) -> None:
    """Insert (example, digest) pairs as the rows version `number` adds, positions 0..n-1."""
    values = [
        {
            "dataset_id": dataset_id, "instruction": ex.instruction, "input": ex.input, "output": ex.output,
            "method": ex.method, "source_job_id": ex.source_job_id, "source_instruction_id": ex.source_instruction_id,
            "lineage": ex.lineage, "scores": ex.scores, "turns": ex.turns, "digest": digest, "added_in": number, "removed_in": None,
            "replaces_id": replaces[i] if replaces else None, "position": i,
        }
        for i, (ex, digest) in enumerate(rows)
    ]
    for start in range(0, len(values), _INSERT_CHUNK):
        session.execute(insert(DatasetExample), values[start : start + _INSERT_CHUNK])


def add_segment(session: Session, dataset_id: int, added_in: int, number: int, digests: Sequence[str]) -> None:
    if digests:
        session.add(DatasetHashSegment(dataset_id=dataset_id, added_in=added_in, from_version=number,
                                       row_count=len(digests), digest=content.segment_digest(digests)))


def rehash_segments(session: Session, dataset_id: int, number: int, added_ins: Sequence[int]) -> None:
    """Replace the segments whose rows version `number` removed, from the stored row digests."""
    for k in sorted(set(added_ins)):
        old = session.exec(
            select(DatasetHashSegment).where(
                DatasetHashSegment.dataset_id == dataset_id, DatasetHashSegment.added_in == k,
                col(DatasetHashSegment.to_version).is_(None),
            )
        ).one()
        old.to_version = number
        session.add(old)
        digests = session.exec(
            select(DatasetExample.digest)
            .where(DatasetExample.dataset_id == dataset_id, DatasetExample.added_in == k,
                   col(DatasetExample.removed_in).is_(None))
            .order_by(col(DatasetExample.position))
        ).all()
        add_segment(session, dataset_id, k, number, digests)
    session.flush()


def live_hash(session: Session, dataset_id: int) -> str:
    """The content hash of the latest state, from the live segments: O(segments)."""
    digests = session.exec(
        select(DatasetHashSegment.digest)
        .where(DatasetHashSegment.dataset_id == dataset_id, col(DatasetHashSegment.to_version).is_(None))
        .order_by(col(DatasetHashSegment.added_in))
    ).all()
    return content.combine_segments(digests)


def version_diversity(session: Session, dataset_id: int, number: int,
                      sample_rows: int | None = None) -> dict[str, Any] | None:
    """Version `number`'s diversity report as stored with it (`diversity.stored_form`), from its
    rows as they are in this transaction; None for a version without rows. The version row
    need not exist yet (a commit computes it before writing the row).

    Over a seeded sample of at most `sample_rows` (default `DIVERSITY_SAMPLE_ROWS`) instructions
    (`diversity.bounded_version_items`), so a large version's commit pays for a pass over its
    rows' ids and for the sample's report, not for a report over every row; the report then holds
    `sampled: {"rows": instructions in the sample, "of": the version's rows read}`."""
    keys = stream_rows(session, dataset_id, live_at(number), fields=("id", "source_job_id", "source_instruction_id"))
    sample = diversity.bounded_version_items(keys, DIVERSITY_SAMPLE_ROWS if sample_rows is None else sample_rows,
                                             keep=lambda row: row["id"])
    report = diversity.report(_rows_by_id(session, sample.items, diversity.VERSION_FIELDS),
                              rouge_sample=DIVERSITY_ROUGE_SAMPLE)
    if not report["overall"]["rows"]:
        return None
    marker = sample.marker()
    if marker:
        report["sampled"] = marker
    return diversity.stored_form(report)


def _rows_by_id(session: Session, ids: Sequence[int], fields: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The rows of `ids` (`fields` of each, as `diversity.grouping_fields` keeps them), in the
    order of `ids`, read a chunk of ids at a time."""
    names = tuple(dict.fromkeys(("id", *fields)))
    columns = [getattr(DatasetExample, n) for n in names]
    conn = session.connection()
    for start in range(0, len(ids), _INSERT_CHUNK):
        chunk = ids[start:start + _INSERT_CHUNK]
        found = {r[0]: r for r in conn.execute(select(*columns).where(col(DatasetExample.id).in_(chunk))).all()}
        for ident in chunk:
            yield diversity.grouping_fields(dict(zip(names, found[ident])))


def finish_version(session: Session, change: Change, kind: VersionKind, counts: dict[str, Any],
                   row_count: int, build_job_id: int | None = None) -> DatasetVersion:
    """Write the version row (hash, diversity, card), move `latest`, touch the dataset; all
    flushed, not committed."""
    session.flush()
    dataset = change.dataset
    spread = version_diversity(session, id_of(dataset), change.number)
    if spread is not None:
        counts = {**counts, "diversity": spread}
    version = DatasetVersion(
        dataset_id=id_of(dataset), number=change.number, parent_id=change.parent.id if change.parent else None,
        build_job_id=build_job_id, kind=kind.value, created_at=utcnow(), row_count=row_count, counts=counts,
        content_hash=live_hash(session, id_of(dataset)),
    )
    version.card = render_card(dataset, version)
    session.add(version)
    session.flush()
    move_tag(session, id_of(dataset), LATEST_TAG, id_of(version))
    dataset.updated_at = version.created_at
    session.add(dataset)
    session.flush()
    return version


def move_tag(session: Session, dataset_id: int, name: str, version_id: int) -> DatasetTag:
    tag = session.exec(select(DatasetTag).where(DatasetTag.dataset_id == dataset_id, DatasetTag.name == name)).first()
    if tag is None:
        tag = DatasetTag(dataset_id=dataset_id, name=name, version_id=version_id)
    tag.version_id, tag.updated_at = version_id, utcnow()
    session.add(tag)
    session.flush()
    return tag


def method_counts(parent: DatasetVersion | None) -> Counter[str]:
    return Counter(dict((parent.counts or {}).get("by_method", {}))) if parent else Counter()


def commit_version(
    session: Session,
    dataset: Dataset,
    new_examples: Sequence[NewExample],
    *,
    build_job_id: int | None = None,
    build_counts: Mapping[str, Any] | None = None,
    expected_latest: int | None = None,
) -> DatasetVersion:
    """Commit the next version: the latest version's rows plus `new_examples`, in their order.

    One transaction, the caller's: the caller commits (or rolls back, leaving nothing).
    Cost O(len(new_examples) + versions); existing rows are neither read nor written.
    `build_counts` (e.g. `{"rejected_by_rule": {...}, "candidates": n}`) is stored as
    `counts["build"]`; `counts` also holds `added`, `added_by_method` and `by_method`
    (live rows per method). With `build_job_id`, a second commit of the same build
    returns the version it already made (a resumed build commits once).
    Raises `EmptyChange` (no examples), `VersionConflict` (`expected_latest` is not the
    latest), `DatasetError` (an example is not valid content, naming its index).
    """
    rows = [(ex, checked_digest(ex, f"new_examples[{i}]")) for i, ex in enumerate(new_examples)]
    change = begin_change(session, dataset, None)  # the lock first: a duplicate build waits here
    if build_job_id is not None:
        done = session.exec(select(DatasetVersion).where(DatasetVersion.build_job_id == build_job_id)).first()
        if done is not None:
            if done.dataset_id != dataset.id:
                raise DatasetError(f"job {build_job_id} already committed a version of another dataset")
            return done
    check_expected(change, expected_latest)
    if not rows:
        raise EmptyChange("no new examples: a version must change something")
    insert_examples(session, id_of(dataset), change.number, rows)
    add_segment(session, id_of(dataset), change.number, change.number, [d for _, d in rows])
    added = Counter(ex.method for ex, _ in rows)
    counts = {
        "added": len(rows), "removed": 0, "corrected": 0,
        "added_by_method": dict(sorted(added.items())),
        "by_method": dict(sorted((method_counts(change.parent) + added).items())),
        "build": dict(build_counts or {}),
    }
    row_count = (change.parent.row_count if change.parent else 0) + len(rows)
    return finish_version(session, change, VersionKind.build, counts, row_count, build_job_id)


# --- reading --------------------------------------------------------------------------------
def live_at(number: int) -> Any:
    """The SQL condition "the row belongs to version `number`"."""
    return (col(DatasetExample.added_in) <= number) & or_(
        col(DatasetExample.removed_in).is_(None), col(DatasetExample.removed_in) > number
    )


def stream_pages(session: Session, dataset_id: int, condition: Any, fields: Sequence[str],
                 page_size: int = PAGE_SIZE, raw_json: Sequence[str] = ()) -> Iterator[Sequence[Sequence[Any]]]:
    """Rows of one dataset matching `condition`, as tuples of `fields`, in (added_in, position)
    order, one page (a list) at a time: keyset pagination on the unique index, so memory
    is one page and each query is short. Runs on the session's connection (its
    transaction) without ORM objects, which keeps a 200K-row read fast. JSON fields named
    in `raw_json` come as their stored text, not decoded."""
    extra = [n for n in ("added_in", "position") if n not in fields]
    names = [*fields, *extra]
    columns = [cast(getattr(DatasetExample, n), Text) if n in raw_json else getattr(DatasetExample, n) for n in names]
    ia, ip = names.index("added_in"), names.index("position")
    width = len(fields)
    conn = session.connection()
    last: tuple[int, int] | None = None
    while True:
        stmt = select(*columns).where(DatasetExample.dataset_id == dataset_id, condition)
        if last is not None:
            stmt = stmt.where(tuple_(DatasetExample.added_in, DatasetExample.position) > tuple_(*last))
        page = conn.execute(stmt.order_by(col(DatasetExample.added_in), col(DatasetExample.position)).limit(page_size)).all()
        if not page:
            return
        yield [r[:width] for r in page] if extra else page
        if len(page) < page_size:
            return
        last = (page[-1][ia], page[-1][ip])


def stream_rows(session: Session, dataset_id: int, condition: Any, page_size: int = PAGE_SIZE,
                fields: Sequence[str] = ROW_FIELDS) -> Iterator[dict[str, Any]]:
    """`stream_pages`, one dict of `fields` per row."""
    names = tuple(fields)
    for page in stream_pages(session, dataset_id, condition, names, page_size):
        for r in page:
            yield dict(zip(names, r))


def version_rows(session: Session, dataset_id: int, number: int, *, page_size: int = PAGE_SIZE,
                 fields: Sequence[str] = ROW_FIELDS) -> Iterator[dict[str, Any]]:
    """Every row of version `number`, streamed in the stable order (`added_in`, `position`).

    Raises `VersionNotFound` at once (before the first row) for a missing version."""
    get_version(session, dataset_id, number)
    return stream_rows(session, dataset_id, live_at(number), page_size, fields)


def version_pages(session: Session, dataset_id: int, number: int, fields: Sequence[str],
                  page_size: int = PAGE_SIZE, raw_json: Sequence[str] = ()) -> Iterator[Sequence[Sequence[Any]]]:
    """`version_rows` as pages of tuples of `fields` (the fastest read; for exports)."""
    get_version(session, dataset_id, number)
    return stream_pages(session, dataset_id, live_at(number), fields, page_size, raw_json)


def content_hash(session: Session, dataset_id: int, number: int) -> str:
    """Recompute version `number`'s content hash from the rows' content (O(rows)); it equals
    the hash stored at commit unless the stored rows were altered."""
    segments: list[str] = []
    current: int | None = None
    digests: list[str] = []
    for row in version_rows(session, dataset_id, number, fields=(*content.ROW_CONTENT_FIELDS, "added_in")):
        if row["added_in"] != current:
            if digests:
                segments.append(content.segment_digest(digests))
            current, digests = row["added_in"], []
        digests.append(content.row_digest(row))
    if digests:
        segments.append(content.segment_digest(digests))
    return content.combine_segments(segments)
