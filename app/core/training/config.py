"""Every setting of one fine-tuning run, with defaults from the literature.

TRL and transformers change their defaults between releases (TRL 1.16's `SFTConfig` turns
on gradient checkpointing and bf16 and uses lr 2e-5 for every method), so the trainer
passes each of these explicitly instead of inheriting anything. Sources of the defaults:
Stanford Alpaca's recipe (3 epochs, cosine schedule, 3% warm-up, no weight decay, lr 2e-5
for full fine-tuning) and the LoRA / QLoRA papers and PEFT practice (lr 1e-4..2e-4, rank
16, alpha 2 x rank, all linear layers).

The same model is the validated parameters of a `sft` job (API, CLI) and of
`run_training()`, so a typo or an out-of-range value is refused before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Method = Literal["lora", "full"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


class TrainParams(BaseModel):
    """Parameters of one supervised fine-tuning run."""

    model_config = ConfigDict(extra="forbid")

    # --- what to train --------------------------------------------------------------------
    base_model: str = Field(
        default="default",
        description="'default' (the embedded Gemma 3 270M), a Hugging Face model folder, or a GGUF file "
        "(converted once, cached by its sha256).",
    )
    method: Method = Field(default="lora", description="'lora' (an adapter) or 'full' (every weight).")
    model_cache_dir: Path | None = Field(
        default=None,
        description="Where converted GGUF models are kept. Default: `<SPROUT_DATA_DIR>/hf-models`.",
    )
    attn_implementation: str = Field(
        default="auto",
        description="Attention kernel: 'auto' (flash-attention on a CUDA GPU in bf16/fp16 when installed, else "
        "'sdpa'), 'sdpa' (PyTorch), 'eager', 'flex_attention' (GPU) or 'flash_attention_2'.",
    )

    # --- optimisation ---------------------------------------------------------------------
    epochs: float = Field(default=3.0, gt=0, le=100, description="Passes over the training split (2..5 usual).")
    max_steps: int = Field(default=-1, ge=-1, description="Stop after this many optimizer steps; -1: use `epochs`.")
    learning_rate: float | None = Field(
        default=None, gt=0, le=1, description="Peak learning rate; unset: `lora_learning_rate` or `full_learning_rate`."
    )
    lora_learning_rate: float = Field(default=2e-4, gt=0, le=1, description="Default peak lr for LoRA (1e-4..2e-4).")
    full_learning_rate: float = Field(default=2e-5, gt=0, le=1, description="Default peak lr for full FT (1e-5..5e-5).")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        default="cosine", description="Learning-rate schedule after warm-up."
    )
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1, description="Fraction of the steps spent warming up.")
    weight_decay: float = Field(default=0.0, ge=0, le=1, description="AdamW weight decay.")
    adam_beta1: float = Field(default=0.9, ge=0, lt=1, description="AdamW beta1.")
    adam_beta2: float = Field(default=0.999, ge=0, lt=1, description="AdamW beta2.")
    adam_epsilon: float = Field(default=1e-8, gt=0, description="AdamW epsilon.")
    max_grad_norm: float = Field(default=1.0, ge=0, description="Gradient clipping; 0 disables it.")
    batch_size: int = Field(
        default=8, ge=1, le=4096,
        description="Sequences per device per step (with packing: packed rows of up to `max_length` tokens).",
    )
    micro_batch_size: int | None = Field(
        default=None, ge=1, le=4096,
        description="Sequences per forward pass, a divisor of `batch_size` (the rest is accumulated, so a step "
        "sees the same rows). Unset: all at once on a CPU; on a CUDA GPU as many as a memory estimate allows.",
    )
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=4096, description="Micro-batches per optimizer step.")
    gradient_checkpointing: bool | Literal["auto"] = Field(
        default="auto",
        description="Recompute activations in backward: less memory, ~20-30% slower. 'auto': off, unless on a "
        "CUDA GPU not one sequence of `max_length` fits without it (memory estimate).",
    )
    precision: Precision = Field(
        default="auto", description="'auto': bf16 on a GPU that supports it, fp32 otherwise."
    )
    use_liger_kernel: bool = Field(
        default=True,
        description="Liger's Triton kernels (RMSNorm, SwiGLU, RoPE) on a CUDA GPU when liger-kernel is installed; "
        "never on a CPU. The run's log and metrics say whether they were used and why not.",
    )
    seed: int = Field(default=42, description="Seeds the split, the adapter init, the data order and dropout.")

    # --- data -----------------------------------------------------------------------------
    max_length: int = Field(default=1024, ge=16, le=131072, description="Tokens per sequence (truncated beyond).")
    packing: bool = Field(
        default=False,
        description="Pack several examples into each sequence (best-fit decreasing, no padding; position ids "
        "restart at each example, so attention stays within it).",
    )
    response_only_loss: bool = Field(
        default=True, description="Loss on the assistant's tokens only (the prompt is context, not target)."
    )
    eval_fraction: float = Field(
        default=0.1, ge=0, lt=1, description="Share of rows held out for the loss evaluation (hash-based split)."
    )
    held_out_file: Path | None = Field(
        default=None,
        description="A file of rows (any export format, or an Alpaca JSON list) the held-out loss is measured on "
        "instead of a split of the data (every row then trains, `eval_fraction` is not used): runs on different "
        "data are measured on the same rows.",
    )

    # --- LoRA -----------------------------------------------------------------------------
    lora_r: int = Field(default=16, ge=1, le=1024, description="LoRA rank.")
    lora_alpha: int = Field(default=32, ge=1, le=4096, description="LoRA scaling (alpha).")
    lora_dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the LoRA branch.")
    lora_target_modules: str | list[str] = Field(
        default="all-linear", description="'all-linear' or a list of module names (e.g. q_proj, v_proj)."
    )
    merge_lora: bool = Field(default=False, description="Also save the base model with the adapter merged in.")

    # --- evaluation -----------------------------------------------------------------------
    eval_tasks: Path | None = Field(
        default=None,
        description="Seed-format file (Self-Instruct JSONL, Alpaca JSON, CSV) whose instances are the "
        "instruction-following test. Default: seeds/default.jsonl, else the Self-Instruct seed tasks.",
    )
    eval_before: bool = Field(
        default=True,
        description="Measure the base model before training (held-out loss, ROUGE-L); off: the `*_before` figures "
        "are None (a study that trains several runs from one base measures the base once).",
    )
    eval_max_tasks: int = Field(default=20, ge=0, le=10000, description="Instances generated and scored; 0: none.")
    eval_max_new_tokens: int = Field(default=128, ge=1, le=8192, description="Greedy decoding bound per answer.")
    eval_batch_size: int = Field(default=8, ge=1, le=1024, description="Prompts generated together during evaluation.")
    report_samples: int = Field(default=5, ge=0, le=1000, description="Side-by-side samples in report.md.")

    # --- bookkeeping ----------------------------------------------------------------------
    logging_steps: int = Field(default=10, ge=1, description="Steps between two lines of metrics.jsonl.")
    save_steps: int = Field(default=200, ge=1, description="Steps between two resumable checkpoints.")
    save_total_limit: int = Field(default=2, ge=1, description="Checkpoints kept on disk.")
    resume: bool = Field(default=False, description="Continue from the latest checkpoint in the run folder.")
    torch_threads: int = Field(default=0, ge=0, le=1024, description="CPU threads for torch; 0 leaves torch's choice.")

    @model_validator(mode="after")
    def _micro_batch_divides_batch(self) -> TrainParams:
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"micro_batch_size {self.micro_batch_size} must divide batch_size {self.batch_size}"
            )
        return self

    @property
    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return self.lora_learning_rate if self.method == "lora" else self.full_learning_rate
