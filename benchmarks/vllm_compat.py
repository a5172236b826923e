"""Compatibility check: Sprout, unchanged, against vLLM's OpenAI server (and the embedded one).

Usage (from the repository root, with a vLLM server up: `scripts/vllm_cpu.sh --background`):
    .venv/bin/python benchmarks/vllm_compat.py --base-url http://127.0.0.1:8100/v1
    .venv/bin/python benchmarks/vllm_compat.py --base-url URL --repeat 3 --target 5 --seed 7
    .venv/bin/python benchmarks/vllm_compat.py --base-url URL --no-embedded   # vLLM only

What it does, all through Sprout's normal code paths:
1. `LLMClient.resolve_model()` with no model configured: the name comes from `/models`;
   `/tokenize` (a vLLM endpoint) shows whether the converted tokenizer adds BOS.
2. Field probe: every field Sprout sends (`seed`, `presence_penalty`,
   `frequency_penalty`, a `stop` list, `top_p` with temperature 0, ...) is sent alone and
   in the exact combinations of Sprout's three completion requests and its chat request;
   any field the server refuses is named with its HTTP status and message.
3. One `LLMClient.chat` call (the server applies the chat template it was given, or the model's).
4. A real Self-Instruct job (`lifecycle.run_job(..., base_urls=[url])`, SQLite in a temp dir,
   seeds from `seeds/default.jsonl`, `--target`, fixed `--seed`), checked like the
   integration test: it succeeds, it curates exactly `target` instructions, each with
   1..max_instances accepted instances, every rejection carries a documented rule, the
   counters agree with the rows, and token usage was recorded.
5. Steps 3-4 against the embedded llama.cpp server too (`EmbeddedServer`), job runs
   alternating between the engines (an idle server costs no CPU, and a shared machine's
   load then falls on both alike), then a side-by-side table (medians with `--repeat`).

6. With `--dialects`: the same job through each dialect (`dialect=completions`: the
   few-shot prompts as text; `dialect=chat`: the chat prompt files as messages, through the
   server's chat template), and each one's prefix-cache hit rate: cached prompt tokens /
   prompt tokens (vLLM reports cached tokens when started with
   `--enable-prefix-caching --enable-prompt-tokens-details`). Each dialect's job starts with
   the cache emptied (`/reset_prefix_cache`, which vLLM serves with VLLM_SERVER_DEV_MODE=1:
   `scripts/vllm_cpu.sh --model chat` sets it); without it the table says so.
       .venv/bin/python benchmarks/vllm_compat.py --base-url URL --no-embedded --dialects
   With the embedded chat model on vLLM (`scripts/vllm_cpu.sh --model chat --background`):
       ... --no-embedded --dialects --expect-model smollm2-135m-instruct --target 3

Exits 0 when every vLLM check passes (the embedded run is the baseline: its failures are
reported, and fail the run too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmodel import select

from app import db
from app.core import jobs, store
from app.core.config import LLMConfig
from app.core.filters.heuristics import INSTANCE_RULES, INSTRUCTION_RULES
from app.core.jobs import lifecycle
from app.core.llm.client import LLMClient, LLMError, normalize_base_url
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.models import Instance, Instruction, JobStatus
from app.settings import Settings

SEEDS = ROOT / "seeds" / "default.jsonl"
EXPECTED_MODEL = "gemma-3-270m"
# What /tokenize should make of "hello" per served model: (BOS id, whether it leads). Gemma's
# GGUF adds BOS (2); SmolLM2's says it adds none (its BOS 1 is `<|im_start|>`, which its chat
# template writes at every turn), so a leading 1 would be a stray token before every prompt.
BOS_RULES = {"gemma-3-270m": (2, True), "smollm2-135m-instruct": (1, False)}

# Every LLM error Sprout's client raised (a 4xx from a refused field lands here).
CLIENT_ERRORS: list[tuple[str, list[str], str]] = []
_original_request = LLMClient._request


async def _recording_request(self, method, path, body):  # instrumentation only
    try:
        return await _original_request(self, method, path, body)
    except LLMError as exc:
        CLIENT_ERRORS.append((path, sorted(body or {}), str(exc)[:300]))
        raise


LLMClient._request = _recording_request


@dataclass
class Checks:
    engine: str
    results: list[tuple[str, bool, str]] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append((name, bool(ok), detail))
        return bool(ok)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.results)


# --- 1-2. the model, BOS, and the fields Sprout sends --------------------------------------
# The exact sampling fields of Sprout's requests (app/core/methods/self_instruct.py), default params.
GENERATE = {"max_tokens": 24, "temperature": 0.7, "top_p": 0.5, "presence_penalty": 2.0,
            "frequency_penalty": 0.0, "stop": ["\n16.", "\n16 .", "\n\n"], "seed": 7000049}
CLASSIFY = {"max_tokens": 3, "temperature": 0, "top_p": 1, "stop": ["\n"], "seed": 7000050}
INSTANCES = {"max_tokens": 24, "temperature": 0.0, "top_p": 1, "stop": ["\n\n", "\nTask:", "Example 6"],
             "seed": 7000051}
SINGLE_FIELDS = {
    "seed": {"seed": 7000049},
    "presence_penalty": {"presence_penalty": 2.0},
    "frequency_penalty": {"frequency_penalty": 0.0},
    "stop (list of 3)": {"stop": ["\n16.", "\n16 .", "\n\n"]},
    "top_p=0.5": {"top_p": 0.5},
    "temperature=0 + top_p=1": {"temperature": 0, "top_p": 1},
    "max_tokens": {"max_tokens": 3},
}
PROBE_PROMPT = "Come up with a series of tasks:\n1. Write a poem about the sea.\n2. Translate the sentence into French.\n3."


async def probe_fields(base_url: str, model: str) -> list[tuple[str, str, int, str]]:
    """(endpoint, what, HTTP status, message) for each probe; status 200 = accepted."""
    out = []
    async with httpx.AsyncClient(timeout=300) as http:
        async def send(path: str, what: str, body: dict[str, Any]) -> None:
            r = await http.post(base_url + path, json={"model": model, **body})
            msg = "" if r.status_code == 200 else r.text.strip().replace("\n", " ")[:300]
            out.append((path, what, r.status_code, msg))

        base = {"prompt": PROBE_PROMPT, "max_tokens": 8}
        for what, extra in SINGLE_FIELDS.items():
            await send("/completions", what, {**base, **extra})
        await send("/completions", "Sprout's generation request", {"prompt": PROBE_PROMPT, **GENERATE})
        await send("/completions", "Sprout's classification request", {"prompt": PROBE_PROMPT, **CLASSIFY})
        await send("/completions", "Sprout's instance request", {"prompt": PROBE_PROMPT, **INSTANCES})
        await send("/chat/completions", "chat: messages + temperature 0 + top_p 1 + seed + stop",
                   {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8,
                    "temperature": 0, "top_p": 1, "seed": 7, "stop": ["\n\n"]})
    return out


async def tokenize_first(base_url: str, model: str) -> tuple[list[int] | None, str]:
    """The token ids vLLM makes of "hello" (its /tokenize lives beside /v1)."""
    root = base_url.removesuffix("/v1")
    async with httpx.AsyncClient(timeout=60) as http:
        try:
            r = await http.post(root + "/tokenize", json={"model": model, "prompt": "hello"})
        except httpx.HTTPError as exc:
            return None, f"no /tokenize ({type(exc).__name__})"
    if r.status_code != 200:
        return None, f"/tokenize: HTTP {r.status_code}"
    return r.json().get("tokens"), ""


async def resolve_and_chat(base_url: str) -> dict[str, Any]:
    """`resolve_model()` from /models, then one `LLMClient.chat` (Gemma template on the server)."""
    async with LLMClient(LLMConfig(base_urls=[base_url], model=None, concurrency=1, timeout_s=300, max_retries=1, dialect="completions")) as client:
        model = await client.resolve_model()
        health = await client.health()
        t0 = time.monotonic()
        reply = await client.chat(
            [{"role": "user", "content": "Name the three primary colors, separated by commas."}],
            max_tokens=32, temperature=0, top_p=1, seed=7,
        )
        return {"model": model, "health": health, "text": reply.text, "finish": reply.finish_reason,
                "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                "wall_s": time.monotonic() - t0}


def reset_prefix_cache(base_url: str) -> bool:
    """Empty vLLM's prefix cache (POST /reset_prefix_cache, served with VLLM_SERVER_DEV_MODE=1,
    as `scripts/vllm_cpu.sh --model chat` starts it), so that each dialect's job starts cold:
    otherwise the first dialect inherits the preflight job's identical prompts."""
    root = base_url.removesuffix("/v1")
    try:
        r = httpx.post(root + "/reset_prefix_cache", timeout=60)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


# --- 4. a real job -------------------------------------------------------------------------
def run_one_job(base_url: str, target: int, seed: int, concurrency: int, checks: Checks,
                dialect: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sprout-vllm-compat-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'sprout.db'}"
        db.upgrade(url)
        settings = Settings(data_dir=Path(tmp), database_url=url, llm_base_urls=[], llm_model=None,
                            llm_concurrency=concurrency, llm_timeout_s=300, job_batch_size=4, job_flush_s=0.5)
        fmt, tasks = load_seed_file(SEEDS)
        wanted: dict[str, Any] = {"target": target, "seed": seed}
        if dialect:
            wanted["dialect"] = dialect
        params = jobs.get("self_instruct").validate_params(wanted, settings.core_config().defaults)
        with session_scope(url) as s:
            seed_set = store.import_seed_set(s, SEEDS.name, fmt, tasks)
            job_id = store.create_job(s, "self_instruct", params.model_dump(), seed_set_id=seed_set.id).id
        errors_before = len(CLIENT_ERRORS)
        t0 = time.monotonic()
        job = lifecycle.run_job(url, job_id, settings.core_config(), base_urls=[base_url])
        wall = time.monotonic() - t0
        with session_scope(url) as s:
            ins = s.exec(select(Instruction).where(Instruction.job_id == job_id).order_by(Instruction.seq)).all()
            inst = s.exec(select(Instance).where(Instance.job_id == job_id)).all()
            job = store.get_job(s, job_id)
            curated = store.curated_examples(s, job_id)
        c = job.counters

    checks.add("job succeeded", job.status == JobStatus.succeeded.value, f"{job.status} {job.error or ''}".strip())
    accepted = [r for r in ins if r.fate == "accepted"]
    checks.add(f"curated exactly target={target}", len(accepted) == target == c["accepted"],
               f"{len(accepted)} rows, counter {c['accepted']}")
    kept: dict[int, int] = {}
    for i in inst:
        if i.fate == "accepted":
            kept[i.instruction_id] = kept.get(i.instruction_id, 0) + 1
    bad = [r.instruction for r in accepted if not 1 <= kept.get(r.id, 0) <= params.max_instances]
    checks.add("every accepted instruction has 1..max_instances instances", not bad, "; ".join(bad)[:200])
    checks.add("curated export: target instructions, every example with an output",
               len({d["id"] for d in curated}) == target and all(d["output"] for d in curated),
               f"{len({d['id'] for d in curated})} instructions, {len(curated)} examples")
    bad_rules = [f"{r.rule!r}" for r in ins if r.fate == "rejected" and r.rule not in INSTRUCTION_RULES]
    bad_rules += [f"instance {i.rule!r}" for i in inst if i.rule and (i.rule not in INSTANCE_RULES or i.fate != "rejected")]
    checks.add("every rejection carries a documented rule", not bad_rules, ", ".join(bad_rules)[:200])
    checks.add("counters agree with the rows",
               c["generated"] == len(ins) and sum(c["rejected"].values()) == len(ins) - len(accepted)
               and c["instances"] == sum(1 for i in inst if i.fate == "accepted"),
               f"generated {c['generated']} vs {len(ins)} rows")
    checks.add("token usage recorded", c["llm_requests"] > 0 and c["prompt_tokens"] > 0 and c["completion_tokens"] > 0,
               f"requests {c['llm_requests']}, prompt {c['prompt_tokens']}, completion {c['completion_tokens']}")
    new_errors = CLIENT_ERRORS[errors_before:]
    checks.add("no request refused or failed", c["llm_errors"] == 0 and not new_errors,
               f"llm_errors={c['llm_errors']}; " + " | ".join(e[2] for e in new_errors[:3]))
    return {
        "requests": c["llm_requests"], "errors": c["llm_errors"], "retries": c["llm_retries"],
        "prompt_tokens": c["prompt_tokens"], "completion_tokens": c["completion_tokens"],
        "cached_prompt_tokens": c.get("cached_prompt_tokens", 0),
        "dialects": {role: used.get("dialect") for role, used in (c.get("roles") or {}).items()},
        "generated": c["generated"], "accepted": c["accepted"], "instances": c["instances"],
        "rejected": dict(c["rejected"]), "wall_s": wall,
        "completion_tok_s": c["completion_tokens"] / wall if wall else 0.0,
        "examples": list(dict.fromkeys(d["instruction"] for d in curated))[:3],
    }


def preflight(engine: str, base_url: str, args: argparse.Namespace, probe: bool) -> tuple[Checks, dict[str, Any]]:
    """Steps 1-3 for one server: /models, (vLLM: BOS and the field probe), one chat."""
    checks = Checks(engine)
    info: dict[str, Any] = {"runs": [], "url": base_url}
    print(f"\n=== {engine}: {base_url}", flush=True)
    chat = asyncio.run(resolve_and_chat(base_url))
    info["chat"] = chat
    checks.add("/models resolution (no model configured)", chat["model"] == args.expect_model,
               f"resolved {chat['model']!r}")
    checks.add("health() says ok", all(v == "ok" for v in chat["health"].values()), str(chat["health"]))
    checks.add("LLMClient.chat answers (the server's chat template)", bool(chat["text"].strip()) and chat["prompt_tokens"] > 0,
               f"{chat['text'].strip()[:80]!r}, prompt_tokens={chat['prompt_tokens']}, finish={chat['finish']}")
    print(f"model {chat['model']!r}; chat -> {chat['text'].strip()[:100]!r} "
          f"({chat['prompt_tokens']} prompt / {chat['completion_tokens']} completion tokens, {chat['wall_s']:.1f} s)")
    if probe:
        ids, why = asyncio.run(tokenize_first(base_url, chat["model"]))
        bos, leads = BOS_RULES.get(chat["model"], (None, None))
        if ids and bos is not None:
            checks.add(f"tokenizer {'adds' if leads else 'adds no'} BOS (/tokenize 'hello')",
                       (ids[:1] == [bos]) == leads, f"ids {ids}")
        elif ids:
            print(f"BOS check skipped: no rule for {chat['model']!r} (ids {ids})")
        else:
            print(f"BOS check skipped: {why or 'no tokens returned'}")
        results = asyncio.run(probe_fields(base_url, chat["model"]))
        info["probe"] = results
        print("field probe (HTTP status per request):")
        for path, what, status, msg in results:
            print(f"  {status}  {path:<18} {what}" + (f"  -> {msg}" if msg else ""))
        refused = [f"{what} ({status}: {msg[:120]})" for _, what, status, msg in results if status != 200]
        checks.add("server accepts every field Sprout sends", not refused, "; ".join(refused))
    return checks, info


def job_run(engine: str, info: dict[str, Any], checks: Checks, args: argparse.Namespace, r: int) -> None:
    load = os.getloadavg()[0]
    print(f"[{engine}] job run {r + 1}/{args.repeat} (target {args.target}, seed {args.seed}; "
          f"load average {load:.1f} on {os.cpu_count()} cores) ...", flush=True)
    run = run_one_job(info["url"], args.target, args.seed, args.concurrency, checks)
    run["load"] = load
    info["runs"].append(run)
    print(f"  {run['accepted']}/{run['generated']} accepted, {run['requests']} requests, "
          f"{run['completion_tokens']} completion tokens in {run['wall_s']:.1f} s "
          f"({run['completion_tok_s']:.1f} tok/s); rejected {run['rejected']}")
    for text in run["examples"]:
        print(f"    e.g. {text[:100]!r}")


def median(info: dict[str, Any], key: str) -> float:
    return statistics.median(r[key] for r in info["runs"]) if info["runs"] else float("nan")


def table(infos: dict[str, dict[str, Any]], repeat: int) -> None:
    engines = list(infos)
    label = f"median of {repeat} runs" if repeat > 1 else "one run"
    print(f"\n=== side by side ({label} each; same job: seeds/default.jsonl, same target and seed)")
    rows = [
        ("LLM requests", "requests", "{:.0f}"),
        ("request errors", "errors", "{:.0f}"),
        ("prompt tokens", "prompt_tokens", "{:.0f}"),
        ("completion tokens", "completion_tokens", "{:.0f}"),
        ("generated (candidates)", "generated", "{:.0f}"),
        ("accepted", "accepted", "{:.0f}"),
        ("accepted instances", "instances", "{:.0f}"),
        ("completion tokens/s", "completion_tok_s", "{:.1f}"),
        ("job wall time (s)", "wall_s", "{:.1f}"),
        ("load average at start", "load", "{:.1f}"),
    ]
    print(f"{'':<26}" + "".join(f"{e:>22}" for e in engines))
    for name, key, fmt in rows:
        print(f"{name:<26}" + "".join(f"{fmt.format(median(infos[e], key)):>22}" for e in engines))
    print(f"{'accepted/generated':<26}" + "".join(
        f"{median(infos[e], 'accepted') / max(1, median(infos[e], 'generated')):>22.2f}" for e in engines))
    print(f"{'chat prompt tokens':<26}" + "".join(f"{infos[e]['chat']['prompt_tokens']:>22}" for e in engines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", required=True, help="vLLM's OpenAI server, e.g. http://127.0.0.1:8100/v1")
    ap.add_argument("--target", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=1, help="runs per engine; the table shows medians")
    ap.add_argument("--concurrency", type=int, default=4, help="requests in flight (both engines)")
    ap.add_argument("--expect-model", default=EXPECTED_MODEL, help="the name /models should list first")
    ap.add_argument("--no-embedded", action="store_true", help="skip the embedded llama.cpp comparison")
    ap.add_argument("--dialects", action="store_true",
                    help="also run the job through each dialect and report its prefix-cache hit rate")
    ap.add_argument("--model-cache", type=Path, default=Path.home() / ".cache" / "sprout",
                    help="where the bundled GGUF is (or is written)")
    args = ap.parse_args()

    checks: dict[str, Checks] = {}
    infos: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        urls = {"vLLM": normalize_base_url(args.base_url)}
        if not args.no_embedded:
            from app.core.llm.embedded import EmbeddedServer, bundled_model_path

            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="sprout-embedded-"))
            server = EmbeddedServer(data_dir=Path(tmp), model_path=bundled_model_path(args.model_cache),
                                    parallel=args.concurrency)
            t0 = time.monotonic()
            urls["llama.cpp (embedded)"] = stack.enter_context(server)
            print(f"(embedded llama.cpp server ready in {time.monotonic() - t0:.1f} s)")
        for engine, url in urls.items():
            checks[engine], infos[engine] = preflight(engine, url, args, probe=engine == "vLLM")
        # runs alternate between the engines, so that both see the same load on a shared machine
        # (an idle server uses no CPU: vLLM's and llama.cpp's idle processes were measured at 0)
        print()
        for r in range(args.repeat):
            for engine in urls:
                job_run(engine, infos[engine], checks[engine], args, r)
    if not args.no_embedded:
        table(infos, args.repeat)
        a, b = (infos[k]["chat"]["prompt_tokens"] for k in infos)
        print(f"(equal chat prompt tokens: both servers rendered the same Gemma template, one BOS: {a} vs {b})")
    if args.dialects:
        dialect_checks = Checks("vLLM dialects")
        checks["vLLM dialects"] = dialect_checks
        print("\n=== prefix-cache hit rate per dialect (vLLM)")
        print("| dialect | curated | requests | prompt tokens | cached | hit rate | cache at start | dialect used |")
        print("|---|---|---|---|---|---|---|---|")
        for dialect in ("completions", "chat"):
            cold = reset_prefix_cache(urls["vLLM"])
            info = run_one_job(urls["vLLM"], args.target, args.seed, args.concurrency, dialect_checks, dialect=dialect)
            rate = info["cached_prompt_tokens"] / info["prompt_tokens"] if info["prompt_tokens"] else 0.0
            start = "emptied" if cold else "not emptied (no /reset_prefix_cache)"
            print(f"| {dialect} | {info['accepted']} | {info['requests']} | {info['prompt_tokens']} "
                  f"| {info['cached_prompt_tokens']} | {rate:.1%} | {start} | {info['dialects']} |")
    all_checks = list(checks.values())

    print("\n=== checks")
    for checks in all_checks:  # one line per check; "3/3" when it ran once per job run
        grouped: dict[str, list[tuple[bool, str]]] = {}
        for name, ok, detail in checks.results:
            grouped.setdefault(name, []).append((ok, detail))
        for name, outcomes in grouped.items():
            passed = sum(ok for ok, _ in outcomes)
            count = f" {passed}/{len(outcomes)}" if len(outcomes) > 1 else ""
            why = "; ".join(d for ok, d in outcomes if not ok and d)
            print(f"  {'ok  ' if passed == len(outcomes) else 'FAIL'} [{checks.engine}] {name}{count}"
                  + (f" ({why[:300]})" if why else ""))
    failed = [c.engine for c in all_checks if not c.ok]
    if CLIENT_ERRORS:
        print("client errors seen:")
        for path, keys, msg in CLIENT_ERRORS[:10]:
            print(f"  {path} fields={keys}: {msg}")
    print(f"\n{'PASS' if not failed else 'FAIL'}: Sprout against vLLM's OpenAI server "
          + ("(unchanged client; every check passed)" if not failed else f"(failed: {', '.join(failed)})"))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
