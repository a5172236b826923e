"""Topic trees without a model: the tree's checks name the node at fault, leaf paths, the plan
(every leaf before any twice), and the API's upload, read and edit (real PostgreSQL)."""

from __future__ import annotations

import pytest

from app.core import topic_tree
from app.core.params import TopicTreeParams
from tests.service_fixtures import api, api_settings, client, other_api  # noqa: F401

TREE = {"topic": "Cooking", "children": [
    {"topic": "Baking", "children": [{"topic": "Bread", "children": []}, {"topic": "Cakes"}]},
    {"topic": " Knife   skills ", "children": []},
]}


def test_leaf_paths_and_the_plan():
    tree = topic_tree.check_tree(TREE)
    assert tree["children"][1]["topic"] == "Knife skills" and tree["children"][0]["children"][1]["children"] == []
    assert topic_tree.leaf_paths(tree) == [["Cooking", "Baking", "Bread"], ["Cooking", "Baking", "Cakes"],
                                           ["Cooking", "Knife skills"]]
    assert topic_tree.count_nodes(tree) == 5
    planned = topic_tree.plan(topic_tree.leaf_paths(tree), 2)
    assert [(p.path[-1], p.n) for p in planned] == [("Bread", 0), ("Cakes", 0), ("Knife skills", 0),
                                                   ("Bread", 1), ("Cakes", 1), ("Knife skills", 1)]
    assert planned[0].detail() == {"topic_path": ["Cooking", "Baking", "Bread"], "topic_task": 0}
    assert "#Topic#: Cooking > Baking > Bread\n#Task#:" in planned[0].prompt()
    assert topic_tree.leaf_paths(topic_tree.check_tree({"topic": "Alone"})) == [["Alone"]]


@pytest.mark.parametrize(("tree", "message"), [
    ([], "tree: expected an object"),
    ({"topic": ""}, r"tree\.topic: must be non-empty"),
    ({"topic": "A", "children": [{"topic": "B"}, {"topic": 3}]}, r"tree\.children\[1\]\.topic"),
    ({"topic": "A", "children": [{"topic": "B"}, {"topic": "B"}]}, "two subtopics share a name"),
    ({"topic": "A", "children": "B"}, r"tree\.children: must be a list"),
    ({"topic": "A", "colour": "red"}, "unknown field"),
    ({"topic": "A", "children": [{"topic": "B", "children": [{"topic": "C", "children": [{"topic": "D", "children": [
        {"topic": "E", "children": [{"topic": "F", "children": [{"topic": "G"}]}]}]}]}]}]}, "deeper than 5"),
])
def test_a_bad_tree_names_the_node(tree, message):
    with pytest.raises(topic_tree.TopicTreeError, match=message):
        topic_tree.check_tree(tree)


def test_params_need_a_tree_or_a_root():
    with pytest.raises(ValueError, match="exactly one of topic_tree_id"):
        TopicTreeParams()
    with pytest.raises(ValueError, match="exactly one of topic_tree_id"):
        TopicTreeParams(topic_tree_id=1, root="Cooking")
    assert TopicTreeParams(root="Cooking").depth == 2


def test_the_api_uploads_reads_and_edits_a_tree(api, other_api):
    made = api.ok("post", "/api/v1/topic-trees", 201, json={"name": "cooking", "tree": TREE})
    assert (made["topics"], made["leaves"], made["made_by"]) == (5, 3, "upload")
    assert made["leaf_paths"][2] == ["Cooking", "Knife skills"]
    edited = dict(TREE, children=[*TREE["children"], {"topic": "Sauces", "children": []}])
    out = api.ok("put", f"/api/v1/topic-trees/{made['id']}", json={"tree": edited})
    assert out["made_by"] == "edited" and out["leaves"] == 4
    bad = api.put(f"/api/v1/topic-trees/{made['id']}", json={"tree": {"topic": "A", "children": [{"topic": 1}]}})
    assert bad.status_code == 422 and "tree.children[0].topic" in bad.text
    assert api.ok("get", f"/api/v1/topic-trees/{made['id']}")["leaves"] == 4  # the bad edit changed nothing
    assert [t["name"] for t in api.ok("get", "/api/v1/topic-trees")["items"]] == ["cooking"]
    assert other_api.get(f"/api/v1/topic-trees/{made['id']}").status_code == 404
    assert other_api.put(f"/api/v1/topic-trees/{made['id']}", json={"tree": TREE}).status_code == 404
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "topic_tree", "params": {"topic_tree_id": made["id"]}})
    assert job["kind"] == "topic_tree"
    foreign = other_api.post("/api/v1/jobs", json={"kind": "topic_tree", "params": {"topic_tree_id": made["id"]}})
    assert foreign.status_code == 422 and "no topic tree with id" in foreign.text
    assert api.post("/api/v1/jobs", json={"kind": "topic_tree", "params": {}}).status_code == 422
