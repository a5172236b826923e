"""axolotl's loss mask for `type: chat_template`, so the preflight sees what axolotl trains on.

axolotl (`prompt_strategies/chat_template.py`, `ChatTemplateStrategy`) does not read the
template's `{% generation %}` markers. With `roles_to_train` it finds each trained turn's
content by rendering the conversation up to that turn twice, once with the real content and
once with a dummy, and taking the tokens where the two differ; then, with
`train_on_eos: turn`, it trains the first *end-of-turn* token found at most 3 tokens after
the content, and the first EOS token likewise. The end-of-turn tokens are `eot_tokens`, by
default the tokenizer's EOS token alone, and any listed token the chat template does not
contain is dropped. Gemma ends a turn with `<end_of_turn>` and never writes `<eos>`, so
without `eot_tokens: ["<end_of_turn>"]` the turn terminator is masked in every row: the
model never learns to stop. `turn_terminator` finds the token a template ends an assistant
turn with, for the snippet's `eot_tokens` and for the preflight's check.
"""

from __future__ import annotations

from typing import Any

IGNORE = -100
EOT_WINDOW = 3  # axolotl's "allow for some template padding"
DUMMY = "[[dummy_message]]"


def _render_ids(tokenizer: Any, conversation: list[dict[str, str]], add_generation_prompt: bool = False) -> list[int]:
    text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=add_generation_prompt)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _special_tokens(tokenizer: Any) -> list[str]:
    added = list(getattr(tokenizer, "get_added_vocab", dict)().keys())
    return sorted(set(added) | set(tokenizer.all_special_tokens), key=len, reverse=True)


def turn_terminator(tokenizer: Any) -> str | None:
    """The first special token the chat template writes after an assistant turn's content
    (`<end_of_turn>` for Gemma, `<|im_end|>` for ChatML, `<|eot_id|>` for Llama 3), or None
    when the template writes none there."""
    marker = "SPROUTTURNEND"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": marker}], tokenize=False)
    if marker not in text:
        return None
    after = text.split(marker, 1)[1]
    found = [(after.find(token), -len(token), token) for token in _special_tokens(tokenizer) if token in after]
    return min(found)[2] if found else None


def effective_eot_tokens(tokenizer: Any, eot_tokens: list[str] | None) -> list[str]:
    """The end-of-turn tokens axolotl uses: the given ones the template contains, else EOS alone."""
    if eot_tokens is None:
        return [tokenizer.eos_token] if tokenizer.eos_token is not None else []
    template = tokenizer.chat_template or ""
    if len(eot_tokens) == 1 and eot_tokens[0] == tokenizer.eos_token:
        return list(eot_tokens)
    return [t for t in eot_tokens if t in template]


def _find_turn(tokenizer: Any, turns: list[dict[str, str]], index: int) -> tuple[int, int]:
    """The [start, end) token span of turn `index`'s content, or (-1, -1)."""
    with_dummy = _render_ids(tokenizer, [*turns[:index], {"role": turns[index]["role"], "content": DUMMY}])
    full = _render_ids(tokenizer, turns[: index + 1])
    shortest = min(len(with_dummy), len(full))
    start = next((i for i in range(shortest) if with_dummy[i] != full[i]), None)
    end = next((len(full) - i for i in range(shortest) if with_dummy[-1 - i] != full[-1 - i]), None)
    if start is None or end is None or end <= start:
        return -1, -1
    return start, end


def _first(ids: list[int], wanted: set[int], start: int) -> int:
    return next((i for i in range(start, len(ids)) if ids[i] in wanted), -1)


def axolotl_labels(tokenizer: Any, conversation: list[dict[str, str]], eot_tokens: list[str] | None,
                   roles_to_train: tuple[str, ...] = ("assistant",), train_on_eos: str = "turn",
                   ) -> tuple[list[int], list[int]]:
    """(input_ids, labels) as axolotl's chat_template strategy makes them for the snippet's settings."""
    ids = _render_ids(tokenizer, conversation)
    labels = [IGNORE] * len(ids)
    eot_ids = set()
    for token in effective_eot_tokens(tokenizer, eot_tokens):
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(f"end-of-turn token {token!r} is not one token for this tokenizer")
        eot_ids.add(encoded[0])
    eos_ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for index, turn in enumerate(conversation):
        if turn["role"] not in roles_to_train:
            continue
        start, end = _find_turn(tokenizer, conversation, index)
        if start != -1:
            labels[start:end] = ids[start:end]
        for wanted in (eot_ids, eos_ids):
            found = _first(ids, wanted, end)
            if found != -1 and abs(found - end) <= EOT_WINDOW and train_on_eos == "turn":
                labels[found] = ids[found]
    return ids, labels
