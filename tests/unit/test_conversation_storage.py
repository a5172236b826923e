"""A three-turn conversation stored by a job (real PostgreSQL): the results API shows its
turns, the job's exports and bundle carry them (alpaca the first exchange, said in the
card), and a dataset version keeps them through its export and its content hash."""

from __future__ import annotations

import json

import pytest

from app.core import store
from app.core.datasets import content
from app.core.datasets import export as ds_export
from app.core.datasets import versions as v
from app.core.datasets.errors import DatasetError
from app.core.handoff import sources
from app.core.handoff.bundle import write_bundle
from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.db import session_scope
from tests.dataset_fixtures import make_dataset, make_job, session_for
from tests.service_fixtures import api, api_settings, client, store_candidates  # noqa: F401

SEEDS = "".join(f'{{"instruction": "Seed task number {i} asks for something."}}\n' for i in range(8))
TURNS = [
    {"role": "user", "content": "Now in French?"}, {"role": "assistant", "content": "Pluie sur le toit."},
    {"role": "user", "content": "And shorter?"}, {"role": "assistant", "content": "Pluie."},
]
MESSAGES = [
    {"role": "user", "content": "Write a haiku about rain."}, {"role": "assistant", "content": "Rain on the roof."},
    *TURNS,
]


@pytest.fixture
def job(api, pg_url):
    seed_set = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "s", "content": SEEDS})["id"]
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set,
                                                   "params": {"target": 2}})
    store_candidates(pg_url, job["id"], [
        CandidateRecord("Write a haiku about rain.", True, in_pool=True,
                        instances=[InstanceCandidate("", "Rain on the roof.", turns=TURNS)]),
        CandidateRecord("Name a fruit that is yellow.", True, in_pool=True,
                        instances=[InstanceCandidate("", "A banana.")]),
    ])
    return job["id"]


def test_the_results_api_shows_every_turn(api, job):
    page = api.ok("get", f"/api/v1/jobs/{job}/instructions")
    assert [i["instances"][0]["turns"] for i in page["items"]] == [TURNS, []]
    instances = api.ok("get", f"/api/v1/jobs/{job}/instances")
    assert [i["turns"] for i in instances["items"]] == [TURNS, []]


@pytest.mark.parametrize("fmt", ["sharegpt", "messages", "alpaca"])
def test_the_jobs_exports_carry_the_turns(api, job, fmt):
    created = api.ok("post", "/api/v1/exports", 201, json={"job_id": job, "format": fmt})
    text = api.get(created["download_url"]).text
    if fmt == "alpaca":
        first = json.loads(text)[0]
        assert (first["instruction"], first["output"]) == ("Write a haiku about rain.", "Rain on the roof.")
        assert "turns" not in first
        return
    records = [json.loads(line) for line in text.splitlines()]
    if fmt == "messages":
        assert records[0]["messages"] == MESSAGES and len(records[1]["messages"]) == 2
    else:
        assert [t["value"] for t in records[0]["conversations"]] == [m["content"] for m in MESSAGES]
        assert [t["from"] for t in records[0]["conversations"]] == ["human", "gpt"] * 3


def test_the_bundle_and_its_card_say_what_each_format_holds(api, job, pg_url, tmp_path):
    with session_scope(pg_url) as session:
        rows, meta = sources.job_source(session, job)
    assert rows[0]["turns"] == TURNS and "turns" not in rows[1]
    write_bundle(rows, meta, tmp_path / "b")
    card = (tmp_path / "b" / "README.md").read_text(encoding="utf-8")
    assert "1 of the rows are multi-turn conversations (up to 3 user-assistant exchanges" in card
    assert "holds only each conversation's first exchange" in card
    messages = [json.loads(line) for line in (tmp_path / "b" / "messages.jsonl").read_text().splitlines()]
    assert messages[0]["messages"] == MESSAGES

    bad = [{**rows[0], "turns": TURNS[:1]}]
    with pytest.raises(ValueError, match=r"row 0 \(id \d+\): turns: 1 messages"):
        write_bundle(bad, meta, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_a_dataset_version_keeps_the_turns(api, job, pg_url):
    with session_for(pg_url) as s:
        rows = store.curated_examples(s, job)
        ds = make_dataset(s, name="talks")
        version = v.commit_version(s, ds, [v.NewExample.from_row(r, "self_instruct", job) for r in rows],
                                   build_job_id=make_job(s))
        s.commit()
        stored = list(v.version_rows(s, ds.id, version.number))
        assert [r["turns"] for r in stored] == [TURNS, []]
        assert v.content_hash(s, ds.id, version.number) == version.content_hash
        messages = [json.loads(line) for line in "".join(ds_export.export_chunks(s, ds.id, 1, "messages")).splitlines()]
        assert messages[0]["messages"] == MESSAGES and len(messages[1]["messages"]) == 2
        sharegpt = [json.loads(line) for line in "".join(ds_export.export_chunks(s, ds.id, 1, "sharegpt")).splitlines()]
        assert len(sharegpt[0]["conversations"]) == 6 and "turns" not in sharegpt[0]
        alpaca = json.loads("".join(ds_export.export_chunks(s, ds.id, 1, "alpaca")))
        assert alpaca[0]["output"] == "Rain on the roof." and "turns" not in alpaca[0]
        handed = list(sources.version_rows(s, ds.id, 1))
        assert handed[0]["turns"] == TURNS and "turns" not in handed[1]

        with pytest.raises(DatasetError, match=r"examples\[0\]\.turns\[1\]: role must be 'assistant'|turns\[1\]"):
            v.commit_version(s, ds, [v.NewExample("Q?", "", "A.", "self_instruct", turns=[TURNS[0], TURNS[0]])],
                             build_job_id=make_job(s))


def test_a_single_turn_rows_hash_is_what_it_was():
    row = {"instruction": "Q", "input": "", "output": "A", "method": "self_instruct", "lineage": [], "scores": {}}
    assert content.row_digest({**row, "turns": []}) == content.row_digest(row)
    assert content.row_digest({**row, "turns": TURNS}) != content.row_digest(row)
