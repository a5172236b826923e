"""A job's results over HTTP: instructions and instances paged, filtered by fate and rule,
searched by text; exports written in each format, listed and downloaded."""

import json

import pytest

from app.core import export, store
from app.core.handoff import sources
from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.db import session_scope
from tests.service_fixtures import api, api_settings, client, store_candidates  # noqa: F401

SEEDS = "".join(f'{{"instruction": "Seed task number {i} asks for something."}}\n' for i in range(8))


@pytest.fixture
def job(api, pg_url):
    seed_set = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "s", "content": SEEDS})["id"]
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set,
                                                   "params": {"target": 3}})
    store_candidates(pg_url, job["id"], [
        CandidateRecord("Write a haiku about rain.", True, in_pool=True, max_rouge_l=0.2,
                        most_similar=[{"instruction": "Seed task number 1 asks for something.", "rouge_l": 0.2}],
                        instances=[InstanceCandidate("", "Rain on the roof."), InstanceCandidate("", "", rule="empty_output")]),
        CandidateRecord("Draw a map of the town.", False, rule="blacklist"),
        CandidateRecord("Convert 100% to a fraction.", True, in_pool=True,
                        instances=[InstanceCandidate("100%", "1/1"), InstanceCandidate("50%", "1/2")]),
        CandidateRecord("Write a haiku about rain!", False, rule="too_similar", max_rouge_l=0.9),
        CandidateRecord("Write a poem_with_underscores.", False, rule="too_similar", max_rouge_l=0.8),
    ])
    return job["id"]


def items(page):
    return [i["instruction"] for i in page["items"]]


def test_instructions_filtered_paged_and_searched(api, job):
    everything = api.ok("get", f"/api/v1/jobs/{job}/instructions")
    assert everything["total"] == 5 and [i["seq"] for i in everything["items"]] == [1, 2, 3, 4, 5]
    first = everything["items"][0]
    assert first["fate"] == "accepted" and first["in_pool"] and first["max_rouge_l"] == 0.2
    assert [(i["output"], i["fate"], i["rule"]) for i in first["instances"]] == [
        ("Rain on the roof.", "accepted", None), ("", "rejected", "empty_output")]
    assert items(api.ok("get", f"/api/v1/jobs/{job}/instructions?fate=accepted")) == [
        "Write a haiku about rain.", "Convert 100% to a fraction."]
    rejected = api.ok("get", f"/api/v1/jobs/{job}/instructions?fate=rejected&rule=too_similar")
    assert rejected["total"] == 2 and {i["rule"] for i in rejected["items"]} == {"too_similar"}
    assert items(api.ok("get", f"/api/v1/jobs/{job}/instructions?q=HAIKU")) == [
        "Write a haiku about rain.", "Write a haiku about rain!"]
    assert items(api.ok("get", f"/api/v1/jobs/{job}/instructions?q=100%25")) == ["Convert 100% to a fraction."]
    assert items(api.ok("get", f"/api/v1/jobs/{job}/instructions?q=m_w")) == ["Write a poem_with_underscores."]
    assert api.ok("get", f"/api/v1/jobs/{job}/instructions?q=%25%25")["total"] == 0  # % is literal
    pages = [api.ok("get", f"/api/v1/jobs/{job}/instructions?limit=2&offset={o}") for o in (0, 2, 4)]
    assert [i["seq"] for p in pages for i in p["items"]] == [1, 2, 3, 4, 5]
    for query in ("fate=maybe", "limit=501", "offset=-3", "q=" + "x" * 501, "q=a%00b"):
        response = api.get(f"/api/v1/jobs/{job}/instructions?{query}")
        assert response.status_code == 422, (query, response.text)
    assert api.get("/api/v1/jobs/4242/instructions").status_code == 404


def test_too_similar_evidence_names_the_fate_its_pool_row_ended_with(api, job, pg_url):
    over = "List three uses of a paperclip."
    store_candidates(pg_url, job, [
        CandidateRecord(over, False, rule="over_target", in_pool=True),
        CandidateRecord("List three uses for a paperclip.", False, rule="too_similar", max_rouge_l=0.93,
                        most_similar=[{"instruction": over, "rouge_l": 0.93},
                                      {"instruction": "Write a haiku about rain.", "rouge_l": 0.1},
                                      {"instruction": "Seed task number 2 asks for something.", "rouge_l": 0.05}]),
    ])
    row = api.ok("get", f"/api/v1/jobs/{job}/instructions?q=uses%20for")["items"][0]
    dropped, kept, seed = row["most_similar"]
    assert (dropped["instruction"], dropped["fate"], dropped["rule"], dropped["seq"]) == (
        over, "rejected", "over_target", 6)
    assert (kept["fate"], kept["rule"], kept["seq"]) == ("accepted", None, 1)
    assert seed == {"instruction": "Seed task number 2 asks for something.", "rouge_l": 0.05}  # not a job row


def test_instances_filtered_and_searched(api, job):
    everything = api.ok("get", f"/api/v1/jobs/{job}/instances")
    assert everything["total"] == 4
    kept = api.ok("get", f"/api/v1/jobs/{job}/instances?fate=accepted")
    assert [(i["instruction"], i["input"], i["output"]) for i in kept["items"]] == [
        ("Write a haiku about rain.", "", "Rain on the roof."),
        ("Convert 100% to a fraction.", "100%", "1/1"),
        ("Convert 100% to a fraction.", "50%", "1/2")]
    assert api.ok("get", f"/api/v1/jobs/{job}/instances?rule=empty_output")["total"] == 1
    assert [i["output"] for i in api.ok("get", f"/api/v1/jobs/{job}/instances?q=50%25")["items"]] == ["1/2"]


@pytest.mark.parametrize("fmt", export.FORMATS)  # the JSON ones; parquet: tests/unit/test_api_handoff.py
def test_exports_in_every_format(api, job, pg_url, api_settings, fmt):
    created = api.ok("post", "/api/v1/exports", 201, json={"job_id": job, "format": fmt})
    assert created["rows"] == 3 and created["format"] == fmt and created["job_id"] == job
    downloaded = api.get(created["download_url"])
    assert downloaded.status_code == 200, downloaded.text
    with session_scope(pg_url) as session:
        expected = export.render(sources.rows_for_format(session, store.get_job(session, job), fmt), fmt)
        if fmt != "sharegpt":  # the formats that always were: the job's curated rows as they are
            assert expected == export.render(store.curated_examples(session, job), fmt)
    assert downloaded.text == expected and created["bytes"] == len(expected.encode())
    assert f'filename="{created["filename"]}"' in downloaded.headers["content-disposition"]
    exports_dir = api_settings.data_dir / "exports"
    assert [p.name for p in exports_dir.iterdir()] == [created["filename"]]  # no temporary left behind
    if fmt == "alpaca":
        assert [r["output"] for r in json.loads(downloaded.text)] == ["Rain on the roof.", "1/1", "1/2"]


def test_export_list_get_and_bad_requests(api, job, api_settings):
    a = api.ok("post", "/api/v1/exports", 201, json={"job_id": job})
    b = api.ok("post", "/api/v1/exports", 201, json={"job_id": job, "format": "prompt-completion"})
    listed = api.ok("get", f"/api/v1/exports?job_id={job}")
    assert listed["total"] == 2 and [e["id"] for e in listed["items"]] == [b["id"], a["id"]]
    assert api.ok("get", f"/api/v1/exports/{a['id']}") == a
    for body, fragment in (({"job_id": job, "format": "csv"}, "body.format"), ({"job_id": 999}, "no job with id 999"),
                           ({"format": "alpaca"}, "body.job_id: Field required"),
                           ({"job_id": job, "path": "/etc/passwd"}, "body.path: Extra inputs")):
        response = api.post("/api/v1/exports", json=body)
        assert response.status_code == 422 and fragment in response.json()["detail"], response.text
    (api_settings.data_dir / "exports" / a["filename"]).unlink()
    gone = api.get(a["download_url"])
    assert gone.status_code == 410 and "create a new export" in gone.json()["detail"]
    assert api.get("/api/v1/exports/31337/download").status_code == 404


def test_an_evol_instruct_export_over_http_is_the_cli_export_byte_for_byte(api, pg_url, tmp_path, monkeypatch):
    """Both doors call `lineage.export_rows`: the lineage column and the options are the same."""
    from typer.testing import CliRunner

    from app.cli import cli
    from app.settings import get_settings

    seed_set = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "s", "content": SEEDS})["id"]
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "evol_instruct", "seed_set_id": seed_set,
                                                   "params": {"rounds": 2}})["id"]
    root = CandidateRecord("Root A.", True, in_pool=True, instances=[InstanceCandidate("in A", "out A")])
    other = CandidateRecord("Root B.", True, in_pool=True, instances=[InstanceCandidate("", "out B")])
    deeper = CandidateRecord("A, deeper.", True, in_pool=True, parent=root, operation="deepening", round=1,
                             instances=[InstanceCandidate("", "deeper A")])
    failed = CandidateRecord("B, sorry.", False, rule="sorry_response", parent=other, operation="in_breadth", round=1,
                             instances=[InstanceCandidate("", "Sorry.")])
    store_candidates(pg_url, job, [root, other])
    store_candidates(pg_url, job, [deeper, failed])
    monkeypatch.setenv("SPROUT_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    for options, flags in (({}, []), ({"final_only": True}, ["--final-only"]), ({"include_roots": False}, ["--no-roots"])):
        made = api.ok("post", "/api/v1/exports", 201, json={"job_id": job, "format": "messages", **options})
        over_http = api.get(made["download_url"]).content
        out = tmp_path / f"cli-{len(flags)}-{'-'.join(flags)}.jsonl"
        result = CliRunner().invoke(cli, ["export", str(job), "--format", "messages", "--out", str(out), *flags])
        assert result.exit_code == 0, result.output
        assert over_http == out.read_bytes(), options
        rows = [json.loads(line) for line in over_http.decode().splitlines()]
        assert all("lineage" in r for r in rows) and made["options"]["final_only"] == options.get("final_only", False)
    deepest = [json.loads(line) for line in api.get(made["download_url"]).text.splitlines()]
    assert [[step["instruction"] for step in r["lineage"]] for r in deepest] == [["Root A.", "A, deeper."]]
    plain = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set})["id"]
    refused = api.post("/api/v1/exports", json={"job_id": plain, "final_only": True})
    assert refused.status_code == 422 and refused.json()["errors"][0]["loc"] == ["body", "final_only"]


def walk(api, path: str, limit: int) -> list[dict]:
    """Every page of `path` by `after=next_after`, asserting each page's size."""
    got: list[dict] = []
    after = None
    while True:
        page = api.ok("get", path + f"&limit={limit}" + (f"&after={after}" if after else ""))
        assert (page["total"] is None) == (after is not None or "after=" in path)  # a page by key: not counted
        got += page["items"]
        after = page["next_after"]
        if after is None:
            return got
        assert len(page["items"]) == limit


@pytest.mark.parametrize("sort", ["seq", "-seq", "max_rouge_l", "-max_rouge_l"])
def test_keyset_pages_have_no_duplicates_and_no_gaps(api, job, pg_url, sort):
    """Paging by `after` gives exactly the one-request listing, in order, whatever the sort
    (scores tied and missing included), filter and page size; for instances too."""
    rng = __import__("random").Random(sort)
    store_candidates(pg_url, job, [
        CandidateRecord(f"Task {i}.", rng.random() < 0.5, rule=None, in_pool=True,
                        max_rouge_l=rng.choice([None, 0.25, 0.5, round(rng.random(), 3)]),
                        instances=[InstanceCandidate(f"in {i}.{k}", f"out {i}.{k}") for k in range(rng.randint(0, 3))])
        for i in range(60)])
    for query in (f"sort={sort}", f"sort={sort}&fate=accepted", f"sort={sort}&q=task%201"):
        whole = api.ok("get", f"/api/v1/jobs/{job}/instructions?{query}&limit=500")
        assert whole["next_after"] is None and len(whole["items"]) == whole["total"]
        # the order the sort promises, worked out here: scores (ties by seq), then unscored by seq
        reverse = sort.startswith("-")
        if "max_rouge_l" in sort:
            scored = sorted((i for i in whole["items"] if i["max_rouge_l"] is not None),
                            key=lambda i: (-i["max_rouge_l"] if reverse else i["max_rouge_l"], i["seq"]))
            expected = scored + sorted((i for i in whole["items"] if i["max_rouge_l"] is None), key=lambda i: i["seq"])
        else:
            expected = sorted(whole["items"], key=lambda i: i["seq"], reverse=reverse)
        assert [i["id"] for i in whole["items"]] == [i["id"] for i in expected]
        by_offset = api.ok("get", f"/api/v1/jobs/{job}/instructions?{query}&limit=7&offset=7")["items"]
        assert [i["id"] for i in by_offset] == [i["id"] for i in whole["items"][7:14]]
        for limit in (1, 7, 13):
            paged = walk(api, f"/api/v1/jobs/{job}/instructions?{query}", limit)
            assert [i["id"] for i in paged] == [i["id"] for i in whole["items"]], (query, limit)
    whole = api.ok("get", f"/api/v1/jobs/{job}/instances?fate=accepted&limit=500")["items"]
    assert len(whole) > 30
    assert [i["id"] for i in walk(api, f"/api/v1/jobs/{job}/instances?fate=accepted", 4)] == [i["id"] for i in whole]


def test_keyset_paging_goes_on_past_rows_added_meanwhile_and_refuses_bad_keys(api, job, pg_url):
    first = api.ok("get", f"/api/v1/jobs/{job}/instructions?limit=3")
    assert [i["seq"] for i in first["items"]] == [1, 2, 3] and first["next_after"] == "3"
    store_candidates(pg_url, job, [CandidateRecord("A late task.", True, in_pool=True)])
    rest = walk(api, f"/api/v1/jobs/{job}/instructions?sort=seq&after={first['next_after']}", 2)
    assert [i["seq"] for i in rest] == [4, 5, 6]
    for query in ("after=x", "sort=max_rouge_l&after=0.5", "sort=max_rouge_l&after=nan:3", "after=3&offset=2",
                  "after=" + "9" * 65):
        response = api.get(f"/api/v1/jobs/{job}/instructions?{query}")
        assert response.status_code == 422 and ("after" in response.text or "offset" in response.text), query
    response = api.get(f"/api/v1/jobs/{job}/instances?after=1")
    assert response.status_code == 422 and "instance key" in response.text


def test_total_is_counted_by_offset_or_when_asked_and_left_out_by_key(api, job, pg_url):
    store_candidates(pg_url, job, [CandidateRecord(f"Task {i}.", i % 2 == 0, rule=None if i % 2 == 0 else "too_similar",
                                                   in_pool=True, max_rouge_l=i / 10,
                                                   instances=[InstanceCandidate("", f"out {i}")])
                                   for i in range(6)])
    base = f"/api/v1/jobs/{job}"
    for path in ("instructions?sort=-max_rouge_l", "instructions?fate=accepted", "instances?fate=accepted"):
        first = api.ok("get", f"{base}/{path}&limit=2")
        assert first["total"] is not None and first["next_after"]
        total = first["total"]
        after = first["next_after"]
        assert api.ok("get", f"{base}/{path}&limit=2&after={after}")["total"] is None
        assert api.ok("get", f"{base}/{path}&limit=2&after={after}&count=true")["total"] == total
        assert api.ok("get", f"{base}/{path}&limit=2&offset=2")["total"] == total
        assert api.ok("get", f"{base}/{path}&limit=2&count=false")["total"] is None
    response = api.get(f"{base}/instructions?count=maybe")
    assert response.status_code == 422 and "count" in response.text


@pytest.mark.parametrize("sort", ["max_rouge_l", "-max_rouge_l", "-seq"])
def test_every_page_by_offset_is_the_listing_s_slice_across_the_scored_and_unscored_rows(api, job, pg_url, sort):
    """A page by offset of a score sort is read as the scored part, then the unscored part,
    each from the offset within it: every offset (the page that straddles the two parts
    included), counted or not, filtered or not, gives the one-request listing's slice;
    instances by offset likewise."""
    store_candidates(pg_url, job, [
        CandidateRecord(f"Task {i}.", i % 3 != 0, rule=None, in_pool=True,
                        max_rouge_l=None if i % 4 == 0 else round((i * 7 % 10) / 10, 1),
                        instances=[InstanceCandidate(f"in {i}.{k}", f"out {i}.{k}") for k in range(i % 3)])
        for i in range(24)])
    base = f"/api/v1/jobs/{job}"
    for query in (f"sort={sort}", f"sort={sort}&fate=accepted", f"sort={sort}&count=false"):
        whole = [i["id"] for i in api.ok("get", f"{base}/instructions?{query}&limit=500")["items"]]
        scored = sum(1 for i in api.ok("get", f"{base}/instructions?{query}&limit=500")["items"]
                     if i["max_rouge_l"] is not None)
        assert 2 < scored < len(whole) - 2
        for offset in range(len(whole) + 2):
            page = api.ok("get", f"{base}/instructions?{query}&limit=5&offset={offset}")
            assert [i["id"] for i in page["items"]] == whole[offset:offset + 5], (query, offset)
            assert (page["next_after"] is not None) == (offset + 5 < len(whole))
    for query in ("fate=accepted", "q=out"):
        whole = [i["id"] for i in api.ok("get", f"{base}/instances?{query}&limit=500")["items"]]
        for offset in range(len(whole) + 1):
            page = api.ok("get", f"{base}/instances?{query}&limit=4&offset={offset}")["items"]
            assert [i["id"] for i in page] == whole[offset:offset + 4], (query, offset)
