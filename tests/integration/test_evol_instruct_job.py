"""Real Evol-Instruct jobs against the embedded model, stored in PostgreSQL.

Kept tiny (pools of 3-4 instructions, 2 rounds, short token limits) because the model
runs on a small shared CPU. Checks what was stored: roots and evolutions with their
parent, operation and round; every failure with a named rule and its parent evolved
again in the next round; counters that agree with the rows; a resumed job that goes on
without storing anything twice; the lineage export.
"""

import json
from collections import Counter

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from app.cli import cli
from app.core import export as exporter
from app.core import jobs, lineage, store
from app.core.jobs import lifecycle
from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.core.methods.evol_rules import EVOL_RULES, copies_scaffolding, sorry_response, stopwords_only
from app.core.params import EVOL_OPERATIONS
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.models import Instance, Instruction
from app.settings import Settings

pytestmark = pytest.mark.integration

POOL = [
    {"instruction": "Make a packing list for a hiking trip.",
     "instances": [{"input": "", "output": "Boots, water, a map, snacks and a warm jacket."}]},
    {"instruction": "Convert the given distance from miles to kilometers.",
     "instances": [{"input": "26.2 miles", "output": "About 42.2 kilometers."}]},
    {"instruction": "Explain why the sky is blue.",
     "instances": [{"input": "", "output": "Air scatters blue light more than red light."}]},
    {"instruction": "Give three tips for staying focused while studying.",
     "instances": [{"input": "", "output": "1. Put the phone away. 2. Work in 25-minute blocks. 3. Keep water nearby."}]},
]
SETTINGS = dict(job_batch_size=4, job_flush_s=0.5, llm_concurrency=4)


def pool_file(tmp_path, tasks=POOL):
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks), encoding="utf-8")
    return path


def make_job(url, path, **params):
    settings = Settings(**SETTINGS)
    fmt, tasks = load_seed_file(path)
    p = jobs.get("evol_instruct").validate_params(params, settings.core_config().defaults)
    with session_scope(url) as s:
        seed_set = store.import_seed_set(s, path.name, fmt, tasks)
        job = store.create_job(s, "evol_instruct", p.model_dump(mode="json"), seed_set_id=seed_set.id)
    return settings, job.id


def rows(url, job_id):
    with session_scope(url) as s:
        ins = s.exec(select(Instruction).where(Instruction.job_id == job_id).order_by(Instruction.seq)).all()
        inst = s.exec(select(Instance).where(Instance.job_id == job_id).order_by(Instance.id)).all()
        job = store.get_job(s, job_id)
    return job, ins, inst


def check_lineages(ins, n_roots: int, rounds: int) -> dict[int, list]:
    """Every lineage is evolved once per round, from its last survivor: the parent of a
    round-r evolution is the round-(r-1) one if that survived, else the same parent again."""
    roots = [r for r in ins if r.parent_id is None]
    assert [r.round for r in roots] == [0] * n_roots and all(r.operation is None for r in roots)
    assert all(r.fate == "accepted" and r.in_pool for r in roots)
    by_id = {r.id: r for r in ins}
    root_of = {r.id: r.id for r in roots}
    chains: dict[int, list] = {r.id: [] for r in roots}
    for r in ins:
        if r.parent_id is None:
            continue
        root_of[r.id] = root_of[r.parent_id]
        chains[root_of[r.id]].append(r)
    for root_id, evolutions in chains.items():
        assert [e.round for e in evolutions] == list(range(1, rounds + 1))
        tip = root_id
        for e in evolutions:
            assert e.parent_id == tip, (e.round, e.instruction)
            assert e.operation in EVOL_OPERATIONS
            if e.fate == "accepted":
                tip = e.id  # survived: the next round evolves it
            else:
                # failed (by a rule of the method, or as a copy of an evaluation task the trainer
                # scores: this pool shares a default seed task): the parent goes back
                assert (e.rule in EVOL_RULES or e.rule == "contaminated") and not e.in_pool
        assert by_id[tip].fate == "accepted"
    return chains


def check_counters(job, ins, inst):
    c = job.counters
    assert c["generated"] == len(ins)
    assert c["accepted"] == sum(r.fate == "accepted" for r in ins)
    assert c["rejected"] == dict(Counter(r.rule for r in ins if r.fate == "rejected"))
    assert c["in_pool"] == sum(r.in_pool for r in ins)
    assert c["instances"] == sum(i.fate == "accepted" for i in inst)
    ops: dict[str, dict[str, int]] = {}
    for r in ins:
        if r.operation:
            ops.setdefault(r.operation, {"accepted": 0, "rejected": 0})[r.fate] += 1
    assert c["operations"] == ops
    assert c["llm_requests"] > 0 and c["prompt_tokens"] > 0


def test_two_rounds_with_lineage_counters_resume_and_export(pg_url, llm_base_url, tmp_path):
    settings, job_id = make_job(pg_url, pool_file(tmp_path), rounds=1, seed=3, max_tokens=64,
                                response_max_tokens=96)
    job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[llm_base_url])
    assert job.status == "succeeded", job.error
    _, first, _ = rows(pg_url, job_id)
    assert len(first) == 4 + 4
    # the same job asked for a second round, as a worker resuming it would see it
    with session_scope(pg_url) as s:
        stored = store.get_job(s, job_id)
        stored.params = {**stored.params, "rounds": 2}
        store.reset_for_retry(stored)
    job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[llm_base_url])
    assert job.status == "succeeded", job.error
    job, ins, inst = rows(pg_url, job_id)
    assert job.attempts == 2
    assert [(r.id, r.instruction) for r in ins[: len(first)]] == [(r.id, r.instruction) for r in first]
    assert [r.seq for r in ins] == list(range(1, 4 + 8 + 1))

    chains = check_lineages(ins, n_roots=4, rounds=2)
    evolutions = [e for chain in chains.values() for e in chain]
    # a real run of 8 evolutions by a 270M base model keeps some and fails others
    assert any(e.fate == "accepted" for e in evolutions)
    assert any(e.fate == "rejected" for e in evolutions)

    instances = {}
    for i in inst:
        instances.setdefault(i.instruction_id, []).append(i)
    for root, task in zip(ins[:4], POOL):  # roots keep their source instances
        assert root.instruction == task["instruction"]
        assert [(i.input, i.output) for i in instances[root.id]] == [(x["input"], x["output"]) for x in task["instances"]]
    for e in evolutions:
        if e.fate == "accepted":
            (response,) = instances[e.id]  # one instance: input "", output the response
            assert response.input == "" and response.output and response.fate == "accepted"
            assert not copies_scaffolding(e.instruction)
            assert not sorry_response(response.output) and not stopwords_only(response.output)
            assert e.detail["judge"] in ("not_equal", "unparseable") and "judge_answer" in e.detail
            assert e.max_rouge_l is not None and e.max_rouge_l <= 0.7
        elif e.rule == "no_information_gain":
            assert e.detail["judge"] in ("equal", "identical", "close_to_parent")
        elif e.rule in ("sorry_response", "stopwords_only_response", "truncated_response"):
            assert len(instances[e.id]) == 1 and instances[e.id][0].fate == "rejected"
    check_counters(job, ins, inst)

    # export: every surviving generation with its lineage, or each lineage's last one
    with session_scope(pg_url) as s:
        every = lineage.lineage_examples(s, job_id)
        final = lineage.lineage_examples(s, job_id, final_only=True)
    survivors = [r for r in ins if r.fate == "accepted"]
    assert sorted({row["id"] for row in every}) == sorted(r.id for r in survivors)
    by_id = {r.id: r for r in ins}
    for row in every:
        steps = row["lineage"]
        assert steps[0]["operation"] is None and steps[0]["round"] == 0
        assert steps[-1]["instruction"] == row["instruction"] == by_id[row["id"]].instruction
        assert [s["round"] for s in steps] == sorted(s["round"] for s in steps)
        assert all(s["operation"] in EVOL_OPERATIONS for s in steps[1:])
    assert len({row["lineage"][0]["instruction"] for row in final}) == len(final) == 4
    path = tmp_path / "evol.jsonl"
    assert exporter.write(final, "messages", path) == 4
    written = [json.loads(line) for line in path.read_text().splitlines()]
    # the user turn is the last step's instruction (a root that no evolution outlived keeps its input after it)
    assert all(w["lineage"] and w["messages"][0]["content"].startswith(w["lineage"][-1]["instruction"])
               for w in written)


def test_failed_evolutions_put_their_parent_back(pg_url, llm_base_url):
    """A one-token rewrite always fails (cut by the limit, or empty), so round 2 evolves the
    roots again. The pool comes from a finished Self-Instruct job's accepted instructions."""
    with session_scope(pg_url) as s:
        source = store.create_job(s, "self_instruct", {})
        kept = [CandidateRecord(t["instruction"], accepted=True, in_pool=True,
                                instances=[InstanceCandidate(x["input"], x["output"]) for x in t["instances"]])
                for t in POOL[:3]]
        dropped = CandidateRecord("Draw a map.", accepted=False, rule="blacklisted_word")
        store.write_records(s, source.id, [kept[0], dropped, kept[1], kept[2]], 1)
        source.status = "succeeded"
        settings = Settings(**SETTINGS)
        params = jobs.get("evol_instruct").validate_params({"rounds": 2, "seed": 1, "max_tokens": 1}, settings.core_config().defaults)
        job_id = store.create_job(s, "evol_instruct", params.model_dump(mode="json"), source_job_id=source.id).id
    job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[llm_base_url])
    assert job.status == "succeeded", job.error
    job, ins, inst = rows(pg_url, job_id)
    assert [r.instruction for r in ins[:3]] == [t["instruction"] for t in POOL[:3]]
    chains = check_lineages(ins, n_roots=3, rounds=2)
    for root_id, (first, second) in chains.items():
        assert first.fate == second.fate == "rejected"
        assert first.rule in ("truncated_evolution", "empty") and second.rule in ("truncated_evolution", "empty")
        assert first.parent_id == second.parent_id == root_id
    check_counters(job, ins, inst)
    assert job.counters["accepted"] == 3 and sum(job.counters["rejected"].values()) == 6
    with session_scope(pg_url) as s:
        final = lineage.lineage_examples(s, job_id, final_only=True)
        evolved_only = lineage.lineage_examples(s, job_id, include_roots=False)
    assert [row["instruction"] for row in final] == [t["instruction"] for t in POOL[:3]]
    assert all(len(row["lineage"]) == 1 for row in final) and evolved_only == []


def test_the_cli_runs_an_evol_job_and_exports_its_lineage(pg_url, llm_base_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SPROUT_DATABASE_URL", pg_url)
    monkeypatch.setenv("SPROUT_LLM_BASE_URLS", llm_base_url)
    out = tmp_path / "data.json"
    result = CliRunner().invoke(cli, [
        "generate", "--method", "evol-instruct", "--from", str(pool_file(tmp_path, POOL[:3])), "--rounds", "1",
        "--seed", "2", "-p", "max_tokens=1", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "Evol-Instruct of 3 instructions (pool.jsonl), 1 round\n" in result.output
    data = json.loads(out.read_text())
    assert [row["instruction"] for row in data] == [t["instruction"] for t in POOL[:3]]
    assert all(row["lineage"] == [{"instruction": row["instruction"], "operation": None, "round": 0}] for row in data)
    job_id = int(result.output.rsplit("job id:", 1)[1].split()[0])
    final = tmp_path / "final.jsonl"
    result = CliRunner().invoke(cli, ["export", str(job_id), "-f", "prompt-completion", "-o", str(final),
                                      "--final-only", "--no-roots"])
    assert result.exit_code == 0, result.output
    assert final.read_text() == ""
