"""Export formats: what TRL and LLaMA-Factory read as they are."""

import json

import pytest

from app.core import export

ROWS = [
    {"id": 1, "instruction": "Add the numbers.", "input": "2, 3", "output": "5"},
    {"id": 2, "instruction": "Name a color.", "input": "", "output": "Blue", "lineage": [{"instruction": "x", "operation": None, "round": 0}]},
]


def test_alpaca(tmp_path):
    n = export.write(ROWS, "alpaca", tmp_path / "a.json")
    data = json.loads((tmp_path / "a.json").read_text())
    assert n == 2
    assert data[0] == {"instruction": "Add the numbers.", "input": "2, 3", "output": "5"}
    assert data[1]["lineage"][0]["round"] == 0


def test_messages(tmp_path):
    export.write(ROWS, "messages", tmp_path / "m.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert lines[0]["messages"] == [
        {"role": "user", "content": "Add the numbers.\n\n2, 3"},
        {"role": "assistant", "content": "5"},
    ]
    assert lines[1]["messages"][0]["content"] == "Name a color."


def test_prompt_completion(tmp_path):
    export.write(ROWS, "prompt-completion", tmp_path / "p.jsonl")
    first = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
    assert first == {"prompt": "Add the numbers.\n\n2, 3", "completion": "5"}


def test_unknown_format_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        export.write(ROWS, "parquet", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_messages_load_in_datasets_as_conversations(tmp_path):
    """TRL's SFTTrainer reads the messages JSONL through `datasets` as is."""
    from datasets import load_dataset

    export.write(ROWS, "messages", tmp_path / "m.jsonl")
    ds = load_dataset("json", data_files=str(tmp_path / "m.jsonl"), split="train")
    assert ds[0]["messages"][1] == {"role": "assistant", "content": "5"}
