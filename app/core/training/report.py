"""The run's record for people and programs: `metrics.json`, `samples.jsonl`, `report.md`.

`metrics.json` holds the figures a caller compares across runs (held-out loss and ROUGE-L
before and after, tokens, seconds); `report.md` puts the same numbers next to a few answers
of the base and the tuned model to the same task, because a score alone hides whether the
model learned to answer or learned to echo.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.core.training.evaluate import EvalTask


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def write_samples(
    path: Path,
    tasks: Sequence[EvalTask],
    before: Sequence[str],
    after: Sequence[str],
    rouge_before: Sequence[float],
    rouge_after: Sequence[float],
) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i, task in enumerate(tasks):
            record = {
                "prompt": task.prompt,
                "reference": task.reference,
                "base": before[i] if before else None,  # None: the base was not evaluated in this run
                "tuned": after[i],
                "rouge_l_base": rouge_before[i] if rouge_before else None,
                "rouge_l_tuned": rouge_after[i],
            }
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _quote(text: str) -> str:
    lines = (text or "(empty)").splitlines() or ["(empty)"]
    return "\n".join("> " + line if line else ">" for line in lines)


def _runtime_lines(runtime: dict[str, Any] | None) -> list[str]:
    if not runtime:
        return []
    layout = {None: "no packing", "rows": "packed rows, per-document attention masks",
              "flattened": "packed rows flattened for a varlen kernel"}.get(runtime["packing_layout"], "?")
    return [
        f"- runtime: {runtime['device']}, {runtime['precision']}, attention {runtime['attention']}, {layout}, "
        f"micro-batch {runtime['micro_batch_size']} x {runtime['gradient_accumulation_steps']} accumulation, "
        f"optimizer {runtime['optimizer']}, activation checkpointing "
        f"{'on' if runtime['gradient_checkpointing'] else 'off'}; {runtime['liger_reason']}",
    ]


def render_report(
    metrics: dict[str, Any],
    config: dict[str, Any],
    tasks: Sequence[EvalTask],
    before: Sequence[str],
    after: Sequence[str],
    rouge_before: Sequence[float],
    rouge_after: Sequence[float],
    n_samples: int,
) -> str:
    """The Markdown report of one run."""
    m = metrics
    params = config["params"]
    lines = [
        "# Fine-tuning report",
        "",
        f"- base model: `{config['base_model']}` ({config['base_model_folder']})",
        f"- method: {params['method']}, lr {m['learning_rate']:g}, {_fmt(m['epochs'], 2)} epochs, "
        f"{m['steps']} steps, batch {params['batch_size']} x {params['gradient_accumulation_steps']} accumulation, "
        f"max length {params['max_length']}, packing {'on' if params['packing'] else 'off'}",
        f"- loss on: {config['loss_mask']}",
        *_runtime_lines(config.get("runtime")),
        f"- data: {m['train_rows']} training rows, {m['held_out_rows']} held out; "
        f"instruction-following tasks: {m['eval_tasks']} from {config['eval_tasks_source']}",
        "",
        "## Results",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| held-out loss | {_fmt(m['eval_loss_before'])} | {_fmt(m['eval_loss_after'])} |",
        f"| ROUGE-L F (greedy answers vs references) | {_fmt(m['rouge_l_before'])} | {_fmt(m['rouge_l_after'])} |",
        "",
        f"Training: {_fmt(m['train_seconds'], 1)} s, {m['train_tokens']} tokens "
        f"({_fmt(m['train_tokens_per_s'], 1)} tokens/s), final training loss {_fmt(m['train_loss'])}.",
        "",
    ]
    shown = min(n_samples, len(tasks))
    if shown:
        lines += ["## Samples (base vs tuned)", ""]
    for i in range(shown):
        task = tasks[i]
        lines += [
            f"### {i + 1}. ROUGE-L {_fmt(rouge_before[i] if rouge_before else None, 3)} → {rouge_after[i]:.3f}",
            "",
            "**Task**",
            "",
            _quote(task.prompt),
            "",
            "**Reference**",
            "",
            _quote(task.reference),
            "",
            "**Base**",
            "",
            _quote(before[i]) if before else "(not evaluated in this run)",
            "",
            "**Tuned**",
            "",
            _quote(after[i]),
            "",
        ]
    return "\n".join(lines)
