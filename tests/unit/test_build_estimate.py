"""A dataset build's estimate from its earlier builds (no model: the builds are stored as a
build stores them), and a version's contamination report summed over its build's steps;
through the core, the REST API's dry run and `sprout datasets build --estimate` / `show`."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.core import store
from app.core.budget import PER_GPU_HOUR, PER_MILLION_TOKENS
from app.core.datasets import versions as v
from app.core.jobs.build_estimate import build_history, estimate_build
from app.core.jobs.dataset_build import _build_counts
from app.db import session_scope
from app.models import Dataset, DatasetVersion, Job, JobStatus
from app.settings import Settings
from tests.dataset_fixtures import examples, make_dataset
from tests.service_fixtures import api, api_settings, client, queued_tasks  # noqa: F401

CONFIG = Settings().core_config()
REPORT = {"candidates_hit": 2, "benchmarks": {
    "gsm (#1)": {"items_hit": 1, "hits": 1, "items": {"q1": 1}},
    "eval tasks: default.jsonl (the trainer's default)": {"items_hit": 1, "hits": 1, "items": {"packing_list": 1}}}}


def fake_build(session: Session, dataset: Dataset, spent: list[tuple], added: int,
               contamination: dict | None = None) -> DatasetVersion:
    """A build as the `dataset_build` kind stores it: step jobs (kind, prompt tokens, completion
    tokens, seconds on the model servers) with their counters and results, and its version."""
    step_ids = []
    for kind, prompt, completion, seconds in spent:
        job = store.create_job(session, kind, {}, owner=dataset.owner)
        job.status = JobStatus.succeeded.value
        job.counters = {**store.empty_counters(), "prompt_tokens": prompt, "completion_tokens": completion,
                        "accepted": added, "llm_wall_s": seconds}
        job.result = {"curated": added, **({"contamination": contamination} if contamination else {})}
        step_ids.append(job.id)
    build = store.create_job(session, "dataset_build", {"dataset_id": dataset.id}, owner=dataset.owner)
    latest = v.latest_version(session, dataset.id)
    start = latest.row_count if latest else 0
    return v.commit_version(session, dataset, examples(added, start=start), build_job_id=build.id,
                            build_counts=_build_counts(session, step_ids))


def test_the_estimate_of_a_build_comes_from_the_earlier_builds(sqlite_url):
    with session_scope(sqlite_url) as session:
        dataset = make_dataset(session, owner=None, grow_by=20,
                               steps=[{"kind": "self_instruct", "params": {"price_per_million_tokens": 2.0}}])
        fake_build(session, dataset, [("self_instruct", 6000, 2000, 40.0)], added=10)  # 800 per example
        fake_build(session, dataset, [("self_instruct", 9000, 3000, 60.0)], added=10)  # 1200 per example
        est = estimate_build(session, dataset, CONFIG, pilot=False)
    assert (est.basis, est.kind, est.unit, est.target) == ("history", "dataset_build", "examples added", 20)
    assert [b["version"] for b in est.history] == [2, 1] and est.pilot_accepted is None
    assert est.tokens_per_accepted == 1000.0 and est.expected_total_tokens == 20_000
    assert (est.expected_prompt_tokens, est.expected_completion_tokens) == (15_000, 5_000)
    assert (est.low_total_tokens, est.high_total_tokens) == (16_000, 24_000)  # the cheapest and dearest build
    assert (est.expected_cost, est.low_cost, est.high_cost) == (0.04, 0.032, 0.048)
    assert est.cost_rate == PER_MILLION_TOKENS
    assert est.seconds == 100.0 and est.tokens_per_second == 200.0  # 20,000 tokens over 100 s


def test_a_price_per_gpu_hour_costs_each_earlier_steps_time(sqlite_url):
    with session_scope(sqlite_url) as session:
        dataset = make_dataset(session, owner=None, grow_by=10, steps=[
            {"kind": "self_instruct", "params": {"price_per_gpu_hour": 3.6}},
            {"kind": "evol_instruct", "params": {"rounds": 1, "price_per_gpu_hour": 3.6, "gpus": 2},
             "source": "previous"}])
        fake_build(session, dataset, [("self_instruct", 1000, 1000, 100.0), ("evol_instruct", 500, 500, 50.0)], 5)
        est = estimate_build(session, dataset, CONFIG, pilot=False)
    # 100 s x 3.6/h = 0.1, and 50 s x 2 GPUs x 3.6/h = 0.1: 0.2 for 5 added, 0.4 for the 10 of the next build
    assert est.expected_cost == pytest.approx(0.4) and est.cost_rate == PER_GPU_HOUR
    assert est.expected_total_tokens == 6000 and est.tokens_per_second == 20.0


def test_an_earlier_builds_roles_are_priced_each_at_its_own(sqlite_url):
    with session_scope(sqlite_url) as session:
        dataset = make_dataset(session, owner=None, grow_by=10, steps=[{"kind": "self_instruct", "params": {
            "price_per_million_tokens": 2.0, "responder_price_per_million_tokens": 0.0}}])
        fake_build(session, dataset, [("self_instruct", 6000, 4000, 40.0)], added=10)
        step = session.exec(select(Job).where(Job.kind == "self_instruct")).one()
        step.counters = {**step.counters, "roles": {  # what the job counted per role: 4,000 tokens and 6,000
            "generator": {"prompt_tokens": 3000, "completion_tokens": 1000},
            "responder": {"prompt_tokens": 3000, "completion_tokens": 3000}}}
        session.add(step)
        session.flush()
        latest = v.latest_version(session, dataset.id)
        latest.counts = {**latest.counts, "build": _build_counts(session, [step.id])}
        session.add(latest)
        session.flush()
        est = estimate_build(session, dataset, CONFIG, pilot=False)
    # the generator's 4,000 tokens at 2.0 per million (0.008), the responder's 6,000 free, for 10 added
    assert est.expected_cost == pytest.approx(0.008) and est.cost_rate == PER_MILLION_TOKENS


def test_builds_under_another_recipe_and_beyond_the_limit_are_left_out(sqlite_url):
    with session_scope(sqlite_url) as session:
        dataset = make_dataset(session, owner=None)
        fake_build(session, dataset, [("evol_instruct", 5000, 5000, 10.0)], added=10)  # another recipe's steps
        for _ in range(3):
            fake_build(session, dataset, [("self_instruct", 1000, 1000, 10.0)], added=10)
        assert [b["version"] for b in build_history(session, dataset.id, ["self_instruct"], limit=2)] == [4, 3]
        assert [b["version"] for b in build_history(session, dataset.id, ["self_instruct"])] == [4, 3, 2]
        # a version made before builds recorded their spending: read from its step jobs
        version = v.get_version(session, dataset.id, 2)
        step_id = version.counts["build"]["step_jobs"][0]
        version.counts = {**version.counts, "build": {"step_jobs": [step_id]}}
        session.add(version)
        session.flush()
        old = [b for b in build_history(session, dataset.id, ["self_instruct"]) if b["version"] == 2][0]
        assert old["total_tokens"] == 2000 and old["steps"][0]["job_id"] == step_id


def test_without_history_or_room_there_is_no_estimate_and_no_request(sqlite_url):
    with session_scope(sqlite_url) as session:
        dataset = make_dataset(session, owner=None, grow_by=10, size_cap=10)
        est = estimate_build(session, dataset, CONFIG, pilot=False)
        assert (est.basis, est.target, est.expected_total_tokens) == ("none", 10, None)
        assert "no earlier build" in est.note
        fake_build(session, dataset, [("self_instruct", 1000, 1000, 10.0)], added=10)
        full = estimate_build(session, dataset, CONFIG)  # the size cap is reached: nothing to pilot
        assert (full.basis, full.target) == ("none", 0) and "size cap" in full.note


def test_a_versions_contamination_report_sums_its_steps(sqlite_url):
    with session_scope(sqlite_url) as session:
        dataset = make_dataset(session, owner=None, steps=[
            {"kind": "self_instruct"}, {"kind": "evol_instruct", "params": {"rounds": 1}, "source": "previous"}])
        version = fake_build(session, dataset, [("self_instruct", 10, 10, 1.0), ("evol_instruct", 10, 10, 1.0)], 3,
                             contamination=REPORT)
        report = version.counts["build"]["contamination"]
        assert report["candidates_hit"] == 4
        assert report["benchmarks"]["gsm (#1)"] == {"items_hit": 1, "hits": 2, "items": {"q1": 2}}
        assert "## Contamination this build kept out" in version.card
        assert "| gsm (#1) | 1 | 2 |" in version.card
        assert version.counts["build"]["prompt_tokens"] == 20 and len(version.counts["build"]["steps"]) == 2
        clean = fake_build(session, dataset, [("self_instruct", 10, 10, 1.0), ("evol_instruct", 10, 10, 1.0)], 3)
        assert "contamination" not in clean.counts["build"]  # nothing checked, nothing reported


# --- the shells ------------------------------------------------------------------------------------------
def test_the_api_dry_run_of_a_build_stores_and_enqueues_nothing(api, pg_url, redis_url):
    seed_set = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "s", "content": '{"instruction": "Say hi."}\n'})
    recipe = {"seed_set_ids": [seed_set["id"]], "grow_by": 4,
              "steps": [{"kind": "self_instruct", "params": {"price_per_million_tokens": 1.0}}]}
    api.ok("post", "/api/v1/datasets", 201, json={"name": "ds", "recipe": recipe})
    none = api.ok("post", "/api/v1/datasets/ds/builds", 200, json={"dry_run": True, "pilot": False})
    assert none["dry_run"] and none["estimate"]["basis"] == "none" and "no earlier build" in none["estimate"]["note"]
    with session_scope(pg_url) as session:
        dataset = v.get_dataset(session, "alice", "ds")
        version = fake_build(session, dataset, [("self_instruct", 3000, 1000, 20.0)], added=4, contamination=REPORT)
        number = version.number
    body = api.ok("post", "/api/v1/datasets/ds/builds", 200, json={"dry_run": True})
    est = body["estimate"]
    assert body["dataset"] == "ds" and est["basis"] == "history" and est["expected_total_tokens"] == 4000
    assert est["expected_cost"] == 0.004 and est["cost_rate"] == PER_MILLION_TOKENS
    with session_scope(pg_url) as session:
        assert session.exec(select(Job).where(Job.kind == "dataset_build")).all().__len__() == 1  # the fake one
    assert queued_tasks(redis_url, "generation") == []
    bad = api.post("/api/v1/datasets/ds/builds", json={"dry_run": True, "pilott": False})
    assert bad.status_code == 422 and "pilott" in bad.text
    shown = api.ok("get", f"/api/v1/datasets/ds/versions/{number}")
    assert shown["counts"]["build"]["contamination"]["candidates_hit"] == 2
    assert "Contamination this build kept out" in shown["card"]


def test_the_cli_estimates_a_build_and_shows_the_contamination(pg_url, monkeypatch):
    monkeypatch.setenv("SPROUT_DATABASE_URL", pg_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    with session_scope(pg_url) as session:
        dataset = make_dataset(session, name="cli-ds", owner=None,
                               steps=[{"kind": "self_instruct", "params": {"price_per_gpu_hour": 7.2}}])
    none = runner.invoke(cli, ["datasets", "build", "cli-ds", "--estimate", "--no-pilot"])
    assert none.exit_code == 0, none.output
    assert "no earlier build" in " ".join(none.output.split())
    with session_scope(pg_url) as session:
        dataset = v.get_dataset(session, None, "cli-ds")
        fake_build(session, dataset, [("self_instruct", 8000, 2000, 50.0)], added=10, contamination=REPORT)
    out = runner.invoke(cli, ["datasets", "build", "cli-ds", "--estimate", "--no-pilot"])
    text = " ".join(out.output.split())
    assert out.exit_code == 0, out.output
    assert "(history)" in text and "10,000 tokens for 10 added (1,000.0 each)" in text
    assert "per gpu hour" in text and "0.1000" in text  # 50 s at 7.2 per hour
    with session_scope(pg_url) as session:
        assert session.exec(select(Job).where(Job.kind == "dataset_build")).all().__len__() == 1
    shown = " ".join(runner.invoke(cli, ["datasets", "show", "cli-ds"]).output.split())
    assert "contamination: 2 candidate(s) rejected" in shown and "gsm (#1): 1 item(s) hit, 1 time(s)" in shown
