"""Sprout: grow seed tasks into a curated instruction-tuning dataset, and train on it."""

__version__ = "0.1.0"
