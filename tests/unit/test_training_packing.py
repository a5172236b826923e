"""Packing keeps every document to itself: several documents per row, several rows per
micro-step, `position_ids` restarting at each document, and no attention across them.

The reference is computed without packing and without the trainer: each example alone
through the plain model, its per-token losses from the full logits. The packed side is
the trainer's own batch through the trainer's own forward (TRL's fused LM head). They must
agree within 1e-4 in fp32, which fails if one document can see another (checked: the same
rows with positions that do not restart give a different loss).
"""

from __future__ import annotations

import json
import logging

import pytest
import torch

from app.core.llm.embedded import server_chat_template
from app.core.training import TrainParams, run_training
from app.core.training.base_model import load_model_and_tokenizer
from app.core.training.data import rows_to_conversations
from app.core.training.packing import PackedRowsCollator
from app.core.training.trainer import build_trainer
from tests.training_fixtures import TOY_ROWS, tiny_model_dir  # noqa: F401  (fixture)
from tests.unit.test_training_mask import CONVERSATIONS, _expected_labels

# Documents of different lengths: single-turn rows, a multi-turn one with a system prompt.
DOCUMENTS = rows_to_conversations(TOY_ROWS) + CONVERSATIONS


def _trainer(model_dir, tmp_path, template=None, **params):
    model, tokenizer = load_model_and_tokenizer(model_dir, torch.float32, "sdpa")
    if template is not None:
        tokenizer.chat_template = template
    p = TrainParams(base_model=str(model_dir), method="full", max_steps=1, packing=True, batch_size=2,
                    max_length=96, **params)
    return build_trainer(p, model, tokenizer, DOCUMENTS, [], tmp_path / "ckpt"), tokenizer


def _segments(position_ids: list[int], width: int) -> list[tuple[int, int]]:
    """(start, end) of each document in a row: where the positions restart at 0."""
    starts = [i for i, p in enumerate(position_ids) if p == 0]
    return list(zip(starts, starts[1:] + [width]))


def _batches(trainer) -> list[dict]:
    return list(trainer.get_train_dataloader())


def test_packed_rows_hold_several_documents_each_and_several_rows_per_step(tiny_model_dir, tmp_path):
    trainer, tokenizer = _trainer(tiny_model_dir, tmp_path)
    assert trainer.runtime_plan.packing_layout == "rows"
    assert trainer.args.per_device_train_batch_size == 2 and trainer.args.gradient_accumulation_steps == 1
    batches = _batches(trainer)
    assert all("attention_mask" not in b for b in batches)  # the mask comes from the positions
    assert max(b["input_ids"].shape[0] for b in batches) == 2
    documents = 0
    for batch in batches:
        for row, positions in zip(batch["input_ids"], batch["position_ids"].tolist(), strict=True):
            real = int((row != tokenizer.pad_token_id).sum())
            segments = _segments(positions[:real], real)
            assert len(segments) >= 2  # several documents per row
            documents += len(segments)
    assert documents == len(DOCUMENTS)  # every document once, none cut


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_losses_equal_the_unpacked_losses(tiny_model_dir, tmp_path, attention):
    trainer, tokenizer = _trainer(tiny_model_dir, tmp_path)
    model = trainer.model
    model.set_attn_implementation(attention)
    model.eval()
    checked = 0
    leak = 0.0
    with torch.no_grad():
        for batch in _batches(trainer):
            packed = model(**batch, use_cache=False, fused_lm_head=True).log_probs  # (B, width - 1)
            # the same rows with positions that never restart: documents see each other
            flat = torch.arange(batch["input_ids"].shape[1]).expand_as(batch["input_ids"])
            leaky = model(**{**batch, "position_ids": flat}, use_cache=False, fused_lm_head=True).log_probs
            for b, positions in enumerate(batch["position_ids"].tolist()):
                real = int((batch["input_ids"][b] != tokenizer.pad_token_id).sum())
                for start, end in _segments(positions[:real], real):
                    ids = batch["input_ids"][b, start:end]
                    labels = batch["labels"][b, start:end]
                    alone = model(input_ids=ids[None], use_cache=False).logits[0, :-1]
                    reference = -torch.nn.functional.cross_entropy(alone, labels[1:], reduction="none")
                    mask = labels[1:] != -100
                    assert mask.any()
                    got = packed[b, start : end - 1]
                    ref_loss, got_loss = -reference[mask].mean(), -got[mask].mean()
                    assert abs(got_loss - ref_loss) < 1e-4, (start, float(got_loss), float(ref_loss))
                    torch.testing.assert_close(got[mask], reference[mask], atol=1e-4, rtol=0)
                    leak = max(leak, float((leaky[b, start : end - 1][mask] - reference[mask]).abs().max()))
                    checked += 1
    assert checked == len(DOCUMENTS)
    assert leak > 1e-3  # the comparison would catch cross-document attention


@pytest.mark.parametrize("template", [None, "server"])
def test_the_response_only_mask_survives_packing_token_by_token(tiny_model_dir, tmp_path, template):
    """Each packed document's labels are the ones computed from its own rendering (every
    assistant turn with the Gemma template, the final answer with a template without
    generation markers); only its first token, a BOS that is never a target, is dropped."""
    trainer, tokenizer = _trainer(tiny_model_dir, tmp_path, template=server_chat_template() if template else None)
    only_last = template is not None
    expected = {}
    for conversation in DOCUMENTS:
        ids, labels = _expected_labels(tokenizer, conversation, only_last=only_last)
        expected[tuple(ids)] = labels
    seen = set()
    for batch in _batches(trainer):
        for b, positions in enumerate(batch["position_ids"].tolist()):
            real = int((batch["input_ids"][b] != tokenizer.pad_token_id).sum())
            assert all(label == -100 for label in batch["labels"][b, real:].tolist())  # padding is never trained
            for start, end in _segments(positions[:real], real):
                ids = tuple(batch["input_ids"][b, start:end].tolist())
                labels = batch["labels"][b, start:end].tolist()
                want = expected[ids]
                assert ids[0] == tokenizer.bos_token_id and want[0] == -100
                for position, (got, wanted) in enumerate(zip(labels, want, strict=True)):
                    assert got == wanted, f"position {position} ({tokenizer.decode([ids[position]])!r})"
                seen.add(ids)
    assert seen == set(expected)


def test_the_collator_restarts_positions_and_never_trains_across_documents():
    collate = PackedRowsCollator(pad_token_id=0)
    batch = collate([
        {"input_ids": [5, 6, 7, 8, 9], "labels": [5, 6, 7, 8, 9], "seq_lengths": [3, 2]},
        {"input_ids": [4, 3, 2], "labels": [-100, 3, 2], "seq_lengths": [3]},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [4, 3, 2, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 4]]
    # the second document's first token is not predicted from the first document; padding is no target
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, 9], [-100, 3, 2, -100, -100]]
    with pytest.raises(ValueError, match="seq_lengths sum to 4, the row holds 5 tokens"):
        collate([{"input_ids": [1, 2, 3, 4, 5], "seq_lengths": [2, 2]}])


def test_a_packed_run_reports_its_runtime_and_skips_liger_on_a_cpu(tiny_model_dir, tmp_path, caplog):
    out = tmp_path / "run"
    params = TrainParams(base_model=str(tiny_model_dir), method="full", max_steps=2, packing=True, batch_size=2,
                         max_length=96, eval_fraction=0.0, eval_max_tasks=0, logging_steps=1, save_steps=1000)
    assert params.use_liger_kernel  # asked for; the machine has no CUDA device
    with caplog.at_level(logging.INFO, logger="sprout.training"):
        metrics = run_training(params, TOY_ROWS + TOY_ROWS[:4], out)

    runtime = metrics["runtime"]
    assert runtime["liger"] is False and runtime["liger_reason"] == "liger: skipped, no CUDA device"
    assert runtime["device"] == "cpu" and runtime["attention"] == "sdpa" and runtime["packing_layout"] == "rows"
    assert runtime["micro_batch_size"] == 2 and runtime["optimizer"] == "adamw_torch"
    assert runtime["gradient_checkpointing"] is False
    assert "liger: skipped, no CUDA device" in caplog.messages
    assert any(m.startswith("attention: sdpa") for m in caplog.messages)

    config = json.loads((out / "train_config.json").read_text())
    assert config["runtime"] == runtime and config["trainer_args"]["use_liger_kernel"] is False
    assert "liger: skipped, no CUDA device" in (out / "report.md").read_text()
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert log[0]["phase"] == "runtime" and log[0]["liger_reason"] == "liger: skipped, no CUDA device"
    # TRL's token count knows the stacked rows: it matches the trainer's non-padding count
    steps = [r for r in log if r["phase"] == "train" and "num_tokens" in r]
    assert steps and all(r["num_tokens"] == r["num_input_tokens_seen"] for r in steps)
