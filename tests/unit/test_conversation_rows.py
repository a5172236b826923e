"""Multi-turn conversations as rows: the turns' rules, every export format, `datasets` loading,
the preflight check, and the trainer's loss mask token by token on a tiny model (every
assistant turn trained, no user token) with one real training step."""

from __future__ import annotations

import json

import pytest

from app.core import conversation, export
from app.core.handoff.preflight import PreflightOptions, check_rows
from app.core.training.data import read_export, row_to_conversation
from app.core.training.masks import IGNORE, message_spans, tokenize_for_training
from tests.training_fixtures import tiny_model_dir  # noqa: F401  (fixture)

# three exchanges: the first in the row's columns, the next two in `turns`
THREE_TURNS = {
    "id": 7, "instruction": "Add the numbers.", "input": "2 + 3", "output": "5",
    "turns": [
        {"role": "user", "content": "Translate to French."}, {"role": "assistant", "content": "chat"},
        {"role": "user", "content": "Give the opposite word."}, {"role": "assistant", "content": "cold"},
    ],
    "method": "magpie", "lineage": None,
}
SINGLE = {"id": 8, "instruction": "Name a fruit that is yellow.", "input": "", "output": "A banana."}
EXPECTED_MESSAGES = [
    {"role": "user", "content": "Add the numbers.\n\n2 + 3"}, {"role": "assistant", "content": "5"},
    {"role": "user", "content": "Translate to French."}, {"role": "assistant", "content": "chat"},
    {"role": "user", "content": "Give the opposite word."}, {"role": "assistant", "content": "cold"},
]


def test_turns_must_alternate_user_first_in_pairs_of_non_empty_text():
    assert conversation.check_turns(None) == [] and conversation.check_turns([]) == []
    assert conversation.check_turns(THREE_TURNS["turns"]) == THREE_TURNS["turns"]
    bad = {
        "not a list": ({"role": "user"}, "must be a list"),
        "odd": ([{"role": "user", "content": "x"}], "come in pairs"),
        "assistant first": ([{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}],
                            r"turns\[0\]: role must be 'user'"),
        "empty": ([{"role": "user", "content": "x"}, {"role": "assistant", "content": "  "}],
                  r"turns\[1\]: 'content' must be non-empty"),
        "not an object": ([{"role": "user", "content": "x"}, "y"], r"turns\[1\]: expected an object"),
    }
    for turns, message in bad.values():
        with pytest.raises(conversation.TurnsError, match=message):
            conversation.check_turns(turns)
    assert conversation.exchanges(THREE_TURNS) == 3 and conversation.exchanges(SINGLE) == 1


def test_every_format_of_a_three_turn_row():
    assert export.to_record(THREE_TURNS, "messages") == {"messages": EXPECTED_MESSAGES, "method": "magpie",
                                                         "lineage": None}
    sharegpt = export.to_record({**THREE_TURNS, "system": "Be brief."}, "sharegpt")
    assert sharegpt["system"] == "Be brief." and "turns" not in sharegpt
    assert sharegpt["conversations"] == [
        {"from": "human" if m["role"] == "user" else "gpt", "value": m["content"]} for m in EXPECTED_MESSAGES]
    # alpaca has no place for turns: the first exchange, nothing of the later turns
    assert export.to_record(THREE_TURNS, "alpaca") == {"instruction": "Add the numbers.", "input": "2 + 3",
                                                       "output": "5", "method": "magpie", "lineage": None}
    pc = export.to_record(THREE_TURNS, "prompt-completion")
    assert pc["prompt"] == EXPECTED_MESSAGES[:-1] and pc["completion"] == EXPECTED_MESSAGES[-1:]
    parquet = export.to_record(THREE_TURNS, "parquet")
    assert parquet["messages"] == EXPECTED_MESSAGES and parquet["extra"] is None


def test_a_single_turn_row_reads_as_it_always_did():
    assert export.to_record(SINGLE, "messages") == {"messages": [
        {"role": "user", "content": "Name a fruit that is yellow."}, {"role": "assistant", "content": "A banana."}]}
    assert export.to_record(SINGLE, "sharegpt") == {"conversations": [
        {"from": "human", "value": "Name a fruit that is yellow."}, {"from": "gpt", "value": "A banana."}]}
    assert export.to_record(SINGLE, "prompt-completion") == {"prompt": "Name a fruit that is yellow.",
                                                            "completion": "A banana."}
    assert export.to_record({**SINGLE, "turns": []}, "messages") == export.to_record(SINGLE, "messages")


@pytest.mark.parametrize("fmt", ["sharegpt", "messages", "prompt-completion"])
def test_exported_conversations_load_with_datasets_and_read_back_whole(tmp_path, fmt):
    from datasets import load_dataset

    path = tmp_path / f"rows-{fmt}.jsonl"
    assert export.write([THREE_TURNS, SINGLE], fmt, path) == 2
    loaded = load_dataset("json", data_files=str(path), split="train")
    assert loaded.num_rows == 2
    if fmt == "sharegpt":
        assert [t["value"] for t in loaded[0]["conversations"]] == [m["content"] for m in EXPECTED_MESSAGES]
    elif fmt == "messages":
        assert loaded[0]["messages"] == EXPECTED_MESSAGES
    # the trainer's reader gets the whole conversation back from any of these files
    _, conversations = read_export(path)
    assert conversations[0] == EXPECTED_MESSAGES and len(conversations[1]) == 2


def test_the_trainer_reads_a_rows_turns_and_refuses_bad_ones():
    assert row_to_conversation(THREE_TURNS) == EXPECTED_MESSAGES
    with pytest.raises(ValueError, match=r"turns\[2\]: role must be 'user'"):
        row_to_conversation({**THREE_TURNS, "turns": [*THREE_TURNS["turns"][:2], *THREE_TURNS["turns"][:1:-1]]})


def _assistant_char_spans(text: str, conversation: list[dict[str, str]]) -> list[tuple[int, int]]:
    """Where each answer's text and its end-of-turn marker lie in the rendered conversation,
    found by searching the text itself (not through the code under test)."""
    spans, at = [], 0
    for message in conversation:
        start = text.index(message["content"], at)
        end = start + len(message["content"])
        at = end
        if message["role"] == "assistant":
            assert text.startswith("<end_of_turn>", end)
            spans.append((start, end + len("<end_of_turn>")))
    return spans


def test_every_assistant_turn_carries_loss_and_no_user_token_does(tiny_model_dir):
    import torch

    from app.core.training.base_model import load_model_and_tokenizer

    _, tokenizer = load_model_and_tokenizer(tiny_model_dir, torch.float32, "sdpa")
    ids, labels = tokenize_for_training(tokenizer, EXPECTED_MESSAGES, "assistant")
    text = tokenizer.apply_chat_template(EXPECTED_MESSAGES, tokenize=False)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert encoded["input_ids"] == ids
    answers = _assistant_char_spans(text, EXPECTED_MESSAGES)
    for token, (start, end), label in zip(ids, encoded["offset_mapping"], labels, strict=True):
        in_answer = any(a <= start and end <= b for a, b in answers)
        assert (label != IGNORE) == in_answer, (tokenizer.decode([token]), start, end)
        if label != IGNORE:
            assert label == token
    # each answer has trained tokens, so none of the three is left out of the loss
    for a, b in answers:
        assert any(label != IGNORE for (s, e), label in zip(encoded["offset_mapping"], labels) if a <= s and e <= b)
    # the spans the preflight check uses agree: answers trained, user turns not
    for k, (a, b) in enumerate(message_spans(tokenizer, EXPECTED_MESSAGES, ids)):
        trained = any(label != IGNORE for label in labels[a:b])
        assert trained == (EXPECTED_MESSAGES[k]["role"] == "assistant")


def test_a_three_turn_conversation_trains_one_step(tiny_model_dir, tmp_path):
    import math

    import torch

    from app.core.training.base_model import load_model_and_tokenizer
    from app.core.training.config import TrainParams
    from app.core.training.trainer import build_trainer, mask_mode

    path = tmp_path / "messages.jsonl"
    export.write([THREE_TURNS], "messages", path)
    _, conversations = read_export(path)
    model, tokenizer = load_model_and_tokenizer(tiny_model_dir, torch.float32, "sdpa")
    params = TrainParams(base_model=str(tiny_model_dir), method="full", max_steps=1, batch_size=1, packing=False,
                         warmup_ratio=0.0)
    mode = mask_mode(tokenizer, params)
    assert mode == "assistant"
    trainer = build_trainer(params, model, tokenizer, conversations, [], tmp_path / "ckpt")
    prepared = trainer.train_dataset[0]
    ids, labels = tokenize_for_training(tokenizer, conversations[0], mode)
    assert prepared["input_ids"] == ids and prepared["labels"] == labels
    before = [p.detach().clone() for p in model.parameters()]
    result = trainer.train()
    assert result.global_step == 1 and math.isfinite(result.training_loss)
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters()))


def test_preflight_checks_each_answer_of_a_conversation(tiny_model_dir):
    import torch

    from app.core.llm.embedded import server_chat_template
    from app.core.training.base_model import load_model_and_tokenizer

    _, tokenizer = load_model_and_tokenizer(tiny_model_dir, torch.float32, "sdpa")
    report = check_rows([THREE_TURNS, SINGLE], tokenizer, PreflightOptions(max_length=512))
    assert report.ok, report.problems
    single = check_rows([SINGLE], tokenizer, PreflightOptions(max_length=512))
    assert report.trained_tokens > single.trained_tokens  # the later answers are trained too

    broken = {**THREE_TURNS, "turns": [{"role": "user", "content": "only a question"}]}
    report = check_rows([SINGLE, broken], tokenizer, PreflightOptions(max_length=512))
    assert report.failed_checks() == ["renders"]
    assert (report.problems[0].index, report.problems[0].id) == (1, 7)
    assert "come in pairs" in report.problems[0].reason

    tokenizer.chat_template = server_chat_template()  # no generation markers: the last answer only
    report = check_rows([THREE_TURNS], tokenizer, PreflightOptions(max_length=512))
    assert report.ok
    assert [c.warnings for c in report.checks if c.name == "assistant_mask"] == [1]
    assert "only the last carries loss" in report.problems[0].reason


def test_sharegpt_file_round_trip_keeps_roles(tmp_path):
    path = tmp_path / "sharegpt.jsonl"
    export.write([THREE_TURNS], "sharegpt", path)
    record = json.loads(path.read_text(encoding="utf-8"))
    assert [t["from"] for t in record["conversations"]] == ["human", "gpt"] * 3
