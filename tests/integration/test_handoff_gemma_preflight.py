"""The preflight check with the embedded model's own tokenizer (Gemma 3 270M, read from the
bundled GGUF or its converted folder) and the Gemma chat template the trainer uses."""

from __future__ import annotations

import pytest

from app.core.handoff.preflight import PreflightOptions, check_rows
from app.core.training.base_model import load_tokenizer
from tests.conftest import MODEL_CACHE
from tests.handoff_fixtures import ROWS

pytestmark = pytest.mark.integration


def test_gemma_renders_every_row_with_a_loss_mask_and_catches_the_bad_ones(embedded_model_path):
    tokenizer = load_tokenizer(str(embedded_model_path), MODEL_CACHE / "hf-models")
    assert "{% generation %}" in tokenizer.chat_template and tokenizer.bos_token == "<bos>"
    report = check_rows(ROWS, tokenizer, PreflightOptions(max_length=1024), template="gemma")
    assert report.ok and report.mask_mode == "assistant" and report.trained_tokens > len(ROWS)
    long_answer = {"id": 50, "instruction": "Write a story.", "input": "", "output": "Once upon a time. " * 30}
    bad = [*ROWS, {"id": 51, "instruction": "Say it.", "input": "", "output": ""}, long_answer]
    failed = check_rows(bad, tokenizer, PreflightOptions(max_length=64))
    assert {(p.check, p.id) for p in failed.problems} == {("empty_output", 51), ("max_length", 50)}
    assert failed.truncated == 1
