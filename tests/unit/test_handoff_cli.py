"""`sprout export` in the new formats and `sprout handoff`: check, bundle, destinations,
deliver, deliveries, retry, compare — one line for an error the user can fix."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.core import jobs, store
from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.core.seeds import parse_seeds
from app.db import session_scope
from app.models import Job
from tests.handoff_fixtures import tiny_model_dir  # noqa: F401
from tests.service_fixtures import store_candidates

runner = CliRunner()
SEEDS = "".join(json.dumps({"instruction": f"Seed task number {i} asks for something."}) + "\n" for i in range(8))


@pytest.fixture
def job(sqlite_url, monkeypatch, tiny_model_dir):
    monkeypatch.setenv("SPROUT_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SPROUT_HANDOFF__TOKENIZER", str(tiny_model_dir))
    monkeypatch.setenv("SPROUT_HANDOFF__MAX_LENGTH", "256")
    return make_job(sqlite_url)


def make_job(url, outputs=("Rain on the roof.", "1/2")):
    _, tasks = parse_seeds(SEEDS, "self-instruct")
    with session_scope(url) as session:
        seed_set = store.import_seed_set(session, "seeds", "self-instruct", tasks)
        job_id = jobs.requests.create_job(session, jobs.JobRequest("self_instruct", {"target": 2},
                                                                   seed_set_id=seed_set.id)).id
    store_candidates(url, job_id, [
        CandidateRecord("Write a haiku about rain.", True, in_pool=True, instances=[InstanceCandidate("", outputs[0])]),
        CandidateRecord("Convert 50% to a fraction.", True, in_pool=True, instances=[InstanceCandidate("50%", outputs[1])]),
    ])
    with session_scope(url) as session:
        session.get(Job, job_id).status = "succeeded"
    return job_id


def run(*args):
    return runner.invoke(cli, [str(a) for a in args])


def test_export_writes_sharegpt_and_a_parquet_folder(job, tmp_path):
    from datasets import load_dataset

    result = run("export", job, "--format", "sharegpt", "--out", tmp_path / "s.jsonl")
    assert result.exit_code == 0, result.output
    first = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])
    assert first["conversations"][1] == {"from": "gpt", "value": "Rain on the roof."} and first["job_id"] == job
    result = run("export", job, "--format", "parquet", "--out", tmp_path / "p")
    assert result.exit_code == 0 and "wrote 2 examples" in result.output
    assert load_dataset(str(tmp_path / "p"), split="train")["output"] == ["Rain on the roof.", "1/2"]
    again = run("export", job, "--format", "parquet", "--out", tmp_path / "p")
    assert again.exit_code == 1 and "already exists" in str(again.exception or again.output)
    bad = run("export", job, "--format", "csv", "--out", tmp_path / "x")
    assert bad.exit_code == 1 and "unknown format 'csv'" in str(bad.exception)


def test_check_passes_and_fails_naming_the_row(job, sqlite_url):
    ok = run("handoff", "check", job)
    assert ok.exit_code == 0, ok.output
    assert "preflight passed: 2 rows" in ok.output
    bad_job = make_job(sqlite_url, outputs=("Rain on the roof.", ""))
    failed = run("handoff", "check", bad_job, "--json")
    assert failed.exit_code == 1
    report = json.loads(failed.output)
    assert report["ok"] is False and report["problems"][0]["check"] == "empty_output" and report["problems"][0]["index"] == 1
    missing = run("handoff", "check", 999)
    assert missing.exit_code == 1 and "no job with id 999" in str(missing.exception)
    bad_tokenizer = run("handoff", "check", job, "--tokenizer", "/nowhere/tok")
    assert bad_tokenizer.exit_code == 1 and "cannot load the tokenizer" in str(bad_tokenizer.exception)


def test_bundle_then_deliver_to_a_named_folder(job, tmp_path):
    result = run("handoff", "bundle", job, "--out", tmp_path / "b", "--name", "rain", "-f", "messages", "-f", "parquet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["README.md", "axolotl.yaml", "data",
                                                                 "dataset_info.json", "manifest.json",
                                                                 "messages.jsonl", "preflight.json"]
    exists = run("handoff", "bundle", job, "--out", tmp_path / "b")
    assert exists.exit_code == 1 and "already exists" in str(exists.exception)

    added = run("handoff", "destinations", "add", "cluster", "--folder", tmp_path / "shared")
    assert added.exit_code == 0, added.output
    twice = run("handoff", "destinations", "add", "cluster", "--folder", tmp_path / "shared")
    assert twice.exit_code == 1 and "exists already" in str(twice.exception)
    assert "cluster" in run("handoff", "destinations", "list").output
    delivered = run("handoff", "deliver", job, "--to", "cluster", "--name", "rain")
    assert delivered.exit_code == 0, delivered.output
    assert f"done (2 rows, job-{job})" in delivered.output
    assert (tmp_path / "shared" / "rain" / f"job-{job}" / "manifest.json").is_file()
    listed = json.loads(run("handoff", "deliveries", "--json").output)
    assert [(d["status"], d["destination"]["name"]) for d in listed] == [("done", "cluster")]
    assert "deliveries tried: none" in run("handoff", "retry").output
    nowhere = run("handoff", "deliver", job, "--to", "nowhere")
    assert nowhere.exit_code == 1 and "no destination named 'nowhere'" in str(nowhere.exception)

    bad_mode = run("handoff", "destinations", "add", "private", "--folder", tmp_path / "private", "--mode", "rw")
    assert bad_mode.exit_code == 1 and str(bad_mode.exception).startswith("mode: must be an octal file mode")
    assert run("handoff", "destinations", "add", "private", "--folder", tmp_path / "private", "--mode", "640")\
        .exit_code == 0
    assert run("handoff", "deliver", job, "--to", "private", "--name", "rain").exit_code == 0
    delivered_file = tmp_path / "private" / "rain" / f"job-{job}" / "messages.jsonl"
    assert delivered_file.stat().st_mode & 0o777 == 0o640


def test_compare_promotes_or_holds(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"eval_loss_after": 1.0, "rouge_l_after": 0.3}))
    (tmp_path / "b.json").write_text(json.dumps({"eval_loss_after": 0.8, "rouge_l_after": 0.35}))
    better = run("handoff", "compare", tmp_path / "a.json", tmp_path / "b.json")
    assert better.exit_code == 0 and "promote" in better.output
    worse = run("handoff", "compare", tmp_path / "b.json", tmp_path / "a.json")
    assert worse.exit_code == 1 and "hold" in worse.output
    loose = run("handoff", "compare", tmp_path / "b.json", tmp_path / "a.json", "--tolerance", "eval_loss_after=0.5",
                "--tolerance", "rouge_l_after=0.1")
    assert loose.exit_code == 0, loose.output
    typo = run("handoff", "compare", tmp_path / "a.json", tmp_path / "b.json", "--tolerance", "loss=1")
    assert typo.exit_code == 1 and "must be one of" in str(typo.exception)
