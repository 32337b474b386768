"""Training: one trainer for every generator (see :mod:`synth.training.trainer` for how to retrain at scale)."""

from synth.training.config import DataConfig, TrainConfig, load_train_config
from synth.training.trainer import Trainer, TrainingError, train_from_config

__all__ = ["DataConfig", "TrainConfig", "Trainer", "TrainingError", "load_train_config", "train_from_config"]
