"""`sprout filter novelty` and `sprout filter dedup` on good and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rouge_score import rouge_scorer
from typer.testing import CliRunner

from app.cli import cli
from app.cli.common import CliError

runner = CliRunner()
SPROUT = Path(sys.executable).with_name("sprout")


def invoke(*args: str):
    return runner.invoke(cli, ["filter", *args])


def error_of(result) -> str:
    assert result.exit_code != 0
    assert isinstance(result.exception, CliError), result.exception
    message = str(result.exception)
    assert "\n" not in message
    return message


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- novelty ---------------------------------------------------------------------------------
def test_novelty_on_jsonl_pool_and_text_candidates(tmp_path, reference_seeds):
    pool = reference_seeds
    candidates = tmp_path / "candidates.txt"
    candidates.write_text(
        "Write a limerick about a cat who loves lasagna.\n"
        "\n"
        "Write a limerick about a cat that loves lasagna.\n"
        "Is there anything I can eat for a breakfast that doesn't include eggs, yet includes protein?\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    result = invoke("novelty", "--pool", str(pool), "--candidates", str(candidates), "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == [line for line in candidates.read_text().splitlines() if line]
    assert [r["accepted"] for r in rows] == [True, False, False]
    # The second is compared with the first, accepted before it.
    assert rows[1]["most_similar"][0]["text"] == rows[0]["text"]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool_texts = [json.loads(line)["instruction"] for line in pool.read_text().splitlines() if line.strip()]
    expected = max(scorer.score(rows[2]["text"], p)["rougeL"].fmeasure for p in pool_texts + [rows[0]["text"]])
    assert rows[2]["max_rouge_l"] == expected > 0.7
    assert len(rows[0]["most_similar"]) == 10
    assert "3 candidates against a pool of 175: 1 accepted, 2 rejected" in result.output


def test_novelty_threshold_and_json_list(tmp_path):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps([{"instruction": "Name three primary colours."}]), encoding="utf-8")
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"instruction": "Name three primary colors please."}])
    out = tmp_path / "o.jsonl"
    strict = invoke("novelty", "--pool", str(pool), "--candidates", str(candidates), "--out", str(out), "--threshold", "0.5")
    assert strict.exit_code == 0, strict.output
    assert json.loads(out.read_text())["accepted"] is False
    loose = invoke("novelty", "--pool", str(pool), "--candidates", str(candidates), "--out", str(out), "--threshold", "0.95")
    assert loose.exit_code == 0 and json.loads(out.read_text())["accepted"] is True


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"instruction": "ok"}\n{"text": "no instruction here"}\n', "line 2: missing field 'instruction'"),
        ("", "the file is empty"),
        ("\n  \n", "the file is empty"),
        ('{"instruction": "ok"}\nthis is not JSON\n', "line 2: not valid JSON"),
        ('{"instruction": 3}\n', "line 1: field 'instruction' must be a string"),
        ('[{"instruction": "ok"}, 7]', "item 2: expected a JSON object or string, got int"),
        ("[1, 2", "line 1: not valid JSON"),
    ],
)
def test_novelty_bad_input(tmp_path, content, expected):
    bad = tmp_path / "bad.jsonl" if content.startswith("{") else tmp_path / "bad.data"
    bad.write_text(content, encoding="utf-8")
    good = tmp_path / "good.txt"
    good.write_text("Write a poem.\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    for pool, candidates in [(bad, good), (good, bad)]:
        message = error_of(invoke("novelty", "--pool", str(pool), "--candidates", str(candidates), "--out", str(out)))
        assert message.startswith(str(bad)) and expected in message
    assert not out.exists()
    assert list(tmp_path.iterdir()) == sorted([bad, good]) or set(tmp_path.iterdir()) == {bad, good}


def test_novelty_missing_file_and_bad_options(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("Write a poem.\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    missing = tmp_path / "nope.jsonl"
    assert error_of(invoke("novelty", "--pool", str(missing), "--candidates", str(good), "--out", str(out))) == f"{missing}: no such file"
    message = error_of(invoke("novelty", "--pool", str(good), "--candidates", str(good), "--out", str(out), "--threshold", "1.5"))
    assert "--threshold" in message
    message = error_of(invoke("novelty", "--pool", str(good), "--candidates", str(good), "--out", str(tmp_path / "no" / "o.jsonl")))
    assert "does not exist" in message
    assert not out.exists()


def test_errors_are_one_line_without_traceback(tmp_path):
    """The installed command, as a user runs it."""
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"instruction": "ok"}, {"prompt": "x"}])
    out = tmp_path / "out.jsonl"
    proc = subprocess.run(
        [str(SPROUT), "filter", "novelty", "--pool", str(bad), "--candidates", str(bad), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {bad} line 2: missing field 'instruction'"
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists()


# --- dedup -----------------------------------------------------------------------------------
def examples() -> list[dict]:
    rows = [
        {"instruction": f"Describe topic number {i} in detail.", "input": "", "output": " ".join(f"fact{i}_{k}" for k in range(60))}
        for i in range(20)
    ]
    rows.append(dict(rows[3]))  # exact copy
    near = dict(rows[7])
    near["output"] = near["output"] + " Finally."  # near copy
    rows.append(near)
    rows.append({"instruction": "Say hello.", "output": "Hello!"})  # no input field
    return rows


def test_dedup_jsonl_with_report(tmp_path):
    src = write_jsonl(tmp_path / "data.jsonl", examples())
    out, report = tmp_path / "kept.jsonl", tmp_path / "report.json"
    result = invoke("dedup", "--input", str(src), "--out", str(out), "--report", str(report))
    assert result.exit_code == 0, result.output
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert kept == examples()[:20] + [examples()[22]]
    rep = json.loads(report.read_text())
    assert (rep["documents"], rep["kept"], rep["removed"], rep["exact_duplicates"]) == (23, 21, 2, 1)
    clusters = {c["kept"]["line"]: c["duplicates"] for c in rep["clusters"]}
    assert clusters[4][0]["line"] == 21 and clusters[4][0]["exact"] is True
    assert clusters[8][0]["line"] == 22 and clusters[8][0]["exact"] is False and clusters[8][0]["jaccard"] >= 0.9


def test_dedup_alpaca_json_list_keeps_the_format(tmp_path):
    src = tmp_path / "alpaca_data.json"
    src.write_text(json.dumps(examples()), encoding="utf-8")
    out = tmp_path / "kept.json"
    result = invoke("dedup", "--input", str(src), "--out", str(out), "--threshold", "0.9")
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == examples()[:20] + [examples()[22]]


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"instruction": "a", "output": "b"}\n{"output": "no instruction"}\n', "line 2: missing field 'instruction'"),
        ("", "the file is empty"),
        ('{"instruction": "a"}\n{"instruction": \n', "line 2: not valid JSON"),
        ("plain text is not accepted here\n", "expected JSONL or a JSON list"),
        ('[{"instruction": "a"}, {"input": "x"}]', "item 2: missing field 'instruction'"),
        ('{"instruction": "a", "output": 7}\n', "line 1: field 'output' must be a string"),
    ],
)
def test_dedup_bad_input(tmp_path, content, expected):
    bad = tmp_path / "bad.data"
    bad.write_text(content, encoding="utf-8")
    out, report = tmp_path / "kept.jsonl", tmp_path / "report.json"
    message = error_of(invoke("dedup", "--input", str(bad), "--out", str(out), "--report", str(report)))
    assert message.startswith(str(bad)) and expected in message
    assert not out.exists() and not report.exists()


def test_dedup_unreachable_redis(tmp_path):
    src = write_jsonl(tmp_path / "data.jsonl", examples())
    out = tmp_path / "kept.jsonl"
    message = error_of(invoke("dedup", "--input", str(src), "--out", str(out), "--redis-url", "redis://127.0.0.1:1/0"))
    assert message.startswith("cannot reach Redis at redis://127.0.0.1:1/0")
    assert not out.exists()


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("deep.jsonl", '{"instruction": "a"}\n{"instruction": "b", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
         "line 2: JSON nested deeper than 64 levels"),
        ("big.json", '[{"instruction": "a"},\n {"instruction": "b", "n": ' + "7" * 5_000 + "}]", "line 2: an integer of 5000 digits"),
        ("nul.jsonl", '{"instruction": "a\\u0000"}\n', "line 1: field 'instruction' contains a NUL character"),
        ("items.json", '[{"instruction": "a"},\n {"instruction": 5}]', "line 2, item 2: field 'instruction' must be a string"),
    ],
)
def test_dedup_refuses_hostile_input_naming_the_line(tmp_path, name, content, expected):
    bad = tmp_path / name
    bad.write_text(content, encoding="utf-8")
    out = tmp_path / "kept.jsonl"
    message = error_of(invoke("dedup", "--input", str(bad), "--out", str(out)))
    assert message.startswith(str(bad)) and expected in message
    assert not out.exists()


def test_a_byte_order_mark_is_not_part_of_the_first_record(tmp_path):
    src = tmp_path / "bom.jsonl"
    src.write_text('\ufeff{"instruction": "Write a poem about rain."}\n', encoding="utf-8")
    out = tmp_path / "kept.jsonl"
    result = invoke("dedup", "--input", str(src), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == {"instruction": "Write a poem about rain."}


# --- decontaminate ---------------------------------------------------------------------------
def test_decontaminate_removes_examples_that_reproduce_benchmark_items(tmp_path, reference_seeds):
    seeds = [json.loads(line) for line in reference_seeds.read_text().splitlines() if line.strip()]
    task = next(s for s in seeds if len(s["instruction"].split()) >= 12)
    inst = task["instances"][0]
    rows = [
        {"instruction": task["instruction"].upper(), "input": inst["input"], "output": "something else"},
        {"instruction": "Write a limerick about a cat who loves lasagna.", "input": "", "output": "A cat..."},
    ]
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    out, report = tmp_path / "clean.jsonl", tmp_path / "report.json"
    result = invoke("decontaminate", "--benchmark", str(reference_seeds), "--input", str(data), "--out", str(out),
                    "--report", str(report))
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows[1:]
    summary = json.loads(report.read_text())
    assert summary["removed"] == 1 and summary["contaminated"][0]["line"] == 1
    hit = summary["contaminated"][0]["contamination"][0]
    assert hit["benchmark"] == reference_seeds.name and hit["field"] == "prompt" and hit["overlap"] > 0.5


def test_decontaminate_named_jsonl_fields_and_bad_input(tmp_path):
    bench = write_jsonl(tmp_path / "bench.jsonl", [{"id": "q1", "question": "one two three four five six seven eight nine ten"}])
    data = write_jsonl(tmp_path / "data.jsonl", [{"instruction": "Three four five six seven eight nine ten eleven twelve."}])
    out = tmp_path / "out.jsonl"
    ok = invoke("decontaminate", "--benchmark", str(bench), "--prompt-field", "question", "--input", str(data),
                "--out", str(out))
    assert ok.exit_code == 0, ok.output
    assert out.read_text() == ""  # one shared 8-gram covers 8 of the item's 10 tokens
    assert "line 1: missing field 'question'" in error_of(invoke(
        "decontaminate", "--benchmark", str(data), "--prompt-field", "question", "--input", str(data), "--out", str(out)))
    assert "--field" in error_of(invoke("decontaminate", "--benchmark", str(bench), "--prompt-field", "question",
                                        "--field", "answer", "--input", str(data), "--out", str(out)))
