"""The built-in SFT trainer: TRL's SFTTrainer with LoRA or full fine-tuning, evaluated
before and after (held-out loss, ROUGE-L of greedy answers), written to a run folder.

Importing this package is cheap (no torch, no transformers): the API validates
`TrainParams` without loading the training stack; `run_training` loads it when called.
"""

from app.core.training.config import TrainParams
from app.core.training.errors import BaseModelError, TrainDataError, TrainingError
from app.core.training.run import run_training

__all__ = ["BaseModelError", "TrainDataError", "TrainParams", "TrainingError", "run_training"]
