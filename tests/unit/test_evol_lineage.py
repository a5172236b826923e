"""Lineage rows and the export options (every generation, final only, no roots), on a job
written through the runner's own `store.write_records`, and the CLI's one-line errors."""

import json

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from app.cli import cli
from app.cli.common import CliError
from app.core import lineage, store
from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.db import session_scope
from app.models import Job

cli_runner = CliRunner()


def evolved(text, parent, op, round_, accepted=True, response="An answer."):
    return CandidateRecord(text, accepted=accepted, rule=None if accepted else "sorry_response", parent=parent,
                           operation=op, round=round_, in_pool=accepted, instances=[InstanceCandidate("", response)])


@pytest.fixture
def evol_job(sqlite_url):
    """Two lineages over 2 rounds: A -> A1 -> A2, and B (its round 1 fails, round 2 survives) -> B2;
    C never survives an evolution, and D is a root without an instance."""
    a = CandidateRecord("Root A.", accepted=True, in_pool=True, instances=[InstanceCandidate("in A", "out A")])
    b = CandidateRecord("Root B.", accepted=True, in_pool=True, instances=[InstanceCandidate("", "out B")])
    c = CandidateRecord("Root C.", accepted=True, in_pool=True, instances=[InstanceCandidate("", "out C")])
    d = CandidateRecord("Root D.", accepted=True, in_pool=True)
    a1 = evolved("A, deeper.", a, "deepening", 1)
    b1 = evolved("B, sorry.", b, "add_constraints", 1, accepted=False, response="Sorry.")
    c1 = evolved("C, sorry.", c, "in_breadth", 1, accepted=False, response="Sorry.")
    a2 = evolved("A, deeper, concrete.", a1, "concretizing", 2)
    b2 = evolved("B, in breadth.", b, "in_breadth", 2)
    c2 = evolved("C, sorry again.", c, "deepening", 2, accepted=False, response="Sorry.")
    with session_scope(sqlite_url) as s:
        job = store.create_job(s, "evol_instruct", {})
        store.write_records(s, job.id, [a, b, c, d], 1)
        store.write_records(s, job.id, [a1, b1, c1, a2, b2, c2], 5)
        job_id = job.id
    return sqlite_url, job_id


def rows_of(url, job_id, **kw):
    with session_scope(url) as s:
        return lineage.lineage_examples(s, job_id, **kw)


def test_every_surviving_generation_by_default(evol_job):
    rows = rows_of(*evol_job)
    assert [r["instruction"] for r in rows] == ["Root A.", "Root B.", "Root C.", "A, deeper.",
                                                "A, deeper, concrete.", "B, in breadth."]
    by = {r["instruction"]: r for r in rows}
    assert by["Root A."]["lineage"] == [{"instruction": "Root A.", "operation": None, "round": 0}]
    assert (by["Root A."]["input"], by["Root A."]["output"]) == ("in A", "out A")
    assert by["A, deeper, concrete."]["lineage"] == [
        {"instruction": "Root A.", "operation": None, "round": 0},
        {"instruction": "A, deeper.", "operation": "deepening", "round": 1},
        {"instruction": "A, deeper, concrete.", "operation": "concretizing", "round": 2},
    ]
    # B's failed round-1 evolution is not in its lineage: round 2 evolved the root again
    assert [step["instruction"] for step in by["B, in breadth."]["lineage"]] == ["Root B.", "B, in breadth."]
    assert all("sorry" not in r["instruction"] for r in rows)


def test_final_only_keeps_each_lineage_tip(evol_job):
    rows = rows_of(*evol_job, final_only=True)
    assert [r["instruction"] for r in rows] == ["Root C.", "A, deeper, concrete.", "B, in breadth."]
    rows = rows_of(*evol_job, final_only=True, include_roots=False)
    assert [r["instruction"] for r in rows] == ["A, deeper, concrete.", "B, in breadth."]


def test_no_roots(evol_job):
    rows = rows_of(*evol_job, include_roots=False)
    assert [r["instruction"] for r in rows] == ["A, deeper.", "A, deeper, concrete.", "B, in breadth."]


def test_the_default_rows_are_the_curated_rows_plus_lineage(evol_job):
    url, job_id = evol_job
    with session_scope(url) as s:
        curated = store.curated_examples(s, job_id)
    assert [{k: v for k, v in r.items() if k != "lineage"} for r in rows_of(url, job_id)] == curated


def test_export_cli_writes_lineage(evol_job, tmp_path, monkeypatch):
    url, job_id = evol_job
    monkeypatch.setenv("SPROUT_DATABASE_URL", url)
    out = tmp_path / "evol.jsonl"
    result = cli_runner.invoke(cli, ["export", str(job_id), "--format", "messages", "--out", str(out), "--final-only"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3
    assert lines[1]["messages"][0] == {"role": "user", "content": "A, deeper, concrete."}
    assert [step["round"] for step in lines[1]["lineage"]] == [0, 1, 2]
    out2 = tmp_path / "evol.json"
    result = cli_runner.invoke(cli, ["export", str(job_id), "--out", str(out2), "--no-roots"])
    assert result.exit_code == 0, result.output
    assert [r["instruction"] for r in json.loads(out2.read_text())] == ["A, deeper.", "A, deeper, concrete.", "B, in breadth."]


def error_of(result) -> str:
    assert result.exit_code != 0
    assert isinstance(result.exception, CliError), result.exception
    assert "\n" not in str(result.exception)
    return str(result.exception)


def test_final_only_on_a_self_instruct_job_is_a_one_line_error(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SPROUT_DATABASE_URL", sqlite_url)
    with session_scope(sqlite_url) as s:
        job_id = store.create_job(s, "self_instruct", {}).id
    result = cli_runner.invoke(cli, ["export", str(job_id), "--out", str(tmp_path / "x.json"), "--final-only"])
    assert "evol_instruct" in error_of(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "wizard"], "unknown method"),
        (["--seeds", "/nonexistent/seeds.jsonl"], "no such file"),  # the Self-Instruct path still checks
        (["--target", "0"], "target"),
        (["--from", "seeds.jsonl"], "--method evol-instruct"),
        (["--rounds", "2"], "--method evol-instruct"),
        (["--method", "evol-instruct", "--target", "5"], "--rounds"),
        (["--method", "evol-instruct", "--rounds", "0"], "rounds"),
        (["--method", "evol-instruct", "-p", "operations={\"summarize\": 1}"], "unknown operation"),
        (["--method", "evol-instruct", "--from", "/nonexistent/pool.jsonl"], "no such file"),
        (["--method", "evol-instruct", "--from", "99"], "no job with id 99"),
    ],
)
def test_generate_refuses_bad_input_in_one_line(args, message, sqlite_url, monkeypatch):
    monkeypatch.setenv("SPROUT_DATABASE_URL", sqlite_url)
    assert message in error_of(cli_runner.invoke(cli, ["generate", *args]))


def test_generate_refuses_a_source_job_that_cannot_be_evolved(sqlite_url, monkeypatch):
    monkeypatch.setenv("SPROUT_DATABASE_URL", sqlite_url)
    with session_scope(sqlite_url) as s:
        running = store.create_job(s, "self_instruct", {})
        running.status = "running"
        empty = store.create_job(s, "self_instruct", {})
        empty.status = "succeeded"
        ids = running.id, empty.id
    assert "still running" in error_of(cli_runner.invoke(cli, ["generate", "-m", "evol-instruct", "--from", str(ids[0])]))
    assert "no accepted instructions" in error_of(
        cli_runner.invoke(cli, ["generate", "-m", "evol-instruct", "--from", str(ids[1])])
    )
    with session_scope(sqlite_url) as s:
        assert [j.id for j in s.exec(select(Job)).all()] == list(ids)  # no job was created
