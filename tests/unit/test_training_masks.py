"""`training.masks.tokenize_for_training` is what the trainer trains on, token for token:
the same input ids and labels as the rows TRL's SFTTrainer prepares in `build_trainer`,
for a template with `{% generation %}` markers and for one without."""

from __future__ import annotations

import pytest

from app.core.llm.embedded import server_chat_template
from app.core.training.base_model import load_model_and_tokenizer
from app.core.training.config import TrainParams
from app.core.training.masks import IGNORE, tokenize_for_training, trained_tokens
from app.core.training.trainer import build_trainer, mask_mode
from tests.training_fixtures import tiny_model_dir  # noqa: F401  (fixture)

CONVERSATIONS = [
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Add the numbers.\n\n2 + 3"},
     {"role": "assistant", "content": "5"}, {"role": "user", "content": "Translate to French.\n\ncat"},
     {"role": "assistant", "content": "chat"}],
    [{"role": "user", "content": "Name the color of the sky."}, {"role": "assistant", "content": "The sky is blue."}],
]


@pytest.mark.parametrize("template", ["gemma", "plain"])
def test_the_same_tokens_and_labels_as_the_trainer(tiny_model_dir, tmp_path, template):
    import torch

    model, tokenizer = load_model_and_tokenizer(tiny_model_dir, torch.float32, "sdpa")
    if template == "plain":
        tokenizer.chat_template = server_chat_template()  # no generation markers: completion mode
    params = TrainParams(base_model=str(tiny_model_dir), method="full", max_steps=1)
    mode = mask_mode(tokenizer, params)
    assert mode == ("assistant" if template == "gemma" else "completion")
    trainer = build_trainer(params, model, tokenizer, CONVERSATIONS, [], tmp_path / "ckpt")
    for prepared, conversation in zip(trainer.train_dataset, CONVERSATIONS, strict=True):
        ids, labels = tokenize_for_training(tokenizer, conversation, mode)
        assert ids == prepared["input_ids"] and labels == prepared["labels"]
        assert trained_tokens(labels) == sum(1 for t in labels if t != IGNORE) > 0


def test_trained_tokens_counts_only_what_max_length_keeps():
    labels = [IGNORE, IGNORE, 5, 6, IGNORE, 7]
    assert trained_tokens(labels) == 3 and trained_tokens(labels, 4) == 2 and trained_tokens(labels, 2) == 0
