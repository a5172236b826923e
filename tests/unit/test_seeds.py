"""Seed import: the reference file as it is, Alpaca JSON, CSV, and errors that name the line."""

import json

import pytest

from app.core.seeds import SeedFormatError, load_seed_file, parse_seeds


def test_reference_self_instruct_file_imports_as_is(reference_seeds):
    fmt, tasks = load_seed_file(reference_seeds)
    assert fmt == "self-instruct"
    assert len(tasks) == 175
    assert sum(t.is_classification for t in tasks) == 26
    assert all(len(t.instances) == 1 for t in tasks)
    assert tasks[0].name == "breakfast_suggestion"


def test_default_seed_set_is_large_and_valid():
    from tests.conftest import DEFAULT_SEEDS

    fmt, tasks = load_seed_file(DEFAULT_SEEDS)
    assert fmt == "self-instruct" and len(tasks) >= 40
    assert len({t.instruction for t in tasks}) == len(tasks)
    assert any(t.is_classification for t in tasks)


def test_alpaca_json_list(tmp_path):
    data = [
        {"instruction": "Add the numbers.", "input": "2, 3", "output": "5"},
        {"instruction": "Name a color.", "input": "<noinput>", "output": "Blue"},
    ]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(data, indent=2))
    fmt, tasks = load_seed_file(path)
    assert fmt == "alpaca"
    assert tasks[0].instances == [{"input": "2, 3", "output": "5"}]
    assert tasks[1].instances == [{"input": "", "output": "Blue"}]


def test_csv(tmp_path):
    path = tmp_path / "seeds.csv"
    path.write_text('instruction,input,output,is_classification\n"Say hi, politely.",,Hello!,false\nIs it odd?,3,Yes,true\n')
    fmt, tasks = load_seed_file(path)
    assert fmt == "csv"
    assert [t.instruction for t in tasks] == ["Say hi, politely.", "Is it odd?"]
    assert tasks[1].is_classification and tasks[1].instances == [{"input": "3", "output": "Yes"}]


@pytest.mark.parametrize(
    "text, fmt, message",
    [
        ('{"instruction": "a b c d"}\n{"instruction": 5}\n', "self-instruct", "line 2: field 'instruction' must be a string"),
        ('{"instruction": "ok task here"}\nnot json\n', "self-instruct", "line 2: not valid JSON"),
        ('{"name": "x"}\n', "self-instruct", "line 1: missing field 'instruction'"),
        ('{"instruction": "x y", "instances": [{"input": "a"}]}\n', "self-instruct", "line 1, instances[0]: missing field 'output'"),
        ('{"instruction": "x y", "is_classification": "yes"}\n', "self-instruct", "line 1: field 'is_classification' must be true or false"),
        ('[\n  {"instruction": "x", "output": "y"},\n  {"input": "z", "output": "w"}\n]', "alpaca", "line 3, item 2: missing field 'instruction'"),
        ('[{"instruction": "x",\n "output": ]', "alpaca", "line 2: not valid JSON"),
        ('{"a": 1}', "alpaca", "expected a JSON list"),
        ("prompt,output\nx,y\n", "csv", "line 1: the CSV header must name an 'instruction' column"),
        ("instruction,output\nx,y\n,z\n", "csv", "line 3: field 'instruction' is empty"),
        ("instruction,is_classification\nx,maybe\n", "csv", "line 2: field 'is_classification' must be true or false"),
        ("", "self-instruct", "no seed tasks"),
    ],
)
def test_malformed_files_name_the_line_and_field(text, fmt, message):
    with pytest.raises(SeedFormatError) as err:
        parse_seeds(text, fmt=fmt)
    assert message in str(err.value)


@pytest.mark.parametrize("fmt", ["self-instruct", "alpaca", "csv"])
def test_every_bad_line_is_named_in_line_order_up_to_the_cap(fmt):
    good, empty = "Name a river in Europe.", ""
    texts = [good, empty, good, empty] + [empty] * 30  # bad: the 2nd, 4th and 30 more
    if fmt == "self-instruct":
        text = "".join(json.dumps({"instruction": t}) + "\n" for t in texts[:2]) + "not json\n" + \
            "".join(json.dumps({"instruction": t}) + "\n" for t in texts[3:])
        first = ["line 2: field 'instruction' is empty", "line 3: not valid JSON", "line 4: field 'instruction' is empty"]
    elif fmt == "alpaca":
        text = "[\n" + ",\n".join(json.dumps({"instruction": t, "output": "x"}) for t in texts) + "\n]"
        first = ["line 3, item 2: field 'instruction' is empty", "line 5, item 4: field 'instruction' is empty"]
    else:
        text = "instruction,output\n" + "".join(f"{t},x\n" for t in texts)
        first = ["line 3: field 'instruction' is empty", "line 5: field 'instruction' is empty"]
    with pytest.raises(SeedFormatError) as err:
        parse_seeds(text, fmt=fmt)
    problems = err.value.problems
    assert len(problems) == 20 and err.value.total == (33 if fmt == "self-instruct" else 32)
    assert [p[:len(f)] for p, f in zip(problems, first)] == first
    assert str(err.value).startswith(first[0]) and f"(and {err.value.total - 1} more bad lines)" in str(err.value)


def test_one_bad_line_reads_as_before():
    with pytest.raises(SeedFormatError) as err:
        parse_seeds('{"instruction": "Name a river."}\n{"instruction": ""}\n', fmt="self-instruct")
    assert str(err.value) == "line 2: field 'instruction' is empty" and err.value.total == 1


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(SeedFormatError, match="no such file"):
        load_seed_file(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"instruction": "\xff\xfe"}\n')
    with pytest.raises(SeedFormatError, match="not UTF-8"):
        load_seed_file(bad)


DEEP = "[" * 100_000 + "]" * 100_000
BIG = "1" * 5_000


@pytest.mark.parametrize(
    "text, fmt, message",
    [
        # JSON nested 100,000 deep: a line-named error, not a RecursionError
        ('{"instruction": "a b c"}\n{"instruction": "x", "extra": ' + DEEP + "}\n", "self-instruct",
         "line 2: JSON nested deeper than 64 levels"),
        ('[\n{"instruction": "a", "output": "b"},\n' + DEEP + "\n]", "alpaca", "line 3: JSON nested deeper than 64 levels"),
        # a 5,000-digit integer: Python refuses to convert it (ValueError)
        ('{"id": ' + BIG + ', "instruction": "a b c"}\n', "self-instruct", "line 1: an integer of 5000 digits"),
        ('{"instruction": "a b c"}\n{"instruction": "x y", "is_classification": ' + BIG + "}\n", "self-instruct",
         "line 2: an integer of 5000 digits"),
        ('[{"instruction": "a", "output": "b"},\n {"instruction": "c", "output": "d", "id": -' + BIG + "}]", "alpaca",
         "line 2: an integer of 5000 digits"),
        # a quote left open swallowed the rest of the file into one task
        ('instruction,output\n"Say hi,x\nsecond,y\nthird,z\n', "csv", "line 2: not valid CSV (a quoted field is never closed)"),
        ('instruction,output\nok,x\n"a"b,y\n', "csv", "line 3: not valid CSV"),
        # a NUL character (escaped in JSON) was refused only by the database, without its line
        ('{"instruction": "a b c"}\n{"instruction": "x\\u0000y"}\n', "self-instruct",
         "line 2: field 'instruction' contains a NUL character"),
        ('{"instruction": "a b c", "instances": [{"input": "", "output": "\\u0000"}]}\n', "self-instruct",
         "line 1, instances[0]: field 'output' contains a NUL character"),
        ('{"instruction": "a \\ud800 b"}\n', "self-instruct", "line 1: field 'instruction' is not valid Unicode"),
        # a seed instruction of a million words
        (json.dumps({"instruction": "word " * 1_000_000}) + "\n", "self-instruct",
         "line 1: field 'instruction' has 5,000,000 characters; at most 100,000"),
        (json.dumps({"instruction": "word " * 1_001}) + "\n", "self-instruct",
         "line 1: field 'instruction' has 1,001 words; a seed instruction has at most 1,000"),
        ("instruction,output\n" + "w " * 1_001 + ",x\n", "csv", "line 2: field 'instruction' has 1,001 words"),
        # duplicate ids name both lines
        ('{"id": "t1", "instruction": "a b c"}\n{"id": "t2", "instruction": "d e f"}\n\n{"id": "t1", "instruction": "g h"}\n',
         "self-instruct", "line 4: duplicate id 't1' (also on line 1)"),
        ('[{"id": 7, "instruction": "a", "output": "b"},\n {"id": 7, "instruction": "c", "output": "d"}]', "alpaca",
         "line 2, item 2: duplicate id 7 (also on line 1, item 1)"),
        ("id,instruction,output\nx,a,b\ny,c,d\nx,e,f\n", "csv", "line 4: duplicate id 'x' (also on line 2)"),
    ],
)
def test_hostile_and_inconsistent_files_are_refused_naming_the_line(text, fmt, message):
    with pytest.raises(SeedFormatError) as err:
        parse_seeds(text, fmt=fmt)
    assert message in str(err.value)


def test_byte_order_mark_and_unicode_line_separators(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text('\ufeff{"instruction": "Split\u2028here."}\n{"instruction": "Second one."}\n', encoding="utf-8")
    fmt, tasks = load_seed_file(path)
    assert fmt == "self-instruct" and [t.instruction for t in tasks] == ["Split\u2028here.", "Second one."]
    fmt, tasks = parse_seeds("\ufeffinstruction,output\nSay hi.,Hi\n", fmt="csv")
    assert tasks[0].instruction == "Say hi." and tasks[0].instances == [{"input": "", "output": "Hi"}]
