"""Reading training exports: each format, per-row detection, line-numbered errors, the split."""

from __future__ import annotations

import json

import pytest

from app.core.training.data import (
    load_conversations,
    read_export,
    rows_to_conversations,
    split_held_out,
    user_prompt,
)
from app.core.training.errors import TrainDataError


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(path, rows):
    return _write(path, "\n".join(json.dumps(r) for r in rows) + "\n")


def test_alpaca_json_list_with_extra_keys(tmp_path):
    rows = [
        {"instruction": "Add the numbers.", "input": "2 + 3", "output": "5", "lineage": {"parent": 7}},
        {"instruction": "Say hi.", "input": "", "output": "Hi!"},
        {"instruction": "Say hi.", "input": "<noinput>", "output": "Hi!", "system": "Be brief."},
    ]
    fmt, convs = read_export(_write(tmp_path / "alpaca.json", json.dumps(rows, indent=2)))
    assert fmt == "alpaca"
    assert convs[0] == [
        {"role": "user", "content": "Add the numbers.\n\n2 + 3"},
        {"role": "assistant", "content": "5"},
    ]
    assert convs[1] == [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}]
    assert convs[2][0] == {"role": "system", "content": "Be brief."}
    assert convs[2][1] == {"role": "user", "content": "Say hi."}


def test_messages_jsonl(tmp_path):
    conv = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Bye."},
    ]
    fmt, convs = read_export(_jsonl(tmp_path / "m.jsonl", [{"messages": conv}]))
    assert fmt == "messages"
    assert convs == [conv]


def test_prompt_completion_jsonl_strings_and_message_lists(tmp_path):
    rows = [
        {"prompt": "Name a color.", "completion": "Blue."},
        {
            "prompt": [{"role": "user", "content": "Name a fruit."}],
            "completion": [{"role": "assistant", "content": "Pear."}],
        },
    ]
    fmt, convs = read_export(_jsonl(tmp_path / "pc.jsonl", rows))
    assert fmt == "prompt-completion"
    assert convs[0] == [{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": "Blue."}]
    assert convs[1] == [{"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "Pear."}]


def test_alpaca_rows_in_jsonl_and_blank_lines(tmp_path):
    text = json.dumps({"instruction": "A b c.", "input": "", "output": "d"}) + "\n\n"
    fmt, convs = read_export(_write(tmp_path / "a.jsonl", text))
    assert fmt == "alpaca" and len(convs) == 1


def test_rows_in_memory_like_a_job_hands_them_over():
    rows = [
        {"instruction": "Add.", "input": "1 + 1", "output": "2"},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
    ]
    convs = load_conversations(rows)
    assert convs[0][0]["content"] == "Add.\n\n1 + 1"
    assert len(convs) == 2


def test_user_prompt_joins_instruction_and_input():
    assert user_prompt("Do it.", "") == "Do it."
    assert user_prompt("Do it.", "x") == "Do it.\n\nx"
    assert user_prompt("Do it.", "  ") == "Do it."
    assert user_prompt("Do it.", "<noinput>") == "Do it."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": \n', "line 2: not valid JSON"),
        ('{"prompt": "a", "completion": "b"}\n{"instruction": "x"}\n', "line 2: not a training row"),
        ('{"instruction": "x", "output": 3}\n', "line 1: field 'output' must be a string"),
        ('{"instruction": "", "output": "y"}\n', "line 1: field 'instruction' is empty"),
        ('{"instruction": "x", "output": "  "}\n', "line 1: the assistant's answer is empty"),
        ('{"messages": [{"role": "user", "content": "q"}]}\n', "line 1: the last message must be the assistant's"),
        ('{"messages": [{"role": "bot", "content": "q"}]}\n', "line 1: messages[0]: role must be one of"),
        ('{"messages": [{"role": "assistant", "content": "a"}]}\n', "line 1: no user message"),
        ('{"messages": "hi"}\n', "line 1: field 'messages' must be a list"),
        ('{"prompt": "a", "completion": ["b"]}\n', "line 1: fields 'prompt' and 'completion' must both be"),
        ("[1, 2]\n", "line 1, item 1: expected a JSON object"),
        ("\n\n", "holds no training rows"),
    ],
)
def test_bad_files_name_the_line(tmp_path, text, expected):
    path = _write(tmp_path / "bad.jsonl", text)
    with pytest.raises(TrainDataError) as err:
        read_export(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_json_list_errors_give_the_line_of_the_item(tmp_path):
    text = '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c"},\n  {"instruction": "d", "output": 1}\n]'
    with pytest.raises(TrainDataError) as err:
        read_export(_write(tmp_path / "bad.json", text))
    message = str(err.value)
    assert "2 bad rows" in message
    assert "line 3, item 2: not a training row" in message
    assert "line 4, item 3: field 'output' must be a string" in message


def test_json_syntax_error_gives_the_line(tmp_path):
    with pytest.raises(TrainDataError, match=r"line 3: not valid JSON"):
        read_export(_write(tmp_path / "bad.json", '[\n{"instruction": "a", "output": "b"},\n{"instruction": }\n]'))


def test_many_bad_rows_are_summarised(tmp_path):
    path = _write(tmp_path / "bad.jsonl", '{"x": 1}\n' * 9)
    with pytest.raises(TrainDataError, match=r"9 bad rows: line 1: .*line 5: .*\(and 4 more\)"):
        read_export(path)


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(TrainDataError, match="no such file"):
        read_export(tmp_path / "nope.jsonl")
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"prompt": "caf\xe9", "completion": "x"}'.encode("latin-1"))
    with pytest.raises(TrainDataError, match="not UTF-8"):
        read_export(path)


def test_bad_rows_in_memory_name_the_row():
    with pytest.raises(TrainDataError, match=r"^rows: 1 bad row: row 1: not a training row"):
        rows_to_conversations([{"prompt": "a", "completion": "b"}, {"output": "x"}])
    with pytest.raises(TrainDataError, match="no training rows"):
        rows_to_conversations([])


def _convs(n: int):
    return [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}] for i in range(n)]


def test_split_is_deterministic_order_independent_and_sized():
    convs = _convs(50)
    train, held = split_held_out(convs, 0.1, seed=1)
    assert len(held) == 5 and len(train) == 45
    assert not {json.dumps(c) for c in held} & {json.dumps(c) for c in train}
    train2, held2 = split_held_out(list(reversed(convs)), 0.1, seed=1)
    assert sorted(map(json.dumps, held2)) == sorted(map(json.dumps, held))
    _, held3 = split_held_out(convs, 0.1, seed=2)
    assert sorted(map(json.dumps, held3)) != sorted(map(json.dumps, held))


def test_split_keeps_duplicates_on_one_side():
    convs = _convs(40)
    train, held = split_held_out(convs + convs[:5], 0.25, seed=0)
    assert not {json.dumps(c) for c in held} & {json.dumps(c) for c in train}


def test_split_edge_cases():
    assert split_held_out(_convs(1), 0.5, seed=0) == (_convs(1), [])
    assert split_held_out(_convs(3), 0.0, seed=0) == (_convs(3), [])
    train, held = split_held_out(_convs(3), 0.01, seed=0)
    assert len(held) == 1 and len(train) == 2
    train, held = split_held_out(_convs(2), 0.99, seed=0)
    assert len(held) == 1 and len(train) == 1


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("deep.jsonl", '{"instruction": "a", "output": "b", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
         "line 1: JSON nested deeper than 64 levels"),
        ("big.json", '[\n{"instruction": "a", "output": "b"},\n{"instruction": "a", "output": "b", "n": ' + "9" * 5_000 + "}\n]",
         "line 3: an integer of 5000 digits"),
        ("nul.jsonl", '{"instruction": "a", "output": "b\\u0000"}\n', "line 1: field 'output' contains a NUL character"),
        ("bom.jsonl", '\ufeff{"instruction": "a", "output": "b"}\n{"instruction": 1, "output": "b"}\n',
         "line 2: field 'instruction' must be a string"),
    ],
)
def test_hostile_files_are_refused_naming_the_line(tmp_path, name, text, expected):
    with pytest.raises(TrainDataError) as err:
        read_export(_write(tmp_path / name, text))
    assert expected in str(err.value)
