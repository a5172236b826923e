"""Scale: Sprout's own CPU per model request and per curated example, against a FAKE server.

Usage (from the repository root):
    .venv/bin/python benchmarks/scale.py overhead [--target 500] [--repeats 3] [--profile 15] [--parallel 1,2,4]
    .venv/bin/python benchmarks/scale.py overhead --quick      (1, 2, 4 worker processes side by side, ~1 min)
    .venv/bin/python benchmarks/scale.py fake [--target 300] [--repeats 3]
    .venv/bin/python benchmarks/scale.py index [--sizes 100000,1000000] [--dedup-sizes 100000,1000000]
                                               [--seed-sizes 200000,1000000] [--seed-repeats 1] [--seed-profile 0]
    .venv/bin/python benchmarks/scale.py shards [--target 400] [--workers 1,2,4] [--repeats 1] [--quick]
    .venv/bin/python benchmarks/scale.py paging [--rows 1000000] [--repeats 5] [--keep-db]

`overhead`: one `sprout generate`-shaped run (Self-Instruct on `seeds/default.jsonl`,
the service's defaults, SQLite in a temporary folder, `lifecycle.run_job` in-process, as
`sprout generate` runs it) against `fake_llm_server.py` (a FAKE OpenAI-compatible server,
named as such: it answers at once with random made-up words, so what is measured is
Sprout's CPU, not a model's). Each run is a fresh child process; the CPU counted is the
child's from just before `run_job` to just after it (start-up and imports left out).
Printed per configuration: model requests, curated examples, CPU ms per request and per
curated example, requests per CPU-second (the rate one worker process sustains when the
model servers are not the limit), medians over `--repeats`, and the ratio to `before`.
Then the top entries of a cProfile of one run of `start` and of `after`.

The configurations, back to back in one run on the same machine:
* `before`: the code as it was at `--before REV` (default: the last revision before this
  benchmark's cuts), extracted with `git archive` into a temporary folder and imported from
  there, with `sniffio` absent (httpcore looks it up ~12 times a request; each failed lookup
  is reproduced as the same full path-finder scan, since the package is now installed);
* `start`: the code at `--start REV` (default: after the first round of cuts, before the
  slot hand-over, the aiohttp transport and the batched flushes), extracted the same way;
* `after`: the working tree as it is.
Then `--parallel` (default 1,2,4): `--parallel-configs` (`start` and `after`) as 1, 2 and
4 worker processes at once, each with a job of its own against the one fake server, all
starting `run_job` together once all have imported (a barrier): over the wall time from the
first start to the last end, all their requests and curated examples per second, Sprout's
CPU per curated example (all processes), the fake server's CPU per request and share of all
the CPU, the cores kept busy (all CPU / wall: under the core count, other work had the
rest), and curated per second against one process. The fake server runs on the same cores,
so its CPU (from /proc, over the same span) is counted and shown, as in every run above.
`--quick`: `after` side by side only, target 150, one run each, no profile or floor.
Then the floor: the same streamed completions sent straight through `LLMClient` (no job),
through `LLMClient` over httpx's own pool (httpcore, as before the aiohttp transport), and
through a bare `httpx.AsyncClient` (no Sprout at all).
The machine may be shared: read medians and ratios, not single figures.

`index`: the novelty index (`NoveltyIndex`, exact ROUGE-L decisions) and the near-duplicate
index (`NearDupIndex`, in memory) at pools of `--sizes` entries, each size in a fresh child
process: time per add, time per check (the novelty index's two modes on the same index,
interleaved: the prefix filter a job uses at large pools, and the full bound it used before,
still exact below the threshold; and, interleaved with them, the prefix filter as it was at
`--novelty-before`, imported from git, on an index of its own) (CPU time; median, p95, max over 300 candidates: variants of
pool entries near the threshold and fresh instructions, from `novelty_filter.py`'s
generator), and the resident memory the index and its texts take (RSS after building,
less RSS before the data existed). The novelty index is seeded with the whole pool by
`add_many` (the bulk path a build uses), timed against `before`'s `add` one text at a time
(CPU seconds); its `add` column is `add` one text at a time now (over 200K entries at most). Baseline in the same run: an exact brute force
(rapidfuzz LCS against every entry, all cores) on a sample of the candidates, whose
decisions must equal both modes' and maximum scores the full bound's, or the prefix
filter's when above the threshold; the two modes must decide every candidate alike
(exit 1 otherwise). The near-duplicate
index is fed whole examples (instruction, input, output) in batches, as a build seeds it;
its `before` is the module of `--dedup-before` (datasketch's in-memory tables), imported
from git, at `--dedup-before-sizes`.
Then the near-duplicate index seeded as a build seeds it from a dataset version (one
`check_and_add_many` over `--seed-sizes` whole examples, `example:<n>` keys): `seed_before`,
`dedup.py` and `dedup_memory.py` of `--seed-before` imported from git (one document at a
time), against `seed_bulk`, the working tree (the bulk path), each run a fresh process,
alternating which goes first over `--seed-repeats`: wall and CPU seconds (medians), the peak
resident memory above the examples' own, the index's memory after, and a hash of every
decision, which must be the same for both (exit 1 otherwise). `--seed-profile N` prints the
top N entries of a profile of the bulk path's first run.

`paging`: a job of `--rows` instructions (one instance each), stored by COPY in a PostgreSQL
database of its own (dropped after), and a page of 50 at its start and at its end through
the API (in-process), by `offset` and by `after` (keyset), for the instructions in `seq`
order, the accepted ones, the `-max_rouge_l` order (its first page, a page in its middle
and its last page) and the instances; medians of `--repeats`, and what a page's `total` (a
count of the job's rows, counted on a page by offset or with `count=true`) costs alone.
The last page by `after` must equal the last page by offset (exit 1 otherwise).

`fake`: the fake server's own CPU per request, its code at `--fake-before` (from git) and
now, each serving one `after` run at a time, interleaved, medians of `--repeats`.

`shards`: one Self-Instruct job of `--target` curated examples against the instant FAKE
server, as one worker runs it (baseline: no shards), then sharded over 1, 2 and 4 requester
processes (`shards` = N, each a fresh process, as Celery worker processes would be; the
decider is this process; the requesters are forked from a server process that has imported
Sprout once, as warm Celery worker processes would be). Printed, medians of `--repeats`
(interleaved): the same columns as `overhead --parallel` (Sprout's CPU: this process and
the requesters together), and the speed-up over the baseline. `--quick`: a target of 200. On a
machine with C cores, more than about C busy processes only share the cores.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.machinery
import io
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SEEDS = ROOT / "seeds" / "default.jsonl"
BEFORE = "96353c22fcd9d6bb83a97386a9792e87c87a855b"  # the revision before the cuts measured here
START = "ed665669ba22a4133ef75317d0a5d2f24e9b31e6"  # the first round of cuts, before the slot hand-over and the aiohttp transport (`start`)
FAKE_BEFORE = "be95641"  # the fake server before its answers were rendered from a bank of events
NOVELTY_BEFORE = "be95641"  # the last revision whose prefix filter read every length's lists at once
DEDUP_BEFORE = "642b6ff"  # the last revision whose in-memory near-duplicate index was datasketch's
SEED_BEFORE = "be95641"  # the last revision before the near-duplicate index's bulk path (seeding one by one)


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def proc_cpu_s(pid: int) -> float:
    """Another process's CPU seconds so far (user and system, from /proc): the fake server's."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _AbsentSniffio:
    """`before` only: makes `import sniffio` fail after the same full scan of sys.path that
    a missing package costs (what every request paid before sniffio was a dependency)."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> Any:
        if name != "sniffio":
            return None
        importlib.machinery.PathFinder.find_spec("sniffio_is_not_installed", None)
        raise ModuleNotFoundError("No module named 'sniffio'", name="sniffio")


def child(args: argparse.Namespace) -> None:
    """One run in this (fresh) process, on the code in `args.code`; prints one JSON line."""
    sys.path.insert(0, args.code)
    if args.config == "before":
        sys.meta_path.insert(0, _AbsentSniffio)
        sys.modules.pop("sniffio", None)
    from app import db
    from app.core import jobs, store
    from app.core.jobs import lifecycle
    from app.core.seeds import load_seed_file
    from app.db import session_scope
    from app.settings import Settings

    with tempfile.TemporaryDirectory(prefix="sprout-scale-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'sprout.db'}"
        db.upgrade(url)
        settings = Settings(data_dir=Path(tmp), database_url=url, llm_base_urls=[args.url], llm_model=None)
        fmt, tasks = load_seed_file(SEEDS)
        params = jobs.get("self_instruct").validate_params({"target": args.target, "seed": 1},
                                                           settings.core_config().defaults)
        with session_scope(url) as s:
            seed_set = store.import_seed_set(s, SEEDS.name, fmt, tasks)
            job_id = store.create_job(s, "self_instruct", params.model_dump(), seed_set_id=seed_set.id).id
        config = settings.core_config()
        profiler = cProfile.Profile() if args.profile else None
        if args.barrier:  # runs side by side: all start run_job together, once all are ready
            Path(args.barrier, f"ready-{os.getpid()}").touch()
            while not Path(args.barrier, "go").exists():
                time.sleep(0.005)
        c0, t0, started = cpu_s(), time.monotonic(), time.time()
        if profiler:
            profiler.enable()
        job = lifecycle.run_job(url, job_id, config)
        if profiler:
            profiler.disable()
        cpu, wall, ended = cpu_s() - c0, time.monotonic() - t0, time.time()
    out: dict[str, Any] = {"status": job.status, "error": job.error, "cpu_s": cpu, "wall_s": wall,
                           "started": started, "ended": ended,
                           "requests": job.counters.get("llm_requests", 0), "curated": job.counters.get("accepted", 0)}
    if profiler:
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats(os.environ.get("SCALE_SORT", "tottime")).print_stats(args.profile)
        out["profile"] = buf.getvalue()
    print("RESULT " + json.dumps(out), flush=True)


def checkout(rev: str, into: Path) -> Path:
    """The tree of `rev` in `into` (for `before`)."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_child(config: str, url: str, target: int, code: Path = ROOT, profile: int = 0) -> dict[str, Any]:
    return run_children(config, url, target, code, profile)[0]


def run_children(config: str, url: str, target: int, code: Path = ROOT, profile: int = 0,
                 n: int = 1, server: Any = None) -> list[dict[str, Any]]:
    """`n` runs at once, each a fresh process with a job of its own (as `n` worker processes).

    With more than one, the runs start `run_job` together (a barrier: each waits for all to
    be ready), so the wall time from the first start to the last end is their time together;
    with `server` (a `FakeServer`), the server's CPU over that time goes into the first
    result as `server_cpu_s`."""
    barrier = tempfile.mkdtemp(prefix="sprout-barrier-") if n > 1 or server is not None else ""
    cmd = [sys.executable, __file__, "_child", "--config", config, "--url", url, "--target", str(target),
           "--profile", str(profile), "--code", str(code), "--barrier", barrier]
    env = {**os.environ, "PYTHONPATH": str(code)}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=code)
             for _ in range(n)]
    server_c0 = 0.0
    if barrier:
        deadline = time.monotonic() + 600
        while len(list(Path(barrier).glob("ready-*"))) < n and time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                break  # one failed before run_job: its error is read below
            time.sleep(0.01)
        server_c0 = proc_cpu_s(server.process.pid) if server is not None else 0.0
        Path(barrier, "go").touch()
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=1800)
        line = next((x for x in stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"{config} run failed:\n{stdout[-2000:]}\n{stderr[-4000:]}")
        out.append(json.loads(line[7:]))
    if server is not None:
        out[0]["server_cpu_s"] = proc_cpu_s(server.process.pid) - server_c0
    if barrier:
        for f in Path(barrier).iterdir():
            f.unlink()
        os.rmdir(barrier)
    return out


def overhead(args: argparse.Namespace) -> None:
    from fake_llm_server import FakeServer

    if args.quick:  # a re-run in about two minutes: `after` side by side only
        args.configs, args.repeats, args.profile, args.floor_requests = "", 1, 0, 0
        args.target = args.target or 150
        args.parallel_configs = "after"
    args.target = args.target or 500
    configs = [c for c in args.configs.split(",") if c]
    pconfigs = [c for c in args.parallel_configs.split(",") if c]
    rows: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    fake = FakeServer(latency_s=0.0)
    with fake as url, tempfile.TemporaryDirectory(prefix="sprout-before-") as old, \
            tempfile.TemporaryDirectory(prefix="sprout-start-") as start:
        code = {"before": checkout(args.before, Path(old)) if "before" in configs else ROOT,
                "start": checkout(args.start, Path(start)) if "start" in configs + pconfigs else ROOT,
                "after": ROOT}
        print(f"FAKE model server (instant, not a model) at {url}; target {args.target} curated per run; "
              f"load average {loadavg()}")
        for rep in range(args.repeats):
            for config in configs:  # interleaved, so load from others falls on both alike
                r = run_children(config, url, args.target, code[config], server=fake)[0]
                if r["status"] != "succeeded":
                    raise SystemExit(f"{config}: job {r['status']}: {r['error']}")
                rows[config].append(r)
                print(f"  run {rep + 1} {config:7s} requests {r['requests']:5d} curated {r['curated']:4d} "
                      f"cpu {r['cpu_s']:6.2f} s  wall {r['wall_s']:6.2f} s  fake server cpu "
                      f"{r['server_cpu_s']:5.2f} s", flush=True)
        profiles = {c: run_child(c, url, args.target, code[c], profile=args.profile)["profile"]
                    for c in ("start", "after") if c in configs} if args.profile else {}
        # worker processes side by side, each with its own job, started together
        parallel: dict[tuple[str, int], list[dict[str, float]]] = {}
        for rep in range(args.repeats):
            for config in pconfigs:
                for n in (int(x) for x in args.parallel.split(",") if x):
                    rs = run_children(config, url, args.target, code[config], n=n, server=fake)
                    if any(r["status"] != "succeeded" for r in rs):
                        raise SystemExit(f"{config} x{n}: a job did not succeed: {[r['error'] for r in rs]}")
                    p = side_by_side(rs)
                    parallel.setdefault((config, n), []).append(p)
                    print(f"  run {rep + 1} {config:7s} {n} worker process(es) together: {p['requests_s']:.0f} "
                          f"requests/s, {p['curated_s']:.1f} curated/s, fake server {p['server_ms']:.3f} ms "
                          f"a request (wall {p['wall']:.1f} s)", flush=True)
        floor = {(name, n): statistics.median(client_floor(url, name, args.floor_requests, n)
                                              for _ in range(args.repeats))
                 for name in ("LLMClient", "LLMClient-httpx", "httpx") for n in (8, 32)} if args.floor_requests else {}
    print(f"\nload average after: {loadavg()}")
    if configs:
        print()
        print("| configuration | requests | curated | CPU ms / request | CPU ms / curated | requests / CPU-s "
              "| fake server CPU ms / request | vs first |")
        print("|---|---|---|---|---|---|---|---|")
        per_reqs = {c: statistics.median(1000 * r["cpu_s"] / r["requests"] for r in rows[c]) for c in configs}
        for config in configs:
            rs = rows[config]
            per_req = per_reqs[config]
            per_cur = statistics.median(1000 * r["cpu_s"] / r["curated"] for r in rs)
            server = statistics.median(1000 * r["server_cpu_s"] / r["requests"] for r in rs)
            print(f"| {config} | {statistics.median(r['requests'] for r in rs):.0f} | "
                  f"{statistics.median(r['curated'] for r in rs):.0f} | {per_req:.3f} | {per_cur:.3f} | "
                  f"{1000 / per_req:.0f} | {server:.3f} | {per_reqs[configs[0]] / per_req:.2f}x |")
        for (name, n), ms in floor.items():
            print(f"| floor: {name} alone, {n} in flight | {args.floor_requests} | - | {ms:.3f} | - | "
                  f"{1000 / ms:.0f} | - | - |")
    if parallel:
        print()
        print_side_by_side("configuration", {(c, f"{n}"): v for (c, n), v in parallel.items()},
                           lambda key: (key[0], "1"))
    for config, text in profiles.items():
        print(f"\n--- cProfile, {config} (top {args.profile} by own time) ---")
        print(text[text.find("ncalls") - 100 if "ncalls" in text else 0:])


def fake_cost(args: argparse.Namespace) -> None:
    """The fake server's own CPU per request: its module at `--fake-before` (from git) and
    now, each serving one `after` run at a time, interleaved."""
    import importlib.util

    with tempfile.TemporaryDirectory(prefix="sprout-fake-") as tmp:
        old = Path(tmp) / "fake_llm_server_before.py"
        old.write_bytes(subprocess.run(["git", "show", f"{args.fake_before}:benchmarks/fake_llm_server.py"],
                                       cwd=ROOT, capture_output=True, check=True).stdout)
        modules = {}
        for label, path in (("before", old), ("now", ROOT / "benchmarks" / "fake_llm_server.py")):
            spec = importlib.util.spec_from_file_location(f"fake_{label}", path)
            assert spec and spec.loader
            modules[label] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(modules[label])
        print(f"the FAKE server's CPU per request (not a model), target {args.target}; load average {loadavg()}")
        per: dict[str, list[float]] = {label: [] for label in modules}
        for rep in range(args.repeats):
            for label, module in modules.items():
                fake = module.FakeServer()
                with fake as url:
                    r = run_children("after", url, args.target, server=fake)[0]
                per[label].append(1000 * r["server_cpu_s"] / r["requests"])
                print(f"  run {rep + 1} {label:6s} {r['requests']} requests, fake server {r['server_cpu_s']:.2f} s "
                      f"CPU, {per[label][-1]:.3f} ms a request (Sprout: {1000 * r['cpu_s'] / r['requests']:.3f})",
                      flush=True)
    print(f"load average after: {loadavg()}\n")
    print("| fake server | CPU ms / request (median) | vs before |")
    print("|---|---|---|")
    base = statistics.median(per["before"])
    for label, values in per.items():
        print(f"| {label} | {statistics.median(values):.3f} | {base / statistics.median(values):.2f}x |")


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def side_by_side(rs: list[dict[str, Any]]) -> dict[str, float]:
    """Runs started together: their rates over the wall time from the first start to the
    last end, the CPU of all of them, and the fake server's (in the first result)."""
    wall = max(r["ended"] for r in rs) - min(r["started"] for r in rs)
    requests, curated = sum(r["requests"] for r in rs), sum(r["curated"] for r in rs)
    sprout, server = sum(r["cpu_s"] for r in rs), rs[0].get("server_cpu_s", 0.0)
    return {"wall": wall, "requests_s": requests / wall, "curated_s": curated / wall,
            "cpu_ms_curated": 1000 * sprout / max(1, curated), "server_ms": 1000 * server / max(1, requests),
            "server_share": server / max(1e-9, server + sprout), "cores": (server + sprout) / wall}


def print_side_by_side(what: str, runs: dict[tuple[str, str], list[dict[str, float]]], one: Any) -> None:
    """The table of `side_by_side` figures (medians over the runs), with curated per second
    against the row `one(key)`."""
    print(f"| {what} | processes | requests / s (wall, all together) | curated / s | Sprout CPU ms / curated "
          "| fake server CPU ms / request | fake server's share of the CPU | cores busy (all CPU / wall) "
          "| curated / s vs one |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, ps in runs.items():
        m = {k: statistics.median(p[k] for p in ps) for k in ps[0]}
        base = runs.get(one(key))
        ratio = f"{m['curated_s'] / statistics.median(p['curated_s'] for p in base):.2f}x" if base else "-"
        print(f"| {key[0]} | {key[1]} | {m['requests_s']:.0f} | {m['curated_s']:.1f} | {m['cpu_ms_curated']:.2f} | "
              f"{m['server_ms']:.3f} | {100 * m['server_share']:.0f}% | {m['cores']:.2f} | {ratio} |")


def client_floor(url: str, name: str, n: int, in_flight: int) -> float:
    """CPU ms per streamed completion sent `n` times, `in_flight` at once, in a fresh process:
    through `LLMClient` (Sprout's client, no job) or a bare `httpx.AsyncClient`."""
    cmd = [sys.executable, __file__, "_floor", "--url", url, "--client", name, "--requests", str(n),
           "--in-flight", str(in_flight)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          cwd=ROOT, timeout=600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return float(line[7:])
    raise RuntimeError(f"floor {name} failed:\n{proc.stderr[-3000:]}")


def floor_child(args: argparse.Namespace) -> None:
    import asyncio

    import httpx

    from app.core.config import LLMConfig
    from app.core.llm.client import LLMClient

    body = {"model": "fake-model", "prompt": "1. Describe a cat.\n2.", "max_tokens": 64, "stop": ["\n\n"]}

    async def run() -> float:
        if args.client.startswith("LLMClient"):
            # `LLMClient-httpx`: over httpx's own pool (httpcore) instead of aiohttp's
            limits = httpx.Limits(max_connections=args.in_flight + 4, max_keepalive_connections=args.in_flight)
            transport = httpx.AsyncHTTPTransport(limits=limits) if args.client == "LLMClient-httpx" else None
            client = LLMClient(LLMConfig(base_urls=[args.url], model="fake-model", concurrency=args.in_flight,
                               concurrency_max=args.in_flight, adaptive_concurrency=False, dialect="completions"),
                               transport=transport)
            send = lambda: client.complete(body["prompt"], max_tokens=64, stop=["\n\n"])  # noqa: E731
        else:
            client = httpx.AsyncClient(limits=httpx.Limits(max_connections=args.in_flight,
                                                            max_keepalive_connections=args.in_flight))

            async def send() -> None:
                stream_body = {**body, "stream": True}
                async with client.stream("POST", args.url + "/completions", json=stream_body) as resp:
                    async for line in resp.aiter_lines():
                        if line.startswith("data:") and line[5:].strip() != "[DONE]":
                            json.loads(line[5:])
        semaphore = asyncio.Semaphore(args.in_flight)

        async def one() -> None:
            async with semaphore:
                await send()
        await asyncio.gather(*(one() for _ in range(50)))  # warm: connections made
        c0 = cpu_s()
        await asyncio.gather(*(one() for _ in range(args.requests)))
        spent = cpu_s() - c0
        await client.aclose()
        return 1000 * spent / args.requests

    print(f"RESULT {asyncio.run(run())}", flush=True)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _module_at(rev: str, path: str, name: str) -> Any:
    """The module at `path` as it was at revision `rev`, imported from git under `name`."""
    import importlib.util

    source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _seed_module(rev: str) -> Any:
    """`app.core.filters.dedup` as it was at `rev`, with its `dedup_memory` of then too."""
    import importlib.util

    folder = Path(tempfile.mkdtemp())
    for name in ("dedup_memory", "dedup"):
        source = subprocess.run(["git", "show", f"{rev}:app/core/filters/{name}.py"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout
        source = source.replace("from app.core.filters.dedup_memory import", "from seed_before_dedup_memory import")
        path = folder / f"seed_before_{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"seed_before_{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"seed_before_{name}"] = module
        spec.loader.exec_module(module)
    return module


def seed_child(args: argparse.Namespace) -> None:
    """A NearDupIndex seeded with `args.size` whole examples as a build seeds it (one
    `check_and_add_many` over them all): `seed_before` by the module of `--seed-before`
    (one document at a time), `seed_bulk` by the working tree's (the bulk path)."""
    import gc
    import hashlib

    from novelty_filter import build_data

    from app.core.filters import dedup

    module = _seed_module(args.seed_before) if args.which == "seed_before" else dedup
    pool, _ = build_data(args.size, 0, seed=1)
    docs = [(f"example:{i}", dedup.example_text(text, "", text[::-1])) for i, text in enumerate(pool)]
    del pool
    gc.collect()
    base = rss_mb()
    index = module.NearDupIndex(threshold=0.9, num_perm=128)
    profile = cProfile.Profile() if args.profile else None
    cpu, wall = cpu_s(), time.perf_counter()
    if profile:
        profile.enable()
    decisions = index.check_and_add_many(docs)
    if profile:
        profile.disable()
    out: dict[str, Any] = {"which": args.which, "size": len(docs), "seed_s": time.perf_counter() - wall,
                           "seed_cpu_s": cpu_s() - cpu,
                           "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base}
    del docs
    gc.collect()
    out["rss_mb"] = rss_mb() - base
    out["kept"] = len(index)
    out["decisions"] = hashlib.sha256("\n".join(d or "" for d in decisions).encode()).hexdigest()[:16]
    if profile:
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(args.profile)
        out["profile"] = text.getvalue()
    print("RESULT " + json.dumps(out), flush=True)


def index_child(args: argparse.Namespace) -> None:
    """One pool size of one index in this process; prints one JSON line."""
    if args.which.startswith("seed_"):
        seed_child(args)
        return
    import gc

    import numpy as np
    from novelty_filter import BruteForce, build_data

    from app.core.filters.dedup import NearDupIndex, example_text
    from app.core.filters.novelty import NoveltyIndex

    base = rss_mb()
    pool, candidates = build_data(args.size, 300, seed=1)
    out: dict[str, Any] = {"size": len(pool), "which": args.which}
    if args.which == "novelty":
        # `before`: the module as it was at --novelty-before, imported from git.
        before_module = _module_at(args.novelty_before, "app/core/filters/novelty.py", "novelty_before")
        index = NoveltyIndex()
        c0 = time.process_time()
        index.add_many(pool)  # the bulk path, as a build seeds its index
        out["seed_bulk_s"] = time.process_time() - c0
        gc.collect()
        out["rss_mb"] = rss_mb() - base  # the texts and the index (the pool list is 8 bytes an entry)
        before = before_module.NoveltyIndex()
        c0 = time.process_time()
        for text in pool:  # how every index was filled before: `add` one text at a time
            before.add(text)
        out["seed_before_s"] = time.process_time() - c0
        single = NoveltyIndex()
        part = pool[:200_000]
        c0 = time.process_time()
        for text in part:
            single.add(text)
        out["add_us"] = 1e6 * (time.process_time() - c0) / len(part)  # one accepted instruction joining
        del single, part
        gc.collect()
        sample = candidates[:: max(1, len(candidates) // args.brute)]
        brute = BruteForce(pool)
        del pool
        # Three checks on each candidate, interleaved (the order rotates): `full` (the bound
        # over every entry sharing a token, exact below the threshold too), `prefix` (what a
        # job's index does past `exact_pool_limit`) and `before` (the prefix filter as it was).
        modes = {"full": (index, True), "prefix": (index, False), "before": (before, False)}
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        results: dict[str, dict[int, Any]] = {mode: {} for mode in modes}
        names = list(modes)
        for i, text in enumerate(candidates):
            for mode in names[i % 3:] + names[:i % 3]:
                ix, exact = modes[mode]
                ix.exact_below_threshold = exact
                c0 = time.process_time()
                results[mode][i] = ix.check(text)
                times[mode].append(time.process_time() - c0)
        brute_times, wrong = [], 0
        for text in sample:
            t0 = time.perf_counter()
            scores = brute.scores(text)
            brute_times.append(time.perf_counter() - t0)
            best = float(scores.max()) if len(scores) else 0.0
            full, prefix, old = (results[mode][candidates.index(text)] for mode in modes)
            wrong += abs(best - full.max_rouge_l) > 1e-9 or (best <= index.threshold) != full.novel
            for r in (prefix, old):
                wrong += (best <= index.threshold) != r.novel or (not r.novel and best != r.max_rouge_l)
        # Every candidate: the modes decide alike, with the same maximum when rejected.
        for other in ("prefix", "before"):
            wrong += sum(results["full"][i].novel != results[other][i].novel
                         or (not results["full"][i].novel and results["full"][i].max_rouge_l != results[other][i].max_rouge_l)
                         for i in results["full"])
        out["brute_ms"] = 1000 * statistics.median(brute_times)
        out["wrong"] = wrong
        out["novel_share"] = sum(r.novel for r in results["prefix"].values()) / len(candidates)
        for mode in modes:
            ts = sorted(times[mode])
            out[f"check_ms_{mode}"] = {"median": 1000 * statistics.median(ts), "p95": 1000 * ts[int(0.95 * len(ts))],
                                       "max": 1000 * ts[-1]}
        times = times["prefix"]
    else:
        docs = [(f"e{i}", example_text(text, "", text[::-1])) for i, text in enumerate(pool)]
        del pool
        if args.which == "dedup_before":  # the module as it was, imported from that revision
            NearDupIndex = _module_at(args.dedup_before, "app/core/filters/dedup.py", "dedup_before").NearDupIndex
        index = NearDupIndex(threshold=0.9, num_perm=128)
        t0 = time.perf_counter()
        for start in range(0, len(docs), 1000):
            index.check_and_add_many(docs[start:start + 1000])
        out["add_us"] = 1e6 * (time.perf_counter() - t0) / len(docs)
        del docs
        gc.collect()
        times = []
        for i, text in enumerate(candidates):
            t0 = time.perf_counter()
            index.check_and_add(f"c{i}", example_text(text, "", text[::-1]))
            times.append(time.perf_counter() - t0)
        out["rss_mb"] = rss_mb() - base
    times.sort()
    out["check_ms"] = {"median": 1000 * statistics.median(times), "p95": 1000 * times[int(0.95 * len(times))],
                       "max": 1000 * times[-1]}
    print("RESULT " + json.dumps(out), flush=True)
    del np


def _index_run(which: str, size: int, *options: str) -> dict[str, Any]:
    """One `_index` child (a fresh process, so its memory is its own); its RESULT line."""
    cmd = [sys.executable, __file__, "_index", "--which", which, "--size", str(size), *options]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=7200,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{which} at {size} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(line[7:])
    return result


def index(args: argparse.Namespace) -> None:
    rows = []
    plan = [("novelty", int(n)) for n in args.sizes.split(",") if n] + \
           [("dedup_before", int(n)) for n in args.dedup_before_sizes.split(",") if n] + \
           [("dedup", int(n)) for n in args.dedup_sizes.split(",") if n]
    for which, size in plan:
        r = _index_run(which, size, "--brute", str(args.brute), "--dedup-before", args.dedup_before,
                       "--novelty-before", args.novelty_before)
        rows.append(r)
        c = r["check_ms"]
        extra = ""
        if which == "novelty":
            f, b = r["check_ms_full"], r["check_ms_before"]
            extra = (f"(full bound: median {f['median']:.3f} ms p95 {f['p95']:.3f}, "
                     f"{f['median'] / c['median']:.1f}x the prefix filter's; prefix filter before: median "
                     f"{b['median']:.3f} ms p95 {b['p95']:.3f}, {b['median'] / c['median']:.2f}x and "
                     f"{b['p95'] / c['p95']:.2f}x); brute force {r['brute_ms']:.1f} ms, "
                     f"{r['wrong']} wrong, {100 * r['novel_share']:.0f}% novel\n"
                     f"          seeding {r['size']:,} texts: add_many {r['seed_bulk_s']:.1f} s CPU, `add` one at a "
                     f"time before {r['seed_before_s']:.1f} s ({r['seed_before_s'] / r['seed_bulk_s']:.2f}x)")
        print(f"  {which:7s} {r['size']:>9,} entries: add {r['add_us']:.1f} us, check median {c['median']:.3f} ms "
              f"p95 {c['p95']:.3f} max {c['max']:.3f}, memory {r['rss_mb']:.0f} MB  {extra}", flush=True)
    if rows:
        print_index_table(rows)
    if any(r.get("wrong") for r in rows):
        raise SystemExit("the novelty index disagreed with the brute force")
    if args.seed_sizes:
        seeding(args)


def print_index_table(rows: list[dict[str, Any]]) -> None:
    print()
    print("| index | entries | add (us) | check median (ms) | p95 (ms) | max (ms) | memory (MB) | brute force (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = {"novelty": "novelty, prefix filter per length", "dedup": "near-duplicates, numpy tables",
                "dedup_before": "near-duplicates, datasketch's dicts (before)"}[r["which"]]
        for label, c in ([(name, r["check_ms"])] + ([("novelty, prefix filter (before)", r["check_ms_before"]),
                                                     ("novelty, full bound", r["check_ms_full"])]
                                                    if "check_ms_full" in r else [])):
            brute = f"{r['brute_ms']:.1f}" if "brute_ms" in r else "-"
            add = 1e6 * r["seed_before_s"] / r["size"] if label == "novelty, prefix filter (before)" else r["add_us"]
            print(f"| {label} | {r['size']:,} | {add:.1f} | {c['median']:.3f} | {c['p95']:.3f} | "
                  f"{c['max']:.3f} | {r['rss_mb']:.0f} | {brute} |")


def seeding(args: argparse.Namespace) -> None:
    """The near-duplicate index seeded as a build seeds it, before and with the bulk path,
    alternating which goes first, each run a fresh process; medians of `--seed-repeats`."""
    print("\nnear-duplicate index seeded from a dataset version (one check_and_add_many over every example)")
    table = []
    for size in (int(n) for n in args.seed_sizes.split(",") if n):
        runs: dict[str, list[dict[str, Any]]] = {"seed_before": [], "seed_bulk": []}
        for repeat in range(args.seed_repeats):
            order = ["seed_before", "seed_bulk"] if repeat % 2 == 0 else ["seed_bulk", "seed_before"]
            for which in order:
                if which == "seed_before" and size > args.seed_before_max:
                    continue
                profile = args.seed_profile if which == "seed_bulk" and repeat == 0 else 0
                r = _index_run(which, size, "--seed-before", args.seed_before, "--profile", str(profile))
                runs[which].append(r)
                print(f"  {which:11s} {size:>9,}: {r['seed_s']:.1f} s wall, {r['seed_cpu_s']:.1f} s CPU, "
                      f"peak +{r['peak_mb']:.0f} MB, index {r['rss_mb']:.0f} MB, kept {r['kept']:,}, "
                      f"decisions {r['decisions']}", flush=True)
                if r.get("profile"):
                    print(r["profile"])
        for which, rs in runs.items():
            if rs:
                table.append((which, size, {k: statistics.median(r[k] for r in rs)
                                            for k in ("seed_s", "seed_cpu_s", "peak_mb", "rss_mb")}, len(rs)))
        every = {r["decisions"] for rs in runs.values() for r in rs}
        if len(every) > 1:
            raise SystemExit(f"the two paths decided differently at {size}: {sorted(every)}")
    print()
    print("| seeding | entries | runs | wall (s) | CPU (s) | CPU per entry (us) | peak above the data (MB) | index (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for which, size, m, n in table:
        base = next((b for w, s2, b, _ in table if w == "seed_before" and s2 == size), None)
        ratio = f" ({base['seed_cpu_s'] / m['seed_cpu_s']:.1f}x less)" if base and which == "seed_bulk" else ""
        print(f"| {which} | {size:,} | {n} | {m['seed_s']:.1f} | {m['seed_cpu_s']:.1f}{ratio} | "
              f"{1e6 * m['seed_cpu_s'] / size:.1f} | {m['peak_mb']:.0f} | {m['rss_mb']:.0f} |")


def _requester(url: str, job_id: int, shard: int, config: Any, base_urls: list[str] | None, cpu_dir: str) -> None:
    """One requester process; its CPU time goes to a file (it is not this process's child)."""
    from app.core.jobs.self_instruct import run_shard

    c0 = cpu_s()
    try:
        run_shard(url, job_id, shard, config, base_urls)
    finally:
        Path(cpu_dir, str(os.getpid())).write_text(str(cpu_s() - c0))


def shards_run(args: argparse.Namespace) -> None:
    import multiprocessing as mp

    from fake_llm_server import FakeServer

    from app import db
    from app.core import jobs, store
    from app.core.jobs import lifecycle, shards
    from app.core.seeds import load_seed_file
    from app.db import session_scope
    from app.settings import Settings

    ctx = mp.get_context("forkserver")  # requesters start as warm worker processes do: imports done once
    ctx.set_forkserver_preload(["app.core.jobs.self_instruct", "app.core.jobs.shards"])
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}  # (label, processes: the decider and requesters)
    if args.quick:
        args.target = args.target or 200
    args.target = args.target or 400
    server = FakeServer()
    print(f"load average {loadavg()}")
    with server as fake:
        for rep_, n in ((r, n) for r in range(args.repeats) for n in [0, *(int(x) for x in args.workers.split(","))]):
            procs: list[Any] = []
            where: dict[str, str] = {}

            def spawn(url: str, job: int, shard: int, config: Any, base_urls: list[str] | None,
                      procs: list[Any] = procs, where: dict[str, str] = where) -> None:
                p = ctx.Process(target=_requester, args=(url, job, shard, config, base_urls, where["cpu"]),
                                daemon=True)
                p.start()
                procs.append(p)

            shards.spawner = spawn
            with tempfile.TemporaryDirectory(prefix="sprout-shards-") as tmp:
                cpu_dir = where["cpu"] = str(Path(tmp) / "cpu")
                os.mkdir(cpu_dir)
                url = f"sqlite:///{Path(tmp) / 'sprout.db'}"
                db.upgrade(url)
                settings = Settings(data_dir=Path(tmp), database_url=url, redis_url=args.redis_url,
                                    llm_base_urls=[fake], llm_model=None)
                fmt, tasks = load_seed_file(SEEDS)
                params = jobs.get("self_instruct").validate_params(
                    {"target": args.target, "seed": 1, "shards": n}, settings.core_config().defaults)
                with session_scope(url) as s:
                    seed_set = store.import_seed_set(s, SEEDS.name, fmt, tasks)
                    job_id = store.create_job(s, "self_instruct", params.model_dump(), seed_set_id=seed_set.id).id
                shards.ShardChannel(args.redis_url, job_id).clear()
                c0, server_c0 = cpu_s(), proc_cpu_s(server.process.pid)
                t0 = time.monotonic()
                job = lifecycle.run_job(url, job_id, settings.core_config(), base_urls=[fake])
                wall = time.monotonic() - t0
                server_cpu = proc_cpu_s(server.process.pid) - server_c0
                for p in procs:
                    p.join(60)
                cpu = cpu_s() - c0 + sum(float(f.read_text()) for f in Path(cpu_dir).iterdir())
                shards.ShardChannel(args.redis_url, job_id).clear()
            curated = job.counters.get("accepted", 0)
            label = "one worker, no shards" if n == 0 else f"{n} requester process{'es' if n > 1 else ''}"
            requests = job.counters.get("llm_requests", 0)
            runs.setdefault((label, str(n + 1 if n else 1)), []).append(side_by_side([{
                "started": 0.0, "ended": wall, "requests": requests, "curated": curated, "cpu_s": cpu,
                "server_cpu_s": server_cpu}]))
            print(f"  run {rep_ + 1} {label}: {job.status}, {curated} curated, {requests} requests in {wall:.1f} s, "
                  f"CPU {cpu:.1f} s, fake server CPU {server_cpu:.1f} s", flush=True)
    print(f"\nload average after: {loadavg()}\n")
    first = next(iter(runs))
    print_side_by_side("run", runs, lambda key: first)


def paging(args: argparse.Namespace) -> None:
    """A job of `--rows` instructions (one instance each) in a PostgreSQL database of its
    own; a page at its start and at its end, by offset and by `after`, through the API."""
    import random
    import uuid

    from fastapi.testclient import TestClient
    from sqlalchemy import create_engine, text

    from app import db
    from app.api import keys
    from app.api.main import create_app
    from app.core import store
    from app.core.seeds import load_seed_file
    from app.settings import Settings

    admin = create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
    name = f"sprout_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        db.upgrade(url)
        fmt, tasks = load_seed_file(SEEDS)
        with db.session_scope(url) as session:
            key = keys.create_key(session, "bench", "bench")[1]
            seed_set = store.import_seed_set(session, "bench", fmt, tasks, owner="bench")
            job = store.create_job(session, "self_instruct", {"target": args.rows}, seed_set_id=seed_set.id,
                                   owner="bench").id
        n, rng = args.rows, random.Random(1)
        t0 = time.perf_counter()
        engine = create_engine(url)
        with engine.begin() as conn:  # COPY through psycopg's own connection
            raw = conn.connection.driver_connection
            with raw.cursor().copy("COPY instructions (job_id, seq, instruction, fate, rule, max_rouge_l, "
                                   "most_similar, in_pool, round, detail, created_at) FROM STDIN") as copy:
                for seq in range(1, n + 1):
                    accepted = rng.random() < 0.45
                    copy.write_row((job, seq, f"Candidate instruction number {seq}, about {rng.random():.6f}.",
                                    "accepted" if accepted else "rejected", None if accepted else "too_similar",
                                    None if seq % 50 == 0 else round(rng.random(), 4), "[]", accepted, 0, "{}",
                                    "2026-01-01T00:00:00"))
            conn.execute(text("INSERT INTO instances (instruction_id, job_id, position, input, output, turns, fate) "
                              "SELECT id, job_id, 0, '', 'An output for ' || seq, '[]', fate FROM instructions "
                              "WHERE job_id = :job"), {"job": job})
        with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text("VACUUM ANALYZE instructions"))
            conn.execute(text("VACUUM ANALYZE instances"))
        print(f"  {n:,} instructions and instances stored in {time.perf_counter() - t0:.1f} s", flush=True)
        engine.dispose()
        db.dispose_engines()
        settings = Settings(database_url=url, redis_url=args.redis_url, data_dir=Path(tempfile.mkdtemp()) / "data")
        headers = {"Authorization": f"Bearer {key}"}
        base = f"/api/v1/jobs/{job}"
        with TestClient(create_app(settings)) as client:
            def get(path: str) -> dict[str, Any]:
                response = client.get(path, headers=headers)
                if response.status_code != 200:
                    raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
                return response.json()

            # the keys of the row just before the last page, as the page before it would give them
            last = get(f"{base}/instructions?sort=seq&limit=1&offset={n - 51}")["items"][0]
            last_score = get(f"{base}/instructions?sort=-max_rouge_l&limit=1&offset={n - 51}")["items"][0]
            score_key = f"{last_score['max_rouge_l'] if last_score['max_rouge_l'] is not None else 'null'}:{last_score['seq']}"
            mid = get(f"{base}/instructions?sort=-max_rouge_l&limit=1&offset={n // 2}")["items"][0]
            mid_key = f"{mid['max_rouge_l']}:{mid['seq']}"
            cases = [
                ("instructions, first page", f"{base}/instructions?limit=50"),
                ("instructions, last page by offset", f"{base}/instructions?limit=50&offset={n - 50}"),
                ("instructions, last page by after", f"{base}/instructions?limit=50&after={last['seq']}"),
                ("instructions accepted, last page by offset",
                 f"{base}/instructions?fate=accepted&limit=50&offset={int(0.45 * n) - 200}"),
                ("instructions accepted, a late page by after",
                 f"{base}/instructions?fate=accepted&limit=50&after={n - 400}"),
                ("instructions by -max_rouge_l, last page by offset",
                 f"{base}/instructions?sort=-max_rouge_l&limit=50&offset={n - 50}"),
                ("instructions by -max_rouge_l, last page by after",
                 f"{base}/instructions?sort=-max_rouge_l&limit=50&after={score_key}"),
                ("instructions by -max_rouge_l, first page", f"{base}/instructions?sort=-max_rouge_l&limit=50"),
                ("instructions by -max_rouge_l, a middle page by after",
                 f"{base}/instructions?sort=-max_rouge_l&limit=50&after={mid_key}"),
                ("instructions by -max_rouge_l, a middle page by after, count=true",
                 f"{base}/instructions?sort=-max_rouge_l&limit=50&after={mid_key}&count=true"),
                ("instructions by -max_rouge_l, a middle page by offset",
                 f"{base}/instructions?sort=-max_rouge_l&limit=50&offset={n // 2}"),
                ("instructions by max_rouge_l, a middle page by offset",
                 f"{base}/instructions?sort=max_rouge_l&limit=50&offset={n // 2}"),
                ("instances, last page by offset", f"{base}/instances?limit=50&offset={n - 50}"),
                ("instances, a middle page by offset", f"{base}/instances?limit=50&offset={n // 2}"),
                ("instances, last page by after",
                 f"{base}/instances?limit=50&after={n - 50}:0"),
            ]
            times: dict[str, list[float]] = {label: [] for label, _ in cases}
            pages: dict[str, list[int]] = {}
            for _ in range(args.repeats):
                for label, path in cases:
                    t0 = time.perf_counter()
                    page = get(path)
                    times[label].append(time.perf_counter() - t0)
                    pages[label] = [item["id"] for item in page["items"]]
            for what in ("instructions", "instructions by -max_rouge_l", "instances"):  # the same last page
                by_offset, by_after = pages[f"{what}, last page by offset"], pages[f"{what}, last page by after"]
                if by_offset != by_after or len(by_after) != 50:
                    raise SystemExit(f"{what}: the last page by after differs from the one by offset")
        with create_engine(url).connect() as conn:
            t0 = time.perf_counter()
            for _ in range(args.repeats):
                conn.execute(text("SELECT count(*) FROM instructions WHERE job_id = :job"), {"job": job}).one()
            count_ms = 1000 * (time.perf_counter() - t0) / args.repeats
        print()
        print(f"| request ({n:,}-row job, 50 a page) | median (ms) |")
        print("|---|---|")
        for label, _ in cases:
            print(f"| {label} | {1000 * statistics.median(times[label]):.1f} |")
        print(f"| (of which `total`: SELECT count(*) of the job's rows) | {count_ms:.1f} |")
    finally:
        db.dispose_engines()
        if args.keep_db:
            print(f"  kept: {url}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("overhead", help="CPU per request and per curated example, before and after")
    o.add_argument("--target", type=int, default=0, help="curated per run (500; --quick: 150)")
    o.add_argument("--quick", action="store_true",
                   help="only `after` side by side, one run each, no profile or floor (about two minutes)")
    o.add_argument("--configs", default="before,start,after", help="the one-process configurations ('': none)")
    o.add_argument("--parallel-configs", default="start,after", help="the configurations run side by side")
    o.add_argument("--repeats", type=int, default=3)
    o.add_argument("--profile", type=int, default=15, help="profile entries to print (0: no profile)")
    o.add_argument("--before", default=BEFORE, help="the revision `before` runs")
    o.add_argument("--start", default=START, help="the revision `start` runs (before this round of cuts)")
    o.add_argument("--parallel", default="1,2,4", help="worker processes run at once, each its own job ('': none)")
    o.add_argument("--floor-requests", type=int, default=3000)
    c = sub.add_parser("_child")
    c.add_argument("--config", required=True)
    c.add_argument("--url", required=True)
    c.add_argument("--target", type=int, required=True)
    c.add_argument("--profile", type=int, default=0)
    c.add_argument("--code", default=str(ROOT))
    c.add_argument("--barrier", default="")
    f = sub.add_parser("_floor")
    f.add_argument("--url", required=True)
    f.add_argument("--client", required=True)
    f.add_argument("--requests", type=int, default=3000)
    f.add_argument("--in-flight", type=int, default=8)
    fk = sub.add_parser("fake", help="the fake server's CPU per request, its code before and now")
    fk.add_argument("--target", type=int, default=300)
    fk.add_argument("--repeats", type=int, default=3)
    fk.add_argument("--fake-before", default=FAKE_BEFORE, help="the revision of the fake server `before` runs")
    i = sub.add_parser("index", help="the novelty and near-duplicate indexes at large pools")
    i.add_argument("--sizes", default="100000,1000000")
    i.add_argument("--dedup-sizes", default="100000,1000000")
    i.add_argument("--dedup-before-sizes", default="100000", help="sizes for the datasketch tables (about 5 KB each)")
    i.add_argument("--dedup-before", default=DEDUP_BEFORE, help="the revision whose dedup.py `before` imports")
    i.add_argument("--brute", type=int, default=20, help="candidates checked against the brute force")
    i.add_argument("--novelty-before", default=NOVELTY_BEFORE, help="the revision whose novelty.py `before` imports")
    i.add_argument("--seed-sizes", default="200000,1000000", help="near-duplicate seeding: before and bulk")
    i.add_argument("--seed-repeats", type=int, default=1)
    i.add_argument("--seed-before-max", type=int, default=1_000_000, help="largest size seeded the old way")
    i.add_argument("--seed-before", default=SEED_BEFORE, help="the revision whose modules `seed_before` imports")
    i.add_argument("--seed-profile", type=int, default=0, help="top entries of a profile of the bulk path's first run")
    ic = sub.add_parser("_index")
    ic.add_argument("--which", required=True)
    ic.add_argument("--size", type=int, required=True)
    ic.add_argument("--brute", type=int, default=20)
    ic.add_argument("--dedup-before", default=DEDUP_BEFORE)
    ic.add_argument("--novelty-before", default=NOVELTY_BEFORE)
    ic.add_argument("--seed-before", default=SEED_BEFORE)
    ic.add_argument("--profile", type=int, default=0)
    sh = sub.add_parser("shards", help="curated per second over 1, 2, 4 requester processes")
    sh.add_argument("--target", type=int, default=0, help="curated (400; --quick: 200)")
    sh.add_argument("--quick", action="store_true", help="a target of 200 (a minute or two in all)")
    sh.add_argument("--workers", default="1,2,4")
    sh.add_argument("--repeats", type=int, default=1, help="runs of each, interleaved (medians)")
    sh.add_argument("--redis-url", default=os.environ.get("SPROUT_REDIS_URL", "redis://127.0.0.1:6379/0"))
    pg = sub.add_parser("paging", help="a page of a 1M-row job's results, by offset and by after")
    pg.add_argument("--rows", type=int, default=1_000_000)
    pg.add_argument("--repeats", type=int, default=5)
    pg.add_argument("--keep-db", action="store_true", help="leave the database (its URL is printed)")
    pg.add_argument("--pg-admin-url", default=os.environ.get(
        "SPROUT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres"))
    pg.add_argument("--redis-url", default=os.environ.get("SPROUT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
                    help="The API's broker (nothing is enqueued).")
    args = ap.parse_args()
    {"fake": fake_cost, "paging": paging, "shards": shards_run, "overhead": overhead, "_child": child, "_floor": floor_child, "index": index, "_index": index_child}[args.cmd](args)


if __name__ == "__main__":
    main()
