"""The loss mask, token by token: only the assistant's tokens (and its end-of-turn) are trained.

The expected mask is computed independently of TRL: render the conversation with the chat
template, find each answer's characters (the text after the prompt rendered with
`add_generation_prompt=True`, up to and including `<end_of_turn>`), and mark the tokens
whose characters fall inside. The trainer's labels must match it at every position.
"""

from __future__ import annotations

import pytest

from app.core.llm.embedded import server_chat_template
from app.core.training.base_model import load_model_and_tokenizer
from app.core.training.config import TrainParams
from app.core.training.trainer import build_trainer, mask_mode
from tests.training_fixtures import tiny_model_dir  # noqa: F401  (fixture)

END = "<end_of_turn>"

CONVERSATIONS = [
    [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Add the numbers.\n\n2 + 3"},
        {"role": "assistant", "content": "5"},
        {"role": "user", "content": "Translate to French.\n\ncat"},
        {"role": "assistant", "content": "chat"},
    ],
    [{"role": "user", "content": "Name the color of the sky."}, {"role": "assistant", "content": "The sky is blue."}],
]


def _load(model_dir, template: str | None = None):
    import torch

    model, tokenizer = load_model_and_tokenizer(model_dir, torch.float32, "sdpa")
    if template is not None:
        tokenizer.chat_template = template
    return model, tokenizer


def _answer_spans(tokenizer, conversation, only_last: bool) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of the trained answers."""
    text = tokenizer.apply_chat_template(conversation, tokenize=False)
    spans = []
    for i, message in enumerate(conversation):
        if message["role"] != "assistant" or (only_last and i != len(conversation) - 1):
            continue
        prompt = tokenizer.apply_chat_template(conversation[:i], tokenize=False, add_generation_prompt=True)
        assert text.startswith(prompt)
        start = len(prompt)
        end = text.index(END, start) + len(END)
        assert text[start:end] == message["content"] + END
        if only_last:  # prompt-completion: the completion is the rest of the text, the
            end = len(text)  # turn separator after <end_of_turn> included
        spans.append((start, end))
    return text, spans


def _expected_labels(tokenizer, conversation, only_last: bool) -> tuple[list[int], list[int]]:
    text, spans = _answer_spans(tokenizer, conversation, only_last)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    labels = [
        tid if any(s <= a and b <= e for s, e in spans) else -100
        for tid, (a, b) in zip(ids, enc["offset_mapping"], strict=True)
    ]
    return ids, labels


def _trainer(model_dir, tmp_path, template=None, **params):
    model, tokenizer = _load(model_dir, template)
    p = TrainParams(base_model=str(model_dir), method="full", max_steps=1, **params)
    trainer = build_trainer(p, model, tokenizer, CONVERSATIONS, [], tmp_path / "ckpt")
    return trainer, tokenizer, p


def test_gemma_template_trains_every_assistant_turn_only(tiny_model_dir, tmp_path):
    trainer, tokenizer, params = _trainer(tiny_model_dir, tmp_path)
    assert mask_mode(tokenizer, params) == "assistant"
    for row, conversation in zip(trainer.train_dataset, CONVERSATIONS, strict=True):
        ids, labels = _expected_labels(tokenizer, conversation, only_last=False)
        assert row["input_ids"] == ids
        assert row["input_ids"][0] == tokenizer.bos_token_id  # exactly one BOS, from the template
        assert row["input_ids"].count(tokenizer.bos_token_id) == 1
        for position, (got, want) in enumerate(zip(row["labels"], labels, strict=True)):
            assert got == want, f"position {position} ({tokenizer.decode([ids[position]])!r}): {got} != {want}"
        trained = [tokenizer.decode([t]) for t in row["labels"] if t != -100]
        answers = [m["content"] for m in conversation if m["role"] == "assistant"]
        assert "".join(trained) == "".join(a + END for a in answers)


def test_template_without_generation_markers_trains_the_final_answer(tiny_model_dir, tmp_path):
    trainer, tokenizer, params = _trainer(tiny_model_dir, tmp_path, template=server_chat_template())
    assert mask_mode(tokenizer, params) == "completion"
    for row, conversation in zip(trainer.train_dataset, CONVERSATIONS, strict=True):
        ids, labels = _expected_labels(tokenizer, conversation, only_last=True)
        assert row["input_ids"] == ids
        assert row["labels"] == labels
        trained = "".join(tokenizer.decode([t]) for t in row["labels"] if t != -100)
        assert trained == conversation[-1]["content"] + END + "\n"


def test_response_only_off_trains_every_token(tiny_model_dir, tmp_path):
    trainer, tokenizer, params = _trainer(tiny_model_dir, tmp_path, response_only_loss=False)
    assert mask_mode(tokenizer, params) == "none"
    for row in trainer.train_dataset:
        assert row["labels"] == row["input_ids"]


@pytest.mark.parametrize("packing", [False, True])
def test_collated_batches_keep_the_mask(tiny_model_dir, tmp_path, packing):
    """Padding (without packing) and sequence boundaries (with it) never become targets."""
    trainer, tokenizer, _ = _trainer(tiny_model_dir, tmp_path, packing=packing, batch_size=2)
    batch = next(iter(trainer.get_train_dataloader()))
    expected = {tuple(_expected_labels(tokenizer, c, only_last=False)[1]) for c in CONVERSATIONS}
    if packing:
        # both examples fit one packed row: no padding, positions restarting at each example
        assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
        positions = batch["position_ids"][0].tolist()
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
        assert len(starts) == 3
        pieces = {tuple(batch["labels"][0, a:b].tolist()) for a, b in zip(starts, starts[1:])}
        assert pieces == expected
    else:
        assert batch["input_ids"].shape[0] == 2
        got = set()
        for labels, attention in zip(batch["labels"].tolist(), batch["attention_mask"].tolist(), strict=True):
            n = sum(attention)
            assert all(t == -100 for t in labels[n:])  # padding is never trained
            got.add(tuple(labels[:n]))
        assert got == expected
