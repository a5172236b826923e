"""TRL's SFTTrainer, configured explicitly, with Sprout's loss mask and progress reports.

Every argument that changes the result is set here from `TrainParams`; nothing is left to
TRL's or transformers' defaults, which move between releases (TRL 1.16 turns on gradient
checkpointing and bf16 and sets lr 2e-5 behind the caller's back).

Response-only loss, two ways, picked by the chat template:
- the template marks assistant turns with `{% generation %}` (Sprout's Gemma template
  does): conversations go in as `messages` with `assistant_only_loss`, so every assistant
  turn is trained, its end-of-turn token included;
- it does not (most templates shipped with models): each conversation goes in as a
  conversational prompt-completion pair, and TRL trains on the tokens after the rendered
  prompt (`add_generation_prompt=True`), i.e. the final answer and its end-of-turn token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from transformers import TrainerCallback

from app.core.training.config import TrainParams
from app.core.training.data import Conversation

MaskMode = Literal["assistant", "completion", "none"]


def mask_mode(tokenizer: Any, params: TrainParams) -> MaskMode:
    """How the loss is restricted to responses for this tokenizer's chat template."""
    from trl.chat_template_utils import has_generation_markers

    if not params.response_only_loss:
        return "none"
    return "assistant" if has_generation_markers(tokenizer.chat_template) else "completion"


def to_dataset(conversations: Sequence[Conversation], mode: MaskMode) -> Any:
    """A `datasets.Dataset` in the shape TRL expects for the mask mode."""
    from datasets import Dataset

    if mode == "completion":
        rows = [{"prompt": c[:-1], "completion": c[-1:]} for c in conversations]
    else:
        rows = [{"messages": c} for c in conversations]
    return Dataset.from_list(rows)


def precision_flags(params: TrainParams) -> tuple[bool, bool]:
    """(bf16, fp16) mixed-precision flags; 'auto' is bf16 on a GPU that has it, fp32 elsewhere."""
    import torch

    if params.precision == "auto":
        return (torch.cuda.is_available() and torch.cuda.is_bf16_supported(), False)
    if params.precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("precision 'fp16' needs a GPU; use 'bf16' or 'fp32' on a CPU")
    return params.precision == "bf16", params.precision == "fp16"


def sft_config(params: TrainParams, output_dir: Path, mode: MaskMode, **overrides: Any) -> Any:
    """The SFTConfig for `params`, every setting that matters spelled out."""
    import torch
    from trl import SFTConfig

    bf16, fp16 = precision_flags(params)
    # transformers 5.2x renamed gradient checkpointing; passing the old name warns.
    checkpointing = (
        "activation_checkpointing" if "activation_checkpointing" in SFTConfig.__dataclass_fields__
        else "gradient_checkpointing"
    )
    per_device, accumulation = params.batch_size, params.gradient_accumulation_steps
    if params.packing and "flash" not in params.attn_implementation:
        # Packed rows are flattened into one sequence per micro-batch. A varlen (flash) kernel
        # keeps attention inside each example for free; SDPA and eager get a dense
        # block-diagonal mask whose cost grows with the square of the flattened length
        # (8 rows of 512: 3x slower than no packing on CPU). One packed row per micro-step,
        # accumulated to the same number of rows per optimizer step, keeps it at max_length.
        per_device, accumulation = 1, params.batch_size * params.gradient_accumulation_steps
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        # schedule and optimizer
        num_train_epochs=params.epochs,
        max_steps=params.max_steps,
        learning_rate=params.resolved_learning_rate,
        lr_scheduler_type=params.lr_scheduler,
        warmup_steps=params.warmup_ratio,  # a float below 1 is a fraction of the steps
        weight_decay=params.weight_decay,
        optim="adamw_torch",
        adam_beta1=params.adam_beta1,
        adam_beta2=params.adam_beta2,
        adam_epsilon=params.adam_epsilon,
        max_grad_norm=params.max_grad_norm,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=params.batch_size,
        gradient_accumulation_steps=accumulation,
        bf16=bf16,
        fp16=fp16,
        # a machine without a GPU must say so: transformers then allows bf16 autocast on the
        # CPU, and data-parallel processes (torchrun, accelerate launch) instead of one each
        use_cpu=not _has_accelerator(),
        seed=params.seed,
        data_seed=params.seed,
        # data
        max_length=params.max_length,
        truncation_mode="keep_start",
        packing=params.packing,
        packing_strategy="bfd",  # best-fit decreasing: no example is cut across two sequences
        padding_free=params.packing,  # packed rows are flattened; the mask comes from position_ids
        eval_packing=False,  # held-out loss is per example, comparable across runs
        pad_to_multiple_of=None,
        shuffle_dataset=False,  # the sampler shuffles every epoch (seeded)
        assistant_only_loss=mode == "assistant",
        completion_only_loss=mode == "completion",
        loss_type="nll",
        dataset_num_proc=None,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        # bookkeeping
        logging_strategy="steps",
        logging_steps=params.logging_steps,
        logging_first_step=True,
        eval_strategy="no",  # evaluated before and after training by the caller
        save_strategy="steps",
        save_steps=params.save_steps,
        save_total_limit=params.save_total_limit,
        save_only_model=False,  # optimizer and scheduler state: the run can resume
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,
        use_liger_kernel=False,
        activation_offloading=False,
    )
    kwargs[checkpointing] = params.gradient_checkpointing
    kwargs.update(overrides)
    return SFTConfig(**kwargs)


def _has_accelerator() -> bool:
    import torch

    xpu = getattr(torch, "xpu", None)
    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(xpu and xpu.is_available()) or bool(mps and mps.is_available())


def lora_config(params: TrainParams) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        task_type="CAUSAL_LM",
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        target_modules=params.lora_target_modules,
        bias="none",
    )


class ProgressCallback(TrainerCallback):
    """Reports each optimizer step as a dict: step, max_steps, loss, tokens_per_s, eta_s.

    On a logging step the report waits for the log, so that it carries that step's loss.
    """

    def __init__(self, progress: Callable[[dict[str, Any]], None]):
        self.progress = progress
        self.loss: float | None = None
        self.tokens0 = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.t0 = time.monotonic()
        self.step0 = state.global_step
        self.tokens0 = state.num_input_tokens_seen

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if not control.should_log:  # set by DefaultFlowCallback, which runs first
            self._report(state)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])
            self._report(state)

    def _report(self, state: Any) -> None:
        if not state.is_world_process_zero:
            return
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        done = state.global_step - self.step0
        self.progress(
            {
                "stage": "train",
                "step": state.global_step,
                "max_steps": state.max_steps,
                "epoch": state.epoch,
                "loss": self.loss,
                "tokens_per_s": (state.num_input_tokens_seen - self.tokens0) / elapsed,
                "eta_s": elapsed / done * (state.max_steps - state.global_step) if done else None,
            }
        )


class MetricsLogCallback(TrainerCallback):
    """Appends every log line of the trainer (loss, lr, grad norm, tokens) to a JSONL file."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
        if logs and state.is_world_process_zero:
            phase = "eval" if any(k.startswith("eval_") for k in logs) else "train"
            write_jsonl_line(self.path, {"phase": phase, "step": state.global_step, **logs})


def write_jsonl_line(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")


def build_trainer(
    params: TrainParams,
    model: Any,
    tokenizer: Any,
    train: Sequence[Conversation],
    held_out: Sequence[Conversation],
    output_dir: Path,
    callbacks: Sequence[Any] = (),
    **config_overrides: Any,
) -> Any:
    """An SFTTrainer over `train` (and `held_out` for the loss), LoRA or full per `params`."""
    from trl import SFTTrainer

    mode = mask_mode(tokenizer, params)
    return SFTTrainer(
        model=model,
        args=sft_config(params, output_dir, mode, **config_overrides),
        train_dataset=to_dataset(train, mode),
        eval_dataset=to_dataset(held_out, mode) if held_out else None,
        processing_class=tokenizer,
        peft_config=lora_config(params) if params.method == "lora" else None,
        callbacks=list(callbacks),
    )
