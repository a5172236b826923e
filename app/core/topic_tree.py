"""Topic trees (Kiln's synthetic-data idea): a tree of topics grown from a root description, then
tasks written for each leaf.

A tree is `{"topic": "...", "children": [...]}`, nested; it is stored, and can be replaced
whole by an edited one (`check_tree` names the node at fault: `children[2].children[0].topic`).
`grow` asks the model for `breadth` subtopics of each node, level by level, to `depth` levels
below the root (`prompts/topic_subtopics.txt`, a numbered list the model continues).
`leaf_paths` lists every path from the root to a leaf; `plan` crosses them with
`tasks_per_leaf`, and the engine (`planned.PlannedGeneration`) asks for a task per
(path, n) with `prompts/topic_generate.txt`, answers and filters it like every method. Each
candidate stores its `topic_path`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.core import prompts
from app.core.errors import InvalidInput
from app.core.llm.client import LLMClient
from app.core.parsing import parse_instruction_list

MAX_DEPTH = 5
MAX_NODES = 5000
MAX_TOPIC_CHARS = 300
SUBTOPIC_STOP = ["\n\n"]


class TopicTreeError(InvalidInput):
    """A tree that is not one; names the node at fault."""


def check_tree(tree: Any, where: str = "tree") -> dict[str, Any]:
    """The tree as clean nested dicts (topic text trimmed); raises `TopicTreeError` naming the node."""
    count = 0

    def node(value: Any, at: str, depth: int) -> dict[str, Any]:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise TopicTreeError(f"{where}: more than {MAX_NODES} topics")
        if depth > MAX_DEPTH:
            raise TopicTreeError(f"{at}: deeper than {MAX_DEPTH} levels below the root")
        if not isinstance(value, dict):
            raise TopicTreeError(f"{at}: expected an object with 'topic' and 'children'")
        unknown = sorted(set(value) - {"topic", "children"})
        if unknown:
            raise TopicTreeError(f"{at}: unknown field(s) {', '.join(unknown)}")
        topic = value.get("topic")
        if not isinstance(topic, str) or not topic.strip() or "\x00" in topic:
            raise TopicTreeError(f"{at}.topic: must be non-empty text")
        if len(topic) > MAX_TOPIC_CHARS:
            raise TopicTreeError(f"{at}.topic: longer than {MAX_TOPIC_CHARS} characters")
        children = value.get("children", [])
        if not isinstance(children, list):
            raise TopicTreeError(f"{at}.children: must be a list")
        names = [c.get("topic", "").strip() for c in children if isinstance(c, dict) and isinstance(c.get("topic"), str)]
        if len(set(names)) != len(names):
            raise TopicTreeError(f"{at}.children: two subtopics share a name")
        return {"topic": " ".join(topic.split()),
                "children": [node(c, f"{at}.children[{i}]", depth + 1) for i, c in enumerate(children)]}

    return node(tree, where, 0)


def leaf_paths(tree: dict[str, Any]) -> list[list[str]]:
    """Every path from the root to a leaf (the root alone when it has no children), in tree order."""
    out: list[list[str]] = []

    def walk(node: dict[str, Any], path: list[str]) -> None:
        path = [*path, node["topic"]]
        if not node["children"]:
            out.append(path)
        for child in node["children"]:
            walk(child, path)

    walk(tree, [])
    return out


def count_nodes(tree: dict[str, Any]) -> int:
    return 1 + sum(count_nodes(c) for c in tree["children"])


async def grow(client: LLMClient, root: str, depth: int, breadth: int, *, temperature: float = 0.7,
               max_tokens: int = 200, seed: int | None = None) -> dict[str, Any]:
    """A tree grown by the model from `root`: `breadth` subtopics per node, `depth` levels deep.

    A node whose answer gives no usable subtopic stays a leaf; repeats of a sibling or of an
    ancestor are dropped."""
    tree: dict[str, Any] = {"topic": " ".join(root.split()), "children": []}
    level: list[tuple[dict[str, Any], list[str]]] = [(tree, [tree["topic"]])]
    asked = 0
    for _ in range(depth):
        next_level: list[tuple[dict[str, Any], list[str]]] = []
        for node, path in level:
            asked += 1
            prompt = prompts.render("topic_subtopics", path=" > ".join(path), breadth=str(breadth)).rstrip()
            reply = await client.complete(prompt, max_tokens=max_tokens, temperature=temperature, top_p=0.95,
                                          stop=SUBTOPIC_STOP, seed=None if seed is None else seed + asked)
            seen = {p.lower() for p in path}
            for text in parse_instruction_list(reply.text, 1):
                topic = " ".join(text.strip(" .;:-*").split())[:MAX_TOPIC_CHARS]
                if not topic or topic.lower() in seen or len(node["children"]) >= breadth:
                    continue
                seen.add(topic.lower())
                child = {"topic": topic, "children": []}
                node["children"].append(child)
                next_level.append((child, [*path, topic]))
        level = next_level
    return tree


@dataclass(frozen=True)
class PlannedTopicTask:
    """One request: a leaf's topic path and which of its tasks this is."""

    path: tuple[str, ...]
    n: int

    def prompt(self) -> str:
        return prompts.render("topic_generate", path=" > ".join(self.path)).rstrip()

    def detail(self) -> dict[str, Any]:
        return {"topic_path": list(self.path), "topic_task": self.n}


def plan(paths: Sequence[Sequence[str]], tasks_per_leaf: int) -> list[PlannedTopicTask]:
    """Every leaf once, then every leaf a second time, ...: a small target still covers the tree."""
    return [PlannedTopicTask(tuple(path), n) for n in range(tasks_per_leaf) for path in paths]
