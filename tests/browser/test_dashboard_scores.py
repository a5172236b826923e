"""LLM-judge scores on the dashboard, in Debian's Chromium against the real API.

On stored rows first (the real store and scoring storage, made-up scores; no model): each
instance's quality and complexity (one decimal, the judge in the title, an unparseable
answer as such), the `min quality` filter and the judge selector kept in the URL and sent
to the API, the judge summary of a generation job that scored its rows and of a `score`
job (live, then final), the "Score with a judge" action (a refused request's error, then a
`score` job made through the API), and a dataset version's rows with their scores; keyboard
reachable, laid out at 360 px. Then a real `score` job asked for from the button, run by a
real `sprout worker` with the embedded model as the judge: the summary shown is the API's.
"""

import time
from decimal import ROUND_HALF_UP, Decimal

import httpx
import pytest

from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from tests.browser.browser_fixtures import WIDE, layout_problems, live_api, pages, screenshot  # noqa: F401
from tests.browser.test_dashboard_basics import set_job, stored_job
from tests.service_fixtures import api_settings, make_key, processes, service_env  # noqa: F401

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 780}
FINISH_S = 600_000  # ms: a hang guard for a job on a loaded 2-core machine, not a timing assertion
ASPECTS = ["quality", "complexity"]

RECORDS = [
    CandidateRecord("Write a haiku about rain.", True, in_pool=True, max_rouge_l=0.21,
                    instances=[InstanceCandidate("", "Rain on the roof.")]),
    CandidateRecord("Name three rivers in Europe.", True, in_pool=True, max_rouge_l=0.3,
                    instances=[InstanceCandidate("", "Rhine, Danube, Seine.")]),
    CandidateRecord("Draw a map of the town.", False, rule="blacklist"),
    CandidateRecord("Convert the percentage to a fraction.", True, in_pool=True, max_rouge_l=0.12,
                    instances=[InstanceCandidate("100%", "1/1"), InstanceCandidate("50%", "1/2")]),
]


def fixed(x: float, digits: int) -> str:
    """As JavaScript's toFixed writes a number (the exact binary value, a tie rounded up)."""
    return str(Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def judged(aspect, score, judge, parsed=None, status="ok", raw=None, logprobs=True):
    from app.core.scoring import JudgeScore

    digit = parsed if parsed is not None else (round(score) if score is not None else None)
    return JudgeScore(aspect, score, digit if status == "ok" else None, raw if raw is not None else f" {digit}",
                      status, logprobs and status == "ok", judge)


def scored_job(pg_url) -> tuple[int, list[int]]:
    """A finished Self-Instruct job that scored its own rows (judge-a, as `score_with_judge`
    leaves it: scores, counters and result), then scored again in part by judge-b (a `score`
    job); returns the job and its curated instances."""
    from app.core import store
    from app.core.scoring import storage
    from app.db import session_scope

    job = stored_job(pg_url, "self_instruct", "succeeded", RECORDS)
    with session_scope(pg_url) as s:
        a, b, c, d = (e.instance_id for e in storage.examples_of(s, job))
        storage.save(s, job, job, [
            (a, {"quality": judged("quality", 4.62, "judge-a"), "complexity": judged("complexity", 2.14, "judge-a")}),
            (b, {"quality": judged("quality", 2.31, "judge-a"), "complexity": judged("complexity", 3.07, "judge-a")}),
            (c, {"quality": judged("quality", None, "judge-a", status="unparseable", raw=" 0"),
                 "complexity": judged("complexity", 4.0, "judge-a", logprobs=False)}),
            (d, {"quality": judged("quality", 5.26, "judge-a"), "complexity": judged("complexity", 1.83, "judge-a")})])
        summary = storage.summary(s, job, "judge-a", ASPECTS)
    set_job(pg_url, job, result={"curated": 3, "judge_scores": {**summary, "examples": 4, "judged": 4}})
    with session_scope(pg_url) as s:
        row = store.get_job(s, job)
        row.counters = {**row.counters, "judge": "judge-a", "judge_examples": 4, "judged": 4, "judge_unparseable": 1,
                        "judge_errors": 0, "mean_quality": summary["quality"]["mean"],
                        "mean_complexity": summary["complexity"]["mean"]}
    with session_scope(pg_url) as s:  # later, another judge: its quality is the latest of a and b
        scorer = score_job(s, job, ["quality"])
        storage.save(s, job, scorer, [(a, {"quality": judged("quality", 3.04, "judge-b")}),
                                      (b, {"quality": judged("quality", 5.71, "judge-b")})])
        done = storage.summary(s, job, "judge-b", ["quality"])
    set_job(pg_url, scorer, status="succeeded", counters={"judged": 2, "judge_examples": 4, "judge": "judge-b"},
            result={"source_job_id": job, **done, "examples": 4, "judged": 2})
    return job, [a, b, c, d]


def score_job(session, source: int, aspects: list[str]) -> int:
    """A `score` job row as the API makes it (its parameters, its first counters)."""
    from app.core import store
    from app.core.jobs.score import ScoreParams

    row = store.create_job(session, "score", ScoreParams(aspects=aspects).model_dump(), source_job_id=source,
                           owner="alice")
    row.counters = {"judged": 0}
    return row.id


def api_client(live_api, key) -> httpx.Client:
    return httpx.Client(base_url=live_api.url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60)


def shown_rows(page) -> list[dict]:
    """Each row's instruction and, per instance, the scores shown: {aspect: (text, title)}."""
    return page.eval_on_selector_all("#rows li.row", """els => els.map(e => ({
        instruction: e.querySelector('.row-head .text').textContent,
        scores: Object.fromEntries([...e.querySelectorAll('.row-head .judge-scores')].map(g => [g.dataset.instance,
            Object.fromEntries([...g.querySelectorAll('.judge-score')].map(s => [s.dataset.aspect,
                [s.querySelector('.value').textContent, s.title]]))]))}))""")


def expected_rows(api: httpx.Client, job: int, query: str) -> list[dict]:
    """The same, from the API's answer: a score with one decimal, or the word for its status."""
    answer = api.get(f"/jobs/{job}/instructions?limit=25&{query}").json()
    out = []
    for item in answer["items"]:
        scores = {}
        for inst in item["instances"]:
            if inst["scores"]:
                scores[str(inst["id"])] = {
                    aspect: (fixed(s["score"], 1) if s["status"] == "ok" else s["status"], s["judge"])
                    for aspect, s in inst["scores"].items()}
        out.append({"instruction": item["instruction"], "scores": scores})
    return out


def same_rows(shown, expected) -> bool:
    """The shown text is the API's score; the title names the API's judge."""
    if [r["instruction"] for r in shown] != [r["instruction"] for r in expected]:
        return False
    for s, e in zip(shown, expected, strict=True):
        if s["scores"].keys() != e["scores"].keys():
            return False
        for instance, aspects in e["scores"].items():
            got = s["scores"][instance]
            if got.keys() != aspects.keys():
                return False
            if any(got[a][0] != text or f" by {judge}:" not in got[a][1] for a, (text, judge) in aspects.items()):
                return False
    return True


def wait_rows(page, api, job, query):
    """Wait until the rows shown are the API's for `query` (a hang guard, not a timing assertion)."""
    expected = expected_rows(api, job, query)
    total = api.get(f"/jobs/{job}/instructions?{query}").json()["total"]
    summary = f"Rows 1–{len(expected)} of {total}" if total else "No rows match."
    deadline = time.monotonic() + 60
    while not (page.inner_text("#rows-summary") == summary and same_rows(shown_rows(page), expected)):
        assert time.monotonic() < deadline, (page.inner_text("#rows-summary"), shown_rows(page), expected)
        page.wait_for_timeout(100)
    return expected


def tab_to(page, selector: str) -> None:
    page.focus("body")
    for _ in range(120):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement === document.querySelector(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def test_rows_show_each_instances_scores_and_filter_by_quality_and_judge_in_the_url(pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    api = api_client(live_api, key)
    job, (a, b, c, d) = scored_job(pg_url)
    page = pages.open(f"{live_api.url}/dashboard#/jobs/{job}/rows", key=key)
    page.wait_for_selector(f"#rows .judge-scores[data-instance='{a}']")

    # the latest score of each aspect: judge-b's quality beside judge-a's complexity
    expected = wait_rows(page, api, job, "sort=seq")
    haiku = expected[0]["scores"][str(a)]
    assert haiku == {"quality": ("3.0", "judge-b"), "complexity": ("2.1", "judge-a")}
    unparseable = page.eval_on_selector(f".judge-scores[data-instance='{c}'] [data-aspect=quality]",
                                        "e => [e.dataset.status, e.querySelector('.value').textContent, e.title]")
    assert unparseable[:2] == ["unparseable", "unparseable"] and "judge-a" in unparseable[2] and '" 0"' in unparseable[2]
    assert page.eval_on_selector_all(".row.rejected .judge-scores", "els => els.length") == 0  # nothing to show

    # two judges scored it: a judge selector beside the quality filter, the latest first
    options = page.eval_on_selector_all("#filter-judge option", "els => els.map(e => [e.value, e.textContent])")
    assert options == [["", "latest score"], ["judge-b", "judge-b"], ["judge-a", "judge-a"]]

    # min quality from the keyboard: Tab to it, type, Enter
    tab_to(page, "#filter-min-quality")
    page.keyboard.type("4")
    page.keyboard.press("Enter")
    page.wait_for_function("location.hash.includes('min_quality=4')")
    shown = wait_rows(page, api, job, "min_quality=4")
    assert [r["instruction"] for r in shown] == ["Name three rivers in Europe.", "Convert the percentage to a fraction."]

    # judge-a's scores instead: another set of rows, every score shown is judge-a's
    page.select_option("#filter-judge", "judge-a")
    page.wait_for_function("location.hash.includes('judge=judge-a')")
    shown = wait_rows(page, api, job, "min_quality=4&judge=judge-a")
    assert [r["instruction"] for r in shown] == ["Write a haiku about rain.", "Convert the percentage to a fraction."]
    assert {judge for r in shown for aspects in r["scores"].values() for _, judge in aspects.values()} == {"judge-a"}

    # the state is the URL's: a reload (or a pasted link) opens the same view
    page.reload()
    page.wait_for_selector("#rows li.row")
    assert page.input_value("#filter-min-quality") == "4" and page.input_value("#filter-judge") == "judge-a"
    wait_rows(page, api, job, "min_quality=4&judge=judge-a")
    for size in (WIDE, PHONE):
        page.set_viewport_size(size)
        assert layout_problems(page) == []
    screenshot(page, "scores-rows-360")
    page.set_viewport_size(WIDE)

    # a row's evidence names the judge beside each score
    page.click(f"#rows li.row:has(.judge-scores[data-instance='{d}']) .row-head")
    cell = page.wait_for_selector(f"#rows .scores-cell .judge-scores[data-instance='{d}']").inner_text()
    assert "quality 5.3" in cell and "complexity 1.8" in cell and "by judge-a" in cell
    screenshot(page, "scores-rows")

    # out of 1-6: said so, and the URL and the rows stay as they were
    page.fill("#filter-min-quality", "9")
    page.press("#filter-min-quality", "Enter")
    assert "1 to 6" in page.wait_for_selector("#min-quality-error").inner_text()
    assert "min_quality=4" in page.evaluate("location.hash")
    page.click("#clear-filters")
    page.wait_for_function("!location.hash.includes('min_quality') && !location.hash.includes('judge=')")
    wait_rows(page, api, job, "sort=seq")


def test_the_judge_summary_of_a_generation_job_and_of_a_score_job_live_then_final(pages, live_api, pg_url):
    from app.core.scoring import storage
    from app.db import session_scope

    key = make_key(pg_url, "alice")
    api = api_client(live_api, key)
    job, _ = scored_job(pg_url)

    # the generation job scored its own rows: its summary on its overview
    page = pages.open(f"{live_api.url}/dashboard#/jobs/{job}", key=key)
    page.wait_for_selector("#judge-summary[data-final=yes]")
    check_summary(page, api.get(f"/jobs/{job}").json()["result"]["judge_scores"], job)

    # a score job, running: its progress (judged of total) and its live figures
    with session_scope(pg_url) as s:
        scorer = score_job(s, job, ["quality"])
    set_job(pg_url, scorer, status="running", counters={
        "judged": 1, "judge_examples": 4, "judge": "judge-c", "judge_unparseable": 0, "judge_errors": 0,
        "mean_quality": 5.125, "judge_llm_requests": 1})
    page.goto(f"{live_api.url}/dashboard#/jobs/{scorer}")
    page.wait_for_selector(f".detail[data-job='{scorer}'] #judge-live")
    assert page.inner_text(".detail .progress-text") == "1 / 4 judged"
    assert page.inner_text("#phase").endswith("judging")
    assert page.inner_text("#judge-judged") == "1 of 4 examples"
    assert page.inner_text("#judge-summary .live-mean[data-aspect=quality]") == "5.13 (so far)"
    assert page.inner_text("#judge-requests") == "1 (0 errors)"
    assert not page.is_visible("#tab-rows") and not page.is_visible("#score-job")  # it has no rows of its own
    for size in (WIDE, PHONE):
        page.set_viewport_size(size)
        assert layout_problems(page) == []
    screenshot(page, "score-job-live-360")
    page.set_viewport_size(WIDE)

    # it finishes: the summary from its result, as a worker writes it
    with session_scope(pg_url) as s:
        storage.save(s, job, scorer, [(e.instance_id, {"quality": judged("quality", q, "judge-c")})
                                      for e, q in zip(storage.examples_of(s, job), (5.2, 5.05, 1.9, 3.6), strict=True)])
        summary = storage.summary(s, job, "judge-c", ["quality"])
    set_job(pg_url, scorer, status="succeeded", counters={"judged": 4, "judge_examples": 4, "judge": "judge-c"},
            result={"source_job_id": job, **summary, "examples": 4, "judged": 4})
    page.wait_for_selector("#judge-summary[data-final=yes]")
    assert not page.is_visible("#judge-live")
    result = api.get(f"/jobs/{scorer}").json()["result"]
    check_summary(page, result, job)
    assert page.inner_text(".detail .progress-text") == "4 / 4 judged"
    for size in (WIDE, PHONE):
        page.set_viewport_size(size)
        assert layout_problems(page) == []
    screenshot(page, "score-job-360")
    page.set_viewport_size(WIDE)
    screenshot(page, "score-job")

    # its link opens the scored job's rows from the median quality (one decimal, down) up, by this judge
    threshold = int(result["quality"]["median"] * 10) / 10
    assert page.inner_text("#judge-rows-best") == f"quality ≥ {threshold} (the median is {fixed(result['quality']['median'], 2)})"
    tab_to(page, "#judge-rows-best")
    page.keyboard.press("Enter")
    page.wait_for_function(f"location.hash.startsWith('#/jobs/{job}/rows')")
    assert page.evaluate("location.hash") == f"#/jobs/{job}/rows?fate=accepted&min_quality={threshold}&judge=judge-c"
    shown = wait_rows(page, api, job, f"fate=accepted&min_quality={threshold}&judge=judge-c")
    assert [r["instruction"] for r in shown] == ["Write a haiku about rain.", "Name three rivers in Europe."]
    assert page.input_value("#filter-min-quality") == str(threshold) and page.input_value("#filter-judge") == "judge-c"


def check_summary(page, summary: dict, rows_job: int) -> None:
    """The card shows the summary as the API returns it: the judge, judged of examples,
    unparseable answers, and per aspect mean / median, scored and the digits' bars."""
    aspects = [a for a in ASPECTS if a in summary]
    assert page.inner_text("#judge-name") == summary["judge"]
    assert page.inner_text("#judge-judged") == f"{summary['judged']} of {summary['examples']} examples"
    assert page.inner_text("#judge-unparseable").startswith(f"{sum(summary[a]['unparseable'] for a in aspects)} ")
    shown = page.eval_on_selector_all("#judge-summary .aspect-summary", """els => els.map(e => [e.dataset.aspect,
        e.querySelector('.mean-median').textContent, e.querySelector('.scored').textContent,
        e.querySelector('.unparseable').textContent,
        [...e.querySelectorAll('.histogram li')].map(li => [li.dataset.digit, li.querySelector('.count').textContent])])""")
    assert shown == [[a, f"{fixed(summary[a]['mean'], 2)} / {fixed(summary[a]['median'], 2)}", str(summary[a]["scored"]),
                      str(summary[a]["unparseable"]), [[d, str(n)] for d, n in summary[a]["histogram"].items()]]
                     for a in aspects]
    heights = page.eval_on_selector_all(f"#judge-summary .histogram[data-aspect={aspects[0]}] .bar", "els => els.map(e => e.style.height)")
    top = max(summary[aspects[0]]["histogram"].values())
    assert heights == [f"{round(n / top * 100)}%" for n in summary[aspects[0]]["histogram"].values()]
    assert page.get_attribute("#judge-rows", "href") == f"#/jobs/{rows_job}/rows?fate=accepted&judge={summary['judge']}"


def test_score_with_a_judge_shows_a_refused_request_then_makes_a_score_job(pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    api = api_client(live_api, key)
    pages.console.allow(r"status of 422")  # the refused request, asked for on purpose
    running = stored_job(pg_url, "self_instruct", "running", RECORDS[:1])
    job = stored_job(pg_url, "self_instruct", "succeeded", RECORDS)
    page = pages.open(f"{live_api.url}/dashboard#/jobs/{running}", key=key)
    page.wait_for_selector(f".detail[data-job='{running}'] #cancel-job")
    assert not page.is_visible("#score-job")  # only a finished job is scored
    page.goto(f"{live_api.url}/dashboard#/jobs/{job}")
    page.wait_for_selector(f".detail[data-job='{job}']")

    # from the keyboard: open the form, untick both aspects, start: the API's refusal is shown
    tab_to(page, "#score-job")
    page.keyboard.press("Enter")
    page.wait_for_selector("#score-form")
    assert page.eval_on_selector_all(".score-aspect", "els => els.map(e => [e.value, e.checked])") == [
        ["quality", True], ["complexity", True]]  # the service's defaults
    assert not page.is_checked("#score-rescore")
    for aspect in ASPECTS:
        tab_to(page, f".score-aspect[value={aspect}]")
        page.keyboard.press("Space")
    tab_to(page, "#score-start")
    page.keyboard.press("Enter")
    notice = page.wait_for_selector(".detail-head .notice").inner_text()
    assert "aspects" in notice and page.evaluate("location.hash") == f"#/jobs/{job}"
    for size in (WIDE, PHONE):
        page.set_viewport_size(size)
        assert layout_problems(page) == []
    screenshot(page, "score-form-360")
    page.set_viewport_size(WIDE)

    # quality only, asked again, by a named model: a score job of this job, and its page
    page.check(".score-aspect[value=quality]")
    page.check("#score-rescore")
    page.fill("#score-judge-model", "big-judge")
    page.click("#score-start")
    page.wait_for_function(f"location.hash.startsWith('#/jobs/') && location.hash !== '#/jobs/{job}'")
    made = int(page.evaluate("location.hash").split("/")[2])
    page.wait_for_selector(f".detail[data-job='{made}']")
    shown = api.get(f"/jobs/{made}").json()
    assert shown["kind"] == "score" and shown["source_job_id"] == job and shown["status"] == "queued"
    assert shown["params"]["aspects"] == ["quality"] and shown["params"]["rescore"] is True
    assert shown["params"]["judge_model"] == "big-judge"
    assert page.inner_text(".detail .progress-text") == "0 judged"
    assert page.inner_text("#phase").endswith("queued: waiting for a worker")
    page.wait_for_selector(f".job-list [data-job='{made}']")  # the list knows it
    assert page.get_attribute(f".detail a[href='#/jobs/{job}']", "href") == f"#/jobs/{job}"  # its source


def test_a_dataset_versions_rows_show_the_judges_scores(pages, live_api, pg_url):
    from app.core.datasets import versions as v
    from app.core.scoring import storage
    from app.db import session_scope
    from tests.dataset_fixtures import make_dataset, make_job, session_for

    key = make_key(pg_url, "alice")
    job, instances = scored_job(pg_url)
    with session_scope(pg_url) as s:  # as a build copies them: each example's flat scores
        found = storage.scores_of(s, instances)
        rows = [(e, storage.flat(found[e.instance_id])) for e in storage.examples_of(s, job)]
    with session_for(pg_url) as session:
        dataset = make_dataset(session, "judged")
        v.commit_version(session, dataset, [
            v.NewExample(e.instruction, e.input, e.output, "self_instruct", scores={"max_rouge_l": 0.2, **flat},
                         source_job_id=job, source_instruction_id=e.instruction_id) for e, flat in rows],
            build_job_id=make_job(session))
        session.commit()
    page = pages.open(f"{live_api.url}/dashboard#/datasets/judged/rows", key=key)
    page.wait_for_selector("#dataset-rows li.example")
    shown = page.eval_on_selector_all("#dataset-rows li.example", """els => els.map(e => Object.fromEntries(
        [...e.querySelectorAll('.judge-score')].map(s => [s.dataset.aspect, [s.querySelector('.value').textContent, s.title]])))""")
    expected = [{a: ("no score" if flat[a] is None else fixed(flat[a], 1), flat.get(f"{a}_judge", flat["judge"]))
                 for a in ASPECTS if a in flat} for _, flat in rows]
    assert [{a: text for a, (text, _) in r.items()} for r in shown] == [{a: t for a, (t, _) in r.items()} for r in expected]
    assert all(f" by {judge}:" in shown[i][a][1] for i, r in enumerate(expected) for a, (_, judge) in r.items())
    assert shown[2]["quality"][0] == "no score" and "unparseable" in shown[2]["quality"][1]
    assert shown[0] == {"quality": ["3.0", "quality by judge-b: 3.04"], "complexity": ["2.1", "complexity by judge-a: 2.14"]}
    page.set_viewport_size(PHONE)
    assert layout_problems(page) == []
    screenshot(page, "dataset-rows-scores-360")


# --- a real score job: the button, the API, a worker, the embedded model as the judge --------------
@pytest.mark.integration
def test_a_real_score_job_from_the_button_shows_the_apis_summary(pages, live_api, api_settings, processes,
                                                                 llm_base_url, pg_url):
    key = make_key(pg_url, "alice")
    api = api_client(live_api, key)
    job = stored_job(pg_url, "self_instruct", "succeeded", RECORDS)  # 4 curated examples, unscored
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url)
    worker = processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker")
    page = pages.open(f"{live_api.url}/dashboard#/jobs/{job}", key=key)
    page.click("#score-job")
    page.click("#score-start")  # the defaults: quality and complexity
    page.wait_for_function(f"location.hash.startsWith('#/jobs/') && location.hash !== '#/jobs/{job}'")
    made = int(page.evaluate("location.hash").split("/")[2])
    page.wait_for_selector(f".detail[data-job='{made}'][data-status=succeeded]", timeout=FINISH_S)
    shown = api.get(f"/jobs/{made}").json()
    assert shown["kind"] == "score" and shown["source_job_id"] == job, worker.tail()
    result = shown["result"]
    print(f"\nresult {result}\ncounters {shown['counters']}")
    assert result["examples"] == 4 and result["judged"] == 4 and result["judge"] == "gemma-3-270m"
    page.wait_for_selector("#judge-summary[data-final=yes]")
    check_summary(page, result, job)
    assert page.inner_text(".detail .progress-text") == "4 / 4 judged"
    c = shown["counters"]
    assert page.inner_text("#judge-requests") == f"{c['judge_llm_requests']} ({c['judge_llm_errors']} errors)"
    assert page.inner_text("#judge-tokens") == f"{c['judge_prompt_tokens']} prompt · {c['judge_completion_tokens']} completion"
    screenshot(page, "score-job-real")
    page.set_viewport_size(PHONE)
    assert layout_problems(page) == []

    # its rows, by this judge, as the API scores them
    page.set_viewport_size(WIDE)
    page.click("#judge-rows")
    wait_rows(page, api, job, f"fate=accepted&judge={result['judge']}")
    assert worker.proc.poll() is None
