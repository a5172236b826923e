"""Seed sets over HTTP: every upload form, bad files refused with the line at fault and
nothing stored, listing, paging, and deletion (refused while a job uses the set)."""

import json

import pytest

from app.core.seeds import load_seed_file
from tests.service_fixtures import api, api_settings, client  # noqa: F401

JSONL = '{"instruction": "Give three tips for staying healthy.", "instances": [{"input": "", "output": "Sleep."}]}\n'
ALPACA = json.dumps([
    {"instruction": "Translate to French.", "input": "cat", "output": "chat"},
    {"instruction": "Name a yellow fruit.", "input": "<noinput>", "output": "A banana."},
], indent=2)
CSV = "instruction,input,output,is_classification\nIs this spam?,Win money now,Yes,true\nSummarise the text.,Long text,Short,false\n"


DEEP = "[" * 100_000 + "]" * 100_000
BIG = "1" * 5_000


def count(api):
    return api.ok("get", "/api/v1/seed-sets")["total"]


def test_upload_the_reference_seed_file_as_multipart(api, reference_seeds):
    with open(reference_seeds, "rb") as fh:
        body = api.ok("post", "/api/v1/seed-sets", 201, files={"file": (reference_seeds.name, fh, "application/jsonl")})
    _, expected = load_seed_file(reference_seeds)
    assert body["name"] == reference_seeds.name and body["source_format"] == "self-instruct"
    assert body["task_count"] == len(expected) == 175 == len(body["tasks"])
    assert [t["instruction"] for t in body["tasks"]] == [t.instruction for t in expected]
    assert sum(t["is_classification"] for t in body["tasks"]) == 26
    again = api.ok("get", f"/api/v1/seed-sets/{body['id']}")
    assert again["tasks"] == body["tasks"]


def test_upload_forms(api):
    alpaca = api.ok("post", "/api/v1/seed-sets", 201, files={"file": ("a.json", ALPACA.encode())},
                    data={"name": "alpaca set"})
    assert (alpaca["name"], alpaca["source_format"], alpaca["task_count"]) == ("alpaca set", "alpaca", 2)
    assert alpaca["tasks"][1]["instances"] == [{"input": "", "output": "A banana."}]
    csv = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "c", "format": "csv", "content": CSV})
    assert csv["source_format"] == "csv" and [t["is_classification"] for t in csv["tasks"]] == [True, False]
    text = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "t", "content": JSONL})
    assert text["source_format"] == "self-instruct" and text["task_count"] == 1
    tasks = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "inline", "tasks": [
        {"id": "seed_task_0", "name": "x", "instruction": "  Sort the list.  ", "is_classification": False,
         "instances": [{"input": "3, 1, 2", "output": "1, 2, 3"}]},
        {"instruction": "Is the sentence positive?", "is_classification": True},
    ]})
    assert tasks["task_count"] == 2 and tasks["tasks"][0]["instruction"] == "Sort the list."
    assert count(api) == 4


@pytest.mark.parametrize(
    "kwargs, status, fragment",
    [
        ({"json": {"name": "x", "content": JSONL + '{"instruction": "ok"}\n{"instruction": 5}\n'}}, 422,
         "line 3: field 'instruction' must be a string"),
        ({"json": {"name": "x", "content": JSONL + "{not json\n"}}, 422, "line 2: not valid JSON"),
        ({"json": {"name": "x", "format": "alpaca", "content": '{"instruction": "a"}'}}, 422, "line 1: expected a JSON list"),
        ({"json": {"name": "x", "format": "csv", "content": "prompt,answer\na,b\n"}}, 422,
         "the CSV header must name an 'instruction' column"),
        ({"json": {"name": "x", "format": "csv", "content": "instruction,is_classification\na,maybe\n"}}, 422,
         "line 2: field 'is_classification' must be true or false"),
        ({"json": {"name": "x", "format": "self-instruct", "content": "\n\n"}}, 422, "holds no seed tasks"),
        ({"json": {"name": "x", "format": "yaml", "content": JSONL}}, 422, "body.format"),
        ({"json": {"name": "x"}}, 422, "exactly one of 'content'"),
        ({"json": {"name": "x", "content": JSONL, "tasks": [{"instruction": "a"}]}}, 422, "exactly one of 'content'"),
        ({"json": {"name": "", "content": JSONL}}, 422, "body.name"),
        ({"json": {"name": 5, "content": JSONL}}, 422, "body.name: Input should be a valid string"),
        ({"json": {"name": "x", "content": JSONL, "colour": "red"}}, 422, "body.colour: Extra inputs are not permitted"),
        ({"json": {"name": "x", "tasks": [{"instruction": "   "}]}}, 422, "body.tasks.0.instruction"),
        ({"json": {"name": "x", "tasks": [{"instruction": "a", "instances": [{"input": "b"}]}]}}, 422,
         "body.tasks.0.instances.0.output: Field required"),
        ({"json": {"name": "x", "tasks": []}}, 422, "body.tasks"),
        ({"json": {"name": "x", "content": "a\u0000b"}}, 422, "NUL"),
        ({"json": [1, 2]}, 422, "body"),
        ({"content": b"{broken", "headers": {"Content-Type": "application/json"}}, 422, "not valid JSON"),
        ({"content": json.dumps({"name": "x", "content": '{"instruction": "lone \\ud800 surrogate"}'}).encode(),
          "headers": {"Content-Type": "application/json"}}, 422, "line 1: field 'instruction' is not valid Unicode"),
        ({"content": b'{"name": "x", "tasks": [{"instruction": "lone \\ud800"}]}',
          "headers": {"Content-Type": "application/json"}}, 422, "body.tasks.0.instruction"),
        ({"files": {"file": ("s.jsonl", b"\xff\xfe\x00bad")}}, 422, "body.file: not UTF-8"),
        ({"files": {"file": ("s.jsonl", JSONL.encode())}, "data": {"format": "xml"}}, 422, "unknown seed format"),
        ({"data": {"name": "no file"}, "files": {"other": ("x", b"y")}}, 422, "multipart field 'file'"),
        ({"content": b"instruction\nhi\n", "headers": {"Content-Type": "text/csv"}}, 415, "multipart/form-data or JSON"),
        # hostile or inconsistent input (issue 9, D): a 4xx naming the line or field, never a 500
        ({"content": ('{"name": "x", "tasks": ' + DEEP + "}").encode(), "headers": {"Content-Type": "application/json"}},
         422, "body: line 1: JSON nested deeper than 64 levels"),
        ({"content": ('{"name": "x", "tasks": [{"instruction": "a b", "id": ' + BIG + "}]}").encode(),
          "headers": {"Content-Type": "application/json"}}, 422, "body: line 1: an integer of 5000 digits"),
        ({"content": ('{"name": "x", "tasks": [{"instruction": "a b", "is_classification": ' + BIG + "}]}").encode(),
          "headers": {"Content-Type": "application/json"}}, 422, "body: line 1: an integer of 5000 digits"),
        ({"json": {"name": "x", "tasks": [{"instruction": "a b", "id": "t"}, {"instruction": "c d", "id": "t"}]}}, 422,
         "tasks[1]: duplicate id 't' (also on tasks[0])"),
        ({"json": {"name": "x", "tasks": [{"instruction": "a b", "instances": [{"output": "x\u0000"}]}]}}, 422, "NUL"),
        ({"json": {"name": "x", "content": JSONL + '{"instruction": "deep", "x": ' + DEEP + "}\n"}}, 422,
         "seed file: line 2: JSON nested deeper than 64 levels"),
        ({"files": {"file": ("s.jsonl", ('{"instruction": "a b", "x": ' + DEEP + "}\n").encode())}}, 422,
         "seed file: line 1: JSON nested deeper than 64 levels"),
        ({"files": {"file": ("s.jsonl", (JSONL + '{"id": ' + BIG + ', "instruction": "a b"}\n').encode())}}, 422,
         "seed file: line 2: an integer of 5000 digits"),
        ({"files": {"file": ("s.csv", b'instruction,output\n"Say hi,x\nsecond,y\n')}}, 422,
         "seed file: line 2: not valid CSV (a quoted field is never closed)"),
        ({"files": {"file": ("s.jsonl", (JSONL + '{"instruction": "x\\u0000y"}\n').encode())}}, 422,
         "seed file: line 2: field 'instruction' contains a NUL character"),
        ({"files": {"file": ("s.jsonl", (json.dumps({"instruction": "word " * 1_000_000}) + "\n").encode())}}, 422,
         "seed file: line 1: field 'instruction' has 5,000,000 characters"),
        ({"files": {"file": ("s.jsonl", b'{"id": "a", "instruction": "x y"}\n{"id": "a", "instruction": "z w"}\n')}}, 422,
         "seed file: line 2: duplicate id 'a' (also on line 1)"),
    ],
)
def test_bad_uploads_are_refused_with_the_place_at_fault(api, kwargs, status, fragment):
    response = api.post("/api/v1/seed-sets", **kwargs)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]
    assert count(api) == 0  # nothing half-stored


@pytest.mark.parametrize("multipart", [True, False])
def test_every_bad_line_is_in_the_422_with_its_line_and_the_count(api, multipart):
    lines = [JSONL.strip(), '{"instruction": ""}', "not json", JSONL.strip()] + ['{"instruction": ""}'] * 25
    text = "\n".join(lines) + "\n"
    kwargs = {"files": {"file": ("s.jsonl", text.encode())}} if multipart else {"json": {"name": "x", "content": text}}
    response = api.post("/api/v1/seed-sets", **kwargs)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["detail"] == "seed file: line 2: field 'instruction' is empty (and 26 more bad lines)"
    assert body["error_count"] == 27 and len(body["errors"]) == 20
    assert [e["line"] for e in body["errors"]] == [2, 3] + list(range(5, 23))
    assert body["errors"][1]["msg"].startswith("line 3: not valid JSON")
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "file" if multipart else "content")}
    assert count(api) == 0


def test_list_pages_and_delete(api):
    ids = [api.ok("post", "/api/v1/seed-sets", 201, json={"name": f"s{i}", "content": JSONL})["id"] for i in range(5)]
    first = api.ok("get", "/api/v1/seed-sets?limit=2")
    second = api.ok("get", "/api/v1/seed-sets?limit=2&offset=2")
    third = api.ok("get", "/api/v1/seed-sets?limit=2&offset=4")
    assert first["total"] == 5 and [s["id"] for s in first["items"] + second["items"] + third["items"]] == ids[::-1]
    for query in ("limit=0", "limit=100000", "offset=-1", "limit=abc"):
        assert api.get(f"/api/v1/seed-sets?{query}").status_code == 422
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": ids[0], "params": {
        "prompt_instructions": 2, "prompt_machine_instructions": 1, "stop_at_item": 5}})
    refused = api.delete(f"/api/v1/seed-sets/{ids[0]}")
    assert refused.status_code == 409 and f"job(s) {job['id']}" in refused.json()["detail"]
    assert api.delete(f"/api/v1/seed-sets/{ids[1]}").status_code == 204
    assert api.get(f"/api/v1/seed-sets/{ids[1]}").status_code == 404
    assert api.get("/api/v1/seed-sets/99999").json()["detail"] == "no seed set with id 99999"
    assert api.get("/api/v1/seed-sets/99999999999999999999").status_code == 422
    assert api.get("/api/v1/seed-sets/abc").status_code == 422


def test_oversized_uploads_are_413(api, monkeypatch):
    import app.api.routes.seed_sets as route

    monkeypatch.setattr(route, "MAX_SEED_BYTES", 1000)
    big = JSONL * 20  # about 2 KB
    response = api.post("/api/v1/seed-sets", files={"file": ("big.jsonl", big.encode())})
    assert response.status_code == 413 and "body.file: larger than" in response.json()["detail"]
    response = api.post("/api/v1/seed-sets", json={"name": "big", "content": big})
    assert response.status_code == 413 and "body larger than" in response.json()["detail"]
    streamed = api.post("/api/v1/seed-sets", content=iter([b'{"name": "x", "content": "', b"a" * 3000, b'"}']),
                        headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert count(api) == 0
