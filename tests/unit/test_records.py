"""The one record reader, string-field check, atomic writer and URL redaction."""

import pytest

from app.core import records
from app.core.records import RecordError
from app.core.urls import redact


def test_items_carry_their_lines_and_json_list_items_their_numbers():
    items = records.json_list_items('[\n {"a": 1},\n\n {"b": 2}, 3\n]')
    assert [(i.line, i.number, i.where) for i in items] == [(2, 1, "line 2, item 1"), (4, 2, "line 4, item 2"),
                                                             (4, 3, "line 4, item 3")]
    jsonl = records.jsonl_items('\ufeff{"a": 1}\r\n\n{"b": "x\u2028y"}\n')
    assert [(i.line, i.value, i.where) for i in jsonl] == [(1, {"a": 1}, "line 1"), (3, {"b": "x\u2028y"}, "line 3")]


def test_jsonl_errors_can_be_collected():
    errors: list[str] = []
    items = records.jsonl_items('{"a": 1}\nnope\n[' + "1" * 101 + "]\n", errors)
    assert [i.line for i in items] == [1]
    assert errors == ["line 2: not valid JSON (Expecting value at column 1)", "line 3: an integer of 101 digits (at most 100)"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" * 100_000 + "]" * 100_000, "line 1: JSON nested deeper than 64 levels"),
        ('{"x": "[[[[",\n "y": ' + "[" * 65 + "]" * 65 + "}", "line 2: JSON nested deeper than 64 levels"),
        ('{"s": "' + "1" * 500 + '",\n "n": -' + "2" * 200 + "}", "line 2: an integer of 200 digits"),
        ("[1,\n2", "line 2: not valid JSON"),
    ],
)
def test_json_limits_name_the_line(text, message):
    with pytest.raises(RecordError) as err:
        records.loads(text)
    assert message in str(err.value)


def test_json_within_the_limits_parses():
    assert records.loads("[" * 64 + "]" * 64) is not None
    assert records.loads('{"n": ' + "9" * 100 + ", \"f\": 1.5e300}") == {"n": int("9" * 100), "f": 1.5e300}


def test_csv_is_read_strictly():
    header, rows = records.csv_rows('\ufeffinstruction, output\n\na,b\n"multi\nline",c\nd\n')
    assert header == ["instruction", "output"]
    assert [(r.line, r.value) for r in rows] == [(3, {"instruction": "a", "output": "b"}),
                                                 (4, {"instruction": "multi\nline", "output": "c"}),
                                                 (6, {"instruction": "d", "output": ""})]
    with pytest.raises(RecordError, match=r"line 3: not valid CSV \(a quoted field is never closed\)"):
        records.csv_rows('instruction\nok\n"open\nmore\n')
    with pytest.raises(RecordError, match="line 2: more values than header columns"):
        records.csv_rows("a,b\n1,2,3\n")


@pytest.mark.parametrize(
    "record, required, message",
    [
        ({}, True, "missing field 'text'"),
        ({"text": 3}, True, "field 'text' must be a string, got int"),
        ({"text": "a\x00b"}, True, "field 'text' contains a NUL character (at character 1)"),
        ({"text": "a\ud800"}, True, "field 'text' is not valid Unicode"),
    ],
)
def test_string_field(record, required, message):
    with pytest.raises(RecordError, match=message.replace("(", r"\(").replace(")", r"\)")):
        records.string_field(record, "text", required)
    assert records.string_field({}, "text", required=False) == ""


def test_write_atomic_replaces_whole_files_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    records.write_atomic(target, "first\n")

    def broken(fh):
        fh.write("half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        records.write_atomic(target, broken)
    assert target.read_text() == "first\n" and [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
    with pytest.raises(FileNotFoundError):
        records.write_atomic(tmp_path / "missing" / "x.json", "{}")
    records.write_atomic(tmp_path / "made" / "x.json", "{}", make_dirs=True)
    assert (tmp_path / "made" / "x.json").read_text() == "{}"


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql+psycopg://sprout:secret@db:5432/sprout", "postgresql+psycopg://sprout:***@db:5432/sprout"),
        ("redis://:secret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("redis://token@cache/0", "redis://***@cache/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("sqlite:////data/a@b/sprout.db", "sqlite:////data/a@b/sprout.db"),
    ],
)
def test_redact(url, shown):
    assert redact(url) == shown
