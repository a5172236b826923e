"""Topic trees without a model: the tree's checks name the node at fault, leaf paths, the plan
(every leaf before any twice), and the API's upload, read and edit (real PostgreSQL)."""

from __future__ import annotations

import json

import pytest

from app.core.methods import topic_tree
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


def test_one_node_edits_rename_add_and_delete_and_name_the_field_at_fault():
    tree = topic_tree.check_tree(TREE)
    renamed = topic_tree.edit(tree, "rename", ["Cooking", "Baking"], "  Home   baking ")
    assert topic_tree.leaf_paths(renamed)[0] == ["Cooking", "Home baking", "Bread"]  # the subtree stays
    added = topic_tree.edit(renamed, "add_child", ["Cooking", "Knife skills"], "Sharpening")
    assert ["Cooking", "Knife skills", "Sharpening"] in topic_tree.leaf_paths(added)
    pruned = topic_tree.edit(added, "delete", ["Cooking", "Home baking"])
    assert topic_tree.leaf_paths(pruned) == [["Cooking", "Knife skills", "Sharpening"]]
    assert tree == topic_tree.check_tree(TREE)  # an edit returns a copy
    for args, message in [
        (("delete", ["Cooking"]), r"^path: the root cannot be deleted"),
        (("rename", ["Cooking", "Baking"], "knife skills"), r"^topic: 'Cooking' already has a subtopic"),
        (("add_child", ["Cooking", "Baking"], "Cakes"), r"^topic: 'Cooking > Baking' already has a subtopic 'Cakes'"),
        (("add_child", ["Cooking", "Sauces"], "Pesto"), r"^path\[1\]: 'Cooking' has no subtopic 'Sauces'"),
        (("rename", ["Food"], "Meals"), r"^path\[0\]: the root topic is 'Cooking'"),
        (("add_child", ["Cooking"], " "), r"^topic: add_child needs a non-empty topic"),
        (("rename", ["Cooking"], "x" * 301), r"^topic: tree\.topic: longer than 300"),
        (("move", ["Cooking"]), r"^op: one of"),
    ]:
        with pytest.raises(topic_tree.TopicTreeError, match=message):
            topic_tree.edit(tree, *args)
    assert topic_tree.parse_path(" Cooking >  Knife skills ") == ["Cooking", "Knife skills"]


def test_the_api_edits_one_node_and_says_which_field_is_wrong(api, other_api):
    made = api.ok("post", "/api/v1/topic-trees", 201, json={"name": "cooking", "tree": TREE})
    url = f"/api/v1/topic-trees/{made['id']}/edits"
    out = api.ok("post", url, json={"op": "add_child", "path": ["Cooking", "Knife skills"], "topic": "Sharpening"})
    assert out["made_by"] == "edited" and ["Cooking", "Knife skills", "Sharpening"] in out["leaf_paths"]
    out = api.ok("post", url, json={"op": "rename", "path": ["Cooking", "Baking", "Cakes"], "topic": "Layer cakes"})
    assert ["Cooking", "Baking", "Layer cakes"] in out["leaf_paths"]
    out = api.ok("post", url, json={"op": "delete", "path": ["Cooking", "Baking"]})
    assert out["leaf_paths"] == [["Cooking", "Knife skills", "Sharpening"]]
    for body, field, words in [
        ({"op": "delete", "path": ["Cooking", "Baking"]}, "path", "has no subtopic 'Baking'"),
        ({"op": "delete", "path": ["Cooking"]}, "path", "the root cannot be deleted"),
        ({"op": "rename", "path": ["Cooking", "Knife skills"]}, "topic", "rename needs a non-empty topic"),
        ({"op": "add_child", "path": ["Cooking"], "topic": "Knife Skills"}, "topic", "already has a subtopic"),
        ({"op": "move", "path": ["Cooking"]}, "op", ""),
        ({"op": "delete", "path": []}, "path", ""),
    ]:
        bad = api.post(url, json=body)
        assert bad.status_code == 422, (body, bad.text)
        detail = bad.json()
        assert field in json.dumps(detail) and words in bad.text, (body, bad.text)
    assert api.ok("get", f"/api/v1/topic-trees/{made['id']}")["leaf_paths"] == [["Cooking", "Knife skills",
                                                                                 "Sharpening"]]  # bad edits: no change
    assert other_api.post(url, json={"op": "delete", "path": ["Cooking", "Knife skills"]}).status_code == 404
    assert api.post("/api/v1/topic-trees/999999/edits", json={"op": "delete", "path": ["A", "B"]}).status_code == 404


def test_the_cli_edits_one_node_and_answers_a_bad_path_in_one_line(pg_url, monkeypatch):
    from typer.testing import CliRunner

    from app.cli import cli
    from app.cli.common import CliError
    from app.core import store
    from app.db import session_scope
    from app.models import TopicTree

    monkeypatch.setenv("SPROUT_DATABASE_URL", pg_url)
    with session_scope(pg_url) as session:
        tree_id = store.create_topic_tree(session, "cooking", TREE).id
    runner = CliRunner()
    for args in (["add", str(tree_id), "Cooking > Knife skills", "Sharpening"],
                 ["rename", str(tree_id), "Cooking > Baking", "Home baking"],
                 ["delete", str(tree_id), "Cooking > Home baking > Cakes"]):
        result = runner.invoke(cli, ["topics", *args])
        assert result.exit_code == 0, result.output
    with session_scope(pg_url) as session:
        tree = session.get(TopicTree, tree_id).tree
    assert topic_tree.leaf_paths(tree) == [["Cooking", "Home baking", "Bread"], ["Cooking", "Knife skills", "Sharpening"]]
    bad = runner.invoke(cli, ["topics", "delete", str(tree_id), "Cooking > Pastry"])
    # `sprout` prints a CliError as one line (app.cli.main)
    assert bad.exit_code != 0 and isinstance(bad.exception, CliError), (bad.exception, bad.output)
    assert str(bad.exception) == f"topic tree {tree_id}: path[1]: 'Cooking' has no subtopic 'Pastry'"
