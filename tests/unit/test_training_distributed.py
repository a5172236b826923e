"""Data-parallel training under a launcher: two CPU processes (gloo) stand in for two GPUs.

`accelerate launch` and `torchrun` set the same environment; the trainer must split the
batches between the processes, and only the first may generate answers and write files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.training_fixtures import TOY_ROWS, tiny_model_dir, toy_seed_file  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from app.core.training import TrainParams, run_training
params = TrainParams.model_validate_json(sys.argv[1])
run_training(params, json.loads(sys.argv[2]), sys.argv[3])
"""


def test_two_processes_share_the_batches(tiny_model_dir, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT, encoding="utf-8")
    params = {
        "base_model": str(tiny_model_dir), "method": "lora", "max_steps": 4, "batch_size": 4,
        "eval_fraction": 0.0, "eval_tasks": str(toy_seed_file(tmp_path / "tasks.jsonl", TOY_ROWS[:2])),
        "eval_max_tasks": 2, "eval_max_new_tokens": 4, "torch_threads": 1,
    }
    rows = TOY_ROWS[2:] + TOY_ROWS[2:]  # 12 rows; the 2 evaluation tasks are not among them
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), json.dumps(params), json.dumps(rows), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    # 12 rows, 4 per process per step, 2 processes: 2 steps an epoch (one process would need 3)
    assert metrics["steps"] == 4 and metrics["epochs"] == 2.0
    samples = (out / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 2  # written once, by the first process
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in log].count("eval_after") == 1
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
