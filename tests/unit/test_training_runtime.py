"""The runtime plan: each machine-dependent choice and its reason.

The GPU branches cannot run on a CPU; their decisions are pure functions of what the
machine reports (device, installed packages, free memory), so they are checked here with
the figures an H100 reports, and the CPU branch is checked on this machine as it is.
"""

from __future__ import annotations

import pytest
import torch

from app.core.training import TrainingError, TrainParams
from app.core.training.runtime import (
    GIB,
    choose_attention,
    liger_decision,
    packing_layout,
    plan_memory,
    plan_runtime,
)

# Llama-3.2-1B's shape (tied embeddings): 1.24B parameters, 16 layers, hidden 2048.
LLAMA_1B = dict(n_params=1_235_814_400, layers=16, hidden=2048)
H100_FREE = int(79.1 * GIB)


def test_liger_is_never_used_off_a_cuda_device():
    assert liger_decision(True, "cpu", True, "llama", frozenset({"llama"})) == (
        False, "liger: skipped, no CUDA device")
    assert liger_decision(True, "mps", True, "llama", None)[0] is False
    assert liger_decision(False, "cuda", True, "llama", frozenset({"llama"})) == (
        False, "liger: skipped, turned off (use_liger_kernel=false)")
    assert liger_decision(True, "cuda", False, "llama", None) == (
        False, "liger: skipped, liger-kernel is not installed")
    assert liger_decision(True, "cuda", True, "bert", frozenset({"llama"})) == (
        False, "liger: skipped, no Liger kernels for model type 'bert'")
    used, reason = liger_decision(True, "cuda", True, "llama", frozenset({"llama"}))
    assert used and reason.startswith("liger: on")


def test_attention_auto_picks_a_varlen_kernel_only_where_it_runs():
    assert choose_attention("auto", "cpu", False, installed={"flash_attn"})[0] == "sdpa"
    assert choose_attention("auto", "cuda", True, installed=set())[0] == "sdpa"
    assert choose_attention("auto", "cuda", False, installed={"flash_attn"})[0] == "sdpa"  # fp32: no flash
    assert choose_attention("auto", "cuda", True, installed={"flash_attn"})[0] == "flash_attention_2"
    assert choose_attention("auto", "cuda", True, installed={"flash_attn", "flash_attn_interface"})[0] == (
        "flash_attention_3")
    assert choose_attention("eager", "cuda", True, installed={"flash_attn"}) == ("eager", "as set (attn_implementation)")


def test_packing_layout_follows_the_attention_kernel():
    assert packing_layout(False, "sdpa", "cpu") is None
    assert packing_layout(True, "sdpa", "cpu") == "rows"
    assert packing_layout(True, "eager", "cuda") == "rows"
    assert packing_layout(True, "flex_attention", "cuda") == "rows"
    assert packing_layout(True, "flash_attention_2", "cuda") == "flattened"
    with pytest.raises(TrainingError, match="'flex_attention' has no backward pass on a CPU"):
        packing_layout(True, "flex_attention", "cpu")


def test_memory_plan_fills_an_h100_with_the_1b_model():
    common = dict(free_bytes=H100_FREE, trainable_params=LLAMA_1B["n_params"], max_length=2048, half_precision=True)
    plan = plan_memory(**LLAMA_1B, **common, batch_size=8, liger=True)
    assert plan.micro_batch_size == 8 and not plan.gradient_checkpointing
    # measured on an H100 with these 8 x 2048 rows and Liger: 41.7 GiB peak
    assert plan.estimated_peak_gib == pytest.approx(41.7, rel=0.15)
    bigger = plan_memory(**LLAMA_1B, **common, batch_size=16, liger=False)
    assert bigger.micro_batch_size == 8 and not bigger.gradient_checkpointing  # 16 rows accumulate as 2 x 8
    assert bigger.estimated_peak_gib < 0.9 * 79.1


def test_memory_plan_turns_checkpointing_on_only_when_a_row_does_not_fit():
    small = dict(**LLAMA_1B, free_bytes=24 * GIB, max_length=2048, batch_size=8, half_precision=True, liger=False)
    full = plan_memory(**small, trainable_params=LLAMA_1B["n_params"])
    assert full.gradient_checkpointing and full.micro_batch_size == 1 and "may not fit" in full.reason
    lora = plan_memory(**small, trainable_params=11_000_000)  # LoRA: frozen weights, no optimizer state for them
    assert not lora.gradient_checkpointing and lora.micro_batch_size in (2, 4)
    tight = plan_memory(**{**small, "free_bytes": 9 * GIB, "max_length": 8192}, trainable_params=11_000_000)
    assert tight.gradient_checkpointing and tight.micro_batch_size >= 1


def test_the_cpu_plan_of_this_machine():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    assert not torch.cuda.is_available()
    plan = plan_runtime(TrainParams(packing=True, batch_size=4, gradient_accumulation_steps=2), model)
    assert (plan.device, plan.precision, plan.optimizer) == ("cpu", "fp32", "adamw_torch")
    assert plan.attention == "sdpa" and plan.packing_layout == "rows"
    assert (plan.micro_batch_size, plan.gradient_accumulation_steps, plan.gradient_checkpointing) == (4, 2, False)
    assert not plan.liger and plan.liger_reason == "liger: skipped, no CUDA device"
    assert plan.lines()[-1] == "liger: skipped, no CUDA device"
    micro = plan_runtime(TrainParams(batch_size=4, micro_batch_size=1, gradient_checkpointing=True), model)
    assert (micro.micro_batch_size, micro.gradient_accumulation_steps, micro.gradient_checkpointing) == (1, 4, True)
    with pytest.raises(TrainingError, match="fp16' needs a GPU"):
        plan_runtime(TrainParams(precision="fp16"), model)
