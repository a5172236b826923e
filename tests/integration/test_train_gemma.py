"""The real thing: LoRA on the embedded Gemma 3 270M (the bundled GGUF) for a few steps.

The GGUF is converted once and cached by sha256 in the test model cache, so only the first
run pays the conversion (about a minute). The data teaches a fixed answer format the base
model does not follow; a few LoRA steps must bring the held-out loss well down.
"""

from __future__ import annotations

import json

import pytest

from app.core.training import TrainParams, run_training
from app.core.training.base_model import file_sha256
from tests.conftest import MODEL_CACHE

CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Austria", "Vienna"), ("Poland", "Warsaw"), ("Greece", "Athens"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Ireland", "Dublin"), ("Hungary", "Budapest"),
    ("Egypt", "Cairo"), ("Japan", "Tokyo"), ("China", "Beijing"), ("Russia", "Moscow"), ("Peru", "Lima"),
    ("Chile", "Santiago"), ("Kenya", "Nairobi"), ("Cuba", "Havana"), ("Canada", "Ottawa"), ("Belgium", "Brussels"),
]
ROWS = [
    {"instruction": f"What is the capital of {country}?", "input": "", "output": f"The capital of {country} is {city}."}
    for country, city in CAPITALS
]


@pytest.mark.integration
def test_lora_on_gemma_lowers_the_held_out_loss(embedded_model_path, tmp_path):
    from transformers import AutoTokenizer

    cache = MODEL_CACHE / "hf-models"
    params = TrainParams(
        base_model="default",  # the bundled GGUF, written next to the cache (the fixture did it)
        model_cache_dir=cache,
        method="lora",
        max_steps=10,
        batch_size=4,
        eval_fraction=0.25,
        eval_max_tasks=2,
        eval_max_new_tokens=16,
        logging_steps=1,
    )
    out = tmp_path / "run"
    metrics = run_training(params, ROWS, out)

    assert metrics["held_out_rows"] == 6 and metrics["steps"] == 10
    assert metrics["eval_loss_after"] < 0.6 * metrics["eval_loss_before"], metrics
    assert metrics["eval_tasks"] == 2 and metrics["rouge_l_before"] is not None and metrics["rouge_l_after"] is not None

    converted = cache / file_sha256(embedded_model_path)
    assert json.loads((out / "train_config.json").read_text())["base_model_folder"] == str(converted)
    tokenizer = AutoTokenizer.from_pretrained(converted)
    assert tokenizer("hello").input_ids[0] == tokenizer.bos_token_id == 2  # the conversion kept BOS
    assert tokenizer.convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>"]) == [105, 106]

    adapter = out / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    saved = AutoTokenizer.from_pretrained(adapter)
    assert "{% generation %}" in saved.chat_template  # the Gemma template travels with the adapter
    report = (out / "report.md").read_text()
    assert f"{metrics['eval_loss_before']:.4f} | {metrics['eval_loss_after']:.4f}" in report
