"""The diversity report (`app.core.diversity`) of a job's curated data or of a dataset version.

The report is about instructions, so each instruction counts once: a Self-Instruct
instruction with several accepted instances is one row of the report (by the instruction's
id in a job; by its source job and instruction in a dataset version, where an example made
outside a job counts on its own).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlmodel import Session

from app.core import diversity, lineage
from app.core.datasets import versions as ds_versions


def _once(rows: Iterable[Mapping[str, Any]], key: Any) -> Iterator[Mapping[str, Any]]:
    seen: set[Any] = set()
    for row in rows:
        k = key(row)
        if k is not None and k in seen:
            continue
        seen.add(k)
        yield row


def job_report(session: Session, job: Any, **options: Any) -> dict[str, Any]:
    """The report over a generation job's curated instructions. Raises `JobRequestError` for a
    job without curated data."""
    rows = lineage.export_rows(session, job)
    marked = ({**diversity.grouping_fields(row), "method": row.get("method") or job.kind, "id": row.get("id")}
              for row in rows)
    report = diversity.report(_once(marked, lambda r: r.get("id")), **options)
    return {"source": {"kind": "job", "id": job.id, "method": job.kind}, **report}


def version_report(session: Session, dataset: Any, number: int, **options: Any) -> dict[str, Any]:
    """The report over a dataset version's instructions. Raises `VersionNotFound`."""
    rows = ds_versions.version_rows(session, dataset.id, number, fields=diversity.VERSION_FIELDS)
    report = diversity.report(diversity.version_items(rows), **options)
    return {"source": {"kind": "dataset_version", "dataset": dataset.name, "version": number}, **report}
