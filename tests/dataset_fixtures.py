"""Datasets made by hand for the datasets core's tests: seed sets, recipes, examples.

Examples are deterministic and carry what makes hashing across databases interesting:
non-ASCII text, floats in their scores, nested lineage with nulls.
"""

from __future__ import annotations

import pytest
from sqlmodel import Session

from app import db
from app.core import store
from app.core.datasets import versions as v
from app.core.datasets.recipe import parse_recipe
from app.core.seeds import SeedTaskData
from app.models import Dataset, Job

OWNER = "alice"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """Each test that takes it runs once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def session_for(url: str) -> Session:
    return Session(db.get_engine(url), expire_on_commit=False)


def make_seed_set(session: Session, owner: str | None = OWNER, n: int = 3) -> int:
    tasks = [
        SeedTaskData(f"Seed task number {i}: explain a thing clearly.", [{"input": f"in {i}", "output": f"out {i}"}])
        for i in range(n)
    ]
    return store.import_seed_set(session, f"seeds-{owner}", "jsonl", tasks, owner=owner).id


def recipe_data(seed_set_ids: list[int], **overrides) -> dict:
    data = {
        "seed_set_ids": seed_set_ids,
        "steps": [{"kind": "self_instruct", "params": {"target": 10}}],
        "grow_by": 10,
    }
    return {**data, **overrides}


def make_dataset(session: Session, name: str = "support-sft", owner: str | None = OWNER, **recipe_overrides) -> Dataset:
    seed_id = make_seed_set(session, owner)
    recipe = parse_recipe(recipe_data([seed_id], **recipe_overrides))
    return v.create_dataset(session, owner, name, recipe, description="A test dataset.", license="apache-2.0")


def make_job(session: Session, kind: str = "dataset_build") -> int:
    job = Job(kind=kind, owner=OWNER)
    session.add(job)
    session.flush()
    return job.id


def examples(n: int, start: int = 0, method: str = "self_instruct") -> list[v.NewExample]:
    return [
        v.NewExample(
            instruction=f"Explique l'étape {i} du procédé — avec soin ✓",
            input="" if i % 3 == 0 else f"entrée {i}",
            output=f"Réponse {i}: {'x' * (i % 7)}",
            method=method,
            lineage=[{"instruction": f"root {i}" if i % 2 else f"racine {i} — é\t", "operation": None, "round": 0}],
            scores={"max_rouge_l": round(0.1 + (i % 50) / 100, 4), "mean_rouge_l": 1 / (i + 3), "rank": i},
            source_job_id=None,
            source_instruction_id=i + 1,
        )
        for i in range(start, start + n)
    ]
