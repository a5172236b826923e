"""ROUGE-L exactly as `rouge_score.rouge_scorer` computes it (no stemmer).

Tokenization gives rouge-score's tokens exactly (its own function, run as one regex
substitution and a split: after the substitution only [a-z0-9] runs and spaces remain,
so its final validity filter has nothing left to drop; a test compares the two);
the LCS comes from rapidfuzz (compiled) instead of rouge-score's Python DP table, and the
F-measure is computed with the same floating-point expression, so a score at the
threshold rounds the same way and every accept/reject decision matches.
"""

from __future__ import annotations

import numpy as np
from rapidfuzz.distance import LCSseq
from rouge_score.tokenize import NON_ALPHANUM_RE


def tokenize(text: str) -> list[str]:
    """rouge-score's DefaultTokenizer(use_stemmer=False), about 3x faster."""
    tokens: list[str] = NON_ALPHANUM_RE.sub(" ", text.lower()).split()  # (rouge-score ships no types)
    return tokens


def lcs_length(a: list[str], b: list[str]) -> int:
    return LCSseq.similarity(a, b)


def f_from_lcs(lcs: int, target_len: int, prediction_len: int) -> float:
    """rouge-score's `_score_lcs` F-measure from an LCS length."""
    if not target_len or not prediction_len:
        return 0.0
    precision = lcs / prediction_len
    recall = lcs / target_len
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l(target: list[str], prediction: list[str]) -> float:
    """ROUGE-L F-measure of two token lists."""
    if not target or not prediction:
        return 0.0
    return f_from_lcs(lcs_length(target, prediction), len(target), len(prediction))


def f_from_lcs_array(lcs: np.ndarray, target_len: int, prediction_len: np.ndarray) -> np.ndarray:
    """`f_from_lcs` over arrays, with the same float64 operations in the same order.

    IEEE division and multiplication are correctly rounded in numpy as in Python, so
    each element equals `f_from_lcs(lcs[i], target_len, prediction_len[i])` bit for bit.
    """
    lcs = np.asarray(lcs, dtype=np.float64)
    if not target_len:
        return np.zeros(lcs.shape, dtype=np.float64)
    pred = np.asarray(prediction_len, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = lcs / pred
        recall = lcs / float(target_len)
        total = precision + recall
        f = 2 * precision * recall / total
    return np.where((pred > 0) & (total > 0), f, 0.0)
