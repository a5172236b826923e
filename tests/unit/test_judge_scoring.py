"""The judge's answer read strictly, and its expected score from log-probabilities.

Real answers come from `tests/fixtures/judge_answers.json` (the embedded model's answers to
the judge prompts, with their log-probabilities); garbled ones are written here. The judge
itself is run against a fault-injecting server only for what a real model does not do on
request: a garbled answer, a server that ignores `logprobs` or refuses the field.
"""

import asyncio
import json
import math
from pathlib import Path

import pytest

from app.core.config import LLMConfig
from app.core.llm.client import LLMClient, merge_logprobs
from app.core.methods import prompts
from app.core.scoring import Judge, expected_score, parse_score
from app.core.scoring.judge import prompt_for
from tests.fault_server import FaultyLLMServer, completion_body

FIXTURE = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "judge_answers.json").read_text())
ANSWERS = FIXTURE["answers"]


@pytest.mark.parametrize("text, score", [
    ("4", 4), (" 4", 4), ("4/6", 4), ("4 / 6", 4), ("4\nInstruction: more text", 4), ("Score: 4", 4),
    ("score:4", 4), ("4.", 4), ("\n4", 4), (" 1\n\nInstruction", 1), ("6", 6), ("4\r\n", 4),
])
def test_plain_answers_parse(text, score):
    assert parse_score(text) == score


@pytest.mark.parametrize("text", [
    "four", "7", "0", "4.5", "45", "4 or 5", "between 3 and 4", "", None, "Score:", "-4", "4/10", "4/5",
    "4 points", "3-4", "I would say 4", "Score: 4.5", "10/", "**4**", "4,5",
])
def test_garbled_answers_are_refused(text):
    assert parse_score(text) is None


def test_real_completions_answers_parse_to_their_digit():
    """Every answer of the embedded model through the completions API is one digit and
    then the next demonstration; read as that digit."""
    completions = [a for a in ANSWERS if a["api"] == "completions"]
    assert completions
    for answer in completions:
        digit = answer["text"].strip()[0]
        assert parse_score(answer["text"]) == int(digit), answer["text"]


def test_real_chat_answers_parse_or_are_refused():
    """Through the chat API the same model sometimes answers "Score: N" and sometimes
    repeats the prompt's first words: the first parse, the second are unparseable."""
    chat = [a["text"] for a in ANSWERS if a["api"] == "chat"]
    labelled = [t for t in chat if t.startswith("Score:")]
    echoed = [t for t in chat if t.startswith("Rate")]
    assert labelled and echoed and len(labelled) + len(echoed) == len(chat)
    assert all(parse_score(t) == int(t.split(":")[1]) for t in labelled)
    assert all(parse_score(t) is None for t in echoed)


def test_real_off_scale_answers_are_refused():
    """Without the demonstrations the model answers "100", "10 points"; with them, once in
    fifteen, "0": never a guess."""
    refused = FIXTURE["no_demonstrations"] + FIXTURE["refused_with_demonstrations"]
    assert len(refused) == 5
    assert all(parse_score(t) is None for t in refused)


# --- the expected score --------------------------------------------------------------------

def content_shape(tokens):
    """[(token, {top token: probability})] in the chat / llama.cpp shape."""
    return {"content": [{"token": tok, "logprob": math.log(tops.get(tok, 1e-9)),
                         "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in tops.items()]}
                        for tok, tops in tokens]}


def legacy_shape(tokens):
    """The same in the legacy completions shape (OpenAI, vLLM): parallel lists."""
    return {"tokens": [tok for tok, _ in tokens],
            "token_logprobs": [math.log(tops.get(tok, 1e-9)) for tok, tops in tokens],
            "top_logprobs": [{t: math.log(p) for t, p in tops.items()} for _, tops in tokens],
            "text_offset": list(range(len(tokens)))}


@pytest.mark.parametrize("shape", [content_shape, legacy_shape])
def test_expected_score_renormalises_over_the_score_tokens_at_the_digit(shape):
    tokens = [(" ", {" ": 0.9, "2": 0.05, "\n": 0.05}),  # before the digit: not the score's position
              ("3", {"3": 0.5, "4": 0.25, "x": 0.15, "7": 0.1}),  # "x" and "7" are not score tokens
              ("\n", {"\n": 1.0})]
    assert expected_score(shape(tokens)) == pytest.approx(3 * 2 / 3 + 4 * 1 / 3)


@pytest.mark.parametrize("shape", [content_shape, legacy_shape])
def test_expected_score_joins_a_digit_with_its_blank(shape):
    """A tokenizer with " 4" and "4" as two tokens: one score, probabilities added."""
    tokens = [(" 4", {" 4": 0.4, "4": 0.2, " 2": 0.2, "foo": 0.2})]
    assert expected_score(shape(tokens)) == pytest.approx((4 * 0.6 + 2 * 0.2) / 0.8)


@pytest.mark.parametrize("shape", [content_shape, legacy_shape])
def test_no_score_position_or_no_score_token_gives_none(shape):
    assert expected_score(shape([(" ", {" ": 1.0}), ("x", {"x": 0.9, "y": 0.1})])) is None
    assert expected_score(shape([("7", {"7": 0.9, "8": 0.1})])) is None  # 7 is off the scale


def test_expected_score_without_logprobs_is_none():
    assert expected_score(None) is None
    assert expected_score({}) is None
    assert expected_score({"content": None}) is None


def test_real_logprobs_give_a_score_between_the_score_tokens_present():
    for answer in (a for a in ANSWERS if parse_score(a["text"]) is not None):
        entries = answer["logprobs"]["content"]
        digit = next(e for e in entries if e["token"].strip() in {"1", "2", "3", "4", "5", "6"})
        present = [int(t["token"].strip()) for t in digit["top_logprobs"] if t["token"].strip() in "123456"
                   and t["token"].strip()]
        score = expected_score(answer["logprobs"])
        assert min(present) <= score <= max(present)
        # the first position (a blank) also lists digits: they are not what the judge answered with
        first = entries[0]
        if first["token"].strip() == "":
            assert digit is not first


def test_streamed_logprobs_are_joined_in_order():
    parts = [{"content": [{"token": " ", "logprob": -0.1, "top_logprobs": []}]},
             {"content": [{"token": "4", "logprob": -0.5, "top_logprobs": [{"token": "4", "logprob": -0.5}]}]},
             None]
    joined = None
    for part in parts:
        joined = merge_logprobs(joined, part)
    assert [e["token"] for e in joined["content"]] == [" ", "4"]
    legacy = merge_logprobs(merge_logprobs(None, {"tokens": [" "], "token_logprobs": [-0.1], "top_logprobs": [{}]}),
                            {"tokens": ["4"], "token_logprobs": [-0.5], "top_logprobs": [{"4": -0.5}]})
    assert legacy == {"tokens": [" ", "4"], "token_logprobs": [-0.1, -0.5], "top_logprobs": [{}, {"4": -0.5}]}


# --- prompts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["judge_quality", "judge_complexity"])
def test_prompts_end_where_the_digit_comes_and_share_their_fixed_part(name):
    a = prompt_for(name.split("_")[1], "Name a colour.", "", "Blue.")
    b = prompt_for(name.split("_")[1], "Sort the numbers.", "3, 1, 2", "1, 2, 3")
    assert a.endswith("\nScore:") and b.endswith("\nScore:")
    fixed = prompts.fixed_prefix(name)
    assert a.startswith(fixed) and b.startswith(fixed) and "{{" not in fixed
    assert "1 to 6" in fixed


def test_complexity_sees_the_instruction_and_input_only():
    prompt = prompt_for("complexity", "Sort the numbers.", "3, 1, 2", "THE-OUTPUT")
    assert prompt.endswith("Instruction: Sort the numbers.\nInput: 3, 1, 2\nScore:")
    assert "THE-OUTPUT" not in prompt
    quality = prompt_for("quality", "Sort the numbers.", "", "THE-OUTPUT")
    assert quality.endswith("Instruction: Sort the numbers.\nResponse: THE-OUTPUT\nScore:")


# --- the judge against injected faults ---------------------------------------------------------

def judge_run(srv, rows, **kw):
    async def go():
        async with LLMClient(LLMConfig(base_urls=[srv.url], model="judge-m", backoff_s=0.01, max_retries=1, outage_budget_s=0, dialect="completions")) as client:
            return await Judge(client, **kw).score_many(rows)
    return asyncio.run(go())


def test_a_garbled_answer_is_stored_as_such_never_guessed():
    with FaultyLLMServer(default=(200, completion_body("between 3 and 4, I think"))) as srv:
        [scores] = judge_run(srv, [{"instruction": "Name a colour.", "input": "", "output": "Blue."}])
    for aspect in ("quality", "complexity"):
        s = scores[aspect]
        assert (s.status, s.score, s.parsed, s.from_logprobs) == ("unparseable", None, None, False)
        assert s.raw == "between 3 and 4, I think" and s.judge == "judge-m" and s.aspect == aspect


def test_a_server_that_ignores_logprobs_gives_the_parsed_digit():
    with FaultyLLMServer(default=(200, completion_body(" 5\n\nInstruction"))) as srv:
        [scores] = judge_run(srv, [{"instruction": "Name a colour.", "input": "", "output": "Blue."}])
    assert scores["quality"].score == 5.0 and scores["quality"].parsed == 5
    assert scores["quality"].status == "ok" and not scores["quality"].from_logprobs
    # asked: temperature 0, a few tokens, the top log-probabilities (completions: an integer)
    body = srv.requests[-1][1]
    assert body["temperature"] == 0 and body["max_tokens"] <= 8 and body["logprobs"] == 10


def test_a_server_that_refuses_logprobs_is_asked_without_them():
    def respond(path, body):
        if path.endswith("/completions") and "logprobs" in body:
            return 400, '{"error": "logprobs is not supported"}'
        return 200, completion_body("3")

    with FaultyLLMServer(respond=respond) as srv:
        results = judge_run(srv, [{"instruction": f"Task {i}.", "input": "", "output": "x"} for i in range(3)],
                            concurrency=1)
    assert [r["quality"].score for r in results] == [3.0, 3.0, 3.0]
    refused = [b for p, b in srv.requests if p.endswith("/completions") and "logprobs" in b]
    # the first example's two aspects were asked at once; after the refusal no request asks again
    assert 1 <= len(refused) <= 2 and all("Task 0." in b["prompt"] for b in refused)


def test_an_example_the_server_rejects_is_an_error_with_its_message():
    with FaultyLLMServer(default=(400, '{"error": "the prompt is too long"}')) as srv:
        [scores] = judge_run(srv, [{"instruction": "Name a colour.", "input": "", "output": "Blue."}])
    assert scores["quality"].status == "error" and scores["quality"].score is None
    assert "too long" in scores["quality"].raw


def test_the_chat_api_asks_for_top_logprobs():
    body = json.dumps({"choices": [{"message": {"content": "Score: 2"}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    with FaultyLLMServer(default=(200, body)) as srv:
        [scores] = judge_run(srv, [{"instruction": "Name a colour.", "input": "", "output": "Blue."}], api="chat")
    assert scores["complexity"].parsed == 2
    sent = srv.requests[-1][1]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 10 and sent["messages"][0]["role"] == "user"
