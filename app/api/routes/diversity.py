"""Diversity reports: `GET /jobs/{id}/diversity` and `GET /datasets/{name}/versions/{ref}/diversity`.

Distinct-1/2 of the instructions, each instruction's maximum ROUGE-L to the others (a
histogram), verb-noun coverage, overall and by method, persona and topic
(`app.core.diversity`). Computed on request from the stored rows.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.datasets_shared import NamePath, RefPath
from app.api.deps import IdPath, Owner, SessionDep, owned
from app.api.schemas.diversity import DiversityReport
from app.core import diversity_sources
from app.core.datasets import tags
from app.core.datasets import versions as v
from app.models import Job

router = APIRouter(tags=["diversity"])

RougeSampleQ = Annotated[int, Query(ge=10, le=50_000, description="Rows whose max ROUGE-L is looked up when "
                                    "there are more (a seeded sample, each against all rows).")]


@router.get("/jobs/{job_id}/diversity", summary="Diversity of a job's curated instructions")
def job_diversity(job_id: IdPath, session: SessionDep, owner: Owner, rouge_sample: RougeSampleQ = 5000
                  ) -> DiversityReport:
    job = owned(session, Job, job_id, owner, "job")
    return DiversityReport(**diversity_sources.job_report(session, job, rouge_sample=rouge_sample))


@router.get("/datasets/{name}/versions/{ref}/diversity", summary="Diversity of a dataset version's instructions")
def version_diversity(name: NamePath, ref: RefPath, session: SessionDep, owner: Owner,
                      rouge_sample: RougeSampleQ = 5000) -> DiversityReport:
    dataset = v.get_dataset(session, owner, name)
    version = tags.resolve(session, dataset.id, ref)
    return DiversityReport(**diversity_sources.version_report(session, dataset, version.number,
                                                              rouge_sample=rouge_sample))
