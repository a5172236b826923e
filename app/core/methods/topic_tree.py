"""Topic trees (Kiln's synthetic-data idea): a tree of topics grown from a root description, then
tasks written for each leaf.

A tree is `{"topic": "...", "children": [...]}`, nested; it is stored, and can be replaced
whole by an edited one (`check_tree` names the node at fault: `children[2].children[0].topic`).
`grow` asks the model for `breadth` subtopics of each node, level by level, to `depth` levels
below the root: a base model continues a numbered list (`prompts/topic_subtopics.txt`), an
instruct model is asked through the chat API (`prompts/chat_topic_subtopics.txt`), for JSON
(`{"subtopics": [...]}`) with `structured` on, else for a numbered list.
`leaf_paths` lists every path from the root to a leaf; `plan` crosses them with
`tasks_per_leaf`, and the engine (`planned.PlannedGeneration`) asks for a task per
(path, n) with `prompts/topic_generate.txt` (`chat_topic_generate.txt` on the chat API),
answers and filters it like every method. Each candidate stores its `topic_path`.
`rename`, `add_child` and `delete` edit one node of a tree, addressed by its path of topics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.errors import InvalidInput
from app.core.llm.client import LLMClient
from app.core.llm.dialects import Dialect, Request
from app.core.methods import prompts
from app.core.methods import structured as json_replies
from app.core.methods.parsing import parse_instruction_list, parse_numbered_reply

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
               max_tokens: int = 200, seed: int | None = None, structured: bool = True) -> dict[str, Any]:
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
            reply = await client.ask(_subtopics_request(path, breadth, structured, dict(
                max_tokens=max_tokens, temperature=temperature, top_p=0.95,
                seed=None if seed is None else seed + asked)))
            seen = {p.lower() for p in path}
            for text in _subtopics(reply.text, reply.dialect == "chat", structured):
                topic = " ".join(text.strip(" .;:-*").split())[:MAX_TOPIC_CHARS]
                if not topic or topic.lower() in seen or len(node["children"]) >= breadth:
                    continue
                seen.add(topic.lower())
                child = {"topic": topic, "children": []}
                node["children"].append(child)
                next_level.append((child, [*path, topic]))
        level = next_level
    return tree


def _subtopics_request(path: list[str], breadth: int, structured: bool,
                       sampling: dict[str, Any]) -> Callable[[Dialect], Request]:
    def request(dialect: Dialect) -> Request:
        if dialect == "chat":
            form = prompts.load("chat_format_subtopics_json" if structured else "chat_format_subtopics")
            return Request("chat", messages=prompts.messages("chat_topic_subtopics", path=" > ".join(path),
                                                             breadth=str(breadth), format=form),
                           params=sampling, schema=json_replies.subtopics_schema(breadth) if structured else None,
                           schema_name="subtopics")
        prompt = prompts.render("topic_subtopics", path=" > ".join(path), breadth=str(breadth)).rstrip()
        return Request("completions", prompt=prompt, params={**sampling, "stop": SUBTOPIC_STOP})

    return request


def _subtopics(text: str, chat: bool, structured: bool) -> list[str]:
    """The subtopic names of one reply (none when a structured reply does not parse)."""
    if not chat:
        return parse_instruction_list(text, 1)
    if structured:
        return json_replies.parse_subtopics(text) or []
    return parse_numbered_reply(text)


@dataclass(frozen=True)
class PlannedTopicTask:
    """One request: a leaf's topic path and which of its tasks this is."""

    path: tuple[str, ...]
    n: int

    def prompt(self) -> str:
        return prompts.render("topic_generate", path=" > ".join(self.path)).rstrip()

    def messages(self, structured: bool) -> list[dict[str, str]]:
        return prompts.messages("chat_topic_generate", path=" > ".join(self.path),
                                format=prompts.load("chat_format_task_json" if structured else "chat_format_task"))

    def detail(self) -> dict[str, Any]:
        return {"topic_path": list(self.path), "topic_task": self.n}


def plan(paths: Sequence[Sequence[str]], tasks_per_leaf: int) -> list[PlannedTopicTask]:
    """Every leaf once, then every leaf a second time, ...: a small target still covers the tree."""
    return [PlannedTopicTask(tuple(path), n) for n in range(tasks_per_leaf) for path in paths]


# --- edits of one node (the API's, the CLI's and the dashboard's), each checked whole ---------
EDIT_OPS = ("rename", "add_child", "delete")


def _find(tree: dict[str, Any], path: Sequence[str]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The node at `path` (topics from the root, the root's included) and its parent."""
    if not path:
        raise TopicTreeError("path: name at least the root topic")
    if path[0] != tree["topic"]:
        raise TopicTreeError(f"path[0]: the root topic is {tree['topic']!r}, not {path[0]!r}")
    parent, node = None, tree
    for i, topic in enumerate(path[1:], start=1):
        child = next((c for c in node["children"] if c["topic"] == topic), None)
        if child is None:
            raise TopicTreeError(f"path[{i}]: {' > '.join(path[:i])!r} has no subtopic {topic!r}")
        parent, node = node, child
    return parent, node


def edit(tree: Any, op: str, path: Sequence[str], topic: str | None = None) -> dict[str, Any]:
    """A copy of `tree` with one edit: `rename` the node at `path` to `topic`, `add_child`
    `topic` under it, or `delete` it with its subtree (not the root). The result is checked
    whole (`check_tree`); a `TopicTreeError` says what is wrong, naming `path` or `topic`."""
    if op not in EDIT_OPS:
        raise TopicTreeError(f"op: one of {', '.join(EDIT_OPS)}, not {op!r}")
    copy = check_tree(tree)
    parent, node = _find(copy, list(path))
    if op == "delete":
        if parent is None:
            raise TopicTreeError("path: the root cannot be deleted (delete the tree, or rename the root)")
        parent["children"].remove(node)
        return check_tree(copy)
    if topic is None or not topic.strip():
        raise TopicTreeError(f"topic: {op} needs a non-empty topic")
    clean = " ".join(topic.split())
    siblings = parent["children"] if op == "rename" and parent is not None else node["children"]
    if any(c["topic"].lower() == clean.lower() and c is not node for c in siblings):
        raise TopicTreeError(f"topic: {' > '.join(path[:-1] if op == 'rename' else path) or 'the root'!r} "
                             f"already has a subtopic {clean!r}")
    if op == "rename":
        node["topic"] = clean
    else:
        node["children"].append({"topic": clean, "children": []})
    try:
        return check_tree(copy)
    except TopicTreeError as exc:
        raise TopicTreeError(f"topic: {exc}") from None


def parse_path(text: str) -> list[str]:
    """A path written as the CLI and the leaf lists show it: topics joined by " > "."""
    return [" ".join(part.split()) for part in text.split(">") if part.strip()]
