"""Rows and a tokenizer for the hand-off tests: every provenance key, a system prompt, an
input, non-ASCII text, an Evol-Instruct lineage; the tiny test model's tokenizer (Gemma's
chat template, with `{% generation %}` markers)."""

from __future__ import annotations

import pytest

from tests.training_fixtures import tiny_model_dir  # noqa: F401  (fixture)

LINEAGE = [{"instruction": "Name a color.", "operation": None, "round": 0},
           {"instruction": "Name a color of the sky.", "operation": "concretizing", "round": 1}]

ROWS = [
    {"id": 11, "instruction": "Add the numbers.", "input": "2 + 3", "output": "5", "method": "self_instruct",
     "job_id": 7, "scores": {"max_rouge_l": 0.31, "mean_rouge_l": 0.12}},
    {"id": 12, "instruction": "Name a color of the sky.", "input": "", "output": "The sky is blue.",
     "method": "evol_instruct", "job_id": 8, "lineage": LINEAGE, "scores": {"max_rouge_l": 0.4}},
    {"id": 13, "instruction": "Translate to French.", "input": "cat", "output": "chat", "method": "self_instruct",
     "job_id": 7, "system": "Answer with one word."},
    {"id": 14, "instruction": "Say hello in Spanish.", "input": "", "output": "¡Hola! ✓", "method": "self_instruct",
     "job_id": 7, "scores": None},
    {"id": 15, "instruction": "Count the letters.", "input": "tree", "output": "4", "method": "evol_instruct",
     "job_id": 8, "lineage": LINEAGE[:1]},
]


def user_turn(row: dict) -> str:
    return f"{row['instruction']}\n\n{row['input']}" if row["input"] else row["instruction"]


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from app.core.training.base_model import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))
