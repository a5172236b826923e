"""How one run uses the machine: device, attention kernel, packing layout, Liger, optimizer,
micro-batch and activation checkpointing, decided once and written down.

Each choice depends on the machine (a CPU, a CUDA GPU, what is installed) and is easy to
get silently wrong: a packed batch with an attention kernel that ignores `position_ids`
trains documents on each other, Triton kernels have no CPU backend, and a micro-batch too
large for the card dies an hour in. So the choices are made here, with the reason for each,
and the run logs them and writes them into `metrics.json`, `train_config.json` and the report.

Packing layouts (several documents per row, `position_ids` restarting at each document):
- `rows`: B packed rows of up to `max_length` tokens per micro-step, no attention mask.
  transformers (5.x) turns restarting `position_ids` into a per-document causal mask for
  SDPA, eager and flex_attention, so no document attends to another; the mask's cost is
  B x max_length^2, as for an unpacked batch of the same shape.
- `flattened`: the B rows concatenated into one sequence (TRL's padding-free collator);
  varlen kernels (flash-attention) read the document boundaries from it at no cost.

The micro-batch on a CUDA GPU comes from a memory estimate calibrated on a measured run
(Llama-3.2-1B shape, full fine-tuning, bf16 autocast, fp32 master weights, 8 x 2048 rows:
41.7 GiB peak with Liger's kernels on an H100): weights and AdamW state take 4 bytes per
parameter plus 12 per trainable one, and activations about 48 bytes per layer x hidden
unit x token with Liger (72 without), twice that in fp32. Rows per micro-step are the most
that fit in 90% of free memory, less a reserve for the chunked LM head, and that divide
`batch_size` (so an optimizer step sees the same rows, accumulated). Activation
checkpointing goes on only when not even one row fits without it.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from app.core.training.config import TrainParams
from app.core.training.errors import TrainingError

log = logging.getLogger("sprout.training")

GIB = 1 << 30
# Bytes of activations kept for backward per layer, hidden unit and token (16-bit autocast).
ACTIVATION_BYTES_LIGER = 48
ACTIVATION_BYTES = 72
# Scratch beyond the estimate: the chunked LM head's tiles, allocator slack, CUDA context.
RESERVE_BYTES = 3 * GIB
MEMORY_FRACTION = 0.9

# Implementations that build a per-document mask from restarting position_ids (transformers'
# masking_utils), and so can take packed rows stacked in a batch.
MASK_BASED = ("sdpa", "eager", "flex_attention")


def detect_device() -> str:
    """'cuda', 'xpu', 'mps' or 'cpu': where the trainer will put the model."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        return "xpu"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def precision_flags(params: TrainParams, device: str | None = None) -> tuple[bool, bool]:
    """(bf16, fp16) mixed-precision flags; 'auto' is bf16 on a GPU that has it, fp32 elsewhere."""
    import torch

    device = device or detect_device()
    if params.precision == "auto":
        return (device == "cuda" and torch.cuda.is_bf16_supported(), False)
    if params.precision == "fp16" and device != "cuda":
        raise TrainingError("precision 'fp16' needs a GPU; use 'bf16' or 'fp32' on a CPU")
    return params.precision == "bf16", params.precision == "fp16"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def choose_attention(requested: str, device: str, half_precision: bool,
                     installed: Collection[str] | None = None) -> tuple[str, str]:
    """(implementation, reason). 'auto': flash-attention on a CUDA GPU in bf16/fp16 when it is
    installed (a varlen kernel: packed documents cost nothing extra), else PyTorch's SDPA.
    `installed`: the flash-attention modules present (default: looked up)."""
    if requested != "auto":
        return requested, "as set (attn_implementation)"
    if installed is None:
        installed = {m for m in ("flash_attn", "flash_attn_interface") if _installed(m)}
    if device == "cuda" and half_precision:
        if "flash_attn_interface" in installed:
            return "flash_attention_3", "auto: flash-attention 3 is installed, CUDA, 16-bit"
        if "flash_attn" in installed:
            return "flash_attention_2", "auto: flash-attention 2 is installed, CUDA, 16-bit"
        return "sdpa", "auto: flash-attention is not installed; SDPA with per-document masks"
    if device == "cuda":
        return "sdpa", "auto: fp32 training, flash-attention needs bf16/fp16"
    return "sdpa", f"auto: no CUDA device ({device})"


def packing_layout(packing: bool, attention: str, device: str) -> str | None:
    """None without packing; 'rows' for mask-based attention, 'flattened' for varlen kernels."""
    if not packing:
        return None
    if attention == "flex_attention" and device == "cpu":
        raise TrainingError(
            "attn_implementation 'flex_attention' has no backward pass on a CPU; use 'sdpa' (or 'auto') to train here"
        )
    return "rows" if attention in MASK_BASED else "flattened"


def liger_decision(enabled: bool, device: str, installed: bool, model_type: str | None,
                   supported_types: frozenset[str] | None) -> tuple[bool, str]:
    """(use Liger, reason). Liger's kernels are Triton: CUDA only, never a CPU."""
    if not enabled:
        return False, "liger: skipped, turned off (use_liger_kernel=false)"
    if device != "cuda":
        return False, "liger: skipped, no CUDA device"
    if not installed:
        return False, "liger: skipped, liger-kernel is not installed"
    if supported_types is not None and model_type is not None and model_type not in supported_types:
        return False, f"liger: skipped, no Liger kernels for model type {model_type!r}"
    return True, "liger: on (RMSNorm, SwiGLU, RoPE kernels; the loss is TRL's chunked LM head)"


def liger_model_types() -> frozenset[str] | None:
    """Model types liger-kernel can patch; None when it is not installed."""
    if not _installed("liger_kernel"):
        return None
    try:
        from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN
    except (ImportError, RuntimeError):  # a broken install (no Triton, say) is "not usable", not a crash
        return frozenset()
    return frozenset(MODEL_TYPE_TO_APPLY_LIGER_FN)


@dataclass(frozen=True)
class MemoryPlan:
    micro_batch_size: int
    gradient_checkpointing: bool
    reason: str
    estimated_peak_gib: float | None = None


def largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, max(1, min(n, limit)) + 1) if n % d == 0)


def plan_memory(*, free_bytes: int, n_params: int, trainable_params: int, layers: int, hidden: int,
                max_length: int, batch_size: int, half_precision: bool, liger: bool) -> MemoryPlan:
    """Rows per micro-step (a divisor of `batch_size`) and whether checkpointing is needed,
    from the estimate in the module docstring. Pure arithmetic: testable without a GPU."""
    states = 4 * n_params + 12 * trainable_params
    scale = 1 if half_precision else 2
    per_token = layers * hidden * (ACTIVATION_BYTES_LIGER if liger else ACTIVATION_BYTES) * scale
    budget = MEMORY_FRACTION * free_bytes - states - RESERVE_BYTES
    rows = int(budget // (per_token * max_length)) if budget > 0 else 0
    if rows >= 1:
        micro = largest_divisor_at_most(batch_size, rows)
        peak = (states + micro * max_length * per_token + RESERVE_BYTES) / GIB
        return MemoryPlan(micro, False, f"memory estimate: {rows} rows of {max_length} tokens fit; "
                          f"{micro} per micro-step (a divisor of batch_size {batch_size})", round(peak, 1))
    # checkpointing keeps one 16-bit (or fp32) hidden state per layer and token, plus one layer's activations
    per_token_ckpt = layers * hidden * 2 * scale + per_token // max(layers, 1)
    rows = int(budget // (per_token_ckpt * max_length)) if budget > 0 else 0
    micro = largest_divisor_at_most(batch_size, max(rows, 1))
    peak = (states + micro * max_length * per_token_ckpt + RESERVE_BYTES) / GIB
    note = "" if rows >= 1 else "; even that may not fit: lower max_length or use LoRA"
    return MemoryPlan(micro, True, f"memory estimate: not one row of {max_length} tokens fits without activation "
                      f"checkpointing; on, {micro} per micro-step{note}", round(peak, 1))


@dataclass(frozen=True)
class RuntimePlan:
    """Every machine-dependent choice of a run, with its reasons (see the module docstring)."""

    device: str
    precision: str
    attention: str
    attention_reason: str
    packing_layout: str | None
    micro_batch_size: int
    gradient_accumulation_steps: int
    gradient_checkpointing: bool
    memory_reason: str
    liger: bool
    liger_reason: str
    optimizer: str
    estimated_peak_gib: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        layout = {None: "off", "rows": "packed rows stacked per micro-step, per-document masks from position_ids",
                  "flattened": "packed rows flattened into one varlen sequence"}[self.packing_layout]
        return [
            f"device: {self.device}, precision {self.precision}, optimizer {self.optimizer}",
            f"attention: {self.attention} ({self.attention_reason})",
            f"packing: {layout}",
            (f"micro-batch: {self.micro_batch_size} rows x {self.gradient_accumulation_steps} accumulation; "
             f"activation checkpointing {'on' if self.gradient_checkpointing else 'off'} ({self.memory_reason})"),
            self.liger_reason,
        ]

    def log(self) -> None:
        for line in self.lines():
            log.info(line)


def _model_shape(model: Any) -> tuple[int, int, int]:
    """(parameters, layers, hidden size) of a causal LM, unwrapped from PEFT if need be."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    n = sum(p.numel() for p in model.parameters())
    return n, int(getattr(config, "num_hidden_layers", 1)), int(getattr(config, "hidden_size", 1))


def _lora_params(model: Any, rank: int) -> int:
    """Upper bound of a LoRA adapter's size: rank x (in + out) for every linear layer."""
    import torch

    return sum(rank * (m.in_features + m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear))


def plan_runtime(params: TrainParams, model: Any = None, device: str | None = None) -> RuntimePlan:
    """The plan for training `model` (already loaded, with its attention implementation) under
    `params`; without a model, what `params` alone decide (no memory estimate, no model type)."""
    device = device or detect_device()
    bf16, fp16 = precision_flags(params, device)
    precision = "bf16" if bf16 else "fp16" if fp16 else "fp32"
    attention, reason = choose_attention(params.attn_implementation, device, bf16 or fp16)
    on_model = getattr(model.config, "_attn_implementation", None) if model is not None else None
    if on_model and on_model != attention:
        reason = f"set on the model (attn_implementation {params.attn_implementation!r} would pick {attention})"
        attention = on_model
    layout = packing_layout(params.packing, attention, device)

    model_type = getattr(model.config, "model_type", None) if model is not None else None
    supported = liger_model_types()
    liger, liger_reason = liger_decision(params.use_liger_kernel, device, supported is not None, model_type, supported)

    checkpointing = params.gradient_checkpointing
    if params.micro_batch_size is not None:
        memory = MemoryPlan(params.micro_batch_size, checkpointing is True, "micro_batch_size as set")
    elif device == "cuda" and model is not None:
        import torch

        free, _ = torch.cuda.mem_get_info()
        n, layers, hidden = _model_shape(model)
        trainable = n if params.method == "full" else _lora_params(model, params.lora_r)
        memory = plan_memory(free_bytes=free, n_params=n, trainable_params=trainable, layers=layers, hidden=hidden,
                             max_length=params.max_length, batch_size=params.batch_size,
                             half_precision=bf16 or fp16, liger=liger)
        if isinstance(checkpointing, bool) and checkpointing != memory.gradient_checkpointing:  # else "auto"
            memory = MemoryPlan(memory.micro_batch_size, checkpointing, memory.reason + "; checkpointing as set",
                                memory.estimated_peak_gib)
    else:
        why = "no memory estimate without a model" if device == "cuda" else "no memory estimate off a CUDA device"
        memory = MemoryPlan(params.batch_size, checkpointing is True, f"{why}: batch_size rows at once"
                            + ("; checkpointing as set" if checkpointing is True else ""))
    return RuntimePlan(
        device=device,
        precision=precision,
        attention=attention,
        attention_reason=reason,
        packing_layout=layout,
        micro_batch_size=memory.micro_batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps * params.batch_size // memory.micro_batch_size,
        gradient_checkpointing=memory.gradient_checkpointing,
        memory_reason=memory.reason,
        liger=liger,
        liger_reason=liger_reason,
        optimizer="adamw_torch_fused" if device == "cuda" else "adamw_torch",
        estimated_peak_gib=memory.estimated_peak_gib,
    )
