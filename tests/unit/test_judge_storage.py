"""Judge scores stored and used: one row per (example, aspect, judge), the same judge
replacing its own rows and others kept beside; a resumed scoring asks only for the rest;
the scores go into a dataset's examples (a removal query uses them) and the Parquet export;
a `score` job is asked for like any job. No model here: scores are written as the judge
returns them (`JudgeScore`); the judge itself runs in tests/integration/test_score_job.py."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from app.cli import cli
from app.cli.common import CliError
from app.core import jobs, store
from app.core.config import CoreConfig
from app.core.datasets import versions as v
from app.core.datasets.curation import ExampleQuery, remove_examples
from app.core.handoff import formats, sources
from app.core.jobs import lifecycle
from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.core.scoring import JudgeScore, storage
from app.db import session_scope
from app.models import ExampleScore, Job, JobStatus
from tests.dataset_fixtures import db_url, make_dataset, session_for
from tests.service_fixtures import api, api_settings, client  # noqa: F401

__all__ = ["db_url"]

RECORDS = [
    CandidateRecord("Write a haiku about rain.", True, in_pool=True, max_rouge_l=0.2,
                    instances=[InstanceCandidate("", "Rain on the roof."), InstanceCandidate("", "", rule="empty_output")]),
    CandidateRecord("Draw a map of the town.", False, rule="blacklist"),
    CandidateRecord("Convert the percentage to a fraction.", True, in_pool=True,
                    instances=[InstanceCandidate("100%", "1/1"), InstanceCandidate("50%", "1/2")]),
]


def js(aspect, score, judge, status="ok", parsed=None):
    digit = parsed if parsed is not None else (round(score) if score is not None else None)
    return JudgeScore(aspect, score, digit if status == "ok" else None, f" {digit}" if status == "ok" else "garble",
                      status, status == "ok", judge)


def both(q, c, judge, status="ok"):
    return {"quality": js("quality", q, judge, status), "complexity": js("complexity", c, judge, status)}


def make_generation_job(session, owner=None, status=JobStatus.succeeded) -> int:
    job = store.create_job(session, "self_instruct", {"target": 2}, owner=owner)
    store.write_records(session, job.id, RECORDS, 1)
    job.status = status.value
    session.flush()
    return job.id


def curated(session, job_id):
    return storage.examples_of(session, job_id)


def test_the_same_judge_replaces_its_rows_and_another_judge_stands_beside(db_url):
    with session_for(db_url) as s:
        job_id = make_generation_job(s)
        first = curated(s, job_id)[0].instance_id
        storage.save(s, job_id, None, [(first, both(2.0, 3.0, "judge-a"))])
        s.commit()
        storage.save(s, job_id, None, [(first, {"quality": js("quality", 5.0, "judge-a")})])  # again: replaces
        s.commit()
        rows = s.exec(select(ExampleScore).where(ExampleScore.instance_id == first)).all()
        assert sorted((r.aspect, r.judge, r.score) for r in rows) == [
            ("complexity", "judge-a", 3.0), ("quality", "judge-a", 5.0)]
        storage.save(s, job_id, None, [(first, {"quality": js("quality", 1.0, "judge-b")})])  # beside
        s.commit()
        assert len(s.exec(select(ExampleScore).where(ExampleScore.instance_id == first)).all()) == 3
        mine = storage.scores_of(s, [first], "judge-a")[first]
        assert mine["quality"].score == 5.0 and mine["complexity"].score == 3.0
        latest = storage.scores_of(s, [first])[first]  # the latest of each aspect
        assert (latest["quality"].judge, latest["quality"].score) == ("judge-b", 1.0)
        assert (latest["complexity"].judge, latest["complexity"].score) == ("judge-a", 3.0)
        assert storage.flat(latest) == {"quality": 1.0, "complexity": 3.0, "judge": "judge-b",
                                        "complexity_judge": "judge-a"}
        assert storage.flat(mine) == {"quality": 5.0, "complexity": 3.0, "judge": "judge-a"}


def test_a_resumed_scoring_asks_only_for_what_the_judge_has_not_answered(sqlite_url):
    with session_scope(sqlite_url) as s:
        job_id = make_generation_job(s)
        examples = curated(s, job_id)
        # curated: accepted instances of accepted instructions, in the job's order
        assert [(e.instruction, e.output) for e in examples] == [
            ("Write a haiku about rain.", "Rain on the roof."), ("Convert the percentage to a fraction.", "1/1"),
            ("Convert the percentage to a fraction.", "1/2")]
        assert len(storage.examples_of(s, job_id, only_accepted=False)) == 4
        a, b, c = (e.instance_id for e in examples)
        scorer = store.create_job(s, "score", {}, source_job_id=job_id).id
        storage.save(s, job_id, scorer, [(a, both(4.0, 2.0, "j")),
                                     (b, {"quality": js("quality", None, "j", "unparseable"),  # an answer
                                          "complexity": js("complexity", None, "j", "error")})])  # not one
    with session_scope(sqlite_url) as s:
        assert [e.instance_id for e in storage.to_score(s, job_id, "j", ["quality", "complexity"])] == [b, c]
        assert [e.instance_id for e in storage.to_score(s, job_id, "j", ["quality"])] == [c]
        assert [e.instance_id for e in storage.to_score(s, job_id, "other", ["quality"])] == [a, b, c]
        assert storage.done_by(s, job_id, "j", ["quality"], scoring_job_id=scorer) == {a, b}
        assert storage.done_by(s, job_id, "j", ["quality"], scoring_job_id=job_id) == set()


def test_the_summary_counts_scores_digits_and_unparseable_answers(sqlite_url):
    with session_scope(sqlite_url) as s:
        job_id = make_generation_job(s)
        a, b, c = (e.instance_id for e in curated(s, job_id))
        storage.save(s, job_id, None, [(a, both(4.5, 2.0, "j")), (b, both(2.5, 3.0, "j")),
                                       (c, both(None, None, "j", "unparseable"))])
        summary = storage.summary(s, job_id, "j", ["quality", "complexity"])
    assert summary["judge"] == "j"
    quality = summary["quality"]
    assert quality["scored"] == 2 and quality["unparseable"] == 1 and quality["errors"] == 0
    assert quality["mean"] == pytest.approx(3.5) and quality["median"] == pytest.approx(3.5)
    assert quality["histogram"] == {"1": 0, "2": 1, "3": 0, "4": 1, "5": 0, "6": 0}  # the digits: round(2.5) is 2


def test_results_api_shows_scores_and_filters_by_min_quality(api, pg_url):
    job_id = api.ok("post", "/api/v1/seed-sets", 201, json={
        "name": "s", "content": "".join(f'{{"instruction": "Seed task number {i} asks for a thing."}}\n'
                                        for i in range(8))})["id"]
    job_id = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": job_id,
                                                      "params": {"target": 2}})["id"]
    with session_scope(pg_url) as s:
        store.write_records(s, job_id, RECORDS, 1)
        a, b, c = (e.instance_id for e in curated(s, job_id))
        storage.save(s, job_id, None, [(a, both(4.6, 2.0, "old")), (b, both(2.1, 3.0, "old")),
                                       (c, {"quality": js("quality", None, "old", "unparseable")})])
    with session_scope(pg_url) as s:  # a second judge, later: its quality is the latest
        storage.save(s, job_id, None, [(b, {"quality": js("quality", 5.2, "new")})])

    def outputs(query):
        return [i["output"] for i in api.ok("get", f"/api/v1/jobs/{job_id}/instances?{query}")["items"]]

    assert outputs("min_quality=4") == ["Rain on the roof.", "1/1"]  # b's latest quality is the new judge's
    assert outputs("min_quality=4&judge=old") == ["Rain on the roof."]
    assert outputs("min_quality=5&judge=new") == ["1/1"]
    assert outputs("min_quality=1") == ["Rain on the roof.", "1/1"]  # unparseable and unscored: no score
    everything = api.ok("get", f"/api/v1/jobs/{job_id}/instances?fate=accepted")["items"]
    first = everything[0]["scores"]
    assert first["quality"]["score"] == 4.6 and first["quality"]["judge"] == "old"
    assert first["quality"]["parsed"] == 5 and first["quality"]["status"] == "ok"
    assert everything[2]["scores"]["quality"]["status"] == "unparseable"
    assert everything[2]["scores"]["quality"]["score"] is None and everything[2]["scores"]["quality"]["raw"] == "garble"
    assert api.ok("get", f"/api/v1/jobs/{job_id}/instances?fate=rejected")["items"][0]["scores"] == {}
    picked = api.ok("get", f"/api/v1/jobs/{job_id}/instructions?min_quality=4&judge=old")
    assert [i["instruction"] for i in picked["items"]] == ["Write a haiku about rain."]
    assert picked["items"][0]["instances"][0]["scores"]["quality"]["judge"] == "old"
    for query in ("min_quality=7", "min_quality=-1", "min_quality=x", "judge=", "judge=" + "j" * 201):
        response = api.get(f"/api/v1/jobs/{job_id}/instances?{query}")
        assert response.status_code == 422, (query, response.text)

    # the judges that scored it, the latest first (what the dashboard's judge selector lists)
    judges = api.ok("get", f"/api/v1/jobs/{job_id}/judges")["items"]
    assert [(j["judge"], j["aspects"], j["examples"]) for j in judges] == [
        ("new", ["quality"], 1), ("old", ["quality", "complexity"], 3)]
    assert judges[0]["last_scored_at"] > judges[1]["last_scored_at"]
    assert api.get("/api/v1/jobs/999999/judges").status_code == 404


def test_a_score_job_is_asked_for_like_any_job(api, pg_url):
    seed_set = api.ok("post", "/api/v1/seed-sets", 201, json={
        "name": "s", "content": "".join(f'{{"instruction": "Seed task number {i} asks for a thing."}}\n'
                                        for i in range(8))})["id"]
    running = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set})["id"]
    with session_scope(pg_url) as s:
        finished = make_generation_job(s, owner="alice")
    made = api.ok("post", "/api/v1/jobs", 201, json={"kind": "score", "source_job_id": finished,
                                                    "params": {"aspects": ["quality"], "judge_model": "big-judge"}})
    assert made["kind"] == "score" and made["status"] == "queued" and made["source_job_id"] == finished
    assert made["params"]["aspects"] == ["quality"] and made["params"]["only_accepted"] is True
    cases = [
        ({"source_job_id": running}, "source_job_id", "still queued"),
        ({"source_job_id": made["id"]}, "source_job_id", "no examples to score"),
        ({"seed_set_id": seed_set}, "seed_set_id", "source_job_id only"),
        ({}, "source_job_id", "needs source_job_id"),
        ({"source_job_id": finished, "params": {"aspects": ["fluency"]}}, "aspects", ""),
        ({"source_job_id": finished, "params": {"aspects": ["quality", "quality"]}}, "params", "once"),
        ({"source_job_id": finished, "params": {"judge_base_urls": ["http://x"]}}, "judge_base_urls", ""),
    ]
    for body, field, fragment in cases:
        response = api.post("/api/v1/jobs", json={"kind": "score", **body})
        assert response.status_code == 422, (body, response.text)
        assert field in response.text and fragment in response.text, (body, response.text)


def test_a_dataset_build_keeps_the_scores_and_a_removal_query_uses_them(sqlite_url, tmp_path):
    with session_scope(sqlite_url) as s:
        dataset = make_dataset(s)
        build = jobs.requests.create_job(s, jobs.JobRequest("dataset_build", {"dataset_id": dataset.id},
                                                            owner="alice"))
        step = make_generation_job(s, owner="alice")
        a, b, c = (e.instance_id for e in curated(s, step))
        storage.save(s, step, step, [(a, both(4.4, 2.0, "j")), (b, both(1.9, 1.0, "j"))])  # c: not scored
        build.result = {**build.result, "steps": [step]}  # the step has run (a build resumed after it)
        build_id, dataset_id = build.id, dataset.id
    ended = lifecycle.run_job(sqlite_url, build_id, CoreConfig(data_dir=tmp_path))
    assert ended.status == "succeeded", ended.error
    with session_scope(sqlite_url) as s:
        rows = list(v.version_rows(s, dataset_id, 1))
        assert [(r["output"], r["scores"]) for r in rows] == [
            ("Rain on the roof.", {"quality": 4.4, "complexity": 2.0, "judge": "j"}),
            ("1/1", {"quality": 1.9, "complexity": 1.0, "judge": "j"}),
            ("1/2", {})]
        dataset = v.get_dataset_by_id(s, dataset_id)
        version = remove_examples(s, dataset, query=ExampleQuery(score="quality", score_max=2.5))
        assert version.number == 2 and version.counts["removed"] == 1
        assert [r["output"] for r in v.version_rows(s, dataset_id, 2)] == ["Rain on the roof.", "1/2"]


def test_parquet_has_the_judge_columns_with_nulls_when_unscored(sqlite_url, tmp_path):
    with session_scope(sqlite_url) as s:
        job_id = make_generation_job(s)
        a, b, _ = (e.instance_id for e in curated(s, job_id))
        storage.save(s, job_id, None, [(a, both(4.25, 2.5, "j")),
                                       (b, {"quality": js("quality", None, "j", "unparseable"),
                                            "complexity": js("complexity", 3.0, "j")})])
        rows = sources.rows_for_format(s, s.get(Job, job_id), "parquet")
    written = formats.write_parquet_folder(rows, tmp_path / "out")
    assert written.rows == 3
    table = pq.read_table(next((tmp_path / "out").rglob("*.parquet")))
    data = table.to_pylist()
    assert [(r["quality"], r["complexity"], r["judge"]) for r in data] == [
        (4.25, 2.5, "j"), (None, 3.0, "j"), (None, None, None)]
    assert str(table.schema.field("quality").type) == "double"
    assert '"quality": 4.25' in data[0]["scores"] and '"max_rouge_l": 0.2' in data[0]["scores"]


def test_the_score_command_names_a_bad_job_in_one_line(sqlite_url, monkeypatch):
    monkeypatch.setenv("SPROUT_DATABASE_URL", sqlite_url)
    from app.settings import get_settings

    get_settings.cache_clear()
    with session_scope(sqlite_url) as s:
        running = make_generation_job(s, status=JobStatus.running)
    for args, fragment in ((["score", "4242"], "no job with id 4242"),
                           (["score", str(running)], "still running"),
                           (["score", str(running), "--judge-url", "nope"], "--judge-url"),
                           (["score", str(running), "--aspects", "fluency"], "aspects"),
                           (["score", str(running), "--concurrency", "0"], "concurrency: Input should be greater")):
        result = CliRunner().invoke(cli, args)
        assert isinstance(result.exception, CliError), (args, result.output)
        assert fragment in str(result.exception), (args, str(result.exception))


def test_the_judge_has_its_own_server_or_the_generators(tmp_path):
    from app.core.jobs.judging import judge_endpoints
    from app.settings import Settings

    shared = Settings(llm_base_urls="http://gen:8000/v1", llm_model="gen-model", llm_api_key="k",
                      data_dir=tmp_path).core_config()
    assert shared.judge.llm.base_urls == () and shared.judge.llm.model == "gen-model" and shared.judge.llm.api_key == "k"
    own = Settings(llm_base_urls="http://gen:8000/v1", llm_model="gen-model", llm_api_key="k", data_dir=tmp_path,
                   judge_base_urls="http://judge1:8000/v1, http://judge2:8000/v1", judge_api="chat").core_config()
    assert own.judge.llm.base_urls == ("http://judge1:8000/v1", "http://judge2:8000/v1")
    assert own.judge.llm.model is None and own.judge.llm.api_key is None and own.judge.api == "chat"
    # which servers judge: the CLI's, the judge's own, the ones a generation job uses, the generator's configured
    with judge_endpoints(own, ["http://cli:1/v1"], ["http://running:2/v1"]) as urls:
        assert urls == ["http://cli:1/v1"]
    with judge_endpoints(own, None, ["http://running:2/v1"]) as urls:
        assert urls == ["http://judge1:8000/v1", "http://judge2:8000/v1"]
    with judge_endpoints(shared, None, ["http://running:2/v1"]) as urls:
        assert urls == ["http://running:2/v1"]
    with judge_endpoints(shared) as urls:
        assert urls == ["http://gen:8000/v1"]
