"""Review and datasets from the browser, in Debian's Chromium against the real API: a
keyboard-only review of 10 rows (accept, reject with a listed and a typed reason, edit,
rate, undo, back and forth) that ends in a new version whose diff and card carry the
reasons; a bulk reject over a judge-score filter; and (with a real worker and the embedded
model) a dataset created from the form with its recipe, built with Build now, the build seen
after a reload with "Build now" refused, and the build's job page linked to the dataset, its
step job and the version it made. Screenshots of each new page at 390 and 1440 px.

The reviewed versions are committed through the datasets core (as a build does), so no
model runs in the first two tests.
"""

import json

import pytest

from tests.browser.browser_fixtures import (  # noqa: F401
    NARROW,
    WIDE,
    layout_problems,
    live_api,
    pages,
    screenshot,
)
from tests.conftest import DEFAULT_SEEDS
from tests.dataset_fixtures import examples, make_dataset, session_for
from tests.service_fixtures import api_settings, make_key, processes, service_env  # noqa: F401

pytestmark = pytest.mark.browser
FINISH_S = 600_000  # ms: a hang guard for a build on a loaded 2-core machine, not a timing assertion


def scored_dataset(pg_url: str, n: int, name: str = "support-sft") -> str:
    from app.core.datasets import versions as v

    rows = examples(n)
    for i, row in enumerate(rows):
        row.scores = {"quality": float(1 + i % 6), "quality_judge": "gemma-3-270m", "max_rouge_l": 0.1 + i / 100}
    with session_for(pg_url) as session:
        dataset = make_dataset(session, name)
        v.commit_version(session, dataset, rows)
        session.commit()
        return dataset.name


def text_is(page, selector, text):
    page.wait_for_function("([s, t]) => document.querySelector(s)?.textContent.includes(t)", arg=[selector, text])


def row_is(page, number: int, status: str | None = None):
    """Wait until the review shows row `number` (1-based), optionally with `status`."""
    text_is(page, "#review-row .title-line", f"Row {number} of")
    if status:
        page.wait_for_selector(f"#review-row[data-status={status}]")


def shots(page, name: str) -> None:
    for size, suffix in ((NARROW, "-390"), (WIDE, "")):
        page.set_viewport_size(size)
        assert layout_problems(page) == []
        screenshot(page, name + suffix)


def get(page, live_api, key, path):
    response = page.request.get(f"{live_api.url}/api/v1{path}", headers={"Authorization": f"Bearer {key}"})
    assert response.ok, response.text()
    return response.json()


def test_a_keyboard_only_review_of_ten_rows_ends_in_a_version_with_its_reasons(pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    name = scored_dataset(pg_url, 10)
    page = pages.open(f"{live_api.url}/dashboard#/datasets/{name}/review", key=key)
    row_is(page, 1, "unreviewed")
    assert "judge suggests: reject" in page.inner_text("#judge-suggestion")  # quality 1 of 6, a suggestion only
    keys = page.keyboard

    keys.press("r")  # 1: a reason from the list, by its number
    page.wait_for_selector("#reason-input:focus")
    keys.press("1")
    row_is(page, 2)
    keys.press("r")  # 2: a typed reason
    page.wait_for_selector("#reason-input:focus")
    keys.type("made-up fact")
    keys.press("Enter")
    row_is(page, 3)
    keys.press("a")  # 3: accepted
    row_is(page, 4)
    keys.press("e")  # 4: the output edited
    page.wait_for_selector("#edit-output:focus")
    keys.press("Control+a")
    keys.type("A corrected answer.")
    keys.press("Control+Enter")
    row_is(page, 5)
    keys.press("4")  # 5: rated (an undecided row is accepted with its rating), then on
    page.wait_for_selector("#review-row[data-status=accepted] button[data-rating='4'][aria-pressed=true]")
    keys.press("j")
    row_is(page, 6)
    keys.press("a")  # 6
    row_is(page, 7)
    keys.press("r")  # 7: off topic, undone, then duplicate
    page.wait_for_selector("#reason-input:focus")
    keys.press("3")
    row_is(page, 8)
    keys.press("u")
    row_is(page, 7, "unreviewed")
    text_is(page, "#review-message", "Undone.")
    keys.press("r")
    page.wait_for_selector("#reason-input:focus")
    keys.press("5")
    row_is(page, 8)
    keys.press("k")  # back to 7: its decision is shown
    row_is(page, 7, "rejected")
    assert "duplicate" in page.inner_text("#row-status")
    keys.press("ArrowRight")
    row_is(page, 8)
    keys.press("a")  # 8
    row_is(page, 9)
    keys.press("r")  # 9
    page.wait_for_selector("#reason-input:focus")
    keys.press("6")
    row_is(page, 10)
    keys.press("5")  # 10: rated 5
    page.wait_for_selector("#review-row[data-status=accepted] button[data-rating='5'][aria-pressed=true]")
    text_is(page, "#review-progress", "10 of 10 reviewed")
    assert "4 rejected" in page.inner_text("#review-progress") and "by alice" in page.inner_text("#review-progress")
    shots(page, "review-mode")

    keys.press("c")  # commit: the diff of the new version, with the reasons
    page.wait_for_function("location.hash.includes('/diff')")
    text_is(page, "#diff-review", "made-up fact (1)")
    review_line = page.inner_text("#diff-review")
    for reason in ("wrong answer (1)", "duplicate (1)", "low quality (1)"):
        assert reason in review_line
    assert "off topic" not in review_line and "4 rejected, 1 edited, 5 accepted" in review_line
    text_is(page, "#diff-summary", "−5 removed")  # 4 rejected and the edited row's original
    badges = page.eval_on_selector_all("#diff-rows .review-badge", "els => els.map(e => e.textContent)")
    assert "rejected: made-up fact" in badges and any(b.startswith("edited") for b in badges)
    assert "A corrected answer." in page.inner_text("#diff-rows li[data-change=added]")
    shots(page, "review-diff")

    version = get(page, live_api, key, f"/datasets/{name}/versions/2")
    assert version["kind"] == "review" and version["row_count"] == 6
    assert version["counts"]["review"]["reasons"] == {"wrong answer": 1, "made-up fact": 1, "duplicate": 1,
                                                      "low quality": 1}
    for line in ("| wrong answer | 1 |", "| made-up fact | 1 |", "| duplicate | 1 |", "| low quality | 1 |",
                 "5 accepted, 4 rejected, 1 edited, 2 rated"):
        assert line in version["card"], line
    old = {r["id"]: r for r in get(page, live_api, key, f"/datasets/{name}/versions/1/rows?limit=100")["items"]}
    assert len(old) == 10 and "A corrected answer." not in json.dumps(old)  # the original text stays in v1


def test_a_bulk_reject_over_a_filter(pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    name = scored_dataset(pg_url, 12)
    page = pages.open(f"{live_api.url}/dashboard#/datasets/{name}/review", key=key)
    row_is(page, 1)
    assert page.input_value("#bulk-score") == "quality" and page.input_value("#bulk-bound") == "max"
    page.fill("#bulk-value", "2")
    page.fill("#bulk-reason", "judged poor")
    page.click("#bulk-apply")
    text_is(page, "#bulk-apply", "Reject the 4 matching rows")
    shots(page, "review-bulk")
    page.click("#bulk-apply")
    text_is(page, "#bulk-message", "4 rows rejected.")
    text_is(page, "#review-progress", "4 of 12 reviewed")
    row_is(page, 1, "rejected")  # quality 1: among them
    page.click("#commit-review")
    text_is(page, "#diff-review", "judged poor (4)")
    kept = get(page, live_api, key, f"/datasets/{name}/versions/2/rows?limit=100")["items"]
    assert len(kept) == 8 and all(r["scores"]["quality"] > 2 for r in kept)


@pytest.mark.integration
def test_a_dataset_created_and_built_from_the_browser(pages, live_api, api_settings, processes, llm_base_url, pg_url):
    key = make_key(pg_url, "alice")
    page = pages.open(f"{live_api.url}/dashboard#/datasets", key=key)
    auth = {"Authorization": f"Bearer {key}"}
    uploaded = page.request.post(f"{live_api.url}/api/v1/seed-sets", headers=auth,
                                 data={"name": "default", "content": DEFAULT_SEEDS.read_text()})
    assert uploaded.ok, uploaded.text()
    page.wait_for_selector("#datasets-empty")
    assert "sprout datasets --owner alice create" in page.inner_text("#datasets-empty")
    page.click("#new-dataset-link")
    page.wait_for_selector(".seed-set")
    page.click("#create-dataset")  # nothing filled in: named field by field, nothing made
    page.wait_for_selector("#create-message")
    assert page.is_visible("#recipe-seed-sets .error")
    page.fill("#dataset-name", "support-sft")
    page.fill("#dataset-description", "Support answers, grown from the browser.")
    page.check(".seed-set")
    page.fill(".step-params", '{"max_tokens": 320, "seed": 11}')
    page.fill("#recipe-grow-by", "2")
    shots(page, "dataset-create")
    page.click("#create-dataset")
    text_is(page, "#recipe-message", "Dataset support-sft created")
    assert page.input_value("#recipe-grow-by") == "2" and page.is_checked(".seed-set")
    shots(page, "dataset-recipe")

    # Build now, no worker yet: queued; a reload still shows it, and a second build is refused
    page.click("#build-now")
    page.wait_for_selector("#build-status[data-status=queued]")
    page.reload()
    page.wait_for_selector("#build-status[data-status=queued]")
    assert page.is_disabled("#build-now")
    again = page.request.post(f"{live_api.url}/api/v1/datasets/support-sft/builds", headers=auth)
    assert again.status == 409 and "already queued or running" in again.json()["detail"]

    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url)
    processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker")
    page.wait_for_selector("#build-status[data-status=running]", timeout=FINISH_S)
    page.wait_for_selector("#build-status[data-status=succeeded]", timeout=FINISH_S)
    page.wait_for_selector("#build-steps a")
    text_is(page, "#build-status", "made v1")
    page.click("#dtab-versions")
    page.wait_for_selector("#versions tr[data-version='1']")
    assert not page.is_disabled("#build-now")
    shots(page, "dataset-built")

    # the build's job page links the dataset, its step job and the version; the step links back
    page.click("#build-status a[href^='#/jobs/']")
    page.wait_for_selector("#build-dataset a")
    assert page.inner_text("#build-dataset") == "support-sft" and page.inner_text("#build-version") == "v1"
    shots(page, "build-job")
    page.click("#build-step-jobs a")
    text_is(page, "#build-of-step", "step 1 of")
    text_is(page, ".step-of", "step 1 of build")  # the job list says so too
    page.click("#build-of-step a")
    page.click("#build-dataset a")
    page.wait_for_selector("#versions tr[data-version='1']")


def test_the_new_job_form_puts_the_essentials_first(pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    page = pages.open(f"{live_api.url}/dashboard#/new", key=key, viewport=NARROW)
    page.wait_for_selector("#essentials #param-target")
    kinds = page.eval_on_selector_all("#job-kind option", "els => els.map(e => e.value)")
    assert "self_instruct" in kinds and "dataset_build" not in kinds and "version_handoff" not in kinds
    label = page.inner_text("label[for=param-target]")
    assert "Curated examples to make" in label and "target" in label  # words, with the setting's name beside
    assert not page.is_visible("#param-max_tokens")  # folded with the sampling settings
    groups = page.eval_on_selector_all("details.params-group", "els => els.map(e => e.id)")
    assert groups[:2] == ["group-sampling", "group-filters"] and "group-other" not in groups[:-1]
    start = page.eval_on_selector("#start-job", "e => e.getBoundingClientRect().top + window.scrollY")
    assert start < 2000, f"Start job is {start}px down a 390px-wide page"
    page.click("#group-sampling > summary")
    assert page.is_visible("#param-max_tokens") and "max_tokens" in page.inner_text("label[for=param-max_tokens]")
    page.click("#group-sampling > summary")
    shots(page, "new-job-form")
