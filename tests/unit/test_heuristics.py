"""Every instruction and instance rule of the papers, on hand-written cases."""

import pytest

from app.core.filters.heuristics import INSTANCE_RULES, INSTRUCTION_RULES, filter_instances, instruction_rule
from app.core.methods.candidates import InstanceCandidate
from app.core.params import PAPER_BLACKLIST


def rule(text, **kw):
    return instruction_rule(text, kw.get("min_words", 4), kw.get("max_words", 150), kw.get("blacklist", PAPER_BLACKLIST))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Summarize the article in two sentences.", None),
        ("", "empty"),
        ("Name three red fruits", None),  # 4 words: more than 3
        ("Name three fruits", "too_short"),
        ("Name three fruits.".replace("three ", ""), "too_short"),
        (" ".join(["word"] * 151), "too_long"),
        (" ".join(["word"] * 150), None),
        ("Describe the image below in detail.", "blacklisted_word"),
        ("Plot the data points on a chart.", "blacklisted_word"),
        ("Tell me how to go to the station.", "blacklisted_word"),
        ("Describe imagery in modern poetry.", None),  # whole words only
        ("Write a program that sorts numbers.", "write_a_program"),
        ("write a program to add two numbers", "write_a_program"),
        ("- List some good habits for sleep.", "starts_with_punctuation"),
        ("\"Explain the quote in your own words.", "starts_with_punctuation"),
        ("¿Cómo se dice hello en español?", "starts_with_non_ascii"),
        ("Écrivez une phrase sur la mer.", "starts_with_non_ascii"),
    ],
)
def test_instruction_rules(text, expected):
    assert rule(text) == expected


def test_rule_names_are_documented():
    assert {"too_short", "too_long", "blacklisted_word", "too_similar", "truncated_response"} <= set(INSTRUCTION_RULES)
    assert {"empty_output", "input_equals_output", "ends_with_colon", "duplicate"} <= set(INSTANCE_RULES)


def inst(i, o):
    return InstanceCandidate(i, o)


def test_instance_rules_each():
    xs = [inst("a", "b"), inst("c", ""), inst("same", "same"), inst("Input:", "x"), inst("y", "Answer:"), inst("a", "b"), inst("d", "e")]
    assert filter_instances(xs, truncated=False, max_instances=5) is None
    assert [x.rule for x in xs] == [None, "empty_output", "input_equals_output", "ends_with_colon", "ends_with_colon", "duplicate", None]


def test_truncated_response_drops_last_instance():
    xs = [inst("a", "b"), inst("c", "d (cut")]
    filter_instances(xs, truncated=True, max_instances=5)
    assert [x.rule for x in xs] == [None, "truncated"]


def test_same_input_different_output_rejects_the_task():
    xs = [inst("2+2", "4"), inst("2+2", "5"), inst("1+1", "2")]
    assert filter_instances(xs, truncated=False, max_instances=5) == "conflicting_instances"
    assert all(x.rule for x in xs)


def test_empty_inputs_with_different_outputs_are_fine():
    xs = [inst("", "A poem."), inst("", "Another poem.")]
    assert filter_instances(xs, truncated=False, max_instances=5) is None


def test_at_most_max_instances():
    xs = [inst(str(i), f"out {i}") for i in range(8)]
    assert filter_instances(xs, truncated=False, max_instances=5) is None
    assert sum(x.accepted for x in xs) == 5 and xs[5].rule == "over_limit"


def test_no_valid_instances():
    assert filter_instances([inst("x", "")], truncated=False, max_instances=5) == "no_valid_instances"
    assert filter_instances([], truncated=False, max_instances=5) == "no_valid_instances"
