"""The jobs layer: a kind is declared once in the registry and every path knows it; the
core imports no shell; the API's export is the CLI's export, byte for byte."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel, Field
from sqlmodel import select
from typer.testing import CliRunner

from app.cli import cli
from app.core import jobs, store
from app.core.jobs import lifecycle
from app.core.jobs.registry import GENERATION_QUEUE, JobKind, Progress
from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.db import session_scope
from app.models import Job, SeedSet
from tests.service_fixtures import api, api_settings, client  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
cli_runner = CliRunner()


# --- a throwaway kind, registered by the test and run through the CLI path -----------------
class CountParams(BaseModel):
    upto: int = Field(3, ge=1, le=1000)


def _count_check(session, request, params):
    if request.seed_set_id is not None:
        raise jobs.JobRequestError("seed_set_id", "a count job starts from nothing")
    return {}


def _count_run(ctx: lifecycle.JobContext):
    """Write one accepted candidate per number through the lifecycle's own commit."""
    counters = {**store.empty_counters()}
    for n in range(1, ctx.params.upto + 1):
        ctx.check_stop()
        record = CandidateRecord(f"Count to {n}.", True, in_pool=True, instances=[InstanceCandidate("", str(n))])
        store.count_record(counters, record)
        with ctx.heartbeat.lock, ctx.session() as session:
            store.commit_batch(session, ctx.job_id, ctx.worker, [record], n, dict(counters))
        ctx.report(counters)
    return {"counted": ctx.params.upto}


@pytest.fixture
def count_kind():
    kind = jobs.register(JobKind(
        name="count_test", params_model=CountParams, queue=GENERATION_QUEUE, run=_count_run, check=_count_check,
        progress=lambda job: Progress(target=job.params.get("upto"), done=int(job.counters.get("accepted") or 0)),
        description="counts (a test kind)",
    ))
    yield kind
    jobs.registry.unregister(kind.name)


def test_a_registered_kind_runs_end_to_end_through_the_cli(count_kind, sqlite_url, monkeypatch, tmp_path):
    monkeypatch.setenv("SPROUT_DATABASE_URL", sqlite_url)
    listed = cli_runner.invoke(cli, ["jobs", "kinds"])
    assert listed.exit_code == 0 and "count_test" in listed.output
    result = cli_runner.invoke(cli, ["jobs", "run", "count_test", "--param", "upto=4"])
    assert result.exit_code == 0, result.output
    with session_scope(sqlite_url) as session:
        job = session.exec(select(Job).where(Job.kind == "count_test")).one()
        rows = store.curated_examples(session, job.id)
    assert job.status == "succeeded" and job.result == {"counted": 4} and job.attempts == 1
    assert job.counters["accepted"] == 4 and [r["output"] for r in rows] == ["1", "2", "3", "4"]
    # its parameters are checked by its own model, its references by its own check
    bad = cli_runner.invoke(cli, ["jobs", "run", "count_test", "--param", "upto=0"])
    assert bad.exit_code != 0 and "upto" in str(bad.exception)
    seeds = tmp_path / "s.jsonl"
    seeds.write_text(json.dumps({"instruction": "Say hi.", "instances": [{"input": "", "output": "hi"}]}) + "\n")
    refused = cli_runner.invoke(cli, ["jobs", "run", "count_test", "--seeds", str(seeds)])
    assert refused.exit_code != 0 and "starts from nothing" in str(refused.exception)
    with session_scope(sqlite_url) as session:  # the refused request left no seed set behind
        assert session.exec(select(SeedSet)).all() == []
    unknown = cli_runner.invoke(cli, ["jobs", "run", "nope"])
    assert unknown.exit_code != 0 and "unknown job kind 'nope'" in str(unknown.exception)


def test_the_api_knows_a_registered_kind(count_kind, api):
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "count_test", "params": {"upto": 2}})
    assert job["progress"]["target"] == 2 and job["progress"]["done"] == 0
    bad = api.post("/api/v1/jobs", json={"kind": "count_test", "params": {"upto": 0}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["body", "params", "upto"]
    unknown = api.post("/api/v1/jobs", json={"kind": "nope"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["loc"] == ["body", "kind"]
    assert "count_test" in unknown.json()["detail"]


def test_a_cancel_requested_while_running_ends_the_kind_cancelled(count_kind, sqlite_url):
    from app.core.config import CoreConfig, JobConfig

    with session_scope(sqlite_url) as session:
        job = jobs.requests.create_job(session, jobs.JobRequest("count_test", {"upto": 1000}))
        job_id = job.id
    config = CoreConfig(jobs=JobConfig(flush_s=0.05))

    def cancel_after_two(counters):
        if counters["accepted"] == 2:
            with session_scope(sqlite_url) as session:
                store.request_cancel(store.get_job(session, job_id))
            import time

            time.sleep(0.3)  # a few heartbeats: the lifecycle notices the request

    ended = lifecycle.run_job(sqlite_url, job_id, config, progress=cancel_after_two)
    assert ended.status == "cancelled" and 2 <= ended.counters["accepted"] < 1000


# --- the import rules -----------------------------------------------------------------------
SHELLS = ("app.api", "app.cli", "app.dashboard", "app.settings", "workers", "fastapi", "celery", "typer", "starlette",
          "uvicorn")


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def _modules() -> dict[str, Path]:
    mods = {}
    for top in ("app", "workers"):
        for path in (ROOT / top).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            mods[name] = path
    return mods


def test_no_core_module_imports_a_shell_or_the_settings():
    forbidden = []
    for name, path in _modules().items():
        if name == "app.core" or name.startswith("app.core."):
            forbidden += [f"{name} -> {imp}" for imp in sorted(_imports(path, name))
                          if any(imp == s or imp.startswith(s + ".") for s in SHELLS)]
    assert not forbidden, forbidden


def test_the_import_graph_has_no_cycle():
    import graphlib

    mods = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in mods.items():
        targets = {resolve(i) for i in _imports(path, name)} - {None, name, "app", "workers"}
        graph[name] = targets
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_the_sft_kind_is_named_only_in_its_own_module():
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in list((ROOT / "app").rglob("*.py")) + list((ROOT / "workers").rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"[\"']sft[\"']", line)]
    assert hits and all(h.startswith("app/core/jobs/sft.py:") for h in hits), hits


def test_a_job_that_decided_nothing_yet_shows_its_llm_requests(sqlite_url):
    """The heartbeat carries the live LLM usage, not only the batch commits (a model that
    answers nothing usable still costs requests and tokens, and the counters say so)."""
    import threading
    import time

    from app.core.config import CoreConfig, JobConfig, LLMConfig
    from app.core.seeds import parse_seeds
    from tests.fault_server import FaultyLLMServer

    _, tasks = parse_seeds("".join(json.dumps({"instruction": f"Seed task {i} asks for a thing."}) + "\n"
                                   for i in range(8)), "self-instruct")
    with session_scope(sqlite_url) as session:
        seed_set = store.import_seed_set(session, "s", "self-instruct", tasks)
        job_id = jobs.requests.create_job(session, jobs.JobRequest("self_instruct", {"target": 5},
                                                                   seed_set_id=seed_set.id)).id
    empty = json.dumps({"data": [{"id": "fault-model"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2},
                        "choices": [{"text": "", "index": 0, "finish_reason": "stop"}]})
    with FaultyLLMServer(default=(200, empty), delay_s=0.05) as server:  # every answer is empty: no task in it
        config = CoreConfig(llm=LLMConfig(base_urls=(server.url,), concurrency=2), jobs=JobConfig(flush_s=0.1))
        thread = threading.Thread(target=lifecycle.run_job, args=(sqlite_url, job_id, config))
        thread.start()
        try:
            seen = None
            deadline = time.monotonic() + 300  # a hang guard on a loaded machine, not a timing assertion
            while seen is None and time.monotonic() < deadline and thread.is_alive():
                with session_scope(sqlite_url) as session:
                    counters = store.get_job(session, job_id).counters
                if counters.get("llm_requests", 0) >= 3 and counters.get("prompt_tokens", 0) > 0:
                    seen = counters
                time.sleep(0.05)
        finally:
            with session_scope(sqlite_url) as session:
                store.request_cancel(store.get_job(session, job_id))
            thread.join()
    assert seen is not None, "the stored counters never showed an LLM request"
    assert seen["generated"] == 0 and seen["prompt_tokens"] > 0 and seen["completion_tokens"] > 0
    with session_scope(sqlite_url) as session:
        assert store.get_job(session, job_id).status == "cancelled"
