"""Topic trees in the dashboard, in a real browser: a stored tree as a nested list, edited one
node at a time (rename, add a subtopic, delete a subtree) through the API, a refused edit
shown with the field at fault and the tree unchanged, then a topic_tree job started on the
edited tree; at 390 and 1440 px."""

import pytest
from sqlmodel import select

from app.core import store
from app.core.methods import topic_tree
from app.db import session_scope
from app.models import Job, TopicTree
from tests.browser.browser_fixtures import (  # noqa: F401
    NARROW,
    WIDE,
    layout_problems,
    live_api,
    pages,
    screenshot,
)
from tests.service_fixtures import api_settings, make_key  # noqa: F401

pytestmark = pytest.mark.browser

TREE = {"topic": "Cooking", "children": [
    {"topic": "Baking", "children": [{"topic": "Bread", "children": []}, {"topic": "Cakes", "children": []}]},
    {"topic": "Knife skills", "children": []},
]}


def node(path: str) -> str:
    return f'li.topic-node[data-path="{path}"]'


def stored(url: str, tree_id: int) -> dict:
    with session_scope(url) as session:
        return session.get(TopicTree, tree_id).tree


def test_a_topic_tree_is_edited_in_the_dashboard_and_a_job_started_from_it(pages, live_api, pg_url):
    key = make_key(pg_url, "alice")
    with session_scope(pg_url) as session:
        tree_id = store.create_topic_tree(session, "cooking", TREE, owner="alice").id
    page = pages.open(f"{live_api.url}/dashboard#/topics", key=key)
    page.click(f"[data-tree='{tree_id}']")
    page.wait_for_selector("#topic-tree")
    shown = page.eval_on_selector_all("li.topic-node", "els => els.map(e => e.dataset.path)")
    assert shown == ["Cooking", "Cooking > Baking", "Cooking > Baking > Bread", "Cooking > Baking > Cakes",
                     "Cooking > Knife skills"]
    assert page.inner_text("#tree-figures").startswith("5 topics, 3 leaves")

    # rename a node: its subtree moves with it
    page.click(f"{node('Cooking > Baking')} > .topic-line .rename-topic")
    page.fill(f"{node('Cooking > Baking')} .topic-edit-text", "Home baking")
    page.click(f"{node('Cooking > Baking')} .topic-edit-save")
    page.wait_for_selector(node("Cooking > Home baking > Bread"))
    # add a subtopic under a leaf
    page.click(f"{node('Cooking > Knife skills')} > .topic-line .add-topic")
    page.fill(f"{node('Cooking > Knife skills')} .topic-edit-text", "Sharpening")
    page.click(f"{node('Cooking > Knife skills')} .topic-edit-save")
    page.wait_for_selector(node("Cooking > Knife skills > Sharpening"))
    # delete a subtree
    page.click(f"{node('Cooking > Home baking > Cakes')} > .topic-line .delete-topic")
    page.wait_for_selector(node("Cooking > Home baking > Cakes"), state="detached")
    assert topic_tree.leaf_paths(stored(pg_url, tree_id)) == [["Cooking", "Home baking", "Bread"],
                                                             ["Cooking", "Knife skills", "Sharpening"]]

    # a refused edit: a sibling's name again; the API's message names the field, nothing changes
    pages.console.allow("status of 422")
    page.click(f"{node('Cooking > Knife skills')} > .topic-line .rename-topic")
    page.fill(f"{node('Cooking > Knife skills')} .topic-edit-text", "home Baking")
    page.click(f"{node('Cooking > Knife skills')} .topic-edit-save")
    page.wait_for_selector("#tree-error")
    assert "topic: 'Cooking' already has a subtopic 'home Baking'" in page.inner_text("#tree-error")
    assert topic_tree.leaf_paths(stored(pg_url, tree_id))[1] == ["Cooking", "Knife skills", "Sharpening"]
    page.click(f"{node('Cooking > Knife skills')} .topic-edit button.link")  # cancel

    for width in (NARROW, WIDE):
        page.set_viewport_size(width)
        assert layout_problems(page) == []
    screenshot(page, "topic-tree-editor")

    # a topic_tree job on the edited tree
    page.fill("#topic-job-target", "4")
    page.fill("#topic-job-per-leaf", "2")
    page.click("#topic-job-start")
    page.wait_for_url("**#/jobs/*")
    with session_scope(pg_url) as session:
        job = session.exec(select(Job).where(Job.kind == "topic_tree")).one()
    assert job.owner == "alice" and job.params["topic_tree_id"] == tree_id
    assert (job.params["target"], job.params["tasks_per_leaf"]) == (4, 2)
    assert page.url.endswith(f"#/jobs/{job.id}")
