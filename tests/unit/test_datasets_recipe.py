"""Recipes: field-path errors, the structure rules, and the injected job-registry check."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from app.core.datasets.errors import RecipeError
from app.core.datasets.recipe import Recipe, field_path, parse_recipe

GOOD = {
    "seed_set_ids": [1],
    "steps": [
        {"kind": "self_instruct", "params": {"target": 50}},
        {"kind": "evol_instruct", "params": {"rounds": 2}, "source": "previous"},
    ],
    "grow_by": 50,
}


class _SelfParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: int = 100
    min_words: int = 4


class _EvolParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rounds: int = 4


class _KindError(ValueError):
    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


def registry_check(kind, params, takes_previous):
    """Stands in for the job registry's check: two kinds, evol may take the previous output."""
    models = {"self_instruct": _SelfParams, "evol_instruct": _EvolParams}
    if kind not in models:
        raise _KindError("kind", f"unknown job kind {kind!r}; known: evol_instruct, self_instruct")
    if takes_previous and kind != "evol_instruct":
        raise ValueError(f"{kind} cannot take the previous step's output (it starts from seeds)")
    return models[kind].model_validate(params).model_dump()


def _paths(data, check=None):
    with pytest.raises(RecipeError) as info:
        parse_recipe(data, check)
    return [p for p, _ in info.value.errors], str(info.value)


def test_a_good_recipe_with_defaults_filled_by_the_registry():
    recipe = parse_recipe(GOOD, registry_check)
    assert recipe.steps[0].params == {"target": 50, "min_words": 4}
    assert recipe.steps[1].params == {"rounds": 2} and recipe.steps[1].source == "previous"
    assert recipe.export_formats == ["messages"] and recipe.size_cap is None and recipe.min_yield_share == 0.1
    assert parse_recipe(recipe.model_dump(), registry_check) == recipe


def test_field_errors_name_their_path():
    paths, message = _paths({**GOOD, "grow_by": 0, "steps": [{"kind": "self_instruct", "source": "elsewhere"}]})
    assert paths == ["steps[0].source", "grow_by"]
    assert "steps[0].source: Input should be 'seeds' or 'previous'" in message
    assert _paths({**GOOD, "seed_set_ids": []})[0] == ["seed_set_ids"]
    assert _paths({**GOOD, "export_formats": ["parquet"]})[0] == ["export_formats[0]"]
    assert _paths({**GOOD, "size_cap": -1, "min_yield_share": 2})[0] == ["size_cap", "min_yield_share"]
    assert _paths({**GOOD, "colour": "red"})[0] == ["colour"]
    assert _paths([1, 2])[0] == ["recipe"]


def test_structure_first_step_takes_seeds_and_no_repeats():
    data = {**GOOD, "steps": [{"kind": "evol_instruct", "source": "previous"}]}
    paths, message = _paths(data)
    assert paths == ["steps[0].source"] and "must take the seeds" in message
    assert _paths({**GOOD, "seed_set_ids": [3, 3]})[0] == ["seed_set_ids[1]"]
    assert _paths({**GOOD, "export_formats": ["alpaca", "alpaca"]})[0] == ["export_formats"]
    with pytest.raises(ValidationError, match=r"steps\[0\].source"):
        Recipe.model_validate(data)  # direct validation applies the same rule


def test_registry_errors_are_placed_on_the_step():
    unknown = {**GOOD, "steps": [GOOD["steps"][0], {"kind": "magic", "source": "previous"}]}
    paths, message = _paths(unknown, registry_check)
    assert paths == ["steps[1].kind"] and "unknown job kind 'magic'" in message
    cannot = {**GOOD, "steps": [GOOD["steps"][0], {"kind": "self_instruct", "source": "previous"}]}
    paths, message = _paths(cannot, registry_check)
    assert paths == ["steps[1]"] and "cannot take the previous step's output" in message
    bad_params = {**GOOD, "steps": [{"kind": "self_instruct", "params": {"target": "many", "colour": 1}}]}
    assert _paths(bad_params, registry_check)[0] == ["steps[0].params.target", "steps[0].params.colour"]


def test_field_path():
    assert field_path(("steps", 1, "source")) == "steps[1].source"
    assert field_path(()) == "recipe"
