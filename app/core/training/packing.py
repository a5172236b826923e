"""Packed rows stacked in a batch, documents kept apart by restarting `position_ids`.

TRL packs examples into rows of up to `max_length` tokens (best-fit decreasing, each row
recording its documents' lengths in `seq_lengths`) and, with its padding-free collator,
flattens all rows of a micro-batch into one sequence: right for varlen kernels
(flash-attention), but with SDPA or eager attention the per-document mask then grows with
the square of B x max_length. This collator keeps the rows: a (B, width) batch, no
attention mask, `position_ids` restarting at 0 at each document. transformers detects the
restarts and masks attention per document (masking_utils.find_packed_sequence_indices),
at the cost of an ordinary B x width batch.

Labels: a document's first token is never a target (it would be predicted from the end of
the previous document); the padding at the end of a short row is never a target, and its
positions continue the last document's, so a row holding one document stays a plain causal
row. Rows that are not packed (the held-out examples) are one document each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE = -100


def document_lengths(example: dict[str, Any]) -> list[int]:
    """Lengths of the documents in a row: TRL's `seq_lengths`, or the whole row."""
    lengths = example.get("seq_lengths")
    n = len(example["input_ids"])
    if not lengths:
        return [n]
    lengths = [int(x) for x in lengths]
    if sum(lengths) != n:
        raise ValueError(f"seq_lengths sum to {sum(lengths)}, the row holds {n} tokens")
    return lengths


@dataclass
class PackedRowsCollator:
    """Collates packed rows into `input_ids`, `labels` and `position_ids` of shape (B, width)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(e["input_ids"]) for e in examples)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = len(examples)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, width), IGNORE, dtype=torch.long)
        position_ids = torch.empty((batch, width), dtype=torch.long)
        for row, example in enumerate(examples):
            ids = example["input_ids"]
            n = len(ids)
            input_ids[row, :n] = torch.as_tensor(ids, dtype=torch.long)
            labels[row, :n] = torch.as_tensor(example.get("labels", ids), dtype=torch.long)
            start = 0
            for length in document_lengths(example):
                position_ids[row, start : start + length] = torch.arange(length)
                labels[row, start] = IGNORE
                start += length
            last = int(position_ids[row, n - 1]) if n else -1
            position_ids[row, n:] = torch.arange(last + 1, last + 1 + width - n)
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}
