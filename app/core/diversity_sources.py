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

VERSION_FIELDS = ("id", "instruction", "method", "source_job_id", "source_instruction_id", "lineage")


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
    rows = ds_versions.version_rows(session, dataset.id, number, fields=VERSION_FIELDS)

    def key(row: Mapping[str, Any]) -> Any:
        if row.get("source_job_id") is None or row.get("source_instruction_id") is None:
            return None
        return row["source_job_id"], row["source_instruction_id"]

    report = diversity.report(_once((diversity.grouping_fields(r) | _keys(r) for r in rows), key), **options)
    return {"source": {"kind": "dataset_version", "dataset": dataset.name, "version": number}, **report}


def _keys(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"source_job_id": row.get("source_job_id"), "source_instruction_id": row.get("source_instruction_id")}
