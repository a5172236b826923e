"""A dataset's recipe: what one build does, validated before anything is stored.

A recipe names the seed set(s), one or more generation steps, how many new curated
examples one build adds (`grow_by`), the export formats of each version, an optional size
cap, and the yield below which a scheduled build pauses the schedule.

Each step is a registered job kind with its parameters and a source: `seeds` (the
recipe's seed sets) or `previous` (the output of the step before it, e.g. Self-Instruct
then Evol-Instruct). The core checks what it can see (shape, types, bounds, that the first
step takes the seeds); whether a kind exists, whether its parameters are valid and whether
it can take the previous step's output are the job registry's to say, so `parse_recipe`
takes that check as an argument (`StepValidator`) instead of importing the registry.
Every error names its field path (`steps[1].source`), so a shell can answer with a 422
pointing at the field, or one CLI line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from app.core.datasets.errors import RecipeError

StepSource = Literal["seeds", "previous"]
ExportFormat = Literal["alpaca", "messages", "prompt-completion", "sharegpt"]  # app.core.export.FORMATS
DEFAULT_FORMATS: tuple[ExportFormat, ...] = ("messages",)


class RecipeStep(BaseModel):
    """One generation step: a job kind, its parameters, and where its input comes from."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=32, description="A registered job kind, e.g. `self_instruct`.")
    params: dict[str, Any] = Field(default_factory=dict, description="The kind's parameters (its defaults fill the rest).")
    source: StepSource = Field(
        default="seeds", description="`seeds`: the recipe's seed sets; `previous`: the output of the step before."
    )


class Recipe(BaseModel):
    """What one build of a dataset does. Build it with `parse_recipe` to get field-path errors."""

    model_config = ConfigDict(extra="forbid")

    seed_set_ids: list[int] = Field(min_length=1, max_length=100, description="Seed sets every build starts from.")
    steps: list[RecipeStep] = Field(min_length=1, max_length=10, description="Generation steps, run in order.")
    grow_by: int = Field(ge=1, le=1_000_000, description="New curated examples one build adds.")
    export_formats: list[ExportFormat] = Field(
        default_factory=lambda: list(DEFAULT_FORMATS), min_length=1, description="Formats each version is offered in."
    )
    size_cap: int | None = Field(
        default=None, ge=1, description="Stop growing (and pause the schedule) once a version holds this many examples."
    )
    min_yield_share: float = Field(
        default=0.1, ge=0, le=1,
        description="A scheduled build that adds fewer than this share of `grow_by` pauses the schedule "
        "(the seed pool is saturated).",
    )

    @model_validator(mode="after")
    def _structure(self, info: ValidationInfo) -> Recipe:
        if not (info.context or {}).get("skip_structure"):
            errors = structure_errors(self)
            if errors:
                raise ValueError("; ".join(f"{path}: {msg}" for path, msg in errors))
        return self


class StepValidator(Protocol):
    """The job registry's check of one step, injected into `parse_recipe`.

    Raise `ValueError` with a message when the step is invalid: a pydantic
    `ValidationError` is reported under `steps[i].params.<its location>`, an exception
    carrying a `field` attribute under `steps[i].<field>`, any other under `steps[i]`.
    Return the normalised parameters (e.g. with the kind's defaults filled in) to store
    them in the recipe, or None to keep the parameters as given.
    """

    def __call__(self, kind: str, params: dict[str, Any], takes_previous: bool) -> Mapping[str, Any] | None: ...


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """("steps", 1, "source") -> "steps[1].source"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "recipe"


def structure_errors(recipe: Recipe) -> list[tuple[str, str]]:
    """What the recipe's shape gets wrong regardless of the job kinds."""
    errors: list[tuple[str, str]] = []
    seen: set[int] = set()
    for i, ident in enumerate(recipe.seed_set_ids):
        if ident < 1:
            errors.append((f"seed_set_ids[{i}]", f"{ident} is not a seed set id"))
        elif ident in seen:
            errors.append((f"seed_set_ids[{i}]", f"seed set {ident} is listed twice"))
        seen.add(ident)
    if recipe.steps and recipe.steps[0].source != "seeds":
        errors.append(("steps[0].source", "the first step must take the seeds: no step comes before it"))
    if len(set(recipe.export_formats)) != len(recipe.export_formats):
        errors.append(("export_formats", "a format is listed twice"))
    return errors


def parse_recipe(data: Mapping[str, Any] | Recipe, validate_step: StepValidator | None = None) -> Recipe:
    """Validate a recipe; raise `RecipeError` listing every (field path, message) found.

    Checks run in three stages, each only when the one before passed: the fields (types,
    bounds), the structure (`structure_errors`), then each step through `validate_step`.
    """
    raw = data.model_dump() if isinstance(data, Recipe) else data
    if not isinstance(raw, Mapping):
        raise RecipeError([("recipe", f"must be an object, got {type(raw).__name__}")])
    try:
        recipe = Recipe.model_validate(raw, context={"skip_structure": True})
    except ValidationError as exc:
        raise RecipeError([(field_path(e["loc"]), e["msg"]) for e in exc.errors()]) from None
    errors = structure_errors(recipe)
    if errors:
        raise RecipeError(errors)
    if validate_step is not None:
        for i, step in enumerate(recipe.steps):
            try:
                normalised = validate_step(step.kind, dict(step.params), step.source == "previous")
            except ValidationError as exc:
                errors += [(field_path([f"steps[{i}].params", *e["loc"]]), e["msg"]) for e in exc.errors()]
                continue
            except ValueError as exc:
                where = getattr(exc, "field", None)
                errors.append((f"steps[{i}].{where}" if isinstance(where, str) and where else f"steps[{i}]", str(exc)))
                continue
            if normalised is not None:
                step.params = dict(normalised)
        if errors:
            raise RecipeError(errors)
    return recipe
