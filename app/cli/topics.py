"""`sprout topics`: topic trees for the topic_tree job kind: import, show, edit (replace whole),
and one node at a time: rename, add, delete.

The operator's trees (no API key owner), for `sprout jobs run topic_tree -p topic_tree_id=N`
(or `-p root="..."` to grow one). A node is named by its path as `show` prints it:
topics from the root joined by " > ".
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from app.cli.common import CliError, console, database_url, load_settings
from app.core import records, store
from app.core.methods import topic_tree
from app.db import session_scope
from app.models import TopicTree

app = typer.Typer(help="Topic trees for the topic_tree job kind.", no_args_is_help=True)


def _read(path: Path) -> object:
    try:
        return records.loads(records.read_text(path))
    except records.RecordError as exc:
        raise CliError(f"{path}: {exc}") from None


@app.command("import")
def import_cmd(path: Path = typer.Argument(..., help="A JSON file: nested {\"topic\", \"children\"}."),
               name: str | None = typer.Option(None, "--name", help="Default: the root topic.")) -> None:
    """Check the tree whole, then store it; prints its id."""
    tree = _read(path)
    with session_scope(database_url(load_settings())) as session:
        try:
            row = store.create_topic_tree(session, (name or _root_topic(tree) or path.name)[:200], tree)
        except topic_tree.TopicTreeError as exc:
            raise CliError(f"{path}: {exc}") from None
        console.print(f"topic tree {row.id}: {topic_tree.count_nodes(row.tree)} topics, "
                      f"{len(topic_tree.leaf_paths(row.tree))} leaves")


def _root_topic(tree: object) -> str | None:
    topic = tree.get("topic") if isinstance(tree, dict) else None
    return topic if isinstance(topic, str) else None


def _row(session, tree_id: int) -> TopicTree:
    row = session.get(TopicTree, tree_id)
    if row is None or row.owner is not None:
        raise CliError(f"no topic tree with id {tree_id}")
    return row


@app.command("show")
def show(tree_id: int = typer.Argument(...), as_json: bool = typer.Option(False, "--json", help="The tree as JSON.")
         ) -> None:
    """The tree's leaf paths (or the whole tree as JSON, to edit and `sprout topics edit`)."""
    with session_scope(database_url(load_settings())) as session:
        row = _row(session, tree_id)
        if as_json:
            console.print_json(json.dumps(row.tree))
            return
        for path in topic_tree.leaf_paths(row.tree):
            console.print(" > ".join(path), markup=False, highlight=False)


@app.command("edit")
def edit(tree_id: int = typer.Argument(...),
         path: Path = typer.Argument(..., help="The edited tree as JSON (see `sprout topics show ID --json`).")) -> None:
    """Replace the tree whole with the edited one, checked first."""
    tree = _read(path)
    with session_scope(database_url(load_settings())) as session:
        row = _row(session, tree_id)
        try:
            store.replace_topic_tree(session, row, tree)
        except topic_tree.TopicTreeError as exc:
            raise CliError(f"{path}: {exc}") from None
        console.print(f"topic tree {row.id}: {len(topic_tree.leaf_paths(row.tree))} leaves")


def _edit_node(tree_id: int, op: str, path: str, topic: str | None) -> None:
    with session_scope(database_url(load_settings())) as session:
        row = _row(session, tree_id)
        try:
            store.replace_topic_tree(session, row, topic_tree.edit(row.tree, op, topic_tree.parse_path(path), topic))
        except topic_tree.TopicTreeError as exc:
            raise CliError(f"topic tree {tree_id}: {exc}") from None
        console.print(f"topic tree {row.id}: {topic_tree.count_nodes(row.tree)} topics, "
                      f"{len(topic_tree.leaf_paths(row.tree))} leaves")


@app.command("rename")
def rename(tree_id: int = typer.Argument(...), path: str = typer.Argument(..., help='The node: "Root > Topic".'),
           topic: str = typer.Argument(..., help="Its new name.")) -> None:
    """Rename one node (its subtree stays)."""
    _edit_node(tree_id, "rename", path, topic)


@app.command("add")
def add(tree_id: int = typer.Argument(...), path: str = typer.Argument(..., help='The parent: "Root > Topic".'),
        topic: str = typer.Argument(..., help="The new subtopic.")) -> None:
    """Add a subtopic under one node."""
    _edit_node(tree_id, "add_child", path, topic)


@app.command("delete")
def delete(tree_id: int = typer.Argument(...), path: str = typer.Argument(..., help='The node: "Root > Topic".')
           ) -> None:
    """Delete one node with its subtree (not the root)."""
    _edit_node(tree_id, "delete", path, None)
