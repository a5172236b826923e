"""Datasets over HTTP, on the real PostgreSQL: create, list, read, change and delete datasets
owned by the caller; bad input named field by field with nothing written; versions made
through the core (`commit_version`, no model needed) read back as rows, diffs and
downloads; tags and rollback; curation that leaves old versions byte-identical; the
ETag/304 path; schedules and their fires; a build now (the `dataset_build` kind)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func
from sqlmodel import select

from app.core import jobs
from app.core.datasets import deletion, fires
from app.core.datasets import export as ds_export
from app.core.datasets import versions as v
from app.db import session_scope
from app.models import (
    Dataset,
    DatasetExample,
    DatasetHashSegment,
    DatasetTag,
    DatasetVersion,
    FireStatus,
    Job,
    ScheduleFire,
)
from tests.dataset_fixtures import examples
from tests.service_fixtures import api, api_settings, client, other_api, queued_tasks  # noqa: F401

BASE = "/api/v1/datasets"
FORMATS = ("alpaca", "messages", "prompt-completion")
SEEDS = "".join(f'{{"instruction": "Seed task number {i} asks for something."}}\n' for i in range(8))
TABLES = (Dataset, DatasetVersion, DatasetExample, DatasetHashSegment, DatasetTag, ScheduleFire, Job)


@pytest.fixture
def seed_set(api):
    return api.ok("post", "/api/v1/seed-sets", 201, json={"name": "eight", "content": SEEDS})["id"]


def recipe(seed_set: int, **overrides) -> dict:
    data = {
        "seed_set_ids": [seed_set],
        "steps": [{"kind": "self_instruct", "params": {"temperature": 0.5}},
                  {"kind": "evol_instruct", "params": {"rounds": 1}, "source": "previous"}],
        "grow_by": 10,
        "export_formats": ["messages", "alpaca", "prompt-completion"],
    }
    return {**data, **overrides}


def create(api, seed_set, name="support-sft", **overrides) -> dict:
    body = {"name": name, "description": "Support answers.", "license": "apache-2.0", "recipe": recipe(seed_set)}
    return api.ok("post", BASE, 201, json={**body, **overrides})


def commit(url: str, name: str, rows: list, owner: str = "alice") -> int:
    """A version made through the core, as a build would commit it."""
    with session_scope(url) as s:
        return v.commit_version(s, v.get_dataset(s, owner, name), rows).number


def counts(url: str) -> dict[str, int]:
    with session_scope(url) as s:
        return {t.__tablename__: s.exec(select(func.count()).select_from(t)).one() for t in TABLES}


def download(api, name: str, ref, fmt: str, **headers) -> tuple[int, dict, bytes]:
    r = api.get(f"{BASE}/{name}/versions/{ref}/download", params={"format": fmt}, headers=headers)
    return r.status_code, r.headers, r.content


def core_export(url: str, name: str, number: int, fmt: str) -> bytes:
    with session_scope(url) as s:
        ds = v.get_dataset(s, "alice", name)
        return "".join(ds_export.export_chunks(s, ds.id, number, fmt)).encode("utf-8")


def errors_of(response) -> list:
    assert response.status_code == 422, (response.status_code, response.text)
    return response.json()["errors"]


# --- datasets --------------------------------------------------------------------------------------------
def test_create_list_get_and_ownership(api, other_api, seed_set, pg_url):
    made = create(api, seed_set)
    assert made["name"] == "support-sft" and made["license"] == "apache-2.0" and made["latest"] is None
    assert made["tags"] == {} and made["schedule"] is None and made["scheduled"] is False
    assert made["recipe"]["seed_set_ids"] == [seed_set] and made["recipe"]["steps"][1]["source"] == "previous"
    assert made["recipe"]["steps"][0]["params"] == {"temperature": 0.5}  # as given; defaults apply at build time
    create(api, seed_set, name="another")

    listed = api.ok("get", BASE, params={"limit": 1})
    assert listed["total"] == 2 and [d["name"] for d in listed["items"]] == ["another"]
    assert [d["name"] for d in api.ok("get", BASE, params={"offset": 1})["items"]] == ["support-sft"]
    commit(pg_url, "support-sft", examples(3))
    got = api.ok("get", f"{BASE}/support-sft")
    assert got["latest"]["number"] == 1 and got["latest"]["row_count"] == 3 and got["tags"] == {"latest": 1}
    assert api.ok("get", BASE)["items"][1]["latest"]["number"] == 1

    duplicate = api.post(BASE, json={"name": "support-sft", "recipe": recipe(seed_set)})
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["detail"]

    # another owner sees nothing of it, and cannot use alice's seed set
    assert other_api.ok("get", BASE)["total"] == 0
    before = counts(pg_url)
    for method, path, kwargs in [
        ("get", "", {}), ("patch", "", {"json": {"description": "mine"}}), ("delete", "", {}),
        ("get", "/versions", {}), ("get", "/versions/1", {}), ("get", "/versions/latest/rows", {}),
        ("get", "/versions/1/download", {}), ("get", "/diff", {"params": {"from": 1, "to": 1}}),
        ("put", "/tags/prod", {"json": {"version": 1}}), ("delete", "/tags/latest", {}),
        ("post", "/versions", {"json": {"remove": {"ids": [1]}}}), ("delete", "/versions/1", {}),
        ("get", "/schedule", {}), ("put", "/schedule", {"json": {"cron": "0 3 * * *"}}),
        ("delete", "/schedule", {}), ("post", "/schedule/pause", {}), ("post", "/schedule/resume", {}),
        ("post", "/builds", {}),
    ]:
        response = getattr(other_api, method)(f"{BASE}/support-sft{path}", **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"detail": "no dataset named 'support-sft'"}
    foreign = other_api.post(BASE, json={"name": "support-sft", "recipe": recipe(seed_set)})
    assert errors_of(foreign)[0]["loc"] == ["body", "recipe", "seed_set_ids", 0]
    assert f"no seed set with id {seed_set}" in foreign.json()["detail"]
    assert counts(pg_url) == before


@pytest.mark.parametrize(
    "change, loc, fragment",
    [
        # Self-Instruct grows from seeds: it cannot take the previous step's output
        ({"steps": [{"kind": "self_instruct"}, {"kind": "self_instruct", "source": "previous"}]},
         ["body", "recipe", "steps", 1, "source"], "self_instruct cannot take the previous step's output"),
        ({"steps": [{"kind": "evol_instruct", "source": "previous"}]}, ["body", "recipe", "steps", 0, "source"],
         "the first step must take the seeds"),
        ({"steps": [{"kind": "magic"}]}, ["body", "recipe", "steps", 0, "kind"], "unknown job kind 'magic'"),
        ({"steps": [{"kind": "sft"}]}, ["body", "recipe", "steps", 0, "kind"], "makes no examples"),
        ({"steps": [{"kind": "dataset_build"}]}, ["body", "recipe", "steps", 0, "kind"], "cannot be a step of one"),
        ({"steps": [{"kind": "self_instruct", "params": {"temperature": 9}}]},
         ["body", "recipe", "steps", 0, "params", "temperature"], "less than or equal to 2"),
        ({"steps": [{"kind": "evol_instruct", "params": {"rounds": 1, "spin": True}}]},
         ["body", "recipe", "steps", 0, "params", "spin"], "Extra inputs are not permitted"),
        ({"steps": []}, ["body", "recipe", "steps"], "at least 1 item"),
        ({"grow_by": 0}, ["body", "recipe", "grow_by"], "greater than or equal to 1"),
        ({"export_formats": ["parquet"]}, ["body", "recipe", "export_formats", 0], "'alpaca', 'messages'"),
        ({"seed_set_ids": [424242]}, ["body", "recipe", "seed_set_ids", 0], "no seed set with id 424242"),
        ({"seed_set_ids": [2**40]}, ["body", "recipe", "seed_set_ids", 0], f"no seed set with id {2**40}"),
        ({"colour": "red"}, ["body", "recipe", "colour"], "Extra inputs are not permitted"),
    ],
)
def test_bad_recipes_are_named_by_field_and_write_nothing(api, seed_set, pg_url, change, loc, fragment):
    before = counts(pg_url)
    response = api.post(BASE, json={"name": "support-sft", "recipe": recipe(seed_set, **change)})
    found = errors_of(response)
    assert found[0]["loc"] == loc and fragment in found[0]["msg"], found
    assert fragment in response.json()["detail"]
    assert counts(pg_url) == before


@pytest.mark.parametrize(
    "body, loc, fragment",
    [
        ({"name": "bad name!"}, ["body", "name"], "String should match pattern"),
        ({"name": ""}, ["body", "name"], "at least 1 character"),
        ({"license": ""}, ["body", "license"], "at least 1"),
        ({"recipe": [1]}, ["body", "recipe"], "valid dictionary"),
        ({"owner": "bob"}, ["body", "owner"], "Extra inputs are not permitted"),
    ],
)
def test_bad_dataset_fields_are_named(api, seed_set, pg_url, body, loc, fragment):
    before = counts(pg_url)
    found = errors_of(api.post(BASE, json={"name": "ok", "recipe": recipe(seed_set), **body}))
    assert found[0]["loc"] == loc and fragment in found[0]["msg"], found
    assert counts(pg_url) == before


def test_patch_changes_details_and_recipe_for_the_builds_to_come(api, seed_set, pg_url):
    create(api, seed_set)
    commit(pg_url, "support-sft", examples(2))
    card = api.ok("get", f"{BASE}/support-sft/versions/1")["card"]
    got = api.ok("patch", f"{BASE}/support-sft", json={"description": "Grown nightly.", "license": None})
    assert got["description"] == "Grown nightly." and got["license"] is None
    got = api.ok("patch", f"{BASE}/support-sft", json={"recipe": recipe(seed_set, grow_by=25)})
    assert got["recipe"]["grow_by"] == 25 and got["description"] == "Grown nightly."
    assert api.ok("get", f"{BASE}/support-sft/versions/1")["card"] == card  # a version keeps its card

    bad = api.patch(f"{BASE}/support-sft", json={"recipe": recipe(seed_set, steps=[{"kind": "self_instruct"}, {
        "kind": "self_instruct", "source": "previous"}])})
    assert errors_of(bad)[0]["loc"] == ["body", "recipe", "steps", 1, "source"]
    assert "at least one of" in api.patch(f"{BASE}/support-sft", json={}).json()["detail"]
    assert api.patch(f"{BASE}/support-sft", json={"license": "x" * 101}).status_code == 422
    assert api.ok("get", f"{BASE}/support-sft")["recipe"]["grow_by"] == 25  # the refused changes wrote nothing


# --- versions, rows, diff ------------------------------------------------------------------------------
def test_versions_and_their_rows_over_http(api, seed_set, pg_url):
    create(api, seed_set)
    commit(pg_url, "support-sft", examples(5))
    commit(pg_url, "support-sft", examples(4, start=5, method="evol_instruct"))

    listed = api.ok("get", f"{BASE}/support-sft/versions")
    assert listed["total"] == 2 and [x["number"] for x in listed["items"]] == [2, 1]
    assert listed["items"][0]["tags"] == ["latest"] and listed["items"][1]["tags"] == []
    assert "card" not in listed["items"][0]

    two = api.ok("get", f"{BASE}/support-sft/versions/2")
    assert two["parent"] == 1 and two["kind"] == "build" and two["row_count"] == 9 and two["build_job_id"] is None
    assert two["counts"]["added"] == 4 and two["counts"]["by_method"] == {"evol_instruct": 4, "self_instruct": 5}
    assert "# support-sft, version 2" in two["card"] and two["content_hash"] in two["card"]
    assert api.ok("get", f"{BASE}/support-sft/versions/latest") == two
    assert api.ok("get", f"{BASE}/support-sft/versions/1")["parent"] is None

    with session_scope(pg_url) as s:
        ds = v.get_dataset(s, "alice", "support-sft")
        expected = [{**row, "review": None} for row in v.version_rows(s, ds.id, 2)]  # no review decision yet
    page1 = api.ok("get", f"{BASE}/support-sft/versions/2/rows", params={"limit": 4})
    page2 = api.ok("get", f"{BASE}/support-sft/versions/2/rows", params={"limit": 4, "offset": 4})
    page3 = api.ok("get", f"{BASE}/support-sft/versions/2/rows", params={"limit": 4, "offset": 8})
    assert page1["total"] == 9 and len(page3["items"]) == 1
    assert page1["items"] + page2["items"] + page3["items"] == expected
    assert api.ok("get", f"{BASE}/support-sft/versions/1/rows")["items"] == expected[:5]

    for ref, message in [("3", "the dataset has no version 3"), ("prod", "the dataset has no tag 'prod'"),
                         ("0", "the dataset has no version 0"), ("9" * 30, f"the dataset has no version {'9' * 30}")]:
        missing = api.get(f"{BASE}/support-sft/versions/{ref}/rows")
        assert missing.status_code == 404 and missing.json()["detail"] == message
    assert api.get(f"{BASE}/support-sft/versions/1/rows", params={"limit": 0}).status_code == 422


def test_diff_counts_and_rows_in_both_directions(api, seed_set, pg_url):
    create(api, seed_set)
    commit(pg_url, "support-sft", examples(5))
    commit(pg_url, "support-sft", examples(4, start=5, method="evol_instruct"))
    rows2 = api.ok("get", f"{BASE}/support-sft/versions/2/rows")["items"]
    api.ok("post", f"{BASE}/support-sft/versions", 201, json={"remove": {"ids": [rows2[0]["id"]]}})

    forward = api.ok("get", f"{BASE}/support-sft/diff", params={"from": 1, "to": 3})
    assert (forward["from"], forward["to"], forward["added"], forward["removed"]) == (1, 3, 4, 1)
    assert forward["added_by_method"] == {"evol_instruct": 4} and forward["content_changed"] is True
    assert [r["change"] for r in forward["rows"]] == ["added"] * 4 + ["removed"]
    assert [r["id"] for r in forward["rows"]] == [r["id"] for r in rows2[5:]] + [rows2[0]["id"]]

    back = api.ok("get", f"{BASE}/support-sft/diff", params={"from": "latest", "to": 1})
    assert (back["added"], back["removed"], back["total"]) == (1, 4, 5)
    page = api.ok("get", f"{BASE}/support-sft/diff", params={"from": 3, "to": 1, "limit": 2, "offset": 1})
    assert [r["change"] for r in page["rows"]] == ["removed", "removed"] and page["total"] == 5
    only = api.ok("get", f"{BASE}/support-sft/diff", params={"from": 1, "to": 3, "side": "removed"})
    assert only["total"] == 1 and [r["id"] for r in only["rows"]] == [rows2[0]["id"]]
    same = api.ok("get", f"{BASE}/support-sft/diff", params={"from": 2, "to": 2})
    assert (same["added"], same["removed"], same["rows"], same["content_changed"]) == (0, 0, [], False)

    missing = api.get(f"{BASE}/support-sft/diff", params={"from": 1, "to": 9})
    assert missing.status_code == 404 and missing.json()["detail"] == "the dataset has no version 9"
    assert errors_of(api.get(f"{BASE}/support-sft/diff", params={"from": 1}))[0]["loc"] == ["query", "to"]
    assert errors_of(api.get(f"{BASE}/support-sft/diff", params={"from": 1, "to": 2, "side": "both"}))[0][
        "loc"] == ["query", "side"]


# --- tags ---------------------------------------------------------------------------------------------------
def test_tags_and_rollback(api, seed_set, pg_url):
    create(api, seed_set)
    commit(pg_url, "support-sft", examples(3))
    first = {fmt: download(api, "support-sft", 1, fmt)[2] for fmt in FORMATS}
    assert api.ok("put", f"{BASE}/support-sft/tags/prod", json={"version": 1}) == {
        "name": "prod", "version": 1, "tags": {"latest": 1, "prod": 1}}
    commit(pg_url, "support-sft", examples(2, start=3))
    assert api.ok("put", f"{BASE}/support-sft/tags/prod", json={"version": "latest"})["version"] == 2
    assert api.ok("get", f"{BASE}/support-sft/versions/prod")["number"] == 2

    # the rollback: prod moves back, and reads exactly what version 1 read
    assert api.ok("put", f"{BASE}/support-sft/tags/prod", json={"version": 1})["tags"] == {"latest": 2, "prod": 1}
    for fmt in FORMATS:
        status, headers, body = download(api, "support-sft", "prod", fmt)
        assert status == 200 and body == first[fmt] and headers["x-dataset-version"] == "1"
    assert api.ok("get", f"{BASE}/support-sft")["tags"] == {"latest": 2, "prod": 1}
    assert api.ok("put", f"{BASE}/support-sft/tags/staging", json={"version": "prod"})["version"] == 1

    before = counts(pg_url)
    missing = api.put(f"{BASE}/support-sft/tags/prod", json={"version": 9})
    assert missing.status_code == 404 and missing.json()["detail"] == "the dataset has no version 9"
    huge = api.put(f"{BASE}/support-sft/tags/prod", json={"version": "2147483648"})
    assert huge.status_code == 404 and huge.json()["detail"] == "the dataset has no version 2147483648"
    latest = api.put(f"{BASE}/support-sft/tags/latest", json={"version": 1})
    assert latest.status_code == 422 and "moves by itself" in latest.json()["detail"]
    assert api.delete(f"{BASE}/support-sft/tags/latest").status_code == 422
    number = api.put(f"{BASE}/support-sft/tags/123", json={"version": 1})
    assert number.status_code == 422 and "not only digits" in number.json()["detail"]
    assert errors_of(api.put(f"{BASE}/support-sft/tags/prod", json={"version": 0}))
    assert counts(pg_url) == before
    assert api.ok("get", f"{BASE}/support-sft")["tags"] == {"latest": 2, "prod": 1, "staging": 1}

    api.ok("delete", f"{BASE}/support-sft/tags/staging", 204)
    gone = api.delete(f"{BASE}/support-sft/tags/staging")
    assert gone.status_code == 404 and gone.json()["detail"] == "the dataset has no tag 'staging'"


# --- curation ------------------------------------------------------------------------------------------------
def _snapshot(api, pg_url, number: int) -> dict:
    got = api.ok("get", f"{BASE}/support-sft/versions/{number}")
    return {"hash": got["content_hash"], "rows": api.ok("get", f"{BASE}/support-sft/versions/{number}/rows")["items"],
            **{fmt: download(api, "support-sft", number, fmt)[2] for fmt in FORMATS}}


def test_removal_and_correction_make_new_versions_and_leave_old_ones_byte_identical(api, seed_set, pg_url):
    create(api, seed_set)
    commit(pg_url, "support-sft", examples(6))
    commit(pg_url, "support-sft", examples(4, start=6, method="evol_instruct"))
    before = {n: _snapshot(api, pg_url, n) for n in (1, 2)}
    rows2 = before[2]["rows"]

    three = api.ok("post", f"{BASE}/support-sft/versions", 201,
                   json={"remove": {"ids": [rows2[1]["id"], rows2[7]["id"]]}, "expected_latest": 2})
    assert (three["number"], three["parent"], three["kind"], three["row_count"]) == (3, 2, "removal", 8)
    assert three["counts"]["removed"] == 2 and three["tags"] == ["latest"]
    target = rows2[3]
    four = api.ok("post", f"{BASE}/support-sft/versions", 201,
                  json={"correct": [{"id": target["id"], "output": "A better answer."}], "expected_latest": 3})
    assert (four["number"], four["kind"], four["row_count"], four["counts"]["corrected"]) == (4, "correction", 8, 1)
    rows4 = api.ok("get", f"{BASE}/support-sft/versions/4/rows")["items"]
    fixed = rows4[-1]
    assert fixed["replaces_id"] == target["id"] and fixed["output"] == "A better answer."
    assert fixed["instruction"] == target["instruction"] and fixed["added_in"] == 4
    assert target["id"] not in {r["id"] for r in rows4}
    assert "A better answer." in download(api, "support-sft", 4, "messages")[2].decode()

    for n in (1, 2):  # the old versions read exactly as they did: rows, hash, every download
        assert _snapshot(api, pg_url, n) == before[n]
    with session_scope(pg_url) as s:
        ds = v.get_dataset(s, "alice", "support-sft")
        assert all(v.content_hash(s, ds.id, n) == v.get_version(s, ds.id, n).content_hash for n in (1, 2, 3, 4))

    by_query = api.ok("post", f"{BASE}/support-sft/versions", 201,
                      json={"remove": {"query": {"method": "evol_instruct"}}})
    assert by_query["row_count"] == 5 and by_query["counts"]["removed_by_method"] == {"evol_instruct": 3}


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        ({"remove": {"ids": [1]}, "expected_latest": 1}, 409, "version 1 is not the latest version"),
        ({"remove": {"ids": [424242]}}, 404, "example(s) 424242"),
        ({"remove": {"query": {"text": "nothing like this"}}}, 422, "nothing to remove"),
        ({"remove": {"query": {"rules": ["too_clever"]}}}, 422, "unknown rule(s) too_clever"),
        ({"remove": {}}, 422, "give ids, query, or both"),
        ({"remove": {"ids": [1]}, "correct": [{"id": 1, "output": "x"}]}, 422, "exactly one of remove or correct"),
        ({}, 422, "exactly one of remove or correct"),
        ({"correct": [{"id": "FIRST"}]}, 422, "at least one of output, instruction, input"),
        ({"correct": [{"id": "FIRST", "output": "SAME"}]}, 422, "body.correct.0: example"),
        ({"correct": [{"id": "FIRST", "output": "a"}, {"id": "FIRST", "output": "b"}]}, 422, "corrected twice"),
    ],
)
def test_bad_curation_is_refused_and_writes_nothing(api, seed_set, pg_url, body, status, fragment):
    create(api, seed_set)
    commit(pg_url, "support-sft", examples(3))
    commit(pg_url, "support-sft", examples(2, start=3))
    first = api.ok("get", f"{BASE}/support-sft/versions/2/rows")["items"][0]
    for c in body.get("correct", []):
        c["id"] = first["id"] if c["id"] == "FIRST" else c["id"]
        if c.get("output") == "SAME":
            c["output"] = first["output"]
    before = counts(pg_url)
    response = api.post(f"{BASE}/support-sft/versions", json=body)
    assert response.status_code == status and fragment in response.json()["detail"], response.text
    assert counts(pg_url) == before
    assert api.ok("get", f"{BASE}/support-sft")["latest"]["number"] == 2


def test_a_correction_that_changes_nothing_names_its_index(api, seed_set, pg_url):
    create(api, seed_set)
    commit(pg_url, "support-sft", examples(2))
    first, second = api.ok("get", f"{BASE}/support-sft/versions/1/rows")["items"]
    body = {"correct": [{"id": first["id"], "output": "new"}, {"id": second["id"], "output": second["output"]}]}
    found = errors_of(api.post(f"{BASE}/support-sft/versions", json=body))
    assert found[0]["loc"] == ["body", "correct", 1] and "already reads so" in found[0]["msg"]


# --- download -------------------------------------------------------------------------------------------
def test_download_every_format_streamed_with_the_content_hash_as_etag(api, seed_set, pg_url):
    create(api, seed_set)
    commit(pg_url, "support-sft", examples(4500))  # more rows than one page of the export
    commit(pg_url, "support-sft", examples(3, start=4500))
    hashes = {n: api.ok("get", f"{BASE}/support-sft/versions/{n}")["content_hash"] for n in (1, 2)}
    media = {"alpaca": "application/json", "messages": "application/x-ndjson",
             "prompt-completion": "application/x-ndjson"}
    extension = {"alpaca": "json", "messages": "jsonl", "prompt-completion": "jsonl"}
    for fmt in FORMATS:
        for ref, number in (("1", 1), ("latest", 2)):
            status, headers, body = download(api, "support-sft", ref, fmt)
            assert status == 200 and body == core_export(pg_url, "support-sft", number, fmt)
            assert headers["etag"] == f'"{hashes[number]}"' and headers["x-dataset-version"] == str(number)
            assert headers["content-type"].startswith(media[fmt])
            assert headers["content-disposition"] == f'attachment; filename="support-sft-v{number}.{extension[fmt]}"'
            assert "content-length" not in headers  # streamed, not buffered

            # a poller holding the current ETag gets 304 and no body; a stale one gets the new bytes
            status, headers, body = download(api, "support-sft", ref, fmt, **{"If-None-Match": f'"{hashes[number]}"'})
            assert (status, body) == (304, b"") and headers["etag"] == f'"{hashes[number]}"'
            assert download(api, "support-sft", ref, fmt, **{"If-None-Match": f'W/"{hashes[number]}"'})[0] == 304
            stale = f'"{hashes[1]}"' if number == 2 else '"0000"'
            assert download(api, "support-sft", ref, fmt, **{"If-None-Match": stale})[0] == 200
    lines = download(api, "support-sft", 1, "messages")[2].decode().splitlines()
    assert len(lines) == 4500

    default = api.get(f"{BASE}/support-sft/versions/2/download")  # the recipe's first export format
    assert default.headers["content-disposition"].endswith('v2.jsonl"') and default.content == core_export(
        pg_url, "support-sft", 2, "messages")
    assert errors_of(api.get(f"{BASE}/support-sft/versions/2/download", params={"format": "parquet"}))[0][
        "loc"] == ["query", "format"]
    missing = api.get(f"{BASE}/support-sft/versions/7/download")
    assert missing.status_code == 404 and missing.json()["detail"] == "the dataset has no version 7"


def test_a_dataset_without_versions_has_no_latest(api, seed_set):
    create(api, seed_set)
    response = api.get(f"{BASE}/support-sft/versions/latest/download")
    assert response.status_code == 404 and response.json()["detail"] == "the dataset has no version yet"
    assert api.ok("get", f"{BASE}/support-sft/versions") == {"items": [], "total": 0, "limit": 50, "offset": 0, "next_after": None}


# --- schedule -----------------------------------------------------------------------------------------------
def test_schedule_next_fires_pause_resume_and_history(api, seed_set, pg_url):
    create(api, seed_set)
    empty = api.ok("get", f"{BASE}/support-sft/schedule")
    assert empty["cron"] is None and empty["next_fires"] == [] and empty["history"] == []

    got = api.ok("put", f"{BASE}/support-sft/schedule",
                 json={"cron": "0 3 * * *", "timezone": "Europe/Paris", "missed_fire_policy": "run_once"})
    assert (got["cron"], got["timezone"], got["missed_fire_policy"], got["paused"]) == (
        "0 3 * * *", "Europe/Paris", "run_once", False)
    fires_at = [datetime.fromisoformat(t) for t in got["next_fires"]]
    assert len(fires_at) == 5 and fires_at == sorted(fires_at) and fires_at[0] > datetime.now(UTC)
    assert all(t.astimezone(ZoneInfo("Europe/Paris")).hour == 3 for t in fires_at)
    assert all(b - a == timedelta(days=1) for a, b in zip(fires_at, fires_at[1:]) if a.utcoffset() == b.utcoffset())
    detail = api.ok("get", f"{BASE}/support-sft")
    assert detail["scheduled"] is True and detail["schedule"]["next_fires"] == got["next_fires"]

    # fires as the scheduler records them
    with session_scope(pg_url) as s:
        ds = v.get_dataset(s, "alice", "support-sft")
        t0 = datetime(2025, 1, 1, 2, tzinfo=UTC)
        fires.claim_fire(s, ds.id, t0, FireStatus.missed, "missed 3 due times while no scheduler ran")
        skipped = fires.claim_fire(s, ds.id, t0 + timedelta(days=1))
        fires.record_fire(s, skipped, FireStatus.skipped, "build job 12 was still running")
        built = fires.claim_fire(s, ds.id, t0 + timedelta(days=2))
        job = Job(kind="dataset_build", owner="alice", params={"dataset_id": ds.id}, status="succeeded")
        s.add(job)
        s.flush()
        fires.record_fire(s, built, FireStatus.built, job_id=job.id)
    history = api.ok("get", f"{BASE}/support-sft/schedule")["history"]
    assert [(h["status"], h["reason"]) for h in history] == [
        ("built", None), ("skipped", "build job 12 was still running"),
        ("missed", "missed 3 due times while no scheduler ran")]
    assert history[0]["job_id"] == job.id and datetime.fromisoformat(history[2]["due_at"]) == t0
    assert len(api.ok("get", f"{BASE}/support-sft/schedule", params={"history": 1})["history"]) == 1

    paused = api.ok("post", f"{BASE}/support-sft/schedule/pause", json={"reason": "holiday freeze"})
    assert paused["paused"] is True and paused["pause_reason"] == "holiday freeze" and paused["next_fires"] == []
    assert api.ok("get", f"{BASE}/support-sft")["schedule"]["pause_reason"] == "holiday freeze"
    resumed = api.ok("post", f"{BASE}/support-sft/schedule/resume")
    assert resumed["paused"] is False and resumed["pause_reason"] is None and len(resumed["next_fires"]) == 5
    assert api.ok("post", f"{BASE}/support-sft/schedule/pause")["pause_reason"] == "paused by request"

    api.ok("delete", f"{BASE}/support-sft/schedule", 204)
    cleared = api.ok("get", f"{BASE}/support-sft/schedule")
    assert cleared["cron"] is None and len(cleared["history"]) == 3  # the history stays
    assert api.ok("get", f"{BASE}/support-sft")["schedule"] is None
    refused = api.post(f"{BASE}/support-sft/schedule/pause")
    assert refused.status_code == 422 and "has no schedule to pause" in refused.json()["detail"]


@pytest.mark.parametrize(
    "body, loc, fragment",
    [
        ({"cron": "0 3 * *"}, ["body", "cron"], "has 4 fields"),
        ({"cron": "61 3 * * *"}, ["body", "cron"], "is not a valid cron expression"),
        ({"cron": "@sometimes"}, ["body", "cron"], "unknown macro"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, ["body", "timezone"], "unknown time zone 'Mars/Olympus'"),
        ({"cron": "0 3 * * *", "missed_fire_policy": "later"}, ["body", "missed_fire_policy"], "'skip' or 'run_once'"),
        ({"timezone": "UTC"}, ["body", "cron"], "Field required"),
    ],
)
def test_bad_schedules_are_named_and_write_nothing(api, seed_set, pg_url, body, loc, fragment):
    create(api, seed_set)
    api.ok("put", f"{BASE}/support-sft/schedule", json={"cron": "@daily"})
    before = api.ok("get", f"{BASE}/support-sft/schedule")
    found = errors_of(api.put(f"{BASE}/support-sft/schedule", json=body))
    assert found[0]["loc"] == loc and fragment in found[0]["msg"], found
    assert api.ok("get", f"{BASE}/support-sft/schedule") == before


# --- deletion ---------------------------------------------------------------------------------------------
def test_delete_a_dataset_with_everything_it_holds(api, seed_set, pg_url):
    create(api, seed_set)
    create(api, seed_set, name="kept")
    commit(pg_url, "support-sft", examples(3))
    commit(pg_url, "support-sft", examples(2, start=3))
    commit(pg_url, "kept", examples(2))
    api.ok("put", f"{BASE}/support-sft/tags/prod", json={"version": 1})
    api.ok("put", f"{BASE}/support-sft/schedule", json={"cron": "@hourly"})
    kept = {fmt: download(api, "kept", 1, fmt)[2] for fmt in FORMATS}

    api.ok("delete", f"{BASE}/support-sft", 204)
    assert api.get(f"{BASE}/support-sft").status_code == 404
    assert [d["name"] for d in api.ok("get", BASE)["items"]] == ["kept"]
    with session_scope(pg_url) as s:
        ds = v.get_dataset(s, "alice", "kept")
        for table in (DatasetVersion, DatasetExample, DatasetTag, DatasetHashSegment):
            assert {r.dataset_id for r in s.exec(select(table)).all()} == {ds.id}, table
    assert {fmt: download(api, "kept", 1, fmt)[2] for fmt in FORMATS} == kept
    create(api, seed_set)  # the name is free again
    assert api.ok("get", f"{BASE}/support-sft")["latest"] is None


def test_a_dataset_a_training_run_used_or_a_running_build_is_kept(api, seed_set, pg_url):
    create(api, seed_set)
    commit(pg_url, "support-sft", examples(3))
    with session_scope(pg_url) as s:
        ds = v.get_dataset(s, "alice", "support-sft")
        train = Job(kind="sft", owner="alice", status="succeeded")
        s.add(train)
        s.flush()
        deletion.record_use(s, v.get_version(s, ds.id, 1), train.id)
        train_id, dataset_id = train.id, ds.id
    before = counts(pg_url)
    refused = api.delete(f"{BASE}/support-sft")
    assert refused.status_code == 409 and f"version 1 by job {train_id}" in refused.json()["detail"]
    in_use = api.delete(f"{BASE}/support-sft/versions/1")
    assert in_use.status_code == 409 and f"used by job(s) {train_id}" in in_use.json()["detail"]
    assert counts(pg_url) == before

    create(api, seed_set, name="building")
    with session_scope(pg_url) as s:
        building = v.get_dataset(s, "alice", "building")
        build = Job(kind="dataset_build", owner="alice", status="running", params={"dataset_id": building.id})
        other = Job(kind="dataset_build", owner="alice", status="running", params={"dataset_id": dataset_id})
        s.add_all([build, other])
        s.flush()
        build_id = build.id
    busy = api.delete(f"{BASE}/building")
    assert busy.status_code == 409 and f"build job(s) {build_id} are queued or running" in busy.json()["detail"]
    assert api.ok("get", f"{BASE}/building")["name"] == "building"


def test_only_the_latest_untagged_version_can_be_deleted(api, seed_set, pg_url):
    create(api, seed_set)
    commit(pg_url, "support-sft", examples(3))
    commit(pg_url, "support-sft", examples(2, start=3))
    one = _snapshot(api, pg_url, 1)
    not_latest = api.delete(f"{BASE}/support-sft/versions/1")
    assert not_latest.status_code == 409 and "only the latest version can be deleted" in not_latest.json()["detail"]
    api.ok("put", f"{BASE}/support-sft/tags/prod", json={"version": 2})
    tagged = api.delete(f"{BASE}/support-sft/versions/latest")
    assert tagged.status_code == 409 and "tag(s) prod point at version 2" in tagged.json()["detail"]
    api.ok("delete", f"{BASE}/support-sft/tags/prod", 204)
    api.ok("delete", f"{BASE}/support-sft/versions/latest", 204)
    assert api.ok("get", f"{BASE}/support-sft")["latest"]["number"] == 1
    assert _snapshot(api, pg_url, 1) == one


# --- builds (the `dataset_build` job kind) -------------------------------------------------------------------
def test_build_now_creates_and_enqueues_a_build_job(api, other_api, seed_set, pg_url, redis_url):
    made = create(api, seed_set)
    job = api.ok("post", f"{BASE}/support-sft/builds", 202)
    assert job["kind"] == "dataset_build" and job["status"] == "queued"
    assert job["params"]["dataset_id"] == made["id"]
    queue = jobs.get("dataset_build").queue
    assert queued_tasks(redis_url, queue) == [("sprout.run_job", job["id"])]
    assert api.ok("get", f"/api/v1/jobs/{job['id']}")["id"] == job["id"]
    assert other_api.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    # one build at a time: a second is refused while the first is queued, and the dataset names it
    again = api.post(f"{BASE}/support-sft/builds")
    assert again.status_code == 409 and f"build job {job['id']}" in again.json()["detail"]
    assert api.ok("get", f"{BASE}/support-sft")["builds_in_progress"] == [job["id"]]
    assert queued_tasks(redis_url, queue) == [("sprout.run_job", job["id"])]


# --- the OpenAPI document -------------------------------------------------------------------------------------
def test_openapi_documents_every_dataset_route_with_examples(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    expected = {
        "/api/v1/datasets": {"get", "post"},
        "/api/v1/datasets/{name}": {"get", "patch", "delete"},
        "/api/v1/datasets/{name}/versions": {"get", "post"},
        "/api/v1/datasets/{name}/versions/{ref}": {"get", "delete"},
        "/api/v1/datasets/{name}/versions/{ref}/rows": {"get"},
        "/api/v1/datasets/{name}/versions/{ref}/download": {"get"},
        "/api/v1/datasets/{name}/diff": {"get"},
        "/api/v1/datasets/{name}/tags/{tag}": {"put", "delete"},
        "/api/v1/datasets/{name}/schedule": {"get", "put", "delete"},
        "/api/v1/datasets/{name}/schedule/pause": {"post"},
        "/api/v1/datasets/{name}/schedule/resume": {"post"},
        "/api/v1/datasets/{name}/builds": {"post"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
        for method in methods:
            assert paths[path][method]["summary"] and paths[path][method]["tags"] == ["datasets"]
            assert "404" in paths[path][method]["responses"]
    schemas = schema["components"]["schemas"]
    for name in ("DatasetCreate", "DatasetUpdate", "CurationCreate", "TagSet", "ScheduleSet", "SchedulePause",
                 "Recipe"):
        assert schemas[name].get("examples"), name
    assert schemas["DatasetCreate"]["properties"]["recipe"]["allOf"] == [{"$ref": "#/components/schemas/Recipe"}]
    assert "RecipeStep" in schemas and "ExampleQuery" in schemas
    download_doc = paths["/api/v1/datasets/{name}/versions/{ref}/download"]["get"]
    assert {"application/x-ndjson", "application/json"} <= set(download_doc["responses"]["200"]["content"])
    assert "304" in download_doc["responses"]
