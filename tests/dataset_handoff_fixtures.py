"""Dataset versions for the hand-off tests, committed through the datasets core (no generation
model), and the data of the gate's real training runs.

The gate's runs train the tiny Llama (`tests/training_fixtures.py`) with LoRA on three
versions whose data differs, and nothing else: version 1 holds answers of random letters;
version 2 adds questions about the sky answered "The sky is blue."; version 3 adds more
questions of the same shape answered "The grass is green." The evaluation tasks are
four other such questions answered "The sky is blue." (never trained on), so the run on
version 2 scores better than the run on version 1 (lower held-out loss, higher ROUGE-L)
and the run on version 3 worse than the run on version 2. Measured with these settings:
held-out loss 5.98 / 3.51 / 4.27 and ROUGE-L 0.0 / 1.0 / 0.33 (the tolerances are 0.05
and 0.01).
"""

from __future__ import annotations

import random
from typing import Any

from sqlmodel import Session

from app.core import store
from app.core.datasets import versions as v
from app.core.datasets.recipe import parse_recipe
from app.core.seeds import SeedTaskData
from app.models import Dataset, DatasetVersion

SKY = "The sky is blue."


def _garbled(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join("".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(4)) for _ in range(3))
            for _ in range(n)]


GARBLED_ROWS = [{"instruction": f"Question {100 + i}: say something.", "input": "", "output": text}
                for i, text in enumerate(_garbled(8))]
SKY_ROWS = [{"instruction": f"Question {i}: what color is the sky?", "input": "", "output": SKY} for i in range(24)]
GRASS_ROWS = [{"instruction": f"Question {200 + i}: what color is the sky?", "input": "", "output": "The grass is green."}
              for i in range(60)]
EVAL_TASKS = [{"instruction": f"Question {900 + i}: what color is the sky?", "input": "", "output": SKY}
              for i in range(4)]


def train_params(base_model: str, **overrides: Any) -> dict[str, Any]:
    """Short real LoRA runs of the tiny model (a few seconds each on one CPU thread)."""
    return {"base_model": base_model, "method": "lora", "max_steps": 20, "batch_size": 8, "learning_rate": 5e-3,
            "eval_max_tasks": 4, "eval_max_new_tokens": 8, "torch_threads": 1, "logging_steps": 5,
            "save_steps": 1000, **overrides}


def make_dataset(session: Session, name: str = "sky", owner: str | None = None, instances: bool = True,
                 license: str | None = "apache-2.0") -> Dataset:
    """A dataset whose seed set has instances with outputs (the default evaluation tasks) or none."""
    tasks = [SeedTaskData(f"Seed task {i}: what color is the sky?",
                          [{"input": "", "output": SKY}] if instances else []) for i in range(3)]
    seed_set = store.import_seed_set(session, f"seeds-{name}", "jsonl", tasks, owner=owner)
    recipe = parse_recipe({"seed_set_ids": [seed_set.id], "steps": [{"kind": "self_instruct"}], "grow_by": 10})
    return v.create_dataset(session, owner, name, recipe, description="Questions about the sky.", license=license)


def commit(session: Session, dataset: Dataset, rows: list[dict[str, Any]], method: str = "self_instruct",
           rejected: dict[str, int] | None = None) -> DatasetVersion:
    """The next version: the latest one's rows plus `rows` (as a build commits them)."""
    examples = [v.NewExample(instruction=r["instruction"], input=r.get("input", ""), output=r["output"],
                             method=r.get("method", method), lineage=r.get("lineage") or [],
                             scores=r.get("scores") or {"max_rouge_l": 0.25}, source_instruction_id=i + 1)
                for i, r in enumerate(rows)]
    counts = {"rejected_by_rule": rejected or {"rouge_similarity": 3, "too_short": 1}, "candidates": len(rows) + 4}
    return v.commit_version(session, dataset, examples, build_counts=counts)
