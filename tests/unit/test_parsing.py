"""Parsing model text: numbered lists, yes/no answers, input-first and output-first instances."""

from app.core.methods.parsing import (
    numbered_list,
    parse_input_first,
    parse_instruction_list,
    parse_output_first,
    parse_yes_no,
)


def test_numbered_list_ends_with_the_next_number():
    assert numbered_list(["Do a.", "Do  b\nnow."]) == "1. Do a.\n2. Do b now.\n3."


def test_instruction_list_continuation():
    text = " Write a limerick about a cat.\n10. Explain photosynthesis   simply.\n11 . List three\nprime numbers.\n12."
    assert parse_instruction_list(text, 9) == [
        "Write a limerick about a cat.",
        "Explain photosynthesis simply.",
        "List three prime numbers.",
    ]


def test_instruction_list_empty_continuation():
    assert parse_instruction_list("", 9) == []
    assert parse_instruction_list("   \n", 9) == []


def test_yes_no():
    assert parse_yes_no(" Yes") is True
    assert parse_yes_no("no.") is False
    assert parse_yes_no("YES, it is") is True
    assert parse_yes_no(" Maybe") is None
    assert parse_yes_no("") is None
    assert parse_yes_no("123") is None


def test_input_first_examples():
    text = "Example 1\nInput: 2 + 2\nOutput: 4\nExample 2\nInput: 3 + 5\nOutput: 8\n"
    got = [(i.input, i.output) for i in parse_input_first(text)]
    assert got == [("2 + 2", "4"), ("3 + 5", "8")]


def test_input_first_output_only():
    got = parse_input_first("Output: A calm lake at dawn.")
    assert [(i.input, i.output) for i in got] == [("", "A calm lake at dawn.")]


def test_input_first_second_pair_run_into_output_is_cut():
    got = parse_input_first("Example 1\nInput: a\nOutput: b\nInput: c\nOutput: d")
    assert [(i.input, i.output) for i in got] == [("a", "b")]


def test_input_first_unparseable():
    assert parse_input_first("I do not know.") == []


def test_output_first_labels_and_inputs():
    text = " Positive\nReview: Great food.\nClass label: Negative\nReview: Cold soup.\nClass label: Neutral"
    got = parse_output_first("Class label:" + text)
    assert [(i.output, i.input) for i in got] == [
        ("Positive", "Review: Great food."),
        ("Negative", "Review: Cold soup."),
        ("Neutral", ""),
    ]


def test_output_first_strips_generic_input_prefix():
    got = parse_output_first("Class label: Even\nInput: 42")
    assert [(i.output, i.input) for i in got] == [("Even", "42")]
    assert parse_output_first("no labels here") == []


def test_input_none_means_no_input():
    got = parse_input_first("Example 1\nInput: none\nOutput: A haiku.\nExample 2\nInput: None.\nOutput: Another.")
    assert [(i.input, i.output) for i in got] == [("", "A haiku."), ("", "Another.")]
    got = parse_input_first("Example 1\nInput: nonetheless true\nOutput: yes")
    assert got[0].input == "nonetheless true"
