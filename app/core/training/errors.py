"""The trainer's errors that a user can fix; the shells print them as one line.

All are ValueErrors, so a caller that only knows "bad input" still catches them.
"""

from __future__ import annotations

from app.core.errors import InvalidInput


class TrainingError(InvalidInput):
    """A run that cannot start as asked (e.g. a run folder that already holds another run)."""


class TrainDataError(TrainingError):
    """Training data that cannot be used; the message names the file and the lines."""


class BaseModelError(TrainingError):
    """A base model that cannot be found, converted or loaded; the message says which and why."""
