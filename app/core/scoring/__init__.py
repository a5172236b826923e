"""LLM-judge scores: a quality and a complexity score per example (Deita / AlpaGasus).

`judge.Judge` asks any OpenAI-compatible model for a 1-6 score per aspect;
`answers` reads its answer strictly and, with log-probabilities, as an expected score.
Nothing here touches SQL: the `score` job kind stores what the judge says.
"""

from app.core.scoring.answers import expected_score, parse_score
from app.core.scoring.judge import ASPECTS, Judge, JudgeScore

__all__ = ["ASPECTS", "Judge", "JudgeScore", "expected_score", "parse_score"]
