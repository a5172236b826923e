"""The preflight check names the rows a trainer would train on nothing of, cut, or choke on."""

from __future__ import annotations

import pytest

from app.core.handoff.formats import WrittenFile
from app.core.handoff.preflight import Preflight, PreflightOptions, check_rows
from app.core.methods.prompts import gemma_chat_template
from tests.handoff_fixtures import ROWS, tiny_model_dir, tiny_tokenizer  # noqa: F401

LONG = {"id": 99, "instruction": "Repeat the text.", "input": "", "output": "The quick brown fox jumps. " * 40}


def _problems(report, check):
    return [(p.index, p.id) for p in report.problems if p.check == check]


def test_clean_rows_pass(tiny_tokenizer):
    report = check_rows(ROWS, tiny_tokenizer, PreflightOptions(max_length=256), template="tiny")
    assert report.ok and report.rows == 5 and report.problems == [] and report.mask_mode == "assistant"
    assert 0 < report.longest_tokens <= 256 and report.trained_tokens > 0 and report.truncated == 0
    assert report.summary().startswith("preflight passed: 5 rows")


def test_an_empty_answer_and_an_empty_instruction_are_named(tiny_tokenizer):
    rows = [*ROWS[:2], {**ROWS[2], "output": "  \n"}, {**ROWS[3], "instruction": ""}]
    report = check_rows(rows, tiny_tokenizer, PreflightOptions(max_length=256))
    assert not report.ok
    assert _problems(report, "empty_output") == [(2, 13)] and _problems(report, "empty_instruction") == [(3, 14)]
    assert set(report.failed_checks()) == {"empty_output", "empty_instruction"}
    assert "empty_output (1)" in report.summary()


def test_a_row_cut_by_max_length_is_counted_and_blocks_unless_allowed(tiny_tokenizer):
    rows = [ROWS[0], LONG, ROWS[1]]
    strict = check_rows(rows, tiny_tokenizer, PreflightOptions(max_length=64))
    assert not strict.ok and strict.truncated == 1 and _problems(strict, "max_length") == [(1, 99)]
    assert strict.longest_tokens > 64
    assert "answer tokens would be cut" in strict.problems[0].reason
    allowed = check_rows(rows, tiny_tokenizer, PreflightOptions(max_length=64, allow_truncated=True))
    assert allowed.ok and allowed.truncated == 1 and allowed.problems[0].reason.startswith("warning:")
    assert [c.warnings for c in allowed.checks if c.name == "max_length"] == [1]


def test_a_row_whose_answer_lies_past_max_length_fails_even_when_truncation_is_allowed(tiny_tokenizer):
    long_prompt = {"id": 5, "instruction": "Read this. " * 60, "input": "", "output": "Done."}
    report = check_rows([long_prompt], tiny_tokenizer, PreflightOptions(max_length=32, allow_truncated=True))
    assert not report.ok and "the trainer drops the row" in report.problems[0].reason


def test_an_assistant_mask_that_covers_nothing_is_caught(tiny_tokenizer):
    """A template with generation markers that wrap nothing: the model would train on no token."""
    broken = gemma_chat_template().replace(
        "{% generation %}{{ message['content'] | trim }}<end_of_turn>{% endgeneration %}",
        "{% generation %}{% endgeneration %}{{ message['content'] | trim }}<end_of_turn>")
    assert broken != gemma_chat_template()
    tokenizer = tiny_tokenizer.__class__.from_pretrained(tiny_tokenizer.name_or_path)
    tokenizer.chat_template = broken
    report = check_rows(ROWS, tokenizer, PreflightOptions(max_length=256))
    assert not report.ok and _problems(report, "assistant_mask") == [(i, r["id"]) for i, r in enumerate(ROWS)]


def test_a_template_that_cannot_render_a_row_is_named(tiny_tokenizer):
    tokenizer = tiny_tokenizer.__class__.from_pretrained(tiny_tokenizer.name_or_path)
    tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                               "{{ raise_exception('no system role') }}{% endif %}{{ m['content'] }}{% endfor %}")
    report = check_rows(ROWS, tokenizer, PreflightOptions(max_length=256))
    assert _problems(report, "renders") == [(2, 13)] and "no system role" in report.problems[0].reason


def test_no_rows_and_a_bad_dataset_info_fail(tiny_tokenizer):
    empty = Preflight(tiny_tokenizer).finish()
    assert not empty.ok and empty.failed_checks() == ["rows"]
    preflight = Preflight(tiny_tokenizer)
    preflight.add(ROWS[0])
    files = [WrittenFile("alpaca", "alpaca.json", columns=["instruction", "input", "output"],
                         required_columns=["instruction", "input", "output"])]
    info = {"x": {"file_name": "alpaca.json", "columns": {"prompt": "instruction", "response": "answer"}}}
    report = preflight.finish(files, info)
    assert report.failed_checks() == ["dataset_info"] and report.problems[0].index is None


@pytest.mark.parametrize("listed", [1, 3])
def test_every_failure_is_counted_and_the_listing_is_capped(tiny_tokenizer, listed):
    rows = [{**ROWS[0], "id": i, "output": ""} for i in range(5)]
    report = check_rows(rows, tiny_tokenizer, PreflightOptions(max_listed=listed))
    assert [c.failures for c in report.checks if c.name == "empty_output"] == [5]
    assert len(report.problems) == listed
