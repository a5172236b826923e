"""A multi-turn conversation in the dashboard's dataset rows, in a real browser: the first
exchange, then every later turn with its role; the version's diversity report beside its
versions (figures and charts); at 390 and 1440 px."""

import pytest

from tests.browser.browser_fixtures import (  # noqa: F401
    NARROW,
    WIDE,
    layout_problems,
    live_api,
    pages,
    screenshot,
)
from tests.dataset_fixtures import make_dataset, make_job, session_for
from tests.service_fixtures import api_settings, make_key  # noqa: F401

pytestmark = pytest.mark.browser

TURNS = [
    {"role": "user", "content": "Now in French?"}, {"role": "assistant", "content": "Pluie sur le toit."},
    {"role": "user", "content": "And shorter?"}, {"role": "assistant", "content": "Pluie."},
]


def test_a_conversations_turns_show_in_the_dataset_rows(pages, live_api, pg_url):
    from app.core.datasets import versions as v

    key = make_key(pg_url, "alice")
    with session_for(pg_url) as session:
        dataset = make_dataset(session, "talks")
        v.commit_version(session, dataset, [
            v.NewExample("Write a haiku about rain.", "", "Rain on the roof.", "magpie", turns=TURNS),
            v.NewExample("Name a fruit that is yellow.", "", "A banana.", "self_instruct"),
        ], build_job_id=make_job(session))
        session.commit()
    page = pages.open(f"{live_api.url}/dashboard#/datasets", key=key)
    page.click("[data-dataset=talks]")
    page.wait_for_selector("#chart-diversity-rouge canvas")
    # the diversity the commit stored shows in the version's row of the versions table
    assert page.inner_text("#versions tr[data-version='1'] .diversity-cell").startswith("d-2 1.000 · ROUGE-L ")
    page.wait_for_selector("#chart-diversity-verbs canvas")
    assert page.inner_text("#diversity-figures [data-figure=rows]") == "2"
    assert page.inner_text("#diversity-figures [data-figure=coverage]").startswith("1.000 · 2 verbs")
    assert page.eval_on_selector_all("#diversity-groups tr[data-group=method]", "els => els.length") == 2
    for width in (NARROW, WIDE):
        page.set_viewport_size(width)
        assert layout_problems(page) == []
    screenshot(page, "dataset-diversity")
    page.click("#dtab-rows")
    page.wait_for_selector("#dataset-rows li .turns")
    rows = page.eval_on_selector_all("#dataset-rows li.example", "els => els.map(e => e.querySelectorAll('.turn').length)")
    assert rows == [4, 0]
    turns = page.eval_on_selector_all("#dataset-rows .turn", "els => els.map(e => [e.dataset.role, "
                                      "e.querySelector('pre').textContent])")
    assert turns == [[t["role"], t["content"]] for t in TURNS]
    for width in (NARROW, WIDE):
        page.set_viewport_size(width)
        assert layout_problems(page) == []
    screenshot(page, "dataset-rows-conversation")
