"""After a job ends, written once: the lifecycle makes a succeeded job's follow-up jobs in its
finishing transaction; `dispatch.run_job` announces `job_finished` and a dispatcher sends the
follow-ups on (in-process here); the API imports no worker code."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from pydantic import BaseModel, Field
from sqlmodel import select

from app.core import jobs, store
from app.core.config import CoreConfig
from app.core.jobs import dispatch, lifecycle
from app.core.jobs.outcome import FollowUp, Outcome
from app.core.jobs.registry import GENERATION_QUEUE, JobKind, Progress
from app.core.methods.candidates import JobInputError
from app.db import session_scope
from app.models import Job, Webhook, WebhookDelivery

ROOT = Path(__file__).resolve().parents[2]


class ChainParams(BaseModel):
    depth: int = Field(0, ge=0, le=5)  # how many follow-ups after this one, one after the other
    fail: str = Field("", description="'recorded': the follow-up raises and is recorded; 'fatal': it fails the job; "
                                      "'taken': another worker takes the job over before it finishes")


def _chain_run(ctx: lifecycle.JobContext):
    params = ctx.params
    result = {"depth": params.depth}
    if params.fail == "recorded":
        def broken(session, out):
            session.add(Job(kind="chain_test", params={"depth": 0}))  # rolled back with the savepoint
            session.flush()
            raise RuntimeError("no room")
        return Outcome(result, [FollowUp(broken, recorded_as="followup_error")])
    if params.fail == "fatal":
        def refused(session, out):
            raise JobInputError("the follow-up cannot be made")
        return Outcome(result, [FollowUp(refused)])
    if params.fail == "taken":
        with ctx.session() as session:
            store.get_job(session, ctx.job_id).worker = "another-host:1"
    if params.depth == 0:
        return result

    def child(session, out):
        made = jobs.requests.create_job(session, jobs.JobRequest("chain_test", {"depth": params.depth - 1}))
        out["child"] = made.id
        return int(made.id)
    return Outcome(result, [FollowUp(child)])


@pytest.fixture
def chain_kind():
    kind = jobs.register(JobKind(
        name="chain_test", params_model=ChainParams, queue=GENERATION_QUEUE, run=_chain_run,
        check=lambda session, request, params: {}, progress=lambda job: Progress(target=None, done=0),
        description="makes a follow-up of itself (a test kind)", produces_examples=False,
    ))
    yield kind
    jobs.registry.unregister(kind.name)


def _job(url: str, params: dict) -> int:
    with session_scope(url) as session:
        return int(jobs.requests.create_job(session, jobs.JobRequest("chain_test", params)).id)


def test_follow_ups_are_made_as_the_job_succeeds_and_run_in_process_one_after_the_other(chain_kind, sqlite_url):
    first = _job(sqlite_url, {"depth": 2})
    ran = dispatch.InProcessDispatcher(sqlite_url, CoreConfig())
    ran.submit(first, "chain_test")
    assert [j.id for j in ran.done] == [first, first + 1, first + 2]
    assert all(j.status == "succeeded" for j in ran.done)
    assert ran.done[0].result == {"depth": 2, "child": first + 1, "followups": [first + 1]}
    assert ran.done[2].result == {"depth": 0}  # the last makes none
    ran.submit(first, "chain_test")  # a job that is no longer queued is not run again
    assert len(ran.done) == 3


def test_a_follow_up_that_fails_is_recorded_or_fails_the_job_and_leaves_nothing(chain_kind, sqlite_url):
    recorded = lifecycle.run_job(sqlite_url, _job(sqlite_url, {"fail": "recorded"}), CoreConfig())
    assert recorded.status == "succeeded"
    assert recorded.result == {"depth": 0, "followup_error": "RuntimeError: no room"}
    fatal = lifecycle.run_job(sqlite_url, _job(sqlite_url, {"fail": "fatal"}), CoreConfig())
    assert fatal.status == "failed" and fatal.error == "the follow-up cannot be made"
    with session_scope(sqlite_url) as session:  # the savepoint's job was rolled back
        assert [j.id for j in session.exec(select(Job))] == [recorded.id, fatal.id]


def test_a_cancelled_job_makes_no_follow_up(chain_kind, sqlite_url):
    job_id = _job(sqlite_url, {"depth": 1})
    with session_scope(sqlite_url) as session:
        store.request_cancel(store.get_job(session, job_id))
    ended = dispatch.run_job(sqlite_url, job_id, CoreConfig(), dispatch.NoDispatcher())
    assert ended.status == "cancelled"
    with session_scope(sqlite_url) as session:
        assert [j.id for j in session.exec(select(Job))] == [job_id]


def test_a_job_whose_claim_was_taken_over_makes_no_follow_up(chain_kind, sqlite_url):
    job_id = _job(sqlite_url, {"depth": 1, "fail": "taken"})
    ended = lifecycle.run_job(sqlite_url, job_id, CoreConfig())
    assert ended.status == "running" and ended.worker == "another-host:1"  # its new holder's to finish
    with session_scope(sqlite_url) as session:
        assert [j.id for j in session.exec(select(Job))] == [job_id]


def test_a_dispatched_job_announces_job_finished(chain_kind, sqlite_url):
    with session_scope(sqlite_url) as session:
        session.add(Webhook(url="http://127.0.0.1:9/hook", secret="s", events=["job_finished"], owner=None,
                            active=True))
    job_id = _job(sqlite_url, {"depth": 0})
    dispatch.run_job(sqlite_url, job_id, CoreConfig(), dispatch.NoDispatcher())
    with session_scope(sqlite_url) as session:
        [sent] = session.exec(select(WebhookDelivery)).all()
    assert sent.event == "job_finished" and sent.source_id == job_id
    assert json.loads(sent.body)["data"]["job"]["status"] == "succeeded"


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_the_api_imports_nothing_from_the_workers_even_through_other_modules():
    """Walks every import reachable from app/api (within the repository) and fails on `workers`."""
    def path_of(name: str) -> Path | None:
        while name:
            base = ROOT.joinpath(*name.split("."))
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
            name = name.rpartition(".")[0]
        return None

    seen: dict[Path, str] = {}
    todo = [(p, "app/api") for p in (ROOT / "app" / "api").rglob("*.py")]
    reached = []
    while todo:
        path, via = todo.pop()
        if path in seen:
            continue
        seen[path] = via
        for name in _imports(path):
            if name == "workers" or name.startswith("workers."):
                reached.append(f"{path.relative_to(ROOT)} -> {name} (via {via})")
            target = path_of(name)
            if target is not None and target not in seen:
                todo.append((target, str(path.relative_to(ROOT))))
    assert len(seen) > 20 and not reached, reached


def test_no_api_or_cli_module_imports_a_siblings_private_helper():
    """Helpers two route (or command) modules share live in a public module."""
    hits = []
    for top in ("api", "cli"):
        for path in (ROOT / "app" / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"app.{top}"):
                    hits += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                             if a.name.startswith("_")]
    assert not hits, hits
