"""SFT throughput: the built-in trainer, with and without packing, against a plain PyTorch loop.

One run, same model (a random Llama built from a config), same tokenized data, same batch
size, optimizer, learning rate and precision. The plain loop is the baseline: forward with
labels, backward, clip, AdamW step; nothing else. The trainer without packing is fed the
same batches in the same order (sequential sampling over a pre-shuffled dataset), so its
overhead is measured on identical work. With packing, examples are packed best-fit into
`max_length` rows and flattened (no padding at all).

Printed per configuration: real (non-padding) tokens/s, all tokens/s, padding waste (pad
tokens / all tokens in the batches), seconds per step over the timed steps (the first
`--warmup` steps are not timed). Targets: trainer overhead <= 10 % over the plain loop on
CPU; padding waste < 5 % with packing.

On a GPU it also trains a 1B-parameter Llama-shaped model (random weights, bf16 autocast,
SDPA attention) and prints MFU = 6 * N * tokens/s (+ attention) / peak bf16 FLOP/s.

    .venv/bin/python benchmarks/sft_throughput.py            # CPU figures, 1 torch thread
    .venv/bin/python benchmarks/sft_throughput.py --threads 2 --steps 60
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core.prompts import gemma_chat_template  # noqa: E402
from app.core.training.config import TrainParams  # noqa: E402
from app.core.training.data import rows_to_conversations  # noqa: E402

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]

# Peak dense bf16 tensor FLOP/s, for MFU (override with --peak-tflops).
PEAK_BF16_TFLOPS = {"H100 PCIe": 756, "H100": 989, "H200": 989, "B200": 2250, "A100": 312, "L40S": 362,
                    "L40": 181, "L4": 121, "A10G": 70, "A10": 125, "RTX 4090": 165}


# --- data and model -------------------------------------------------------------------------
def synthetic_rows(n: int, seed: int, scale: float = 1.0) -> list[dict[str, str]]:
    """Instruction rows whose answer lengths follow a long-tailed (log-normal) distribution,
    like curated instruction data: most answers short, a few long ones that set the padding."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ren", "tu", "sa", "vel", "no", "ri", "dak", "po", "le", "shi", "mar", "to"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(600)]

    def text(k: int) -> str:
        return " ".join(rng.choice(words) for _ in range(k)).capitalize() + "."

    rows = []
    for _ in range(n):
        answer_words = int(min(max(math.exp(rng.gauss(3.6, 0.9)), 3), 300) * scale)
        rows.append({
            "instruction": text(rng.randint(5, 20)),
            "input": text(rng.randint(5, 40)) if rng.random() < 0.4 else "",
            "output": text(answer_words),
        })
    return rows


def build_tokenizer(rows: list[dict[str, str]], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator((r["instruction"] + " " + r["input"] + " " + r["output"] for r in rows), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    tokenizer.chat_template = gemma_chat_template()
    return tokenizer


def build_model(config_kwargs: dict[str, Any], tokenizer: Any, seed: int, device: str) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, attn_implementation="sdpa", **config_kwargs,
    )
    return LlamaForCausalLM(config).to(device)


def n_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


# --- the plain loop (the baseline) ------------------------------------------------------------
def tokenize(tokenizer: Any, conversations: list[Any], max_length: int) -> list[tuple[list[int], list[int]]]:
    """input_ids and labels (assistant tokens only) per conversation, truncated to max_length."""
    out = []
    for conv in conversations:
        enc = tokenizer.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        ids = enc["input_ids"][:max_length]
        labels = [t if m else -100 for t, m in zip(ids, enc["assistant_masks"][:max_length])]
        out.append((ids, labels))
    return out


def pad_batches(examples: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int) -> list[dict[str, Any]]:
    batches = []
    for start in range(0, len(examples) - batch_size + 1, batch_size):
        chunk = examples[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        batches.append({
            "input_ids": torch.tensor([ids + [pad_id] * (width - len(ids)) for ids, _ in chunk]),
            "labels": torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chunk]),
            "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk]),
        })
    return batches


def plain_loop(model: Any, batches: list[dict[str, Any]], params: TrainParams, steps: int, device: str,
               bf16: bool) -> dict[str, Any]:
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params.resolved_learning_rate, betas=(params.adam_beta1, params.adam_beta2),
        eps=params.adam_epsilon, weight_decay=params.weight_decay,
    )
    model.train()
    marks, cpu_marks, losses = [], [], []
    for step in range(steps):
        batch = {k: v.to(device) for k, v in batches[step % len(batches)].items()}
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), params.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        marks.append(time.perf_counter())
        cpu_marks.append(time.process_time())
    real = [int(batches[s % len(batches)]["attention_mask"].sum()) for s in range(steps)]
    # over one epoch, like the trainer's figure
    waste = 1 - sum(int(b["attention_mask"].sum()) for b in batches) / sum(b["input_ids"].numel() for b in batches)
    return {"marks": marks, "cpu_marks": cpu_marks, "tokens": list(itertools.accumulate(real)), "waste": waste,
            "first_loss": losses[0]}


# --- the trainer --------------------------------------------------------------------------------
class StepClock:
    """Trainer callback: wall time and real tokens seen at the end of every optimizer step."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        clock = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
                clock.marks.append(time.perf_counter())
                clock.cpu_marks.append(time.process_time())
                clock.tokens.append(state.num_input_tokens_seen)

            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
                if logs and "loss" in logs and clock.first_loss is None:
                    clock.first_loss = logs["loss"]

        self.marks: list[float] = []
        self.cpu_marks: list[float] = []
        self.tokens: list[int] = []
        self.first_loss: float | None = None
        self.callback = _Callback()


def run_trainer(model: Any, tokenizer: Any, conversations: list[Any], params: TrainParams, steps: int,
                workdir: Path) -> dict[str, Any]:
    from transformers.trainer_callback import PrinterCallback

    from app.core.training.trainer import build_trainer

    clock = StepClock()
    trainer = build_trainer(
        params, model, tokenizer, conversations, [], workdir, callbacks=[clock.callback],
        train_sampling_strategy="sequential",  # the data is pre-shuffled: the plain loop sees the same order
        save_strategy="no",
    )
    trainer.remove_callback(PrinterCallback)
    # padding waste of the batches this trainer sees, over one epoch of its own dataloader
    real = total = 0
    for batch in trainer.get_train_dataloader():
        pad = batch["input_ids"] == tokenizer.pad_token_id  # the data itself never holds <pad>
        if "attention_mask" in batch:
            pad |= batch["attention_mask"] == 0
        total += batch["input_ids"].numel()
        real += batch["input_ids"].numel() - int(pad.sum())
    trainer.train()
    # real tokens come from the trainer's own count (non-padding input tokens)
    return {"marks": clock.marks, "cpu_marks": clock.cpu_marks, "tokens": clock.tokens, "waste": 1 - real / total,
            "first_loss": clock.first_loss}


def interleaved_step_cost(config: dict[str, Any], tokenizer: Any, conversations: list[Any], params: TrainParams,
                          batches: list[dict[str, Any]], steps: int, seed: int, workdir: Path) -> tuple[float, float]:
    """Median process CPU time of one forward+backward: plain `model(**batch).loss` against the
    trainer's `compute_loss` (fused LM head, loss, metrics) and backward, alternating step by step on the
    same batches, so that load from other work on the machine falls on both alike."""
    from app.core.training.trainer import build_trainer

    plain_model = build_model(config, tokenizer, seed, "cpu").train()
    trainer = build_trainer(params, build_model(config, tokenizer, seed, "cpu"), tokenizer, conversations, [], workdir,
                            train_sampling_strategy="sequential", save_strategy="no")
    trainer.model.train()
    plain, trl = [], []
    for step in range(steps):
        batch = batches[step % len(batches)]
        start = time.process_time()
        plain_model(**batch).loss.backward()
        plain.append(time.process_time() - start)
        plain_model.zero_grad(set_to_none=True)
        start = time.process_time()
        trainer.accelerator.backward(trainer.compute_loss(trainer.model, dict(batch)))
        trl.append(time.process_time() - start)
        trainer.model.zero_grad(set_to_none=True)
    return statistics.median(plain[2:]), statistics.median(trl[2:])


# --- figures --------------------------------------------------------------------------------------
def summarize(name: str, run: dict[str, Any], warmup: int) -> dict[str, Any]:
    marks, tokens = run["marks"], run["tokens"]
    seconds = marks[-1] - marks[warmup - 1]
    real = tokens[-1] - tokens[warmup - 1]
    return {
        "name": name, "seconds": seconds, "steps": len(marks) - warmup, "real_tps": real / seconds,
        "median_step": statistics.median(b - a for a, b in zip(marks[warmup - 1 :], marks[warmup:])),
        # CPU time of this process: what the work costs, whatever else the machine runs meanwhile
        "cpu_seconds": run["cpu_marks"][-1] - run["cpu_marks"][warmup - 1],
        "all_tps": real / seconds / (1 - run["waste"]), "waste": run["waste"],
        "per_step_real": [b - a for a, b in zip([0, *tokens], tokens)], "first_loss": run["first_loss"],
    }


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest repeat: other work on a shared machine only ever makes a run slower."""
    return min(runs, key=lambda r: r["seconds"])


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'':22} {'tokens/s (real)':>16} {'tokens/s (all)':>15} {'padding waste':>14} {'s/step':>8}")
    for r in rows:
        print(f"{r['name']:22} {r['real_tps']:16.0f} {r['all_tps']:15.0f} {100 * r['waste']:13.1f}% "
              f"{r['seconds'] / r['steps']:8.3f}")


def cpu_benchmark(args: argparse.Namespace) -> None:
    rows = synthetic_rows(args.rows, args.seed)
    random.Random(args.seed).shuffle(rows)
    conversations = rows_to_conversations(rows)
    tokenizer = build_tokenizer(rows, args.vocab)
    config = dict(vocab_size=len(tokenizer), hidden_size=args.hidden, intermediate_size=args.hidden * 8 // 3,
                  num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64,
                  num_key_value_heads=args.hidden // 64, max_position_embeddings=args.max_length * 2,
                  tie_word_embeddings=True)
    params = TrainParams(method="full", learning_rate=1e-4, lr_scheduler="constant", warmup_ratio=0.0,
                         batch_size=args.batch_size, max_length=args.max_length, precision="fp32", seed=args.seed)
    examples = tokenize(tokenizer, conversations, args.max_length)
    lengths = [len(ids) for ids, _ in examples]
    steps = args.steps + args.warmup
    print(f"model: random Llama, hidden {args.hidden}, {args.layers} layers, vocab {len(tokenizer)}, "
          f"{n_params(build_model(config, tokenizer, 0, 'cpu')) / 1e6:.1f}M parameters, fp32, SDPA")
    print(f"data: {len(examples)} examples, tokens per example mean {sum(lengths) / len(lengths):.0f}, "
          f"max {max(lengths)}; batch {args.batch_size}, max_length {args.max_length}; "
          f"{args.steps} timed steps after {args.warmup} warm-up, best of {args.repeats}; "
          f"torch threads {torch.get_num_threads()}")

    runs: dict[str, list[dict[str, Any]]] = {"plain PyTorch loop": [], "trainer": [], "trainer + packing": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):  # interleaved, so that a busy spell hits all three alike
            runs["plain PyTorch loop"].append(summarize("plain PyTorch loop", plain_loop(
                build_model(config, tokenizer, args.seed, "cpu"),
                pad_batches(examples, args.batch_size, tokenizer.pad_token_id), params, steps, "cpu", bf16=False,
            ), args.warmup))
            runs["trainer"].append(summarize("trainer", run_trainer(
                build_model(config, tokenizer, args.seed, "cpu"), tokenizer, conversations,
                params.model_copy(update={"max_steps": steps}), steps, Path(tmp) / f"a{repeat}",
            ), args.warmup))
            runs["trainer + packing"].append(summarize("trainer + packing", run_trainer(
                build_model(config, tokenizer, args.seed, "cpu"), tokenizer, conversations,
                params.model_copy(update={"max_steps": steps, "packing": True}), steps, Path(tmp) / f"b{repeat}",
            ), args.warmup))
    figures = [best_of(r) for r in runs.values()]
    print_table(figures)
    plain, trainer, packing = figures
    assert plain["per_step_real"] == trainer["per_step_real"], "the trainer and the plain loop must see the same batches"
    print(f"first-step loss: plain loop {plain['first_loss']:.4f}, trainer {trainer['first_loss']:.4f} "
          "(same model, same first batch)")

    def least(name: str, key: str) -> float:
        return min(r[key] for r in runs[name])

    print(f"trainer overhead over the plain loop (same batches, best of {args.repeats} each):")
    for key, label in (("seconds", "wall time"), ("median_step", "median step wall time"),
                       ("cpu_seconds", "process CPU time")):
        print(f"  {label:22} {100 * (least('trainer', key) / least('plain PyTorch loop', key) - 1):+6.1f}%   "
              "per repeat: " + ", ".join(f"{100 * (t[key] / p[key] - 1):+.1f}%"
                                         for p, t in zip(runs["plain PyTorch loop"], runs["trainer"])))
    with tempfile.TemporaryDirectory() as tmp:
        plain_step, trainer_step = interleaved_step_cost(
            config, tokenizer, conversations, params.model_copy(update={"max_steps": steps}),
            pad_batches(examples, args.batch_size, tokenizer.pad_token_id), 2 * args.steps, args.seed, Path(tmp),
        )
    print(f"  forward+backward alone, interleaved step by step ({2 * args.steps} steps, median CPU time): "
          f"plain {plain_step:.3f} s, trainer {trainer_step:.3f} s: {100 * (trainer_step / plain_step - 1):+.1f}%")
    print("  target: <= +10%. On a shared machine the end-to-end figures move with other work; the interleaved "
          "one does not")
    print(f"padding waste with packing: {100 * packing['waste']:.1f}% (target < 5%); "
          f"without: {100 * trainer['waste']:.1f}%")
    print(f"packing speed-up in real tokens/s: x{packing['real_tps'] / trainer['real_tps']:.2f}")


# Llama 3.2 1B's shape (1.24B parameters with tied embeddings).
LLAMA_1B = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                rope_theta=500000.0, tie_word_embeddings=True)


def peak_tflops(args: argparse.Namespace, device_name: str) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in device_name:
            return float(value)
    return None


def gpu_benchmark(args: argparse.Namespace, device: str = "cuda", config: dict[str, Any] = LLAMA_1B) -> None:
    """MFU of a 1B Llama-shaped model, random weights, bf16 autocast (fp32 master weights), SDPA."""
    rows = synthetic_rows(args.gpu_rows, args.seed, scale=4.0)
    random.Random(args.seed).shuffle(rows)
    conversations = rows_to_conversations(rows)
    tokenizer = build_tokenizer(rows, args.vocab)
    params = TrainParams(method="full", learning_rate=1e-5, lr_scheduler="constant", warmup_ratio=0.0,
                         batch_size=args.gpu_batch_size, max_length=args.gpu_max_length, precision="bf16",
                         seed=args.seed)
    examples = tokenize(tokenizer, conversations, args.gpu_max_length)
    steps = args.gpu_steps + args.warmup
    with torch.device("meta"):  # count the parameters without allocating them
        n = n_params(build_model(config, tokenizer, args.seed, "meta"))
    device_name = torch.cuda.get_device_name() if device == "cuda" else device
    peak = peak_tflops(args, device_name)
    print(f"\nGPU: {device_name}; model: Llama-shaped, {n / 1e9:.2f}B parameters, bf16 autocast, "
          f"SDPA; batch {args.gpu_batch_size}, max_length {args.gpu_max_length}")

    def flops_per_token(mean_len: float) -> float:
        # 6N for the matmuls (forward + backward) plus causal attention (scores and values)
        return 6 * n + 6 * config["num_hidden_layers"] * config["hidden_size"] * mean_len

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [
            ("plain PyTorch loop", lambda: plain_loop(
                build_model(config, tokenizer, args.seed, device),
                pad_batches(examples, args.gpu_batch_size, tokenizer.pad_token_id), params, steps, device, True)),
            ("trainer", lambda: run_trainer(
                build_model(config, tokenizer, args.seed, device), tokenizer, conversations,
                params.model_copy(update={"max_steps": steps}), steps, Path(tmp) / "a")),
            ("trainer + packing", lambda: run_trainer(
                build_model(config, tokenizer, args.seed, device), tokenizer, conversations,
                params.model_copy(update={"max_steps": steps, "packing": True}), steps, Path(tmp) / "b")),
        ]
        for name, run in runs:
            sync()
            results.append(summarize(name, run(), args.warmup))
            gc.collect()  # the trainer holds reference cycles; free the previous model before the next
            if device == "cuda":
                torch.cuda.empty_cache()
    print_table(results)
    mean_len = sum(len(ids) for ids, _ in examples) / len(examples)
    for r in results:
        achieved = r["real_tps"] * flops_per_token(mean_len) / 1e12
        mfu = f"MFU {100 * achieved / peak:.1f}% of {peak:.0f} TFLOP/s" if peak else "MFU: pass --peak-tflops"
        print(f"{r['name']:22} {achieved:7.3f} TFLOP/s achieved (useful tokens only); {mfu}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (set explicitly: default 1)")
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each configuration (the best counts)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gpu-rows", type=int, default=2048)
    ap.add_argument("--gpu-steps", type=int, default=30)
    ap.add_argument("--gpu-batch-size", type=int, default=4)
    ap.add_argument("--gpu-max-length", type=int, default=2048)
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s of the GPU, for MFU")
    ap.add_argument("--skip-cpu", action="store_true", help="only the GPU part")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from datasets import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()
    if not args.skip_cpu:
        cpu_benchmark(args)
    if torch.cuda.is_available():
        gpu_benchmark(args)
    else:
        print("\nno GPU: the MFU figure of the 1B model needs one (it runs when torch.cuda.is_available())")


if __name__ == "__main__":
    main()
