"""A dataset's recipe, judged the same way through every door (the API and the CLI).

The datasets core checks a recipe's shape; whether each step's kind exists, whether its
parameters are valid and whether it can take the previous step's output is the job
registry's to say, handed to `datasets.recipe.parse_recipe` as its step check. A kind that
takes the previous step's output must start from a job's accepted rows (Evol-Instruct
does; Self-Instruct grows from seeds, and training makes no examples).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core import jobs
from app.core.datasets.deletion import BUILD_KIND
from app.core.datasets.recipe import Recipe, StepValidator, parse_recipe

TAKES_PREVIOUS = frozenset({"evol_instruct"})  # kinds whose input can be another job's accepted rows


def step_validator(defaults: dict[str, dict[str, Any]] | None) -> StepValidator:
    """The job registry's check of one recipe step, on the service's parameter defaults."""

    def check(kind: str, params: dict[str, Any], takes_previous: bool) -> Mapping[str, Any] | None:
        if kind == BUILD_KIND:
            raise jobs.JobRequestError("kind", f"{kind} builds a dataset; it cannot be a step of one")
        job_kind = jobs.get(kind)  # JobRequestError (a ValueError) on `kind` when unknown
        if not job_kind.produces_examples:
            raise jobs.JobRequestError("kind", f"{kind} makes no examples; a step must be a generation kind")
        if takes_previous and kind not in TAKES_PREVIOUS:
            raise jobs.JobRequestError(
                "source", f"{kind} cannot take the previous step's output: it starts from the seeds"
            )
        job_kind.validate_params(params, defaults)  # pydantic's ValidationError names the parameter
        return None  # keep the parameters as given: the service defaults apply at build time

    return check


def parse(data: Any, defaults: dict[str, dict[str, Any]] | None) -> Recipe:
    """A validated recipe, or `RecipeError` listing each (field path, message)."""
    return parse_recipe(data, step_validator(defaults))
