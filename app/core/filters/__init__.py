"""Filters that decide a candidate's fate: heuristics, ROUGE-L novelty, near-duplicates."""
