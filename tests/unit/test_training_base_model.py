"""Base models: folders are used as they are, GGUF conversions are cached by sha256."""

from __future__ import annotations

import json

import pytest

from app.core.methods.prompts import gemma_chat_template
from app.core.training.base_model import (
    convert_gguf,
    ensure_bos,
    file_sha256,
    load_model_and_tokenizer,
    load_tokenizer,
    resolve_base_model,
)
from app.core.training.errors import BaseModelError
from tests.training_fixtures import build_tiny_llama, tiny_model_dir  # noqa: F401  (fixture)


def test_a_model_folder_is_used_as_it_is(tiny_model_dir, tmp_path):
    assert resolve_base_model(str(tiny_model_dir), tmp_path / "cache") == tiny_model_dir
    assert not (tmp_path / "cache").exists()


def test_missing_and_unusable_base_models_are_refused(tmp_path):
    with pytest.raises(BaseModelError, match="no such file or folder"):
        resolve_base_model(str(tmp_path / "nope"), tmp_path / "cache")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(BaseModelError, match="must be a .gguf file"):
        resolve_base_model(str(tmp_path / "weights.bin"), tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BaseModelError, match="not a Hugging Face model folder"):
        resolve_base_model(str(tmp_path / "empty"), tmp_path / "cache")


def test_a_converted_gguf_is_found_by_its_sha256(tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF pretend weights")
    cached = tmp_path / "cache" / file_sha256(gguf)
    cached.mkdir(parents=True)
    (cached / "sprout-conversion.json").write_text(json.dumps({"source": "model.gguf"}))
    # no conversion happens (these bytes are no real GGUF): the cached folder is returned
    assert convert_gguf(gguf, tmp_path / "cache") == cached
    assert resolve_base_model(str(gguf), tmp_path / "cache") == cached
    assert resolve_base_model(str(tmp_path), tmp_path / "cache") == cached  # a folder holding one .gguf


def test_a_broken_gguf_fails_clearly_and_leaves_no_half_folder(tmp_path):
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(b"not a gguf at all")
    with pytest.raises(BaseModelError, match="cannot convert this GGUF"):
        convert_gguf(gguf, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_tokenizer_that_drops_bos_is_repaired(tiny_model_dir, tmp_path):
    from tokenizers import processors
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer._tokenizer.post_processor = processors.Sequence([])
    assert tokenizer("hello").input_ids[0] != tokenizer.bos_token_id
    ensure_bos(tokenizer)
    assert tokenizer("hello").input_ids[0] == tokenizer.bos_token_id
    tokenizer.save_pretrained(tmp_path / "tok")
    assert AutoTokenizer.from_pretrained(tmp_path / "tok")("hello").input_ids[0] == tokenizer.bos_token_id


def test_a_model_without_chat_template_gets_gemmas(tmp_path):
    import torch

    folder = build_tiny_llama(tmp_path / "plain", chat_template=None)
    _, tokenizer = load_model_and_tokenizer(folder, torch.float32, "sdpa")
    assert tokenizer.chat_template == gemma_chat_template()
    assert tokenizer.pad_token_id is not None


def test_a_gguf_that_says_no_bos_keeps_its_tokenizer_without_one(tiny_model_dir, tmp_path):
    """SmolLM2's GGUF says `add_bos_token = false` (its BOS is `<|im_start|>`): forcing BOS
    there put a stray `<|im_start|>` before every prompt vLLM served from the conversion."""
    from transformers import AutoTokenizer

    from app.core.llm.embedded import chat_model_path
    from app.core.training.base_model import gguf_adds_bos

    assert gguf_adds_bos(chat_model_path()) is False
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tokenizer("hello").input_ids[0] == tokenizer.bos_token_id
    ensure_bos(tokenizer, wanted=False)
    assert tokenizer.bos_token_id not in tokenizer("hello").input_ids
    gguf_tokenizer = load_tokenizer(str(chat_model_path()), tmp_path / "cache")  # read from the GGUF
    assert gguf_tokenizer.bos_token_id not in gguf_tokenizer("hello").input_ids


def test_a_folder_converted_with_a_forced_bos_is_converted_again(tmp_path):
    from app.core.training.base_model import _forced_bos_against_gguf

    folder = tmp_path / "cached"
    folder.mkdir()
    (folder / "sprout-conversion.json").write_text(json.dumps({"source": "m.gguf", "sha256": "x"}))
    assert _forced_bos_against_gguf(folder, False)  # written before the rule: stale
    assert not _forced_bos_against_gguf(folder, True)  # Gemma's: BOS wanted, the folder is fine
    assert not _forced_bos_against_gguf(folder, None)
    (folder / "sprout-conversion.json").write_text(json.dumps({"source": "m.gguf", "add_bos": False}))
    assert not _forced_bos_against_gguf(folder, False)
