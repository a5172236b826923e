"""`GET /api/v1/kinds`: every registered job kind with its parameter and result schemas and defaults.

A client (the dashboard's "new job" form) builds its form from this answer, so a new kind
or a new parameter shows up without a change to the client; the job page shows a job's
result from its kind's result model the same way (a job's `result_fields`). The defaults
are the ones a job of that kind would get from this service's settings (`SPROUT_SELF_INSTRUCT__*`, ...),
not the bare model's.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import PydanticUndefined, to_jsonable_python

from app.api.deps import SettingsDep
from app.core import jobs
from app.core.jobs import dataset_build, evol_instruct, score, self_instruct, sft

router = APIRouter(tags=["jobs"])

Source = Literal["seed_set_id", "source_job_id", "export_id"]

# What each kind starts from (its `check` refuses the others). A kind not listed here may be
# given any of them; its check names the field at fault.
SOURCES: dict[str, list[Source]] = {
    self_instruct.KIND: ["seed_set_id"],
    evol_instruct.KIND: ["seed_set_id", "source_job_id"],
    sft.KIND: ["source_job_id", "export_id"],
    dataset_build.KIND: [],
    score.KIND: ["source_job_id"],
}
ALL_SOURCES: list[Source] = ["seed_set_id", "source_job_id", "export_id"]


class KindOut(BaseModel):
    name: str = Field(examples=["self_instruct"])
    description: str
    queue: str = Field(examples=["generation"])
    produces_examples: bool = Field(description="Its rows are curated examples (it can be exported).")
    needs_llm: bool
    sources: list[Source] = Field(description="What a job of this kind starts from (one of them, where several).")
    params_schema: dict[str, Any] = Field(description="The JSON schema of `params`.")
    result_schema: dict[str, Any] = Field(description="The JSON schema of a job's `result` (the kind's result "
                                          "model); a job's `result_fields` list the fields it holds.")
    defaults: dict[str, Any] = Field(description="The parameters a job gets when `params` is empty; "
                                     "required ones without a default are absent.")


class KindList(BaseModel):
    items: list[KindOut]


def defaults_of(kind: jobs.JobKind, service_defaults: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What `params: {}` becomes for `kind`; field by field when a parameter is required."""
    try:
        return to_jsonable_python(kind.validate_params({}, service_defaults).model_dump())
    except ValidationError:
        base = service_defaults.get(kind.defaults_key or kind.name, {})
        out: dict[str, Any] = {}
        for name, field in kind.params_model.model_fields.items():
            if name in base:
                out[name] = base[name]
            elif not field.is_required():
                value = field.get_default(call_default_factory=True)
                if value is not PydanticUndefined:
                    out[name] = value
        return to_jsonable_python(out)


@router.get("/kinds", summary="The job kinds this service runs, with their parameter schemas and defaults")
def list_kinds(settings: SettingsDep) -> KindList:
    service_defaults = settings.core_config().defaults
    items = []
    for name in jobs.names():
        kind = jobs.get(name)
        items.append(KindOut(
            name=name, description=kind.description, queue=kind.queue, produces_examples=kind.produces_examples,
            needs_llm=kind.needs_llm, sources=SOURCES.get(name, ALL_SOURCES),
            params_schema=kind.params_model.model_json_schema(),
            result_schema=kind.result_model.model_json_schema(), defaults=defaults_of(kind, service_defaults),
        ))
    return KindList(items=items)
