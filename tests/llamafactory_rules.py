"""LLaMA-Factory's dataset loading rules, written from its documentation (`data/README.md`)
and its loader (`data/parser.py`, `data/loader.py`, `data/converter.py`), for tests.

LLaMA-Factory itself is not a dependency; these functions apply its rules to a folder with
a `dataset_info.json`: how an entry's attributes default (and how naming `columns` unsets
every column not named), how a file or a folder is loaded with `datasets` by extension,
and how the alpaca and sharegpt converters turn each example into a prompt and a response
(or skip it as broken, as LLaMA-Factory logs "Skipping this abnormal example").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILEEXT2TYPE = {"arrow": "arrow", "csv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet", "txt": "text"}


@dataclass
class DatasetAttr:
    file_name: str
    formatting: str = "alpaca"
    ranking: bool = False
    system: str | None = None
    tools: str | None = None
    images: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    kto_tag: str | None = None
    prompt: str | None = "instruction"
    query: str | None = "input"
    response: str | None = "output"
    history: str | None = None
    messages: str | None = "conversations"
    role_tag: str | None = "from"
    content_tag: str | None = "value"
    user_tag: str | None = "human"
    assistant_tag: str | None = "gpt"
    observation_tag: str | None = "observation"
    function_tag: str | None = "function_call"
    system_tag: str | None = "system"


def parse_entry(entry: dict[str, Any]) -> DatasetAttr:
    """`get_dataset_list` for one entry of a local file."""
    attr = DatasetAttr(entry["file_name"])
    attr.formatting = entry.get("formatting", "alpaca")
    attr.ranking = entry.get("ranking", False)
    if "columns" in entry:
        names = ["system", "tools", "images", "chosen", "rejected", "kto_tag"]
        names += ["prompt", "query", "response", "history"] if attr.formatting == "alpaca" else ["messages"]
        for name in names:
            setattr(attr, name, entry["columns"].get(name))  # not named: None, not the default
    if attr.formatting == "sharegpt" and "tags" in entry:
        for tag in ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag",
                    "system_tag"):
            setattr(attr, tag, entry["tags"].get(tag))
    return attr


def load_file(dataset_dir: Path, attr: DatasetAttr) -> Any:
    """`_load_single_dataset` for `load_from == "file"`: a file, or a folder of one file type."""
    from datasets import load_dataset

    local = os.path.join(dataset_dir, attr.file_name)
    data_path, data_files = None, []
    if os.path.isdir(local):
        for name in os.listdir(local):
            data_files.append(os.path.join(local, name))
            kind = FILEEXT2TYPE.get(name.split(".")[-1])
            if data_path is None:
                data_path = kind
            elif data_path != kind:
                raise ValueError("File types should be identical.")
    elif os.path.isfile(local):
        data_files.append(local)
        data_path = FILEEXT2TYPE.get(local.split(".")[-1])
    else:
        raise ValueError(f"File {local} not found.")
    if data_path is None:
        raise ValueError("Allowed file types: " + ",".join(FILEEXT2TYPE))
    return load_dataset(data_path, data_files=data_files, split="train")


def convert_alpaca(attr: DatasetAttr, example: dict[str, Any]) -> dict[str, Any]:
    prompt = []
    if attr.history and isinstance(example[attr.history], list):
        for old_prompt, old_response in example[attr.history]:
            prompt += [{"role": "user", "content": old_prompt}, {"role": "assistant", "content": old_response}]
    query = []
    if attr.prompt and example[attr.prompt]:
        query.append(example[attr.prompt])
    if attr.query and example[attr.query]:
        query.append(example[attr.query])
    prompt.append({"role": "user", "content": "\n".join(query)})
    if attr.response and isinstance(example[attr.response], str):
        response = [{"role": "assistant", "content": example[attr.response]}]
    else:
        response = []
    return {"_prompt": prompt, "_response": response, "_system": example[attr.system] if attr.system else ""}


def convert_sharegpt(attr: DatasetAttr, example: dict[str, Any]) -> dict[str, Any]:
    tag_mapping = {attr.user_tag: "user", attr.assistant_tag: "assistant", attr.observation_tag: "observation",
                   attr.function_tag: "function", attr.system_tag: "system"}
    accept_tags = ((attr.user_tag, attr.observation_tag), (attr.assistant_tag, attr.function_tag))
    messages = example[attr.messages]
    if attr.system_tag and len(messages) != 0 and messages[0][attr.role_tag] == attr.system_tag:
        system = messages[0][attr.content_tag]
        messages = messages[1:]
    else:
        system = example[attr.system] if attr.system else ""
    aligned, broken = [], False
    for turn_idx, message in enumerate(messages):
        if message[attr.role_tag] not in accept_tags[turn_idx % 2]:
            broken = True
            break
        aligned.append({"role": tag_mapping[message[attr.role_tag]], "content": message[attr.content_tag]})
    if (not attr.ranking and len(aligned) % 2 != 0) or (attr.ranking and len(aligned) % 2 == 0):
        broken = True
    prompt, response = ([], []) if broken else (aligned[:-1], aligned[-1:])
    return {"_prompt": prompt, "_response": response, "_system": system}


def load_entry(dataset_dir: Path, name: str) -> list[dict[str, Any]]:
    """Every example of entry `name` of `dataset_dir/dataset_info.json`, converted."""
    info = json.loads((Path(dataset_dir) / "dataset_info.json").read_text(encoding="utf-8"))
    if name not in info:
        raise ValueError(f"Undefined dataset {name} in dataset_info.json.")
    attr = parse_entry(info[name])
    convert = convert_sharegpt if attr.formatting == "sharegpt" else convert_alpaca
    return [convert(attr, example) for example in load_file(Path(dataset_dir), attr)]


def valid(example: dict[str, Any]) -> bool:
    """What the supervised preprocessor keeps: a prompt with an odd number of turns and one response."""
    return len(example["_prompt"]) % 2 == 1 and len(example["_response"]) == 1
