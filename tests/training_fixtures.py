"""A tiny random Llama with a BPE tokenizer trained on the fly, for the trainer's tests.

Built in well under a second, so the tests exercise the real TRL/PEFT/transformers stack
(tokenizer, chat template, loss masks, save and reload) without downloading anything. Its
vocabulary has Gemma's turn markers, and it is saved with the Gemma chat template, so it
goes through the same code path as the embedded model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]

# A handful of examples a 2-layer model can learn word for word.
TOY_ROWS = [
    {"instruction": "Name the color of the sky.", "input": "", "output": "The sky is blue."},
    {"instruction": "Add the numbers.", "input": "2 + 3", "output": "5"},
    {"instruction": "Translate to French.", "input": "cat", "output": "chat"},
    {"instruction": "Give the opposite word.", "input": "hot", "output": "cold"},
    {"instruction": "Name a fruit that is yellow.", "input": "", "output": "A banana."},
    {"instruction": "Spell the word backwards.", "input": "stop", "output": "pots"},
    {"instruction": "Say hello in Spanish.", "input": "", "output": "Hola."},
    {"instruction": "Count the letters.", "input": "tree", "output": "4"},
]


def _corpus() -> list[str]:
    words = []
    for row in TOY_ROWS:
        words += [row["instruction"], row["input"], row["output"]]
    words += ["user", "model", "system", "The quick brown fox jumps over the lazy dog.", "0123456789"]
    return [w for w in words if w]


def build_tiny_llama(out_dir: Path, hidden: int = 128, layers: int = 2, chat_template: str | None = "gemma") -> Path:
    """Write a random Llama and its tokenizer to `out_dir`; returns `out_dir`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from app.core.methods.prompts import gemma_chat_template

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    if chat_template == "gemma":
        tokenizer.chat_template = gemma_chat_template()
    elif chat_template:
        tokenizer.chat_template = chat_template
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)


def toy_seed_file(path: Path, rows: list[dict[str, str]] = TOY_ROWS) -> Path:
    """Rows as a Self-Instruct seed file (the instruction-following test's format)."""
    import json

    lines = [
        json.dumps({"instruction": r["instruction"], "instances": [{"input": r["input"], "output": r["output"]}]})
        for r in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny Llama, saved with the Gemma chat template (with `{% generation %}` markers)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
