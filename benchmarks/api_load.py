"""Benchmark: the API under N concurrent clients, on PostgreSQL.

Usage (from the repository root):
    .venv/bin/python benchmarks/api_load.py                  # 10, 50, 100, 200 clients, 15 s each
    .venv/bin/python benchmarks/api_load.py --seconds 5 --clients 10,100
    .venv/bin/python benchmarks/api_load.py --url http://host:8000 --key sk_...   # a running API

By default it makes a PostgreSQL database of its own (`--pg-admin-url`), migrates it, stores
an API key, a seed set and `--jobs` jobs, starts a real `sprout api` process (uvicorn, one
server process) on a free port, and drops the database at the end. With `--url`/`--key` it
loads an API that is already running and reads its job ids from `GET /api/v1/jobs`.

Each client is an `httpx.AsyncClient` of its own (one keep-alive connection) that sends, one
after the other for `--seconds`, `GET /api/v1/jobs` and `GET /api/v1/jobs/{id}` for a random
job. Printed per client count: requests/s, p50 and p99 latency, and errors (an answer other
than 200, or no answer within `--timeout`), the status codes seen, and two ratios against
the baseline measured first in the same run: `GET /healthz` (no database, no key) at 10
clients.

Target (issue 9): 100 clients, 0 errors, p99 under 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEEDS = ROOT / "seeds" / "default.jsonl"
SPROUT = ROOT / ".venv" / "bin" / "sprout"


@dataclass
class Phase:
    name: str
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def rate(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# --- the API under test ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalApi:
    """A database of its own, filled with a key and jobs, and a `sprout api` process on it."""

    def __init__(self, pg_admin_url: str, redis_url: str, jobs: int, log_path: Path):
        from sqlalchemy import create_engine, text

        self.admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
        self.name = f"sprout_bench_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.db_url = pg_admin_url.rsplit("/", 1)[0] + f"/{self.name}"
        self.redis_url, self.n_jobs, self.log_path = redis_url, jobs, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> tuple[str, str]:
        from app import db
        from app.api import keys
        from app.core import store
        from app.core.params import SelfInstructParams
        from app.core.seeds import load_seed_file

        db.upgrade(self.db_url)
        fmt, tasks = load_seed_file(SEEDS)
        with db.session_scope(self.db_url) as session:
            key = keys.create_key(session, "bench", "bench")[1]
            seed_set = store.import_seed_set(session, "bench", fmt, tasks, owner="bench")
            for i in range(self.n_jobs):
                params = SelfInstructParams(target=10 + i, seed=i).model_dump(mode="json")  # as the API stores them
                store.create_job(session, "self_instruct", params, seed_set_id=seed_set.id, owner="bench")
        db.dispose_engines()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")}
        env.update(SPROUT_DATABASE_URL=self.db_url, SPROUT_REDIS_URL=self.redis_url,
                   SPROUT_DATA_DIR=str(self.log_path.parent / "data"), PYTHONPATH=str(ROOT))
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([str(SPROUT), "api", "--port", str(port), "--log-level", "warning"],
                                         env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"`sprout api` exited ({self.proc.returncode}); see {self.log_path}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    return url, key
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"`sprout api` did not answer within 60 s; see {self.log_path}")
            time.sleep(0.2)

    def stop(self) -> None:
        from sqlalchemy import text

        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        with self.admin.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'"))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}"'))
        self.admin.dispose()


# --- load ----------------------------------------------------------------------------------
async def run_phase(url: str, key: str | None, job_ids: list[int], phase: Phase, timeout: float,
                    paths: str) -> Phase:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    stop_at = time.monotonic() + phase.seconds

    async def one_client(n: int) -> None:
        rng = random.Random(n)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout,
                                     limits=httpx.Limits(max_connections=1)) as client:
            i = n
            while time.monotonic() < stop_at:
                if paths == "healthz":
                    path = "/healthz"
                else:
                    path = "/api/v1/jobs" if i % 2 == 0 else f"/api/v1/jobs/{rng.choice(job_ids)}"
                i += 1
                start = time.perf_counter()
                try:
                    response = await client.get(path)
                    status = response.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                phase.latencies.append(time.perf_counter() - start)
                phase.statuses[status] += 1
                if status != 200:
                    phase.errors += 1

    started = time.monotonic()
    await asyncio.gather(*(one_client(n) for n in range(phase.clients)))
    phase.seconds = time.monotonic() - started  # the last requests may end after stop_at
    return phase


def job_ids_of(url: str, key: str) -> list[int]:
    response = httpx.get(url + "/api/v1/jobs", params={"limit": 200}, headers={"Authorization": f"Bearer {key}"},
                         timeout=30)
    response.raise_for_status()
    ids = [job["id"] for job in response.json()["items"]]
    if not ids:
        raise SystemExit("the API lists no job for this key: create one first")
    return ids


def report(baseline: Phase, phases: list[Phase]) -> None:
    print(f"{'phase':<24}{'clients':>8}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'p99/base':>10}{'rate/base':>11}  statuses")
    for phase in [baseline, *phases]:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(phase.statuses.items(), key=str))
        print(f"{phase.name:<24}{phase.clients:>8}{phase.requests:>10}{phase.rate():>9.1f}{phase.pct(0.5):>9.1f}"
              f"{phase.pct(0.99):>9.1f}{phase.errors:>8}{phase.pct(0.99) / baseline.pct(0.99):>10.2f}"
              f"{phase.rate() / baseline.rate():>11.2f}  {statuses}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="A running API (default: start one on a database of its own).")
    ap.add_argument("--key", help="An API key for --url.")
    ap.add_argument("--clients", default="10,50,100,200", help="Client counts, comma-separated.")
    ap.add_argument("--seconds", type=float, default=15.0, help="Length of each phase.")
    ap.add_argument("--timeout", type=float, default=60.0, help="Per-request timeout (seconds).")
    ap.add_argument("--jobs", type=int, default=50, help="Jobs stored in the database of its own.")
    ap.add_argument("--pg-admin-url", default=os.environ.get(
        "SPROUT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--redis-url", default=os.environ.get("SPROUT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
                    help="The started API's broker (nothing is enqueued).")
    ap.add_argument("--log", type=Path, default=Path("/tmp") / f"sprout-api-load-{os.getpid()}.log",
                    help="The started API's log.")
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(",") if c.strip()]

    local = None
    if args.url:
        if not args.key:
            raise SystemExit("--url needs --key")
        url, key = args.url.rstrip("/"), args.key
    else:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        local = LocalApi(args.pg_admin_url, args.redis_url, args.jobs, args.log)
    try:
        if local is not None:
            url, key = local.start()
        ids = job_ids_of(url, key)
        print(f"API {url}, {len(ids)} jobs, {args.seconds:g} s per phase", flush=True)
        asyncio.run(run_phase(url, key, ids, Phase("warm-up", 10, 2.0), args.timeout, "jobs"))
        baseline = asyncio.run(run_phase(url, None, ids, Phase("baseline GET /healthz", 10, args.seconds),
                                         args.timeout, "healthz"))
        phases = []
        for n in counts:
            phase = asyncio.run(run_phase(url, key, ids, Phase("GET /jobs, /jobs/{id}", n, args.seconds),
                                          args.timeout, "jobs"))
            phases.append(phase)
            print(f"  {n} clients: {phase.rate():.1f} req/s, p99 {phase.pct(0.99):.0f} ms, {phase.errors} errors",
                  flush=True)
        print()
        report(baseline, phases)
        if local is not None:
            log_text = args.log.read_text(errors="replace")
            print(f"\nAPI log: {args.log} ({log_text.count('Traceback')} tracebacks); "
                  f"median p50 over phases {statistics.median(p.pct(0.5) for p in phases):.1f} ms")
    finally:
        if local is not None:
            local.stop()


if __name__ == "__main__":
    main()
