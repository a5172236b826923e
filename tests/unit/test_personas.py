"""Persona sets and the persona kind without a model: files read with line-numbered errors,
the shipped set, the seeded plan (without replacement, kinds in turn), the API's upload and
reads, and a job request's checks (real PostgreSQL)."""

from __future__ import annotations

import pytest

from app.core.methods import personas
from app.core.methods.persona import plan, seed_task_kind
from app.core.params import PersonaParams
from tests.service_fixtures import api, api_settings, client, other_api  # noqa: F401


def test_jsonl_and_csv_files_are_read_whole():
    fmt, people = personas.parse_personas('{"persona": "A nurse.", "id": 3}\n\n{"persona": "  A   farmer. "}\n')
    assert (fmt, people) == ("jsonl", ["A nurse.", "A farmer."])
    fmt, people = personas.parse_personas('persona,age\n"A chef, vegetarian",40\nA beekeeper,\n', filename="p.csv")
    assert (fmt, people) == ("csv", ["A chef, vegetarian", "A beekeeper"])


@pytest.mark.parametrize(("text", "fmt", "message"), [
    ('{"persona": "A nurse."}\n{"persona": 3}\n', None, "line 2: field 'persona' must be a string"),
    ('{"persona": "A nurse."}\n{"persona": "A nurse."}\n', None, "line 2: the same persona as line 1"),
    ('{"persona": "A nurse."}\nnot json\n', None, "line 2"),
    ('{"name": "x"}\n', None, "line 1: missing field 'persona'"),
    ('{"persona": "ab"}\n', None, "too short"),
    ("name\nA nurse\n", "csv", "no 'persona' column"),
    ('persona\n"A nurse\n', "csv", "never closed"),
    ("", None, "no persona"),
    ('{"persona": "x"}', "xml", "unknown persona format"),
])
def test_a_bad_file_names_its_line(text, fmt, message):
    with pytest.raises(personas.PersonaFormatError, match=message):
        personas.parse_personas(text, fmt)


def test_the_shipped_set_reads():
    shipped = personas.shipped()
    assert len(shipped) >= 30 and len(set(shipped)) == len(shipped)


def test_the_plan_draws_each_persona_once_in_a_seeded_order_with_kinds_in_turn():
    people = [f"Person number {i}" for i in range(10)]
    kinds = ["a question", "a writing task", "a math problem"]
    first = plan(people, kinds, 2, seed=7)
    assert first == plan(people, kinds, 2, seed=7) and first != plan(people, kinds, 2, seed=8)
    assert len(first) == 20 and sorted({t.persona for t in first}) == sorted(people)
    assert [t.persona for t in first[::2]] == [t.persona for t in first[1::2]]  # a persona's tasks side by side
    counts = {k: sum(t.task == k for t in first) for k in kinds}
    assert max(counts.values()) - min(counts.values()) <= 1  # every kind comes up evenly
    left = plan(people, kinds, 1, seed=7, exclude=people[:8])
    assert sorted(t.persona for t in left) == people[8:]
    assert seed_task_kind("Sort  the\nlist.") == "a task of the same kind as this one: Sort the list."


def test_params_are_checked():
    with pytest.raises(ValueError, match="task_types"):
        PersonaParams(task_types=[" "])
    with pytest.raises(ValueError, match="min_words"):
        PersonaParams(min_words=10, max_words=5)


def test_the_api_uploads_lists_and_reads_persona_sets(api, other_api):
    made = api.ok("post", "/api/v1/persona-sets", 201, json={
        "name": "nurses", "content": '{"persona": "A nurse on night shifts."}\n{"persona": "A paramedic."}\n'})
    assert made["persona_count"] == 2 and made["source_format"] == "jsonl"
    listed = api.ok("post", "/api/v1/persona-sets", 201, json={"name": "inline", "personas": ["A beekeeper."]})
    assert listed["source_format"] == "list" and listed["personas"] == ["A beekeeper."]
    assert [s["name"] for s in api.ok("get", "/api/v1/persona-sets")["items"]] == ["inline", "nurses"]
    assert api.ok("get", f"/api/v1/persona-sets/{made['id']}")["personas"][1] == "A paramedic."
    assert other_api.get(f"/api/v1/persona-sets/{made['id']}").status_code == 404
    bad = api.post("/api/v1/persona-sets", json={"name": "x", "content": '{"persona": "A nurse."}\n[1]\n'})
    assert bad.status_code == 422 and "line 2" in bad.text
    assert api.post("/api/v1/persona-sets", json={"name": "x"}).status_code == 422
    assert api.post("/api/v1/persona-sets", json={"name": "x", "personas": ["A nurse.", "A nurse."]}).status_code == 422

    # a persona job names a set of the caller's, and crossing with seed tasks needs a seed set
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "persona", "params": {"persona_set_id": made["id"],
                                                                                   "target": 2}})
    assert job["kind"] == "persona" and job["status"] == "queued"
    foreign = other_api.post("/api/v1/jobs", json={"kind": "persona", "params": {"persona_set_id": made["id"]}})
    assert foreign.status_code == 422 and "no persona set with id" in foreign.text
    unseeded = api.post("/api/v1/jobs", json={"kind": "persona", "params": {"cross_with_seed_tasks": True}})
    assert unseeded.status_code == 422 and "seed_set_id" in unseeded.text
    assert api.post("/api/v1/jobs", json={"kind": "persona", "params": {"tasks_per_persona": 0}}).status_code == 422
