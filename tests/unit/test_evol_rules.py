"""Evol-Instruct's elimination rules and the judge's answer parser, on hand-written cases."""

import pytest
from pydantic import ValidationError

from app.core.methods.evol_rules import (
    ELIMINATION_RULES,
    EVOL_RULES,
    STOP_WORDS,
    copies_scaffolding,
    no_information_gain,
    parse_judge,
    same_text,
    sorry_response,
    stopwords_only,
)
from app.core.params import EvolInstructParams


# --- rule 1: no information gain ---------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ("Equal", True),
        (" Equal", True),
        ("equal.", True),
        ("EQUAL!", True),
        ("Not Equal", False),
        (" not equal", False),
        ("Not  Equal.", False),
        ("Not Equal\nFirst: something else", False),  # only the first line is the answer
    ],
)
def test_judge_answers_that_parse(answer, verdict):
    assert parse_judge(answer) is verdict


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "   \n",
        "Yes",
        "No",
        "Unequal",
        "NotEqual",
        "Equal Equal",
        "Equal, because both ask the same",
        "Not",
        "The two are Equal",
        "Equal?",
        "Not Equal..",
        "Not Equal Not",
    ],
)
def test_malformed_judge_answers_are_unparseable(answer):
    assert parse_judge(answer) is None


def test_judge_answer_may_end_with_one_full_stop_then_a_newline():
    assert parse_judge("Equal.\n") is True


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Explain why the sky is blue.", "Explain why the sky is blue.", True),
        ("Explain why the sky is blue.", "  explain why the  SKY is blue", True),
        ("Explain why the sky is blue.", "Explain why the sky is blue at noon.", False),
        ("Convert 26.2 miles\nto km", "Convert 26.2 miles to km.", True),
        # punctuation anywhere, quotes and markdown around it, curly apostrophes
        ("Explain, step by step, why the sky is blue.", "Explain step by step why the sky is blue", True),
        ("Explain why the sky is blue.", '**"Explain why the sky is blue"**', True),
        ("Don't explain why the sky is blue.", "Don\u2019t explain why the sky is blue!", True),
        ("Explain why the sky is blue.", "Explain why the sea is blue.", False),
    ],
)
def test_an_unchanged_copy_is_the_same_text(a, b, same):
    assert same_text(a, b) is same


PARENT = "Write a short story about a lighthouse keeper who finds a message in a bottle on the beach one morning."


@pytest.mark.parametrize(
    ("rewrite", "ancestors", "reason"),
    [
        (PARENT, (), "identical"),  # the accepted-again copy of issue 9 (row #3 as row #12)
        (PARENT.upper().replace(",", ""), (), "identical"),
        ("Explain why the sky is blue!", ("Explain why the sky is blue.",), "identical"),  # back to an ancestor
        (PARENT.replace("short", "brief"), (), "close_to_parent"),  # one word of 20 changed
        (PARENT.replace(" short", ""), (), "close_to_parent"),  # one word dropped
        (PARENT[:-1] + ", and explain in three steps how the keeper decides whether to answer it.", (), None),
        ("Write a poem about a lighthouse keeper.", (), None),
    ],
)
def test_rule_1_catches_unchanged_and_trivially_changed_rewrites_without_the_judge(rewrite, ancestors, reason):
    assert no_information_gain(rewrite, PARENT, ancestors, max_parent_rouge_l=0.95) == reason


def test_the_parent_rouge_l_bound_is_a_parameter():
    rewrite = PARENT.replace("short", "brief")
    assert no_information_gain(rewrite, PARENT, max_parent_rouge_l=1.0) is None
    assert EvolInstructParams().max_parent_rouge_l == 0.95
    with pytest.raises(ValidationError):
        EvolInstructParams(max_parent_rouge_l=0)


# --- rule 2: sorry ---------------------------------------------------------------------------
def test_sorry_in_a_short_response_fails():
    assert sorry_response("I'm sorry, but I cannot answer that.")
    assert sorry_response("SORRY. No idea.")
    assert sorry_response("Sorrybut that is not possible.")  # "contains", as the paper says


def test_sorry_in_a_long_response_passes():
    long = "I am sorry to hear about your trip. " + " ".join(["word"] * 80)
    assert len(long.split()) >= 80
    assert not sorry_response(long)


def test_the_word_limit_is_strict_and_configurable():
    seventy_nine = "sorry " + " ".join(["x"] * 78)
    eighty = "sorry " + " ".join(["x"] * 79)
    assert sorry_response(seventy_nine) and not sorry_response(eighty)
    assert not sorry_response(seventy_nine, max_words=10)


def test_a_response_without_sorry_passes():
    assert not sorry_response("Paris is the capital of France.")


# --- rule 3: only punctuation and stop words ------------------------------------------------
@pytest.mark.parametrize(
    "response",
    ["", "   ", "...", "!?;:-- ", "The.", "it is what it is", "And so, then... it was!", "Don't.", "You’re not"],
)
def test_stop_words_and_punctuation_only_fail(response):
    assert stopwords_only(response)


@pytest.mark.parametrize(
    "response", ["Paris.", "It is 42.", "The answer: yes", "the the the cat", "1. Boots 2. Socks", "Où?"]
)
def test_a_content_word_or_number_passes(response):
    assert not stopwords_only(response)


def test_the_stop_word_list_is_nltks_english_list():
    assert len(STOP_WORDS) == 179
    assert {"the", "a", "and", "wouldn't", "ourselves"} <= STOP_WORDS
    assert "yes" not in STOP_WORDS and "sorry" not in STOP_WORDS


# --- rule 4: prompt scaffolding -----------------------------------------------------------
@pytest.mark.parametrize(
    "instruction",
    [
        "#Rewritten Prompt#: Write a poem about the sea in four stanzas.",
        "Here is the rewritten prompt: write a poem.",
        "Rewrite the given prompt so it is harder.",
        "#Given_Prompt# Write a poem.",
        "#Created Prompt#: Describe a unicycle.",
        "Write a poem. #Response#: The sea is blue.",
        "#Instruction#: Name three birds.",
        "Given-Prompt: name three birds",
    ],
)
def test_scaffolding_fails(instruction):
    assert copies_scaffolding(instruction)


@pytest.mark.parametrize(
    "instruction",
    [
        "Write a poem about the sea in exactly four rhyming stanzas.",
        "Given a list of prompts for a chatbot, rank them by clarity.",  # "given" alone is fine
        "Explain what a prompt is in a command-line shell.",
        "Write an instruction manual for a toaster.",
    ],
)
def test_ordinary_instructions_pass(instruction):
    assert not copies_scaffolding(instruction)


def test_every_elimination_rule_is_a_named_rule():
    assert set(ELIMINATION_RULES) == {
        "no_information_gain", "sorry_response", "stopwords_only_response", "copied_scaffolding",
    }
    assert set(ELIMINATION_RULES) <= set(EVOL_RULES)


def test_response_rule_checks_truncation_then_stop_words_then_sorry():
    from app.core.methods.evol_rules import response_rule

    assert response_rule("Paris is the capital of France.", "length") == "truncated_response"
    assert response_rule("the of and", "stop") == "stopwords_only_response"
    assert response_rule("Sorry, I cannot help.", "stop") == "sorry_response"
    assert response_rule("Sorry, I cannot help.", "stop", sorry_max_words=2) is None
    assert response_rule("Paris is the capital of France.", "stop") is None
