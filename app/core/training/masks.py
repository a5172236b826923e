"""The tokens the trainer sees and trains on for one conversation, without building a trainer.

`tokenize_for_training` renders and tokenizes a conversation exactly as the trainer's TRL
`SFTTrainer` prepares its dataset for the mask mode the trainer picks (`trainer.mask_mode`):
through TRL's own `_tokenize` (the chat template, `return_assistant_tokens_mask` for
templates with `{% generation %}` markers) and, for templates without them, the prompt
and prompt+completion renderings cut at their common prefix. A hand-off preflight check
uses it to find, before any trainer starts, the rows it would train on nothing of or cut
at `max_length`. `tests/unit/test_training_masks.py` holds it to the trainer's own
prepared rows, token for token.
"""

from __future__ import annotations

from typing import Any

from app.core.training.data import Conversation
from app.core.training.trainer import MaskMode

IGNORE = -100


def tokenize_for_training(tokenizer: Any, conversation: Conversation, mode: MaskMode) -> tuple[list[int], list[int]]:
    """(input_ids, labels) before truncation; a label is IGNORE where no loss is taken."""
    from trl.data_utils import _tokenize, common_prefix_length

    if mode == "completion":  # the trainer feeds prompt-completion pairs (`trainer.to_dataset`)
        prompt, completion = conversation[:-1], conversation[-1:]
        prompt_ids = list(_tokenize(tokenizer, prompt, add_generation_prompt=True)["input_ids"])
        ids = list(_tokenize(tokenizer, prompt + completion)["input_ids"])
        start = common_prefix_length(prompt_ids, ids)
        return ids, [IGNORE] * start + ids[start:]
    processed = _tokenize(tokenizer, conversation, return_assistant_tokens_mask=mode == "assistant")
    ids = list(processed["input_ids"])
    if mode == "assistant":
        return ids, [t if m else IGNORE for t, m in zip(ids, processed["assistant_masks"])]
    return ids, list(ids)


def trained_tokens(labels: list[int], max_length: int | None = None) -> int:
    """Tokens with a loss among the first `max_length` (the trainer keeps the start)."""
    kept = labels if max_length is None else labels[:max_length]
    return sum(1 for t in kept if t != IGNORE)


def message_spans(tokenizer: Any, conversation: Conversation, ids: list[int]) -> list[tuple[int, int]]:
    """Each message's token span [start, end) in `ids` (the whole conversation rendered).

    A message's span ends where the rendering of the conversation up to it stops sharing
    tokens with the whole; a prefix the template cannot render alone (Gemma's template folds
    a system message into the first user turn) joins the next message's span: (start, start).
    """
    from trl.data_utils import _tokenize, common_prefix_length

    spans, start = [], 0
    for k in range(1, len(conversation) + 1):
        if k == len(conversation):
            end = len(ids)
        else:
            try:
                end = common_prefix_length(list(_tokenize(tokenizer, conversation[:k])["input_ids"]), ids)
            except Exception:  # this prefix does not render alone
                end = start
        spans.append((start, max(start, end)))
        start = max(start, end)
    return spans


def turn_coverage(tokenizer: Any, conversation: Conversation, ids: list[int],
                  labels: list[int]) -> list[tuple[int, bool]]:
    """(message index, whether any of its tokens carries loss) for every message."""
    return [(k, any(label != IGNORE for label in labels[a:b]))
            for k, (a, b) in enumerate(message_spans(tokenizer, conversation, ids))]
