"""The dashboard in a real browser without a model: the key gate, the empty state, a
revoked key, the stale marker when the API goes away, and polling that stops for
finished jobs and hidden tabs."""

import pytest

from tests.browser.browser_fixtures import NARROW, browser, layout_problems, live_api, pages, screenshot  # noqa: F401  # noqa: F401
from tests.service_fixtures import api_settings, make_key  # noqa: F401

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
