"""TrainParams and the SFTConfig built from it: literature defaults, nothing left to TRL."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core.training.config import TrainParams
from app.core.training.trainer import sft_config


def test_defaults_follow_the_literature():
    lora, full = TrainParams(), TrainParams(method="full")
    assert lora.method == "lora" and lora.base_model == "default"
    assert lora.resolved_learning_rate == 2e-4 and full.resolved_learning_rate == 2e-5
    assert TrainParams(learning_rate=5e-5).resolved_learning_rate == 5e-5
    assert lora.epochs == 3 and lora.lr_scheduler == "cosine" and lora.warmup_ratio == 0.03
    assert lora.lora_r == 16 and lora.lora_alpha == 32 and lora.lora_target_modules == "all-linear"
    assert lora.response_only_loss and not lora.packing
    # machine-dependent choices are decided per run (runtime.py): off on a CPU
    assert lora.gradient_checkpointing == "auto" and lora.attn_implementation == "auto"
    assert lora.micro_batch_size is None and lora.use_liger_kernel is True


def test_bad_settings_are_refused():
    with pytest.raises(ValidationError):
        TrainParams(lr=1e-4)  # unknown key: a typo is an error, not a silent default
    with pytest.raises(ValidationError):
        TrainParams(method="qlora")
    with pytest.raises(ValidationError):
        TrainParams(eval_fraction=1.0)
    assert TrainParams.model_validate_json('{"method": "full", "epochs": 2}').epochs == 2
    with pytest.raises(ValidationError, match="micro_batch_size 3 must divide batch_size 8"):
        TrainParams(micro_batch_size=3)
    # settings written before these fields existed still validate
    old = TrainParams(gradient_checkpointing=False, attn_implementation="sdpa")
    assert old.gradient_checkpointing is False and old.attn_implementation == "sdpa"


def test_sft_config_overrides_trl_defaults(tmp_path):
    args = sft_config(TrainParams(method="full"), tmp_path, "assistant")
    assert args.learning_rate == 2e-5 and args.num_train_epochs == 3
    assert args.gradient_checkpointing is False  # TRL 1.16 turns it on by default
    assert args.bf16 is False and args.fp16 is False  # TRL turns bf16 on; fp32 on a CPU
    assert args.max_length == 1024 and args.packing is False and args.padding_free is False
    assert args.assistant_only_loss is True and args.completion_only_loss is False
    assert args.lr_scheduler_type.value == "cosine" and args.weight_decay == 0.0 and args.max_grad_norm == 1.0
    assert args.per_device_train_batch_size == 8 and args.gradient_accumulation_steps == 1
    assert args.seed == 42 and args.data_seed == 42 and args.report_to == []
    assert args.save_only_model is False  # optimizer state is kept so that runs resume


def test_packing_runs_batch_size_rows_per_micro_step(tmp_path):
    params = TrainParams(packing=True, batch_size=4, gradient_accumulation_steps=2)
    args = sft_config(params, tmp_path, "assistant")
    assert args.packing and args.padding_free and args.packing_strategy == "bfd"
    assert args.per_device_train_batch_size == 4 and args.gradient_accumulation_steps == 2
    assert args.eval_packing is False
    flash = sft_config(params.model_copy(update={"attn_implementation": "flash_attention_2"}), tmp_path, "assistant")
    assert flash.per_device_train_batch_size == 4 and flash.gradient_accumulation_steps == 2


def test_a_micro_batch_accumulates_to_the_same_rows_per_step(tmp_path):
    params = TrainParams(batch_size=8, micro_batch_size=2, gradient_accumulation_steps=3)
    args = sft_config(params, tmp_path, "assistant")
    assert args.per_device_train_batch_size == 2 and args.gradient_accumulation_steps == 12


def test_cpu_runs_plain_adamw_without_liger(tmp_path):
    args = sft_config(TrainParams(), tmp_path, "assistant")
    assert args.optim.value == "adamw_torch" and args.use_liger_kernel is False


def test_bf16_autocast_on_a_cpu(tmp_path):
    args = sft_config(TrainParams(precision="bf16"), tmp_path, "assistant")
    assert args.bf16 is True and args.use_cpu is True
