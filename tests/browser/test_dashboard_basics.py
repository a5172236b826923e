"""The dashboard in a real browser, on jobs made of stored rows (no model): the key gate,
the empty state, a row's evidence (a too_similar row side by side, an evolution tree),
paging, search and sort, updates that keep a selection, polling that stops for finished
jobs and hidden tabs, the stale marker when the API goes away, a revoked key, retry,
cancel and delete with a confirmation, and the layout at 390 and 1440 px."""

import pytest

from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from tests.browser.browser_fixtures import (  # noqa: F401
    NARROW,
    WIDE,
    layout_problems,
    live_api,
    pages,
    screenshot,
)
from tests.service_fixtures import api_settings, make_key, store_candidates  # noqa: F401

pytestmark = pytest.mark.browser


def test_a_key_is_checked_before_it_is_kept_and_can_be_forgotten(pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    pages.console.allow(r"status of 401")
    page = pages.open(live_api.url + "/dashboard")
    page.fill("#key", "sk-not-a-key")
    page.press("#key", "Enter")  # Enter submits
    page.wait_for_selector("#key-error")
    assert "refused" in page.inner_text("#key-error")
    assert page.evaluate("localStorage.getItem('sprout.apiKey')") is None
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_selector("#empty-state")
    assert page.evaluate("localStorage.getItem('sprout.apiKey')") == key
    empty = page.inner_text("#empty-state")
    assert "Upload seeds and start a job" in empty and "seed file" in empty
    screenshot(page, "empty-state")
    page.reload()
    page.wait_for_selector("#empty-state")  # kept across a reload
    page.click("#forget-key")
    page.wait_for_selector("#key")
    assert page.evaluate("localStorage.getItem('sprout.apiKey')") is None


def test_the_empty_state_and_the_key_gate_fit_a_phone(pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    page = pages.open(live_api.url + "/dashboard", viewport=NARROW)
    page.wait_for_selector("#key")
    assert layout_problems(page) == []
    page = pages.open(live_api.url + "/dashboard", viewport=NARROW, key=key)
    page.wait_for_selector("#empty-state")
    assert layout_problems(page) == []
    screenshot(page, "empty-state-390")


# --- jobs made of stored rows (the real store code, made-up content; no worker runs them) ---------
SIMILAR = "Write a short poem about the sea at night."
TOO_SIMILAR = "Write a short poem about the sea in the morning."
OVER_TARGET = "Task number 58: list 58 facts about rivers."  # joined the pool, then dropped as surplus


def wait_text(page, selector, text):
    page.wait_for_function("([s, t]) => document.querySelector(s)?.textContent === t", arg=[selector, text])


def stored_job(pg_url, kind, status, records=(), counters=None, **fields):
    from app.core import store
    from app.db import session_scope
    from app.models import Job, utcnow

    with session_scope(pg_url) as session:
        job = store.create_job(session, kind, {"target": 60, "rouge_l_threshold": 0.7}, owner="alice")
        job.status, job.started_at, job.heartbeat_at = status, utcnow(), utcnow()
        if status in ("succeeded", "failed", "cancelled"):
            job.finished_at = utcnow()
        for name, value in fields.items():
            setattr(job, name, value)
        job_id = job.id
    if records:
        store_candidates(pg_url, job_id, list(records))
    if counters:
        with session_scope(pg_url) as session:
            job = session.get(Job, job_id)
            job.counters = {**job.counters, **counters}
    return job_id


def set_job(pg_url, job_id, **fields):
    from app.db import session_scope
    from app.models import Job

    with session_scope(pg_url) as session:
        job = session.get(Job, job_id)
        for name, value in fields.items():
            setattr(job, name, value)


def many_rows():
    rows = [CandidateRecord(f"Task number {i}: list {i} facts about rivers.", i != 58, in_pool=True,
                            rule="over_target" if i == 58 else None, max_rouge_l=0.1 + i / 200,
                            instances=[InstanceCandidate("", f"Fact {i}.")]) for i in range(59)]
    rows.insert(3, CandidateRecord(TOO_SIMILAR, False, rule="too_similar", max_rouge_l=0.83,
                                   most_similar=[{"instruction": SIMILAR, "rouge_l": 0.83},
                                                 {"instruction": OVER_TARGET, "rouge_l": 0.4}]))
    return rows


def test_evidence_of_a_too_similar_row_paging_search_sort_and_an_evolution_tree(pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    job = stored_job(pg_url, "self_instruct", "succeeded", many_rows())
    page = pages.open(f"{live_api.url}/dashboard#/jobs/{job}", key=key)
    page.click(".rule-filter[data-rule=too_similar]")
    page.wait_for_selector("#rows li.row[data-rule=too_similar]").click()
    similar = page.wait_for_selector("#similar")
    assert "ROUGE-L 0.830" in similar.inner_text() and "1 more similar" in similar.inner_text()
    marked = page.eval_on_selector_all("[data-side=row] mark", "els => els.map(e => e.textContent)")
    assert marked == ["Write", "a", "short", "poem", "about", "the", "sea"]  # the common subsequence, both sides
    assert page.eval_on_selector_all("[data-side=pool] mark", "els => els.map(e => e.textContent)") == marked
    assert page.inner_text("[data-side=pool]") == SIMILAR
    # a pool row that ended outside the dataset says so (a seed or kept row says nothing)
    assert page.text_content(".more-similar .pool-fate") == "(#60, dropped later as over_target)"
    assert page.query_selector_all("#similar .side-by-side .pool-fate") == []
    for width in (WIDE, NARROW):
        page.set_viewport_size(width)
        assert layout_problems(page) == []
    screenshot(page, "evidence-too-similar-390")
    page.set_viewport_size(WIDE)
    screenshot(page, "evidence-too-similar")

    # search, sort and page through every row; the URL keeps each
    page.click("text=Clear filters")
    wait_text(page, "#rows-summary", "Rows 1–25 of 60")
    with page.expect_request(lambda r: "/instructions?" in r.url) as asked:  # Next pages by key
        page.click("#page-next")
    assert "after=25" in asked.value.url and "offset" not in asked.value.url
    wait_text(page, "#rows-summary", "Rows 26–50 of 60")
    assert "#26" in page.inner_text("#rows li.row .seq")
    assert "page=2" in page.url
    with page.expect_request(lambda r: "/instructions?" in r.url) as asked:  # no key known: by offset
        page.reload()
    assert "offset=25" in asked.value.url
    wait_text(page, "#rows-summary", "Rows 26–50 of 60")
    with page.expect_request(lambda r: "/instructions?" in r.url) as asked:  # the page after it: by key
        page.fill("#page-number", "3")
        page.press("#page-number", "Enter")
    assert "after=50" in asked.value.url
    wait_text(page, "#rows-summary", "Rows 51–60 of 60")
    page.fill("#search", "number 42:")
    page.press("#search", "Enter")
    wait_text(page, "#rows-summary", "Rows 1–1 of 1")
    assert "number 42:" in page.inner_text("#rows") and "q=number" in page.url
    page.fill("#search", "")
    page.press("#search", "Enter")
    page.select_option("#sort", "-max_rouge_l")
    page.wait_for_function("location.hash.includes('sort=-max_rouge_l')")
    wait_text(page, "#rows li.row .text", TOO_SIMILAR)
    page.keyboard.press("Tab")  # rows are buttons: reachable and opened from the keyboard
    page.focus("#rows li.row .row-head")
    page.keyboard.press("Enter")
    page.wait_for_selector("#similar")

    # an evolved row: its tree, root first, operation and round on each edge
    root = CandidateRecord("Explain rainbows.", True, in_pool=True)
    failed = CandidateRecord("Explain rainbows, sorry.", False, rule="sorry_response", parent=root,
                             operation="in_breadth", round=1)
    deeper = CandidateRecord("Explain how rainbows form, step by step.", True, in_pool=True, parent=root,
                             operation="increased_reasoning_steps", round=2)
    deepest = CandidateRecord("Explain how double rainbows form, in three steps.", True, in_pool=True, parent=deeper,
                              operation="concretizing", round=3, instances=[InstanceCandidate("", "Light reflects twice.")])
    evol = stored_job(pg_url, "evol_instruct", "succeeded", [root, failed, deeper, deepest])
    page.goto(f"{live_api.url}/dashboard#/jobs/{evol}/rows?open={deepest.row_id}")
    tree = page.wait_for_selector("#lineage")
    nodes = page.eval_on_selector_all("#lineage .node", "els => els.map(e => e.textContent.trim())")
    assert nodes[0].endswith("Explain rainbows.") and len(nodes) == 4
    edges = page.eval_on_selector_all("#lineage .edge", "els => els.map(e => e.textContent)")
    assert edges == ["in_breadth · round 1", "increased_reasoning_steps · round 2", "concretizing · round 3"]
    assert page.inner_text("#lineage .node.current").endswith("in three steps.")
    assert "sorry_response" in tree.inner_text()
    page.set_viewport_size(NARROW)
    assert layout_problems(page) == []
    screenshot(page, "evidence-lineage-390")


def test_updates_keep_a_selection_and_polling_stops_when_hidden_or_finished(pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    first = CandidateRecord("Describe the water cycle in simple words.", True, in_pool=True)
    job = stored_job(pg_url, "self_instruct", "running", [first])
    page = pages.open(f"{live_api.url}/dashboard#/jobs/{job}/rows", key=key)
    wait_text(page, "#rows-summary", "Rows 1–1 of 1")
    assert page.get_attribute(".detail", "data-polling") == "live"
    selected = page.evaluate("""() => {
      const node = document.querySelector('#rows li.row .text');
      const range = document.createRange(); range.selectNodeContents(node);
      const sel = getSelection(); sel.removeAllRanges(); sel.addRange(range);
      return sel.toString(); }""")
    assert selected == first.instruction
    store_candidates(pg_url, job, [CandidateRecord("Name two kinds of clouds.", False, rule="too_short")])
    wait_text(page, "#rows-summary", "Rows 1–2 of 2")
    assert page.evaluate("getSelection().toString()") == selected  # the unchanged row was not redrawn

    requests = []
    page.on("request", lambda r: "/api/v1/" in r.url and requests.append(r.url))
    page.evaluate("""() => { Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
                            document.dispatchEvent(new Event('visibilitychange')); }""")
    page.wait_for_function("document.body.dataset.pollers === '0'")
    requests.clear()
    page.wait_for_timeout(3 * 2000)  # three poll intervals
    assert requests == []  # a hidden tab asks nothing
    page.evaluate("""() => { Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});
                            document.dispatchEvent(new Event('visibilitychange')); }""")
    page.wait_for_function("Number(document.body.dataset.pollers) > 0")
    page.wait_for_function(f"document.querySelector('.detail').dataset.job === '{job}'")

    from app.models import utcnow

    set_job(pg_url, job, status="succeeded", finished_at=utcnow())
    page.wait_for_selector(".detail[data-status=succeeded][data-polling=stopped]")
    requests.clear()
    page.wait_for_timeout(3 * 2000)
    assert [u for u in requests if f"/jobs/{job}" in u] == []  # a finished job is not polled


def test_the_api_going_away_marks_the_page_stale_and_a_revoked_key_returns_to_the_gate(pages, live_api, pg_url):
    from sqlmodel import select

    from app.db import session_scope
    from app.models import ApiKey, utcnow

    key = make_key(pg_url, "alice")
    job = stored_job(pg_url, "self_instruct", "running", [CandidateRecord("Sort the numbers.", True, in_pool=True)])
    pages.console.allow(r"ERR_CONNECTION_REFUSED|status of 401")
    page = pages.open(f"{live_api.url}/dashboard#/jobs/{job}", key=key)
    page.wait_for_selector(".detail[data-status=running]")
    assert not page.is_visible("#stale")
    live_api.stop()
    stale = page.wait_for_selector("#stale")
    assert "cannot be reached" in stale.inner_text() and "What you see is from" in stale.inner_text()
    assert page.is_visible(".detail[data-status=running]")  # the last data stays, marked stale
    screenshot(page, "stale")
    live_api.start()
    page.wait_for_selector("#stale", state="detached", timeout=60_000)

    with session_scope(pg_url) as session:
        for row in session.exec(select(ApiKey)).all():
            row.revoked_at = utcnow()
    page.wait_for_selector("#key-error")
    assert "refused" in page.inner_text("#key-error")
    assert page.evaluate("localStorage.getItem('sprout.apiKey')") is None


def test_retry_cancel_and_delete_with_a_confirmation(pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    job = stored_job(pg_url, "self_instruct", "failed", [CandidateRecord("Sort the numbers.", True, in_pool=True)],
                     error="the model server kept failing (HTTP 500: out of memory)")
    page = pages.open(f"{live_api.url}/dashboard#/jobs/{job}", key=key)
    assert "HTTP 500: out of memory" in page.wait_for_selector("#job-error").inner_text()
    page.click("#retry-job")
    page.wait_for_selector(".detail[data-status=queued]")
    assert "waiting for a worker" in page.inner_text("#phase")
    page.click("#cancel-job")  # a queued job is cancelled at once
    page.wait_for_selector(".detail[data-status=cancelled]")
    page.click("#delete-job")
    page.click("#confirm-no")
    assert page.is_visible(".detail[data-status=cancelled]")
    page.click("#delete-job")
    assert layout_problems(page) == []
    page.click("#confirm-yes")
    page.wait_for_function("location.hash === '#/jobs'")
    page.wait_for_selector("#empty-state")
    page.goto(f"{live_api.url}/dashboard#/jobs/{job}")
    assert "There is no job" in page.wait_for_selector(".detail .error").inner_text()
    pages.console.allow(r"status of 404")
