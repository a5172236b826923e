"""The dataset card: `README.md` with the Hugging Face Hub's YAML header and a body a
reviewer reads before training on the data.

The header (`card_metadata`) carries license, language, task_categories, size_categories,
tags and `configs` (the Parquet folder; without one, the JSON files, messages first), so
the Hub's viewer and `datasets.load_dataset(folder)` read the bundle as it is. The body says where every
row came from: the source (a job, or a dataset version with its parent, content hash and
diff), the recipe and its parameters, the models and their decoding settings, the seed
set and its sha256, counts by method and by rejection rule, the files with their
checksums, the preflight result, a dataset version's gated training run (once decided),
and how to load the data with `datasets`, TRL,
LLaMA-Factory and axolotl. Unknown facts are left out, never made up.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from app.core import diversity_card
from app.core.handoff.formats import PARQUET_DIR, WrittenFile
from app.core.handoff.meta import HandoffMeta, RowStats
from app.core.handoff.preflight import PreflightReport
from app.core.handoff.trainer_configs import entry_name

SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))
CONFIG_NAMES = {"parquet": "parquet", "alpaca": "alpaca", "sharegpt": "sharegpt", "messages": "messages",
                "prompt-completion": "prompt_completion"}
METHOD_TAGS = {"self_instruct": "self-instruct", "evol_instruct": "evol-instruct"}


def size_category(rows: int) -> str:
    for bound, name in SIZE_CATEGORIES:
        if rows < bound:
            return name
    return "n>1B"


def _data_files(written: WrittenFile) -> str:
    return f"{PARQUET_DIR}/train-*" if written.format == "parquet" else written.name


def card_metadata(meta: HandoffMeta, stats: RowStats, files: list[WrittenFile]) -> dict[str, Any]:
    """The YAML header: what the Hub indexes, and the configs `datasets` loads."""
    tags = ["synthetic", "sprout", "instruction-tuning"]
    tags += [METHOD_TAGS.get(m, m.replace("_", "-")) for m in stats.by_method]
    tags += [t for t in meta.tags if t not in tags]
    # `datasets` picks one builder per repository from the first config's files, so the
    # configs are the Parquet folder alone when there is one, else the JSON files (one
    # builder reads JSON lists and JSONL alike); the default comes first.
    parquet = [f for f in files if f.format == "parquet"]
    chosen = parquet or [f for f in files if f.format == "messages"] + [f for f in files if f.format != "messages"]
    configs = []
    for i, written in enumerate(chosen):
        config: dict[str, Any] = {"config_name": "default" if i == 0 else CONFIG_NAMES[written.format],
                                  "data_files": [{"split": "train", "path": _data_files(written)}]}
        configs.append(config)
    out: dict[str, Any] = {
        "license": meta.license,
        "language": list(meta.language),
        "task_categories": ["text-generation"],
        "size_categories": [size_category(stats.rows)],
        "tags": list(dict.fromkeys(tags)),
        "pretty_name": meta.title or meta.name,
    }
    if configs:
        out["configs"] = configs
    return out


def _code(lang: str, text: str) -> list[str]:
    return [f"```{lang}", text.rstrip("\n"), "```"]


def render_card(meta: HandoffMeta, stats: RowStats, files: list[WrittenFile], checksums: dict[str, str],
                preflight: PreflightReport | None, has_axolotl: bool = True,
                diversity: dict[str, Any] | None = None) -> str:
    """The whole `README.md`. `checksums` maps a file's path in the bundle to its sha256."""
    front = yaml.safe_dump(card_metadata(meta, stats, files), sort_keys=False, allow_unicode=True)
    title = meta.title or meta.name
    lines = ["---", front.rstrip("\n"), "---", "", f"# {title}", ""]
    if meta.description:
        lines += [meta.description, ""]
    lines += [f"{stats.rows} instruction-tuning examples grown by Sprout from human-written seed tasks. "
              "Every row keeps where it came from: `id` (the example's id at the source), `method`, `job_id`, "
              "`lineage` (Evol-Instruct: the chain of instructions from the root) and `scores` "
              "(the novelty filter's ROUGE-L against the pool, and the LLM judge's 1-6 `quality` and `complexity` "
              "with the `judge` model's name when the examples were scored).", ""]

    lines += ["## Source", ""]
    source: list[tuple[str, str | int]] = [("source", f"{meta.source_kind} {meta.source_id}")]
    if meta.version is not None:
        source.append(("version", meta.version))
    if meta.parent_version is not None:
        source.append(("parent version", meta.parent_version))
    if meta.content_hash:
        source.append(("content hash", f"`{meta.content_hash}`"))
    if meta.diff is not None:
        source.append(("diff to the parent", ", ".join(f"{k} {v}" for k, v in meta.diff.items()) or "none"))
    source.append(("rows sha256", f"`{stats.sha256}`"))
    if meta.created_at is not None:
        source.append(("created", meta.created_at.isoformat(timespec="seconds")))
    lines += diversity_card.table(("", ""), source) + [""]

    if meta.recipe:
        lines += ["## Recipe", ""]
        method = meta.recipe.get("method")
        if method:
            lines += [f"Method: **{method}**.", ""]
        params = meta.recipe.get("params")
        if params:
            lines += ["Parameters:", ""] + _code("json", json.dumps(params, indent=2, ensure_ascii=False, default=str))
            lines += [""]
        extra = {k: v for k, v in meta.recipe.items() if k not in ("method", "params")}
        for key, value in extra.items():
            lines += [f"- {key}: {diversity_card.cell(value)}"]
        if extra:
            lines += [""]

    if meta.models:
        lines += ["## Models and decoding", ""]
        lines += diversity_card.table(("model", "role", "decoding"),
                        [(m.name, m.role, ", ".join(f"{k}={v}" for k, v in m.decoding.items()) or None)
                         for m in meta.models]) + [""]

    if meta.seed_set is not None:
        s = meta.seed_set
        lines += ["## Seed set", "",
                  f"{s.name}" + (f" (id {s.id})" if s.id is not None else "") + f": {s.tasks} tasks, "
                  f"sha256 `{s.sha256}` (canonical JSON of the tasks).", ""]

    lines += ["## Counts", ""]
    lines += diversity_card.table(("method", "rows"), [(m, n) for m, n in sorted(stats.by_method.items())] + [("total", stats.rows)])
    lines += [""]
    if stats.conversations:
        lines += [f"{stats.conversations} of the rows are multi-turn conversations (up to {stats.most_exchanges} "
                  "user-assistant exchanges; the later turns in `turns`). `messages`, `sharegpt` and the Parquet "
                  "`messages` column carry every turn; `prompt-completion` gives the conversation up to its last "
                  "answer as the prompt and that answer as the completion; `alpaca` has no place for turns and "
                  "holds only each conversation's first exchange.", ""]
    if meta.rejections:
        total = sum(meta.rejections.values())
        lines += ["Candidates rejected on the way, by rule:", ""]
        lines += diversity_card.table(("rule", "rejected"),
                        [(rule, n) for rule, n in sorted(meta.rejections.items(), key=lambda kv: (-kv[1], kv[0]))]
                        + [("total", total)]) + [""]

    if diversity and diversity["overall"]["rows"]:
        lines += diversity_card.section(diversity)
    lines += ["## Files", ""]
    file_rows: list[tuple[str, str, int | None, str | None]] = []  # file, format, rows, sha256
    for written in files:
        if written.format == "parquet":
            file_rows.append((f"`{PARQUET_DIR}/`", "parquet", written.rows, f"{len(written.shards)} shard(s) below"))
            file_rows += [(f"`{PARQUET_DIR}/{shard}`", "parquet shard", None, checksums.get(f"{PARQUET_DIR}/{shard}"))
                          for shard in written.shards]
        else:
            file_rows.append((f"`{written.name}`", written.format, written.rows, checksums.get(written.name)))
    for extra_file in ("dataset_info.json", "axolotl.yaml", "preflight.json"):
        if extra_file in checksums:
            file_rows.append((f"`{extra_file}`", "config" if extra_file != "preflight.json" else "report", None,
                              checksums[extra_file]))
    lines += diversity_card.table(("file", "format", "rows", "sha256"), file_rows) + [""]

    if preflight is not None:
        lines += ["## Preflight check", "", preflight.summary() + f" (chat template: {preflight.template}; "
                  f"loss mask: {preflight.mask_mode}).", ""]
        lines += diversity_card.table(("check", "result", "rows"),
                        [(c.name, "pass" if c.ok else "FAIL", c.failures or c.warnings or None)
                         for c in preflight.checks]) + [""]
        shown = preflight.problems[:10]
        if shown:
            lines += ["First problems (all are in `preflight.json`):", ""] + [f"- {p}" for p in shown] + [""]

    if meta.training:
        lines += _training(meta.training)
    lines += _loading(meta, files, has_axolotl)
    return "\n".join(lines) + "\n"


def _training(run: dict[str, Any]) -> list[str]:
    """The version's gated training run: its figures beside the baseline's, and the verdict."""
    gate = run.get("gate") or {}
    lines = ["## Training gate", "",
             f"Training job {run.get('job_id')} ({run.get('status')}) on this version; gate tag `{gate.get('tag')}`: "
             f"{gate.get('decision') or 'not decided yet'}."]
    if gate.get("baseline_version") is not None:
        lines[-1] += f" Compared with the run on version {gate['baseline_version']} (job {gate.get('baseline_job_id')})."
    lines += [f"Evaluation tasks: sha256 `{gate.get('eval_sha256')}` (the same tasks for every run it is compared "
              "with).", ""]
    table = gate.get("table") or []
    if table:
        lines += diversity_card.table(("metric", "previous", "new", "delta", "better", "tolerance", "verdict"),
                        [tuple(row.get(k) for k in ("metric", "previous", "new", "delta", "better", "tolerance",
                                                    "verdict")) for row in table]) + [""]
    return lines


def _loading(meta: HandoffMeta, files: list[WrittenFile], has_axolotl: bool) -> list[str]:
    formats = {f.format: f for f in files}
    lines = ["## How to load", "", "With `datasets` (from this folder, or its Hub repository):", ""]
    snippet = ['from datasets import load_dataset', '', 'ds = load_dataset("path/to/this/folder", split="train")']
    if "parquet" in formats:
        snippet += ['ds = load_dataset("parquet", data_dir="path/to/this/folder/data", split="train")']
    lines += _code("python", "\n".join(snippet)) + [""]
    if "messages" in formats:
        # the conversations, not prompt_completion.jsonl: TRL applies no chat template to plain strings
        lines += ["With TRL's `SFTTrainer` (the conversations, the chat template applied, loss on the assistant "
                  "turns and their end-of-turn token):", ""]
        lines += _code("python", "\n".join([
            "from datasets import load_dataset",
            "from trl import SFTConfig, SFTTrainer",
            "",
            f'train = load_dataset("json", data_files="{formats["messages"].name}", split="train")',
            'trainer = SFTTrainer(model="google/gemma-3-270m", train_dataset=train,',
            '                     args=SFTConfig(output_dir="out", assistant_only_loss=True))',
            "trainer.train()",
        ])) + [""]
    names = [entry_name(meta.name, f.format) for f in files]
    if names:
        preferred = entry_name(meta.name, "sharegpt") if "sharegpt" in formats else names[0]
        lines += ["With LLaMA-Factory: this folder holds `dataset_info.json`; point `dataset_dir` at it and name an "
                  f"entry ({', '.join(f'`{n}`' for n in names)}):", ""]
        lines += _code("yaml", "\n".join([
            "dataset_dir: path/to/this/folder",
            f"dataset: {preferred}",
            "template: gemma",
            "cutoff_len: 1024",
        ])) + [""]
    if has_axolotl:
        lines += ["With axolotl: `axolotl.yaml` holds the `datasets:` entry (`type: chat_template`, loss on the "
                  "assistant turns); paste it into your config.", ""]
    return lines
