"""The dashboard's dataset pages in a real browser against the real datasets API
(`/api/v1/datasets`): the list, a dataset's versions with counts, content hash and tags
(moving `prod`), a version downloaded, the diff of two versions, the rows with their review
status, a row rejected with a reason into a new version, the schedule set, paused and resumed with its next fire
times, a build asked for; the layout at 390 and 1440 px, no console error.

The versions are committed through the datasets core (`commit_version`, as a build does),
so no model runs here.
"""

import json
from pathlib import Path

import pytest

from tests.browser.browser_fixtures import (  # noqa: F401
    NARROW,
    WIDE,
    layout_problems,
    live_api,
    pages,
    screenshot,
)
from tests.dataset_fixtures import examples, make_dataset, make_job, session_for
from tests.service_fixtures import api_settings, make_key  # noqa: F401

pytestmark = pytest.mark.browser


def dataset_with_two_builds(pg_url: str) -> str:
    from app.core.datasets import versions as v

    with session_for(pg_url) as session:
        dataset = make_dataset(session, "support-sft")
        v.commit_version(session, dataset, examples(30), build_job_id=make_job(session))
        v.commit_version(session, dataset, examples(10, start=30), build_job_id=make_job(session))
        session.commit()
        return dataset.name


def text_is(page, selector, text):
    page.wait_for_function("([s, t]) => document.querySelector(s)?.textContent.includes(t)", arg=[selector, text])


def test_a_user_curates_a_dataset_from_the_dashboard(pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    name = dataset_with_two_builds(pg_url)
    page = pages.open(f"{live_api.url}/dashboard#/datasets", key=key)
    page.click(f"[data-dataset={name}]")
    page.wait_for_selector("#versions tr[data-version='2']")
    hashes = page.eval_on_selector_all("#versions .hash", "els => els.map(e => e.title)")
    assert len(hashes) == 2 and all(len(h) == 64 for h in hashes) and hashes[0] != hashes[1]
    assert "40" in page.inner_text("#versions tr[data-version='2']")
    page.wait_for_selector("#chart-size canvas")
    page.wait_for_selector("#chart-builds canvas")
    for width in (WIDE, NARROW):
        page.set_viewport_size(width)
        assert layout_problems(page) == []
    # at 390 px each version stacks: Download and the tags in view, no sideways scroll inside the table
    assert page.evaluate("""() => {
      const wrap = document.querySelector('.versions-wrap');
      const inView = (e) => { const r = e.getBoundingClientRect(); return r.left >= 0 && r.right <= innerWidth && r.width > 0; };
      return wrap.scrollWidth <= wrap.clientWidth
        && [...document.querySelectorAll('#versions .download-version, #versions .tags-cell')].every(inView);
    }""")
    assert page.inner_text("#versions tr[data-version='2'] .download-version") == "Download"
    screenshot(page, "dataset-versions-390")
    page.set_viewport_size(WIDE)
    screenshot(page, "dataset-versions")

    # move prod to v1, then download v2 as messages
    page.fill("#tag-name", "prod")
    page.select_option("#tag-version", "1")
    page.click("#move-tag")
    text_is(page, "#versions-message", "prod → v1")
    page.wait_for_selector("[data-tag=prod]")
    assert page.inner_text("[data-tag=prod]") == "prod → v1"
    page.select_option("#download-format", "messages")
    with page.expect_download() as info:
        page.click(".download-version[data-version='2']")
    lines = Path(info.value.path()).read_text().splitlines()
    assert len(lines) == 40 and "messages" in json.loads(lines[0])

    # the diff of v1 and v2
    page.click("#dtab-diff")
    text_is(page, "#diff-summary", "+10 added")
    assert page.input_value("#diff-from") == "1" and page.input_value("#diff-to") == "2"
    assert set(page.eval_on_selector_all("#diff-rows li", "els => els.map(e => e.dataset.change)")) == {"added"}

    # the rows with their review status; one rejected with the mouse, the review committed
    page.click("#dtab-rows")
    page.wait_for_selector("#dataset-rows li")
    assert set(page.eval_on_selector_all("#dataset-rows li", "els => els.map(e => e.dataset.status)")) == {"unreviewed"}
    page.click("#dtab-review")
    first = int(page.wait_for_selector("#review-row").get_attribute("data-example"))
    page.click("#reject-row")
    page.click("[data-reason='wrong answer']")
    page.wait_for_selector(f"#review-row:not([data-example='{first}'])")  # moved on to the next row
    page.click("#commit-review")
    page.wait_for_function("location.hash.includes('/diff')")
    text_is(page, "#diff-review", "wrong answer (1)")
    text_is(page, "#diff-summary", "−1 removed")
    response = page.request.get(f"{live_api.url}/api/v1/datasets/{name}/versions/3/rows?limit=100",
                                headers={"Authorization": f"Bearer {key}"})
    kept = [row["id"] for row in response.json()["items"]]
    assert len(kept) == 39 and first not in kept

    # the schedule: set, paused with a reason, resumed
    page.click("#dtab-schedule")
    page.wait_for_selector("#no-schedule")
    page.fill("#schedule-cron", "0 3 * * *")
    page.fill("#schedule-timezone", "Europe/Paris")
    page.click("#set-schedule")
    text_is(page, "#schedule-message", "Schedule set.")
    assert page.eval_on_selector_all("#next-fires li", "els => els.length") == 5
    assert page.is_visible("#no-fires")
    page.fill("#pause-reason", "holiday")
    page.click("#pause-schedule")
    text_is(page, "#schedule-paused", "paused: holiday")
    page.click("#resume-schedule")
    text_is(page, "#schedule-paused", "active")
    assert layout_problems(page) == []
    screenshot(page, "dataset-schedule")
    assert page.inner_text("#next-fires li").endswith("Europe/Paris")  # in the schedule's zone, named
    page.click("#remove-schedule")
    text_is(page, "#schedule-message", "Schedule removed")
    page.wait_for_selector("#no-schedule")
    page.click("[data-remove-tag=prod]")  # a tag removed
    page.wait_for_selector("code[data-tag=prod]", state="detached")

    # build now: a dataset_build job is queued, with a link to it
    page.click("#dtab-versions")
    page.click("#build-now")
    status = page.wait_for_selector("#build-status").inner_text()
    assert "job" in status and ("queued" in status or "running" in status)
