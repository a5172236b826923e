"""A user's session with the dashboard, in Debian's Chromium, against the real API, a real
`sprout worker` and the embedded model: enter the key, upload seeds (a bad file first),
start a job from the form, watch it progress, filter its rejections by rule, open a row's
evidence, cancel a second job, export and download the first, open a deep link; the
layout is checked at 390 and 1440 px on the way, and the page logs no error.
"""

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from tests.browser.browser_fixtures import NARROW, WIDE, layout_problems, live_api, pages, screenshot  # noqa: F401
from tests.conftest import DEFAULT_SEEDS
from tests.service_fixtures import api_settings, make_key, processes, service_env  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
FINISH_S = 600_000  # ms: a hang guard for a job on a loaded 2-core machine, not a timing assertion


def job_id_of(page) -> int:
    page.wait_for_function("location.hash.startsWith('#/jobs/')")
    return int(page.evaluate("location.hash").split("/")[2].split("?")[0])


def start_job_from_form(page, target: str, seed: str) -> int:
    page.click("a[href='#/new']")
    page.wait_for_selector("#param-target")
    assert page.input_value("#job-kind") == "self_instruct"
    assert page.input_value("#param-target") == "100" and page.input_value("#param-max_tokens") == "1024"  # defaults
    page.fill("#param-target", target)
    if not page.is_visible("#param-max_tokens"):  # folded with the other sampling settings
        page.click("#group-sampling > summary")
    page.fill("#param-max_tokens", "320")
    page.fill("#param-seed", seed)
    page.click("#start-job")
    return job_id_of(page)


def test_a_user_runs_a_job_from_the_dashboard(pages, live_api, api_settings, processes, llm_base_url, pg_url):
    key = make_key(pg_url, "alice")
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url)
    worker = processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker")
    pages.console.allow(r"status of 422")  # the bad seed file, refused on purpose
    page = pages.open(live_api.url + "/dashboard")
    page.fill("#key", key)
    page.press("#key", "Enter")
    page.click("text=Upload seeds and start a job")

    # a bad file is refused whole, naming its line
    bad = b'{"instruction": "Name three colours."}\n{"instruction": ""}\n'
    page.set_input_files("#seed-file", files=[{"name": "bad.jsonl", "mimeType": "application/jsonl", "buffer": bad}])
    page.click("#upload")
    error = page.wait_for_selector("#upload-error").inner_text()
    assert "line 2" in error and "instruction" in error
    page.set_input_files("#seed-file", str(DEFAULT_SEEDS))
    page.click("#upload")
    tasks = sum(1 for line in DEFAULT_SEEDS.read_text().splitlines() if line.strip())
    assert f"{tasks} tasks" in page.wait_for_selector("#upload-result").inner_text()
    assert page.input_value("#source-seed_set_id") != ""  # the new seed set is picked for the job
    assert layout_problems(page) == []
    page.set_viewport_size(NARROW)
    assert layout_problems(page) == []
    screenshot(page, "new-job-390")
    page.set_viewport_size(WIDE)

    # start a job from the form; watch it until it finishes
    first = start_job_from_form(page, "2", "3")
    phases = [page.wait_for_selector("#phase").inner_text()]
    assert any(word in phases[0] for word in ("queued", "starting", "generating")), phases
    page.wait_for_selector("[data-status=running]", timeout=FINISH_S)
    screenshot(page, "job-running")
    page.wait_for_selector("[data-status=succeeded]", timeout=FINISH_S)
    assert page.get_attribute(".detail", "data-polling") == "stopped"  # a finished job is not polled
    assert "2 / 2 curated" in page.inner_text(".detail-head .progress-text")
    assert page.inner_text("#n-accepted") == "2"
    metadata = page.inner_text("#metadata")
    assert "worker" in metadata and f"{socket.gethostname()}:" in metadata and f"{tasks} tasks" in metadata
    if os.environ.get("SPROUT_TEST_DOCS_SCREENSHOT"):
        shutil.copy(screenshot(page, "job-overview"), ROOT / "docs" / "dashboard.png")
    else:
        screenshot(page, "job-overview")

    # filter the rejections by a rule: a click on its counter
    rule_button = page.wait_for_selector(".rule-filter")
    rule, count = rule_button.get_attribute("data-rule"), int(rule_button.inner_text().split()[-1])
    rule_button.click()
    page.wait_for_function(f"location.hash.includes('rule={rule}')")
    page.wait_for_selector("#rows-summary")
    assert page.input_value("#filter-rule") == rule and page.input_value("#filter-fate") == "rejected"
    assert page.inner_text("#rows-summary").endswith(f"of {count}") or count == 0
    rules = page.eval_on_selector_all("#rows li.row", "els => els.map(e => e.dataset.rule)")
    assert rules and set(rules) == {rule}
    page.click("#rows li.row .row-head")  # its evidence
    evidence = page.wait_for_selector(".evidence").inner_text()
    assert "rejected" in evidence and rule in evidence
    assert layout_problems(page) == []
    page.set_viewport_size(NARROW)
    assert layout_problems(page) == []
    screenshot(page, "rows-evidence-390")
    page.set_viewport_size(WIDE)
    deep_link = page.url

    # the charts draw from the job's figures
    page.click("#tab-charts")
    page.wait_for_selector("#chart-timeline canvas")
    page.wait_for_selector("#chart-rules canvas")
    assert layout_problems(page) == []
    screenshot(page, "job-charts")

    # a second job, cancelled from its page
    second = start_job_from_form(page, "50", "4")
    assert second != first
    page.wait_for_selector("#cancel-job").click()
    page.wait_for_selector("[data-status=cancelled]", timeout=FINISH_S)
    assert page.is_visible("#retry-job") and page.is_visible("#delete-job")

    # export the first job as messages and download the file
    page.goto(f"{live_api.url}/dashboard#/jobs/{first}/exports")
    page.select_option("#export-format", "messages")
    page.click("#export-create")
    message = page.wait_for_selector("#export-message").inner_text()
    rows = int(message.split(": ")[1].split()[0])
    with page.expect_download() as info:
        page.click("#exports .download")
    download = info.value
    lines = Path(download.path()).read_text().splitlines()
    assert download.suggested_filename.endswith(".jsonl") and len(lines) == rows >= 2
    assert all(json.loads(line)["messages"][0]["role"] == "user" for line in lines)
    assert layout_problems(page) == []

    # a pasted link opens the same view (job, tab, filters, the open row)
    other = pages.open(deep_link, key=key)
    other.wait_for_selector(".evidence")
    assert other.input_value("#filter-rule") == rule
    assert set(other.eval_on_selector_all("#rows li.row", "els => els.map(e => e.dataset.rule)")) == {rule}
    assert f"Job {first}" in other.inner_text(".detail-head h2")

    # the first job's rows, opened in review mode (a dataset whose version 1 holds them)
    page.goto(f"{live_api.url}/dashboard#/jobs/{first}")
    page.click("#review-job")
    page.wait_for_function("location.hash.endsWith('/review')")
    page.wait_for_selector("#review-row[data-status=unreviewed]")
    assert f"Row 1 of {rows}" in page.inner_text("#review-row .title-line")
    assert worker.proc.poll() is None
