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
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from transformers import TrainerCallback
from trl.trainer.sft_trainer import SFTTrainer  # the module itself: `trl` re-exports it lazily, untyped

from app.core.training.config import TrainParams
from app.core.training.data import Conversation
from app.core.training.packing import PackedRowsCollator
from app.core.training.runtime import RuntimePlan, plan_runtime

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MaskMode = Literal["assistant", "completion", "none"]

# Liger kernels applied on a CUDA GPU (keyword arguments of liger's apply functions; the ones
# a model family lacks are dropped by liger). No fused linear cross-entropy: TRL 1.16 patches
# the model with its own chunked LM head, which never materializes the full logits either.
LIGER_KERNELS = {"rope": True, "rms_norm": True, "swiglu": True, "cross_entropy": False,
                 "fused_linear_cross_entropy": False}


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


def sft_config(
    params: TrainParams, output_dir: Path, mode: MaskMode, plan: RuntimePlan | None = None, **overrides: Any
) -> Any:
    """The SFTConfig for `params` on this machine (`plan`), every setting that matters spelled out."""
    import torch
    from trl.trainer.sft_config import SFTConfig

    plan = plan or plan_runtime(params)
    # transformers 5.2x renamed gradient checkpointing; passing the old name warns.
    checkpointing = (
        "activation_checkpointing" if "activation_checkpointing" in SFTConfig.__dataclass_fields__
        else "gradient_checkpointing"
    )
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        # schedule and optimizer
        num_train_epochs=params.epochs,
        max_steps=params.max_steps,
        learning_rate=params.resolved_learning_rate,
        lr_scheduler_type=params.lr_scheduler,
        warmup_steps=params.warmup_ratio,  # a float below 1 is a fraction of the steps
        weight_decay=params.weight_decay,
        optim=plan.optimizer,  # fused AdamW on a CUDA GPU
        adam_beta1=params.adam_beta1,
        adam_beta2=params.adam_beta2,
        adam_epsilon=params.adam_epsilon,
        max_grad_norm=params.max_grad_norm,
        # batch_size rows per device per optimizer step, in micro-batches that fit the memory
        per_device_train_batch_size=plan.micro_batch_size,
        per_device_eval_batch_size=plan.micro_batch_size,
        gradient_accumulation_steps=plan.gradient_accumulation_steps,
        bf16=plan.precision == "bf16",
        fp16=plan.precision == "fp16",
        # a machine without a GPU must say so: transformers then allows bf16 autocast on the
        # CPU, and data-parallel processes (torchrun, accelerate launch) instead of one each
        use_cpu=plan.device == "cpu",
        seed=params.seed,
        data_seed=params.seed,
        # data
        max_length=params.max_length,
        truncation_mode="keep_start",
        packing=params.packing,
        packing_strategy="bfd",  # best-fit decreasing: no example is cut across two sequences
        padding_free=params.packing,  # no padding; documents are told apart by their position_ids
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
        # Liger's layer kernels on a CUDA GPU only (see runtime.py); its fused linear
        # cross-entropy stays off: TRL's chunked LM head already never builds the full logits
        use_liger_kernel=plan.liger,
        liger_kernel_config=LIGER_KERNELS if plan.liger else None,
        activation_offloading=False,
    )
    kwargs[checkpointing] = plan.gradient_checkpointing
    kwargs.update(overrides)
    return SFTConfig(**kwargs)


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


class PackedRowsSFTTrainer(SFTTrainer):
    """TRL's SFTTrainer, whose `num_tokens` log also counts packed rows stacked in a batch.

    TRL takes a batch without an attention mask for one flattened row and counts its width;
    with B stacked rows (packing.py) that would log 1/B of the tokens.
    """

    runtime_plan: RuntimePlan  # set by `build_trainer`

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        counted = self._total_train_tokens
        parent: Callable[..., Any] = super().compute_loss  # TRL's, unannotated
        result = parent(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        ids = inputs["input_ids"]
        if self.model is not None and self.model.training and "attention_mask" not in inputs and ids.shape[0] > 1:
            tokenizer = cast("PreTrainedTokenizerBase", self.processing_class)  # build_trainer passes a tokenizer
            real = (ids != tokenizer.pad_token_id).sum()
            self._total_train_tokens = counted + self.accelerator.gather_for_metrics(real).sum().item() // self._tp_size
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return result


def build_trainer(
    params: TrainParams,
    model: Any,
    tokenizer: Any,
    train: Sequence[Conversation],
    held_out: Sequence[Conversation],
    output_dir: Path,
    callbacks: Sequence[Any] = (),
    plan: RuntimePlan | None = None,
    **config_overrides: Any,
) -> Any:
    """An SFTTrainer over `train` (and `held_out` for the loss), LoRA or full per `params`, set
    up for this machine by `plan` (computed from `params` and `model` when not given); the plan
    is kept as `trainer.runtime_plan`."""
    mode = mask_mode(tokenizer, params)
    plan = plan or plan_runtime(params, model)
    with warnings.catch_warnings():
        # TRL 1.16 marks use_liger_kernel as deprecated in favour of Hub kernels, which a machine
        # without internet cannot fetch; the flag still applies Liger through transformers
        warnings.filterwarnings("ignore", message=".*use_liger_kernel=True. is deprecated", category=FutureWarning)
        trainer = PackedRowsSFTTrainer(
            model=model,
            args=sft_config(params, output_dir, mode, plan, **config_overrides),
            train_dataset=to_dataset(train, mode),
            eval_dataset=to_dataset(held_out, mode) if held_out else None,
            processing_class=tokenizer,
            peft_config=lora_config(params) if params.method == "lora" else None,
            callbacks=list(callbacks),
        )
    if plan.packing_layout == "rows":
        # TRL refuses a custom collator with packing, and its own flattens the rows (see packing.py)
        trainer.data_collator = PackedRowsCollator(pad_token_id=tokenizer.pad_token_id)
    trainer.runtime_plan = plan
    return trainer
