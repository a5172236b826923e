"""What a build's novelty and near-duplicate indexes start from: the dataset's whole content.

A build must never add an example too similar to one the dataset already holds, in any
live row of the latest version, nor to the seeds. So before generating, a build fills the
exact ROUGE-L index (`app.core.filters.novelty.NoveltyIndex`) with `novelty_texts` and
the MinHash index (`app.core.filters.dedup.NearDupIndex`) with `dedup_documents`. Both are
streamed a page at a time: memory is the index's own, not a copy of the dataset.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlmodel import Session, col, select

from app.core.datasets import versions as v
from app.core.filters.dedup import example_text
from app.core.store import id_of
from app.models import Dataset, SeedTask


def _seed_tasks(session: Session, seed_set_ids: Sequence[int]) -> Iterator[SeedTask]:
    for seed_set_id in seed_set_ids:
        yield from session.exec(
            select(SeedTask).where(SeedTask.seed_set_id == seed_set_id).order_by(col(SeedTask.position))
        ).all()


def _latest(session: Session, dataset: Dataset, number: int | None) -> int:
    return number if number is not None else v.latest_number(session, id_of(dataset))


def novelty_texts(session: Session, dataset: Dataset, number: int | None = None) -> Iterator[str]:
    """The recipe's seed instructions, then every instruction of the live rows of version
    `number` (default: the latest; none when there is no version yet), each distinct text once."""
    seen: set[str] = set()
    for task in _seed_tasks(session, v.recipe_of(dataset).seed_set_ids):
        if task.instruction not in seen:
            seen.add(task.instruction)
            yield task.instruction
    n = _latest(session, dataset, number)
    if n == 0:
        return
    for page in v.version_pages(session, id_of(dataset), n, ("instruction",)):
        for (text,) in page:
            if text not in seen:
                seen.add(text)
                yield text


def dedup_documents(session: Session, dataset: Dataset, number: int | None = None) -> Iterator[tuple[str, str]]:
    """(key, text) for `NearDupIndex.check_and_add_many`: every seed instance (`seed:<task id>:<i>`),
    then every live example of version `number` (`example:<id>`), as whole-example text."""
    for task in _seed_tasks(session, v.recipe_of(dataset).seed_set_ids):
        for i, inst in enumerate(task.instances or [{}]):
            yield f"seed:{task.id}:{i}", example_text(task.instruction, inst.get("input", ""), inst.get("output", ""))
    n = _latest(session, dataset, number)
    if n == 0:
        return
    for page in v.version_pages(session, id_of(dataset), n, ("id", "instruction", "input", "output")):
        for ident, instruction, input_text, output in page:
            yield f"example:{ident}", example_text(instruction, input_text, output)


def fill_novelty_index(index: Any, texts: Iterable[str]) -> int:
    """Add every text to a `NoveltyIndex` by its bulk path (`add_many`, a chunk of texts at a
    time, consuming the stream as it goes); returns how many were added."""
    n: int = index.add_many(texts)
    return n
