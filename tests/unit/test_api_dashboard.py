"""What the dashboard reads besides the job routes: the job kinds with their parameter
schemas and defaults, a job's figures, a row's lineage tree, rows sorted by score, and the
page's static files (served from the package, nothing else readable)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from app.core import jobs
from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.db import session_scope
from app.models import Instruction
from tests.service_fixtures import api, api_settings, client, store_candidates  # noqa: F401

SEEDS = "".join(f'{{"instruction": "Seed task number {i} asks for something."}}\n' for i in range(8))


@pytest.fixture
def seed_set(api):
    return api.ok("post", "/api/v1/seed-sets", 201, json={"name": "s", "content": SEEDS})["id"]


def test_kinds_list_each_kind_with_schema_sources_and_service_defaults(api, client, api_settings):
    client.app.state.settings = api_settings.model_copy(update={"self_instruct": api_settings.self_instruct.model_copy(
        update={"target": 7})})
    kinds = {k["name"]: k for k in api.ok("get", "/api/v1/kinds")["items"]}
    assert set(kinds) == set(jobs.names())  # every registered kind, from the registry
    si = kinds["self_instruct"]
    assert si["sources"] == ["seed_set_id"] and si["queue"] == "generation" and si["needs_llm"]
    assert si["params_schema"]["properties"]["target"]["type"] == "integer"
    assert si["defaults"]["target"] == 7 and si["defaults"]["rouge_l_threshold"] == 0.7
    assert kinds["evol_instruct"]["sources"] == ["seed_set_id", "source_job_id"]
    assert kinds["sft"]["sources"] == ["source_job_id", "export_id"] and kinds["sft"]["queue"] == "training"
    build = kinds["dataset_build"]
    assert "dataset_id" not in build["defaults"] and build["defaults"]["fire_id"] is None
    assert "dataset_id" in build["params_schema"]["required"]
    assert client.get("/api/v1/kinds").status_code == 401


def test_stats_count_rows_over_time_rules_scores_and_sizes(api, pg_url, seed_set):
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set,
                                                   "params": {"target": 3}})["id"]
    empty = api.ok("get", f"/api/v1/jobs/{job}/stats")
    assert empty["rows"] == 0 and empty["timeline"] == [] and empty["tokens"]["per_curated_example"] is None
    store_candidates(pg_url, job, [
        CandidateRecord("Write a haiku about rain.", True, in_pool=True, max_rouge_l=0.22,
                        instances=[InstanceCandidate("", "Rain on the roof."), InstanceCandidate("", "", rule="empty_output")]),
        CandidateRecord("Draw a map of the town.", False, rule="blacklisted_word"),
        CandidateRecord("Convert a percentage to a fraction.", True, in_pool=True, max_rouge_l=0.61,
                        instances=[InstanceCandidate("100%", "1/1"), InstanceCandidate("50%", "1/2")]),
        CandidateRecord("Write a haiku about rain!", False, rule="too_similar", max_rouge_l=0.9),
    ])
    with session_scope(pg_url) as session:  # spread the rows over a minute, in their order
        rows = session.exec(select(Instruction).where(Instruction.job_id == job).order_by(Instruction.seq)).all()
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for i, row in enumerate(rows):
            row.created_at = start + timedelta(seconds=20 * i)
        from app.models import Job

        row = session.get(Job, job)
        row.counters = {**row.counters, "prompt_tokens": 900, "completion_tokens": 300}
        row.started_at = start - timedelta(seconds=30)  # the time before the first row shows as zeros
    stats = api.ok("get", f"/api/v1/jobs/{job}/stats")
    assert stats["rows"] == 4
    assert [(p["accepted"], p["rejected"]) for p in stats["timeline"]] == [(0, 0), (1, 0), (1, 1), (2, 1), (2, 2)]
    assert stats["timeline"][0]["t"].startswith("2025-12-31T23:59:30")
    assert stats["timeline"][-1]["t"].startswith("2026-01-01T00:01:00")
    assert stats["rejected_by_rule"] == {"blacklisted_word": 1, "too_similar": 1}
    assert stats["instances_rejected_by_rule"] == {"empty_output": 1}
    rouge = stats["max_rouge_l_accepted"]
    assert len(rouge["edges"]) == 21 and sum(rouge["counts"]) == 2
    assert rouge["counts"][4] == 1 and rouge["counts"][12] == 1  # 0.22 in [0.20, 0.25), 0.61 in [0.60, 0.65)
    words = stats["example_words"]
    assert sum(words["counts"]) == 3  # the curated examples: one of the haiku, two of the fraction
    assert words["edges"][0] == 0 and words["edges"][-1] > 7  # "Convert a percentage to a fraction." + "100%" + "1/1"
    assert stats["tokens"] == {"prompt": 900, "completion": 300, "per_curated_example": 400.0}
    assert stats["rouge_l_threshold"] == 0.7
    assert api.get("/api/v1/jobs/4242/stats").status_code == 404


def test_lineage_is_the_tree_of_the_rows_root_with_the_path_to_it(api, pg_url, seed_set):
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "evol_instruct", "seed_set_id": seed_set,
                                                   "params": {"rounds": 2}})["id"]
    root = CandidateRecord("Root A.", True, in_pool=True, instances=[InstanceCandidate("", "out A")])
    other = CandidateRecord("Root B.", True, in_pool=True)
    failed = CandidateRecord("A, sorry.", False, rule="sorry_response", parent=root, operation="in_breadth", round=1)
    deeper = CandidateRecord("A, deeper.", True, in_pool=True, parent=root, operation="deepening", round=2)
    deepest = CandidateRecord("A, deeper still.", True, in_pool=True, parent=deeper, operation="concretizing", round=3)
    store_candidates(pg_url, job, [root, other])
    store_candidates(pg_url, job, [failed, deeper])
    store_candidates(pg_url, job, [deepest])
    tree = api.ok("get", f"/api/v1/jobs/{job}/instructions/{deepest.row_id}/lineage")
    assert tree["path"] == [root.row_id, deeper.row_id, deepest.row_id] and not tree["truncated"]
    top = tree["root"]
    assert top["instruction"] == "Root A." and top["operation"] is None and top["round"] == 0
    assert [(c["instruction"], c["operation"], c["round"], c["rule"]) for c in top["children"]] == [
        ("A, sorry.", "in_breadth", 1, "sorry_response"), ("A, deeper.", "deepening", 2, None)]
    assert [c["instruction"] for c in top["children"][1]["children"]] == ["A, deeper still."]
    alone = api.ok("get", f"/api/v1/jobs/{job}/instructions/{other.row_id}/lineage")
    assert alone["path"] == [other.row_id] and alone["root"]["children"] == []
    other_job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set})["id"]
    missing = api.get(f"/api/v1/jobs/{other_job}/instructions/{root.row_id}/lineage")
    assert missing.status_code == 404 and f"no instruction with id {root.row_id}" in missing.json()["detail"]


def test_rows_sort_by_score_with_unscored_rows_last(api, pg_url, seed_set):
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set})["id"]
    store_candidates(pg_url, job, [
        CandidateRecord("a b c d", True, in_pool=True, max_rouge_l=0.3),
        CandidateRecord("e f g h", False, rule="too_short"),
        CandidateRecord("i j k l", False, rule="too_similar", max_rouge_l=0.8),
        CandidateRecord("m n o p", True, in_pool=True, max_rouge_l=0.3),
    ])

    def order(sort):
        return [i["seq"] for i in api.ok("get", f"/api/v1/jobs/{job}/instructions?sort={sort}")["items"]]

    assert order("seq") == [1, 2, 3, 4] and order("-seq") == [4, 3, 2, 1]
    assert order("-max_rouge_l") == [3, 1, 4, 2] and order("max_rouge_l") == [1, 4, 3, 2]
    bad = api.get(f"/api/v1/jobs/{job}/instructions?sort=instruction")
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "sort"]


def test_the_page_and_its_static_files_are_served_from_the_package(client):
    page = client.get("/dashboard")
    assert page.status_code == 200 and "/dashboard/static/app.js" in page.text
    for name, media in (("app.js", "text/javascript"), ("preact-htm.module.js", "text/javascript"),
                        ("chart.umd.min.js", "text/javascript"), ("dashboard.css", "text/css"),
                        ("THIRD_PARTY_LICENSES.txt", "text/plain")):
        response = client.get(f"/dashboard/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media), name
    assert "Apache License" in client.get("/dashboard/static/THIRD_PARTY_LICENSES.txt").text
    for name in ("..%2F..%2Fapi%2Fmain.py", "nothing.js", ".hidden.js", "__init__.py"):
        assert client.get(f"/dashboard/static/{name}").status_code == 404, name
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
