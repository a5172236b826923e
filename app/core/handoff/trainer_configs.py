"""The files that tell a trainer how to read a bundle: LLaMA-Factory's `dataset_info.json`
and an axolotl `datasets:` snippet.

LLaMA-Factory (`data/README.md`, `data/parser.py`) reads one entry per dataset: `file_name`
(a file, or a folder whose files share one type), `formatting` (`alpaca` or `sharegpt`;
anything else, a misspelling included, is read as alpaca), `columns`, and for sharegpt
`tags`. Once `columns` is present, every column it does not name is *unset*, not
defaulted — so each entry here names every column it needs, and the preflight check
holds these names to the columns the files really have. Entries:

    alpaca.json              alpaca: prompt=instruction, query=input, response=output
                             (LLaMA-Factory joins instruction and input with one newline)
    sharegpt.jsonl           sharegpt: messages=conversations, tags from/value/human/gpt
    messages.jsonl           sharegpt with OpenAI tags: role/content/user/assistant/system
    prompt_completion.jsonl  alpaca: prompt=prompt, response=completion
    data/ (Parquet)          sharegpt over its `messages` column, OpenAI tags

axolotl reads the messages file (or the Parquet folder) with `type: chat_template`,
`field_messages: messages`, `roles_to_train: ["assistant"]`, `train_on_eos: turn` and
`eot_tokens` set to the chat template's turn terminator (`axolotl_rules.turn_terminator`):
axolotl's default end-of-turn token is EOS, which Gemma's template never writes.
"""

from __future__ import annotations

from typing import Any

import yaml

from app.core.handoff.formats import WrittenFile

OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "system_tag": "system"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "system_tag": "system"}
# LLaMA-Factory's column keys, per formatting (`parser.py`)
ALPACA_COLUMN_KEYS = ("prompt", "query", "response", "history", "system", "tools", "images", "chosen", "rejected",
                      "kto_tag")
SHAREGPT_COLUMN_KEYS = ("messages", "system", "tools", "images", "chosen", "rejected", "kto_tag")
REQUIRED_COLUMN_KEYS = ("prompt", "response", "messages")  # read in every row by the converters
ENTRY_KEYS = ("hf_hub_url", "ms_hub_url", "script_url", "file_name", "file_sha1", "subset", "split", "folder",
              "num_samples", "ranking", "formatting", "columns", "tags")


def entry_name(name: str, fmt: str) -> str:
    return f"{name}_{fmt.replace('-', '_')}"


def llamafactory_entry(written: WrittenFile) -> dict[str, Any] | None:
    """The `dataset_info.json` entry of one written file (None for a format LLaMA-Factory cannot read)."""
    has_system = "system" in written.columns
    if written.format == "alpaca":
        columns = {"prompt": "instruction", "query": "input", "response": "output"}
        if has_system:
            columns["system"] = "system"
        return {"file_name": written.name, "formatting": "alpaca", "columns": columns}
    if written.format == "prompt-completion":
        return {"file_name": written.name, "formatting": "alpaca", "columns": {"prompt": "prompt", "response": "completion"}}
    if written.format == "sharegpt":
        columns = {"messages": "conversations"}
        if has_system:
            columns["system"] = "system"
        return {"file_name": written.name, "formatting": "sharegpt", "columns": columns, "tags": dict(SHAREGPT_TAGS)}
    if written.format in ("messages", "parquet"):
        return {"file_name": written.name, "formatting": "sharegpt", "columns": {"messages": "messages"},
                "tags": dict(OPENAI_TAGS)}
    return None


def dataset_info(name: str, files: list[WrittenFile]) -> dict[str, dict[str, Any]]:
    """LLaMA-Factory's `dataset_info.json` for the files of a bundle, one entry per file."""
    out = {}
    for written in files:
        entry = llamafactory_entry(written)
        if entry is not None:
            out[entry_name(name, written.format)] = entry
    return out


def check_dataset_info(info: dict[str, dict[str, Any]], files: list[WrittenFile]) -> list[str]:
    """Problems of `info` against the files: a missing file, a key or a formatting
    LLaMA-Factory does not know (a misspelt `formatting` key reads the file as alpaca), a
    column key it does not read, a column the file does not have (or, for the
    columns every row is read for, does not have in every row). Empty when all is well."""
    by_name = {f.name: f for f in files}
    problems = []
    for key, entry in info.items():
        written = by_name.get(entry.get("file_name", ""))
        if written is None:
            problems.append(f"{key}: file_name {entry.get('file_name')!r} is not a file of the bundle")
            continue
        for unknown in sorted(set(entry) - set(ENTRY_KEYS)):
            problems.append(f"{key}: unknown key {unknown!r} (LLaMA-Factory ignores it)")
        formatting = entry.get("formatting", "alpaca")
        if formatting not in ("alpaca", "sharegpt"):
            problems.append(f"{key}: formatting {formatting!r} is not 'alpaca' or 'sharegpt'")
            continue
        allowed = ALPACA_COLUMN_KEYS if formatting == "alpaca" else SHAREGPT_COLUMN_KEYS
        for column_key, column in (entry.get("columns") or {}).items():
            if column_key not in allowed:
                problems.append(f"{key}: columns.{column_key} is not a {formatting} column key")
            elif column not in written.columns:
                problems.append(f"{key}: columns.{column_key} names {column!r}, which {written.name} does not have")
            elif column_key in REQUIRED_COLUMN_KEYS and column not in written.required_columns:
                problems.append(f"{key}: columns.{column_key} names {column!r}, which some rows of {written.name} lack")
    return problems


def axolotl_config(files: list[WrittenFile], eot_token: str | None = None) -> str | None:
    """An axolotl `datasets:` YAML snippet over the messages file (else the Parquet folder);
    `eot_token` is the target template's turn terminator (unknown: the snippet says to set it)."""
    by_format = {f.format: f for f in files}
    source = by_format.get("messages") or by_format.get("parquet")
    if source is None:
        return None
    dataset: dict[str, Any] = {"path": source.name}
    if source.format == "parquet":
        dataset["ds_type"] = "parquet"
        dataset["data_files"] = [f"{source.name}/{shard}" for shard in source.shards]
    else:
        dataset["ds_type"] = "json"
    dataset.update({
        "split": "train",
        "type": "chat_template",
        "field_messages": "messages",
        "message_property_mappings": {"role": "role", "content": "content"},
        "roles_to_train": ["assistant"],
        "train_on_eos": "turn",
    })
    if eot_token:
        dataset["eot_tokens"] = [eot_token]
        eot_note = (f"# Loss is on the assistant turns only (roles_to_train), each turn's terminator {eot_token} "
                    "included (eot_tokens).\n")
    else:
        eot_note = ("# Loss is on the assistant turns only (roles_to_train). Set `eot_tokens` to your template's "
                    "turn-ending token\n# (e.g. [\"<end_of_turn>\"] for Gemma, [\"<|im_end|>\"] for ChatML), or it is "
                    "not trained.\n")
    header = (
        "# axolotl: paste under your config's top level (paths are relative to this folder).\n"
        "# The tokenizer's chat template renders the turns; for Gemma set `chat_template: gemma`.\n"
        + eot_note
    )
    dumped: str = yaml.safe_dump({"datasets": [dataset]}, sort_keys=False, allow_unicode=True)  # (no stream: a str)
    return header + dumped
