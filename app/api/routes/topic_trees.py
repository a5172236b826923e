"""Topic trees: upload one, list, read (with its leaf paths), and edit: replace the tree whole,
or one node at a time (rename it, add a child under it, delete it with its subtree).

A tree is nested `{"topic", "children"}`; a `topic_tree` job grows one from a root
description and stores it here too. An edit is checked whole first: an error names the node
(`tree.children[2].topic`) or the field (`path`, `topic`) at fault, and nothing is changed.
A job starts from an edited tree through `POST /jobs` with `params.topic_tree_id`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func
from sqlmodel import select

from app.api.deps import IdPath, Owner, SessionDep, owned
from app.api.errors import LimitedJsonRoute, field_error
from app.api.schemas.common import MAX_PAGE, Page, Text
from app.core import store
from app.core.methods import topic_tree
from app.models import TopicTree

router = APIRouter(prefix="/topic-trees", tags=["topic trees"], route_class=LimitedJsonRoute)

TREE_EXAMPLE = {"topic": "Cooking", "children": [{"topic": "Baking", "children": []},
                                                 {"topic": "Knife skills", "children": []}]}


class TopicTreeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=200)
    tree: dict[str, Any] = Field(examples=[TREE_EXAMPLE], description="Nested {topic, children}.")


class TopicTreeEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tree: dict[str, Any] = Field(examples=[TREE_EXAMPLE], description="The whole edited tree.")


class TopicTreeNodeEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: Literal["rename", "add_child", "delete"] = Field(
        description="rename the node at `path` to `topic`; add_child `topic` under it; delete it with its subtree.")
    path: list[Text] = Field(min_length=1, max_length=topic_tree.MAX_DEPTH + 1, examples=[["Cooking", "Baking"]],
                             description="The node's topics from the root (the root's included).")
    topic: Text | None = Field(default=None, max_length=topic_tree.MAX_TOPIC_CHARS,
                               description="The new name (rename) or the new child (add_child).")


class TopicTreeOut(BaseModel):
    id: int
    name: str
    made_by: str = Field(description="upload, grown (by a topic_tree job) or edited.")
    grown_by_job_id: int | None
    topics: int
    leaves: int
    created_at: datetime
    updated_at: datetime


class TopicTreeDetail(TopicTreeOut):
    tree: dict[str, Any]
    leaf_paths: list[list[str]]


def _out(row: TopicTree) -> TopicTreeOut:
    return TopicTreeOut(**row.model_dump(exclude={"tree", "owner"}), topics=topic_tree.count_nodes(row.tree),
                        leaves=len(topic_tree.leaf_paths(row.tree)))


def _detail(row: TopicTree) -> TopicTreeDetail:
    return TopicTreeDetail(**_out(row).model_dump(), tree=row.tree, leaf_paths=topic_tree.leaf_paths(row.tree))


@router.post("", status_code=201, summary="Upload a topic tree")
def create_topic_tree(body: TopicTreeCreate, session: SessionDep, owner: Owner) -> TopicTreeDetail:
    try:
        row = store.create_topic_tree(session, body.name, body.tree, owner)
    except topic_tree.TopicTreeError as exc:
        raise field_error(("body", "tree"), str(exc)) from None
    session.commit()
    return _detail(row)


@router.get("", summary="List topic trees")
def list_topic_trees(session: SessionDep, owner: Owner, limit: int = Query(50, ge=1, le=MAX_PAGE),
                     offset: int = Query(0, ge=0, le=2**31)) -> Page[TopicTreeOut]:
    where = TopicTree.owner == owner
    total = session.exec(select(func.count()).select_from(TopicTree).where(where)).one()
    rows = session.exec(select(TopicTree).where(where).order_by(TopicTree.id.desc()).offset(offset).limit(limit)).all()
    return Page(items=[_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{tree_id}", summary="A topic tree with its leaf paths")
def get_topic_tree(tree_id: IdPath, session: SessionDep, owner: Owner) -> TopicTreeDetail:
    return _detail(owned(session, TopicTree, tree_id, owner, "topic tree"))


@router.put("/{tree_id}", summary="Edit a topic tree: replace it whole with a checked one")
def edit_topic_tree(tree_id: IdPath, body: TopicTreeEdit, session: SessionDep, owner: Owner) -> TopicTreeDetail:
    row = owned(session, TopicTree, tree_id, owner, "topic tree")
    try:
        store.replace_topic_tree(session, row, body.tree)
    except topic_tree.TopicTreeError as exc:
        raise field_error(("body", "tree"), str(exc)) from None
    session.commit()
    return _detail(row)


@router.post("/{tree_id}/edits", summary="Edit one node of a topic tree: rename it, add a child, delete a subtree")
def edit_topic_tree_node(tree_id: IdPath, body: TopicTreeNodeEdit, session: SessionDep, owner: Owner
                         ) -> TopicTreeDetail:
    row = owned(session, TopicTree, tree_id, owner, "topic tree")
    try:
        store.replace_topic_tree(session, row, topic_tree.edit(row.tree, body.op, body.path, body.topic))
    except topic_tree.TopicTreeError as exc:
        field = str(exc).split(":", 1)[0].split("[", 1)[0]
        raise field_error(("body", field if field in ("path", "topic", "op") else "tree"), str(exc)) from None
    session.commit()
    return _detail(row)
