"""A job's model-server panel, spending, budget stop, last model-server errors and
contamination report on its page, in Debian's Chromium against the real API.

First on a stored job (the real store, made-up figures; no model): the panel follows the
counters live while the job runs, then shows the result's figures once it ended; keyboard
reachable, laid out at 360 px. Then a real job run by a real `sprout worker` on the embedded
model, with a fault injector as a second endpoint (every answer a 503, its URL carrying a
password): the page shows that job's own figures, errors and report, as the API returns them.
"""

import json
import math

import httpx
import pytest

from app.core.methods.candidates import CandidateRecord
from tests.browser.browser_fixtures import WIDE, layout_problems, live_api, pages, screenshot  # noqa: F401
from tests.browser.test_dashboard_basics import set_job, stored_job
from tests.conftest import DEFAULT_SEEDS
from tests.fault_server import FaultyLLMServer
from tests.service_fixtures import api_settings, make_key, processes, service_env  # noqa: F401

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 780}
# the words of the matched elements that the layout splits over two lines (each word: one line box)
WORDS_BROKEN = """(selector) => [...document.querySelectorAll(selector)].flatMap((el) => {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT), broken = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const m of node.textContent.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
      if (new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size > 1) broken.push(m[0]);
    }
  }
  return broken;
})"""
FINISH_S = 600_000  # ms: a hang guard for a job on a loaded 2-core machine, not a timing assertion


def percent(x: float) -> str:
    return f"{math.floor(x * 100 + 0.5)}%"  # as the page rounds (half up)


def text_has(page, selector, text):
    page.wait_for_function("([s, t]) => (document.querySelector(s)?.textContent || '').includes(t)", arg=[selector, text])


def shown_errors(page) -> list[dict[str, str]]:
    """The errors as listed (newest first); each message is shown after its endpoint's line,
    without the endpoint it starts with, and whole as its title."""
    shown = page.eval_on_selector_all("#llm-last-errors li", """els => els.map(e => ({
        at: e.querySelector('time').getAttribute('datetime'), endpoint: e.querySelector('code').textContent,
        message: e.querySelector('.message').title, text: e.querySelector('.message').textContent}))""")
    for e in shown:
        assert e["message"].endswith(e.pop("text"))
    return shown


def update_counters(pg_url: str, job_id: int, **changes) -> None:
    from app.db import session_scope
    from app.models import Job

    with session_scope(pg_url) as session:
        job = session.get(Job, job_id)
        job.counters = {**job.counters, **changes}


def error(at: str, endpoint: str, message: str) -> dict[str, str]:
    return {"at": at, "endpoint": endpoint, "message": message}


GPU2 = "http://sprout:***@gpu2:8000/v1"
RUNNING = {"llm_requests": 40, "llm_errors": 2, "llm_retries": 2, "prompt_tokens": 12000, "completion_tokens": 3000,
           "cached_prompt_tokens": 9000, "llm_busy_share": 0.97, "llm_utilisation": 0.8125,
           "llm_concurrency": {"http://gpu1:8000/v1": 6, GPU2: 2},
           "llm_last_errors": [error("2026-03-01T10:00:01+00:00", GPU2, f"{GPU2}/completions: HTTP 503 overloaded"),
                               error("2026-03-01T10:00:02+00:00", GPU2, f"{GPU2}: cannot connect (ConnectError)")]}
REPORT = {"benchmark_sets": [1], "n": 8, "threshold": 0.5, "strict": False, "candidates_hit": 2,
          "benchmarks": {"gsm8k-test": {"items_hit": 1, "hits": 2, "items": {"gsm-17": 2}}}}


def test_the_panel_follows_a_running_job_then_shows_its_result(pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    records = [CandidateRecord(f"List {i} facts about rivers.", True, in_pool=True) for i in range(3)]
    records += [CandidateRecord(f"Natalia sold clips to {i} friends.", False, rule="contaminated") for i in range(2)]
    job = stored_job(pg_url, "self_instruct", "running", records, counters=RUNNING,
                     params={"target": 60, "max_total_tokens": 15000, "price_per_million_tokens": 0.2,
                             "decontaminate_against": [1]})
    page = pages.open(f"{live_api.url}/dashboard#/jobs/{job}", key=key)
    page.wait_for_selector("#llm-live")
    assert page.inner_text("#llm-cached") == "9000 prompt tokens (75% of prompt tokens)"
    assert page.inner_text("#llm-busy").startswith("97%") and page.inner_text("#llm-utilisation").startswith("81%")
    limits = page.eval_on_selector_all("#llm-limits li", "els => els.map(e => [e.dataset.endpoint, e.querySelector('.n').textContent])")
    assert limits == [["http://gpu1:8000/v1", "6"], [GPU2, "2"]]
    assert page.inner_text("#per-accepted") == "5000.0 tokens (so far)"  # 15000 tokens, 3 accepted
    assert page.inner_text("#cost") == "0.0030 · 0.001000 per accepted"
    assert [e["message"] for e in shown_errors(page)] == [e["message"] for e in reversed(RUNNING["llm_last_errors"])]
    assert not page.is_visible("#stopped") and not page.is_visible("#contamination")

    # the worker's heartbeat writes new counters: the page follows without a reload
    newer = error("2026-03-01T10:00:05+00:00", GPU2, f"{GPU2}/completions: HTTP 500 out of memory")
    update_counters(pg_url, job, llm_errors=3, llm_requests=45, llm_busy_share=0.5,
                    llm_last_errors=[*RUNNING["llm_last_errors"], newer])
    text_has(page, "#llm-requests", "45")
    assert page.inner_text("#llm-busy").startswith("50%")
    assert shown_errors(page)[0] == newer  # newest first, with its time and endpoint
    assert page.inner_text("#llm-last-errors li .message") == "/completions: HTTP 500 out of memory"
    for size in (WIDE, PHONE):
        page.set_viewport_size(size)
        assert layout_problems(page) == []
    screenshot(page, "job-model-server-live-360")

    # it ends, stopped by its budget: the result's figures, the stop reason, the report
    page.set_viewport_size(WIDE)
    set_job(pg_url, job, status="succeeded", result={
        "curated": 3, "total_tokens": 15600, "tokens_per_accepted": 5200.0, "cost": 0.00312,
        "cost_per_accepted": 0.00104, "stopped": "token budget reached", "contamination": REPORT})
    page.wait_for_selector(".detail[data-status=succeeded]")
    assert not page.is_visible("#llm-live")
    assert page.inner_text("#per-accepted") == "5200.0 tokens" and page.inner_text("#cost") == "0.0031 · 0.001040 per accepted"
    # one "tokens per accepted" figure, named as the CLI summary names it, on the Charts tab too
    assert page.inner_text("#llm dt:has(+ #per-accepted)") == "tokens per accepted example"
    page.click("#tab-charts")
    page.wait_for_function("document.querySelector('#charts-summary')?.textContent.endsWith("
                           "' · tokens per accepted example: 5200.0')")
    assert "per curated" not in page.inner_text("#charts")
    page.click("#tab-overview")
    page.wait_for_selector("#contamination")
    stopped = page.inner_text("#stopped")
    assert "token budget reached" in stopped and "max_total_tokens 15000" in stopped
    assert page.inner_text("#contamination-hit") == "2"
    assert page.inner_text("#contamination-rule") == "Checked against benchmark set #1 (8-grams, threshold 0.5)."
    row = page.eval_on_selector("#contamination tr[data-benchmark='gsm8k-test']",
                                "e => [e.querySelector('.items-hit').textContent, e.querySelector('.hits').textContent]")
    assert row == ["1", "2"]

    # keyboard: tab to the items' disclosure and open it, then to the contaminated rows
    def tab_to(selector: str) -> None:
        page.focus("body")
        for _ in range(80):
            page.keyboard.press("Tab")
            if page.evaluate("s => document.activeElement === document.querySelector(s)", selector):
                return
        raise AssertionError(f"{selector} is not reachable with Tab")

    tab_to("#contamination details.items summary")
    page.keyboard.press("Enter")
    assert page.is_visible("#contamination details.items code") and page.inner_text("#contamination details.items li") == "gsm-17 ×2"
    page.set_viewport_size(PHONE)
    assert layout_problems(page) == []
    assert page.evaluate(WORDS_BROKEN, "#contamination th, #contamination td") == []  # no "hi ts"
    screenshot(page, "job-figures-360")
    page.set_viewport_size(WIDE)
    screenshot(page, "job-figures")
    tab_to("#contaminated-rows")
    page.keyboard.press("Enter")
    page.wait_for_function("location.hash.includes('rule=contaminated')")
    page.wait_for_selector("#rows li.row")
    assert set(page.eval_on_selector_all("#rows li.row", "els => els.map(e => e.dataset.rule)")) == {"contaminated"}


# --- a real job: a worker, the embedded model, and a fault injector as a second endpoint ----------
REFUSAL = "fault injector: this endpoint always refuses"


@pytest.mark.integration
def test_a_real_job_shows_its_own_model_server_figures_errors_and_report(pages, live_api, api_settings, processes,
                                                                         llm_base_url, pg_url):
    key = make_key(pg_url, "alice")
    api = httpx.Client(base_url=live_api.url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60)
    seeds = DEFAULT_SEEDS.read_bytes()
    seed_set = api.post("/seed-sets", files={"file": (DEFAULT_SEEDS.name, seeds)}).json()["id"]
    bench = api.post("/benchmark-sets", files={"file": (DEFAULT_SEEDS.name, seeds)}, data={"name": "seed tasks"})
    assert bench.status_code == 201, bench.text
    with FaultyLLMServer(default=(503, json.dumps({"error": REFUSAL}))) as faulty:
        secret_url = faulty.url.replace("http://", "http://sprout:s3cret@")
        shown_as = faulty.url.replace("http://", "http://sprout:***@")
        env = service_env(api_settings, SPROUT_LLM_BASE_URLS=f"{llm_base_url},{secret_url}")
        worker = processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker")
        made = api.post("/jobs", json={"kind": "self_instruct", "seed_set_id": seed_set, "params": {
            "target": 20, "seed": 3, "max_tokens": 320, "max_total_tokens": 5000, "price_per_million_tokens": 0.2,
            "decontaminate_against": [bench.json()["id"]]}})
        assert made.status_code == 201, made.text
        job_id = made.json()["id"]
        page = pages.open(f"{live_api.url}/dashboard#/jobs/{job_id}", key=key)
        page.wait_for_selector(".detail[data-status=running] #llm-live", timeout=FINISH_S)
        page.wait_for_selector(".detail[data-status=running] #llm-busy", timeout=FINISH_S)  # live figures
        screenshot(page, "job-model-server-running")
        page.wait_for_selector(".detail[data-status=succeeded]", timeout=FINISH_S)
        assert faulty.requests, "the fault injector was never asked"
    job = api.get(f"/jobs/{job_id}").json()
    c, result = job["counters"], job["result"]
    print(f"\ncounters {json.dumps(c)}\nresult {json.dumps(result)}")

    # the figures are this job's, as the API gives them
    assert page.inner_text("#llm-requests") == str(c["llm_requests"])
    assert page.inner_text("#llm-tokens") == f"{c['prompt_tokens']} prompt · {c['completion_tokens']} completion"
    assert 0 < c["cached_prompt_tokens"] < c["prompt_tokens"]  # the embedded server reuses the shared prefix
    assert page.inner_text("#llm-cached") == (f"{c['cached_prompt_tokens']} prompt tokens "
                                              f"({percent(c['cached_prompt_tokens'] / c['prompt_tokens'])} of prompt tokens)")
    assert page.inner_text("#llm-busy").startswith(percent(c["llm_busy_share"]) + " ")
    assert page.inner_text("#llm-utilisation").startswith(percent(c["llm_utilisation"]) + " ")
    limits = page.eval_on_selector_all("#llm-limits li", "els => els.map(e => [e.dataset.endpoint, e.querySelector('.n').textContent])")
    assert limits == [[ep, str(n)] for ep, n in c["llm_concurrency"].items()] and {ep for ep, _ in limits} == {llm_base_url, shown_as}

    # the budget stopped it; tokens and cost per accepted example from its result
    assert result["stopped"] == "token budget reached" and "token budget reached" in page.inner_text("#stopped")
    per = result["tokens_per_accepted"]
    assert page.inner_text("#per-accepted") == ("–" if per is None else f"{per:.1f} tokens")
    cost = f"{result['cost']:.4f}" + ("" if result["cost_per_accepted"] is None else f" · {result['cost_per_accepted']:.6f} per accepted")
    assert page.inner_text("#cost") == cost

    # the fault injector's refusals, newest first, its password masked everywhere
    assert c["llm_errors"] > 0 and 0 < len(c["llm_last_errors"]) <= 5
    assert shown_errors(page) == list(reversed(c["llm_last_errors"]))
    assert all(e["endpoint"] == shown_as and "HTTP 503" in e["message"] and REFUSAL in e["message"]
               for e in c["llm_last_errors"])
    assert "s3cret" not in page.content() and "s3cret" not in json.dumps(job)

    # its contamination report (the seed tasks as the benchmark), as the result holds it
    report = result["contamination"]
    if report["candidates_hit"]:
        assert page.inner_text("#contamination-hit") == str(report["candidates_hit"])
        for name, b in report["benchmarks"].items():
            row = page.eval_on_selector(f"#contamination tr[data-benchmark='{name}']",
                                        "e => [e.querySelector('.items-hit').textContent, e.querySelector('.hits').textContent]")
            assert row == [str(b["items_hit"]), str(b["hits"])]
    else:
        assert page.is_visible("#contamination-none")
    assert layout_problems(page) == []
    screenshot(page, "job-model-server")
    page.set_viewport_size(PHONE)
    assert layout_problems(page) == []
    screenshot(page, "job-model-server-360")
    assert worker.proc.poll() is None
