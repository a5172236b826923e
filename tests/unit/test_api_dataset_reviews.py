"""Review of a dataset over HTTP, on the real PostgreSQL: decisions per row (accept, reject
with a reason, edit, rate) kept with the reviewer and time, undo, a bulk reject over a
score query, progress, and the commit that makes a `review` version whose counts, card and
diff carry the reasons, while the edited row's original text stays in the older version;
bad input named with nothing written; another owner sees nothing."""

from __future__ import annotations

import pytest

from app.core.datasets import versions as v
from app.db import session_scope
from tests.dataset_fixtures import examples
from tests.service_fixtures import api, api_settings, client, other_api  # noqa: F401
from tests.unit.test_api_datasets import BASE, create, seed_set  # noqa: F401

DS = f"{BASE}/support-sft"


def scored(n: int) -> list[v.NewExample]:
    rows = examples(n)
    for i, row in enumerate(rows):
        row.scores = {"quality": 1 + i % 6}
    return rows


@pytest.fixture
def dataset(api, seed_set, pg_url):
    create(api, seed_set)
    with session_scope(pg_url) as s:
        v.commit_version(s, v.get_dataset(s, "alice", "support-sft"), scored(12))
    return [r["id"] for r in api.ok("get", f"{DS}/versions/1/rows?limit=100")["items"]]


def test_a_review_commits_a_version_with_its_reasons_in_counts_card_and_diff(api, dataset):
    ids = dataset
    state = api.ok("get", f"{DS}/review")
    assert state["total"] == 12 and state["unreviewed"] == 12 and "wrong answer" in state["reasons"]
    api.ok("put", f"{DS}/review/rows/{ids[0]}", json={"status": "rejected", "reason": "wrong answer", "rating": 1})
    api.ok("put", f"{DS}/review/rows/{ids[1]}", json={"status": "rejected", "reason": "off topic"})
    edited = api.ok("put", f"{DS}/review/rows/{ids[2]}", json={"status": "edited", "output": "A better answer.",
                                                              "rating": 4})
    assert edited["reviewer"] == "alice" and edited["reviewed_at"] and edited["committed_in"] is None
    api.ok("put", f"{DS}/review/rows/{ids[3]}", json={"status": "accepted", "rating": 5})
    api.ok("put", f"{DS}/review/rows/{ids[4]}", json={"status": "rejected", "reason": "duplicate"})
    api.ok("delete", f"{DS}/review/rows/{ids[4]}", 204)  # undo
    rows = {r["id"]: r for r in api.ok("get", f"{DS}/versions/latest/rows?limit=5")["items"]}
    assert rows[ids[0]]["review"]["reason"] == "wrong answer" and rows[ids[4]]["review"] is None
    progress = api.ok("get", f"{DS}/review")
    assert (progress["reviewed"], progress["unreviewed"], progress["rejected"], progress["edited"],
            progress["accepted"], progress["rated"], progress["reviewers"]) == (4, 8, 2, 1, 1, 3, ["alice"])

    version = api.ok("post", f"{DS}/review/commit", 201, json={"expected_latest": 1})
    assert version["number"] == 2 and version["kind"] == "review" and version["row_count"] == 10
    review = version["counts"]["review"]
    assert review["reasons"] == {"wrong answer": 1, "off topic": 1}
    assert (review["accepted"], review["rejected"], review["edited"], review["rating_mean"]) == (1, 2, 1, 3.33)
    assert "## Review" in version["card"] and "| wrong answer | 1 |" in version["card"]
    assert "| off topic | 1 |" in version["card"] and "by alice" in version["card"]

    diff = api.ok("get", f"{DS}/diff?from=1&to=2")
    assert (diff["added"], diff["removed"], diff["corrected"]) == (1, 3, 1)
    why = {r["id"]: r["review"] for r in diff["rows"] if r["change"] == "removed"}
    assert why[ids[0]]["status"] == "rejected" and why[ids[0]]["reason"] == "wrong answer"
    assert why[ids[2]]["status"] == "edited" and why[ids[2]]["committed_in"] == 2
    added = [r for r in diff["rows"] if r["change"] == "added"][0]
    assert added["output"] == "A better answer." and added["replaces_id"] == ids[2]
    # the original text stays in version 1
    old = {r["id"]: r for r in api.ok("get", f"{DS}/versions/1/rows?limit=100")["items"]}
    assert old[ids[2]]["output"] != "A better answer." and len(old) == 12
    # the accepted row's decision went into the version too: nothing is pending now
    assert api.ok("get", f"{DS}/review")["reviewed"] == 0


def test_bulk_reject_over_a_judge_score_query(api, dataset):
    preview = api.ok("post", f"{DS}/review/bulk", json={"query": {"score": "quality", "score_max": 2},
                                                       "status": "rejected", "preview": True})
    assert preview["marked"] == 4 and preview["preview"] and preview["progress"]["reviewed"] == 0
    out = api.ok("post", f"{DS}/review/bulk", json={"query": {"score": "quality", "score_max": 2},
                                                   "status": "rejected", "reason": "low quality"})
    assert out["marked"] == 4 and out["progress"]["rejected"] == 4
    version = api.ok("post", f"{DS}/review/commit", 201)
    assert version["row_count"] == 8 and version["counts"]["review"]["reasons"] == {"low quality": 4}
    kept = api.ok("get", f"{DS}/versions/2/rows?limit=100")["items"]
    assert all(r["scores"]["quality"] > 2 for r in kept)


@pytest.mark.parametrize("body, fragment", [
    ({"status": "maybe"}, "status"),
    ({"status": "rejected", "rating": 6}, "rating"),
    ({"status": "edited"}, "output"),
    ({"status": "accepted", "output": "x"}, "output"),
    ({"status": "rejected", "reason": "x" * 501}, "reason"),
])
def test_bad_decisions_are_named_and_write_nothing(api, dataset, body, fragment):
    response = api.put(f"{DS}/review/rows/{dataset[0]}", json=body)
    assert response.status_code == 422 and fragment in response.text
    assert api.ok("get", f"{DS}/review")["reviewed"] == 0


def test_refusals(api, other_api, dataset):
    missing = api.put(f"{DS}/review/rows/999999", json={"status": "accepted"})
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]
    assert api.delete(f"{DS}/review/rows/{dataset[0]}").status_code == 404  # nothing to undo
    api.ok("put", f"{DS}/review/rows/{dataset[0]}", json={"status": "accepted"})
    only_accepted = api.post(f"{DS}/review/commit")
    assert only_accepted.status_code == 422 and "no row rejected or edited" in only_accepted.json()["detail"]
    same = api.put(f"{DS}/review/rows/{dataset[1]}", json={"status": "edited", "output": api.ok(
        "get", f"{DS}/versions/1/rows?limit=2")["items"][1]["output"]})
    assert same.status_code == 422 and "nothing to edit" in same.json()["detail"]
    assert other_api.get(f"{DS}/review").status_code == 404
    assert other_api.put(f"{DS}/review/rows/{dataset[0]}", json={"status": "rejected"}).status_code == 404
    api.ok("put", f"{DS}/review/rows/{dataset[1]}", json={"status": "rejected"})
    stale = api.post(f"{DS}/review/commit", json={"expected_latest": 7})
    assert stale.status_code == 409


def test_me_names_the_keys_owner(api, other_api):
    assert api.ok("get", "/api/v1/me") == {"owner": "alice", "key_name": "alice-key"}
    assert other_api.ok("get", "/api/v1/me")["owner"] == "bob"


def test_deleting_a_review_version_makes_its_decisions_pending_again(api, dataset):
    api.ok("put", f"{DS}/review/rows/{dataset[0]}", json={"status": "rejected", "reason": "wrong answer"})
    api.ok("put", f"{DS}/review/rows/{dataset[1]}", json={"status": "edited", "output": "Better."})
    api.ok("post", f"{DS}/review/commit", 201)
    assert api.ok("get", f"{DS}/review")["reviewed"] == 0
    api.ok("delete", f"{DS}/versions/2", 204)
    again = api.ok("get", f"{DS}/review")
    assert (again["version"], again["reviewed"], again["rejected"], again["edited"]) == (1, 2, 1, 1)
    version = api.ok("post", f"{DS}/review/commit", 201)
    assert version["number"] == 2 and version["counts"]["review"]["reasons"] == {"wrong answer": 1}


def test_a_jobs_rows_reviewed_through_a_dataset_made_from_it(api, other_api, seed_set, pg_url):
    from app.core.methods.candidates import CandidateRecord, InstanceCandidate
    from app.models import Job
    from tests.service_fixtures import store_candidates
    from tests.unit.test_api_datasets import recipe

    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set,
                                                   "params": {"target": 2}})["id"]
    store_candidates(pg_url, job, [
        CandidateRecord("Write a haiku about rain.", True, in_pool=True, max_rouge_l=0.22,
                        instances=[InstanceCandidate("", "Rain on the roof.")]),
        CandidateRecord("Draw a map of the town.", False, rule="blacklisted_word"),
        CandidateRecord("Convert a percentage to a fraction.", True, in_pool=True, max_rouge_l=0.61,
                        instances=[InstanceCandidate("50%", "1/2")]),
    ])
    body = {"name": f"job-{job}", "recipe": recipe(seed_set), "from_job_id": job}
    running = api.post(BASE, json=body)
    assert running.status_code == 422 and "from_job_id" in running.text and "wait until it has finished" in running.text
    with session_scope(pg_url) as s:
        s.get(Job, job).status = "succeeded"
    assert other_api.post(BASE, json=body).status_code == 422  # neither the seed set nor the job is theirs
    made = api.ok("post", BASE, 201, json=body)
    assert made["latest"]["number"] == 1 and made["latest"]["row_count"] == 2
    rows = api.ok("get", f"{BASE}/job-{job}/versions/1/rows")["items"]
    assert {r["instruction"] for r in rows} == {"Write a haiku about rain.", "Convert a percentage to a fraction."}
    assert all(r["source_job_id"] == job for r in rows)
    api.ok("put", f"{BASE}/job-{job}/review/rows/{rows[0]['id']}", json={"status": "rejected", "reason": "off topic"})
    assert api.ok("post", f"{BASE}/job-{job}/review/commit", 201)["row_count"] == 1
