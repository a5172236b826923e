"""A job kind registered at test time, that the dashboard has never heard of, shows its result
on the job page in a real browser: each field of its result model under the model's title, with
its description as the hint and the stored value; the page was not changed for it. At 390 and
1440 px."""

import httpx
import pytest

from app.core.config import CoreConfig
from app.core.jobs import lifecycle
from tests.browser.browser_fixtures import NARROW, WIDE, layout_problems, live_api, pages  # noqa: F401
from tests.service_fixtures import api_settings, make_key  # noqa: F401
from tests.unit.test_job_results import KIND, tally_kind  # noqa: F401

pytestmark = pytest.mark.browser


def test_a_kind_the_dashboard_does_not_know_shows_its_result_fields(tally_kind, pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    made = httpx.post(f"{live_api.url}/api/v1/jobs", json={"kind": KIND, "params": {"upto": 7}},
                      headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert made.status_code == 201, made.text
    job_id = made.json()["id"]
    assert lifecycle.run_job(pg_url, job_id, CoreConfig(), worker="test").status == "succeeded"

    for viewport in (WIDE, NARROW):
        page = pages.open(f"{live_api.url}/dashboard#/jobs/{job_id}", viewport=viewport, key=key)
        page.wait_for_selector("#result-fields dt[data-field='total']")
        titles = page.eval_on_selector_all("#result-fields dt", "els => els.map(e => e.textContent.trim())")
        values = page.eval_on_selector_all("#result-fields dd", "els => els.map(e => e.textContent.trim())")
        assert titles == ["Numbers tallied", "Their sum", "Odd numbers"]  # the unset `note` is not shown
        assert values == ["7", "28", "[1,3,5,7]"]
        hint = page.get_attribute("#result-fields dt[data-field='tallied']", "title")
        assert hint == "How many numbers the job added up."
        assert not layout_problems(page), layout_problems(page)
