"""Generation throughput: the quick-start job before and after prefix reuse and adaptive
concurrency, in one run, on the same machine; then the adaptive limit against a
fault-injecting proxy.

Usage (from the repository root):
    .venv/bin/python benchmarks/generation_throughput.py                   # target 50, seed 1
    .venv/bin/python benchmarks/generation_throughput.py --target 10
    .venv/bin/python benchmarks/generation_throughput.py --no-prefix-reuse  # "after" without it
    .venv/bin/python benchmarks/generation_throughput.py --no-adaptive      # "after" without AIMD
    .venv/bin/python benchmarks/generation_throughput.py --skip-jobs        # only the proxy part

1. The quick-start job shape (`seeds/default.jsonl`, Self-Instruct, `--target`, fixed
   `--seed`), run through `lifecycle.run_job` on SQLite in a temporary folder, against a
   fresh embedded server each time: *before* (server prompt cache off, fixed concurrency,
   as Sprout ran before) and *after* (prompt cache on, adaptive concurrency). Printed per
   run: wall time, curated per minute, prompt / completion / cached prompt tokens,
   utilisation (mean in flight / limit, share of wall time busy), the final limit, and the
   CPU time of this process and of the model server (a child, counted once it exits).
   The machine may be shared: wall times then carry other people's load; the CPU times
   and the ratio of the two runs measured here, back to back, are the figures to read.
2. `FaultInjectingProxy` (a fault injector, named as such: it adds latency and answers
   429 when more than `--proxy-capacity` requests are in flight) in front of a fresh
   embedded server, and a burst of classification requests through the adaptive client:
   the limit per endpoint is sampled over time and printed, showing it back off on the
   429s and climb again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import db
from app.core import jobs, store
from app.core.config import LLMConfig
from app.core.jobs import lifecycle
from app.core.llm.client import LLMClient
from app.core.llm.embedded import EmbeddedServer, bundled_model_path
from app.core.methods import prompts
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.settings import Settings

SEEDS = ROOT / "seeds" / "default.jsonl"


def cpu_s(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def run_job(model: Path, target: int, seed: int, concurrency: int, prefix_reuse: bool, adaptive: bool,
            parallel: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sprout-throughput-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'sprout.db'}"
        db.upgrade(url)
        settings = Settings(data_dir=Path(tmp), database_url=url, llm_base_urls=[], llm_model=None,
                            llm_concurrency=concurrency, llm_adaptive_concurrency=adaptive,
                            job_batch_size=16, job_flush_s=2.0)
        fmt, tasks = load_seed_file(SEEDS)
        params = jobs.get("self_instruct").validate_params({"target": target, "seed": seed},
                                                           settings.core_config().defaults)
        with session_scope(url) as s:
            seed_set = store.import_seed_set(s, SEEDS.name, fmt, tasks)
            job_id = store.create_job(s, "self_instruct", params.model_dump(), seed_set_id=seed_set.id).id
        cpu_self, cpu_children = cpu_s(resource.RUSAGE_SELF), cpu_s(resource.RUSAGE_CHILDREN)
        server = EmbeddedServer(data_dir=Path(tmp), model_path=model, parallel=parallel, prompt_cache=prefix_reuse)
        base_url = server.start()
        try:
            t0 = time.monotonic()
            job = lifecycle.run_job(url, job_id, settings.core_config(), base_urls=[base_url])
            wall = time.monotonic() - t0
        finally:
            server.stop()
        c = job.counters
    return {
        "status": job.status, "error": job.error, "wall_s": wall, "curated": c.get("accepted", 0),
        "per_min": 60 * c.get("accepted", 0) / wall if wall else 0.0,
        "prompt": c.get("prompt_tokens", 0), "completion": c.get("completion_tokens", 0),
        "cached": c.get("cached_prompt_tokens", 0), "requests": c.get("llm_requests", 0),
        "utilisation": c.get("llm_utilisation", 0.0), "busy": c.get("llm_busy_share", 0.0),
        "limit": next(iter((c.get("llm_concurrency") or {}).values()), None),
        "cpu_self_s": cpu_s(resource.RUSAGE_SELF) - cpu_self,
        "cpu_server_s": cpu_s(resource.RUSAGE_CHILDREN) - cpu_children,
    }


# --- the fault-injecting proxy -------------------------------------------------------------
class FaultInjectingProxy:
    """A fault injector for this benchmark: forwards to `target` (without streaming), after
    `latency_s`, and answers 429 at once when `capacity` requests are already in flight."""

    def __init__(self, target: str, capacity: int, latency_s: float):
        self.in_flight = 0
        self.refused = 0
        lock = threading.Lock()
        upstream = httpx.Client(base_url=target.removesuffix("/v1"), timeout=600)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                r = upstream.get(self.path)
                self._reply(r.status_code, r.content)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                body.pop("stream", None)
                body.pop("stream_options", None)
                with lock:
                    busy = outer.in_flight >= capacity
                    if busy:
                        outer.refused += 1
                    else:
                        outer.in_flight += 1
                if busy:
                    return self._reply(429, b'{"error": "injected: too many requests"}')
                try:
                    time.sleep(latency_s)
                    r = upstream.post(self.path, json=body)
                finally:
                    with lock:
                        outer.in_flight -= 1
                self._reply(r.status_code, r.content)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


async def adaptive_trace(url: str, requests: int, start: int) -> tuple[list[tuple[float, int]], dict[str, Any]]:
    instructions = [f"Write a short note number {i} about a topic of your choice." for i in range(requests)]
    trace: list[tuple[float, int]] = []
    async with LLMClient(LLMConfig(base_urls=[url], concurrency=start, concurrency_min=1, concurrency_max=32, max_retries=20,
                         backoff_s=0.2, backoff_max_s=2.0, outage_budget_s=0, dialect="completions")) as client:
        t0 = time.monotonic()

        async def sample() -> None:
            while True:
                trace.append((time.monotonic() - t0, client.capacity))
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(client.complete(prompts.render("self_instruct_classify", instruction=text).rstrip(),
                                               max_tokens=3, temperature=0, stop=["\n"]) for text in instructions))
        sampler.cancel()
        trace.append((time.monotonic() - t0, client.capacity))
        return trace, {**client.gauges(), "retries": client.usage.retries, "errors": client.usage.errors,
                       "cuts": client._endpoints[0].limit.epoch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=8, help="SPROUT_LLM_CONCURRENCY of both runs")
    ap.add_argument("--parallel", type=int, default=4, help="the embedded server's slots")
    ap.add_argument("--no-prefix-reuse", action="store_true", help="the 'after' run without the prompt cache")
    ap.add_argument("--no-adaptive", action="store_true", help="the 'after' run without adaptive concurrency")
    ap.add_argument("--skip-jobs", action="store_true", help="only the fault-injecting proxy part")
    ap.add_argument("--model", type=Path, default=None, help="a GGUF file (default: the bundled one)")
    ap.add_argument("--proxy-requests", type=int, default=60)
    ap.add_argument("--proxy-capacity", type=int, default=3)
    ap.add_argument("--proxy-latency-s", type=float, default=0.5)
    args = ap.parse_args()
    model = args.model or bundled_model_path(Path(os.environ.get("SPROUT_DATA_DIR", ROOT / ".sprout")))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared machines: read CPU times "
          "and the ratio of runs made back to back)", flush=True)

    if not args.skip_jobs:
        runs = {}
        for name, prefix, adaptive in (("before", False, False),
                                       ("after", not args.no_prefix_reuse, not args.no_adaptive)):
            print(f"running {name}: prefix reuse {'on' if prefix else 'off'}, adaptive concurrency "
                  f"{'on' if adaptive else 'off'}, target {args.target}, seed {args.seed} ...", flush=True)
            runs[name] = run_job(model, args.target, args.seed, args.concurrency, prefix, adaptive, args.parallel)
            print(f"  {runs[name]}", flush=True)
        rows = [("status", "status", "{}"), ("wall time (s)", "wall_s", "{:.1f}"),
                ("curated", "curated", "{}"), ("curated per minute", "per_min", "{:.2f}"),
                ("LLM requests", "requests", "{}"), ("prompt tokens", "prompt", "{}"),
                ("completion tokens", "completion", "{}"), ("cached prompt tokens", "cached", "{}"),
                ("mean in flight / limit", "utilisation", "{:.1%}"), ("busy share of wall time", "busy", "{:.1%}"),
                ("final concurrency limit", "limit", "{}"), ("CPU s, this process", "cpu_self_s", "{:.1f}"),
                ("CPU s, model server", "cpu_server_s", "{:.1f}")]
        print(f"\n{'':28} {'before':>12} {'after':>12}")
        for label, key, fmt in rows:
            print(f"{label:28} {fmt.format(runs['before'][key]):>12} {fmt.format(runs['after'][key]):>12}")
        b, a = runs["before"], runs["after"]
        if b["per_min"]:
            print(f"\ncurated per minute, after / before: {a['per_min'] / b['per_min']:.2f}x")
        if b["prompt"] and a["prompt"]:
            print(f"server CPU per curated instruction, after / before: "
                  f"{(a['cpu_server_s'] / max(1, a['curated'])) / (b['cpu_server_s'] / max(1, b['curated'])):.2f}x")

    print(f"\nfault-injecting proxy: capacity {args.proxy_capacity}, +{args.proxy_latency_s:g} s latency, "
          f"{args.proxy_requests} classification requests, adaptive client starting at {args.concurrency}", flush=True)
    with (tempfile.TemporaryDirectory(prefix="sprout-throughput-") as tmp,
          EmbeddedServer(data_dir=Path(tmp), model_path=model, parallel=args.parallel) as base_url):
        proxy = FaultInjectingProxy(base_url, args.proxy_capacity, args.proxy_latency_s)
        try:
            trace, figures = asyncio.run(adaptive_trace(proxy.url, args.proxy_requests, args.concurrency))
        finally:
            proxy.close()
    limits = [limit for _, limit in trace]
    print("limit over time (t s: limit): " + ", ".join(f"{t:.0f}:{limit}" for t, limit in trace[:: max(1, len(trace) // 40)]))
    print(f"injected 429s: {proxy.refused}; cuts: {figures['cuts']}; limit min {min(limits)}, "
          f"median {statistics.median(limits):g}, max {max(limits)}; retries {figures['retries']}; "
          f"mean in flight / limit {figures['llm_utilisation']:.1%}, busy {figures['llm_busy_share']:.1%}")


if __name__ == "__main__":
    main()
