"""Training: one loop for every model, run directories, checkpoints, several processes."""

from dgm.train.config import TrainConfig
from dgm.train.run import resume, train
from dgm.train.trainer import Trainer, TrainingDiverged

__all__ = ["TrainConfig", "Trainer", "TrainingDiverged", "resume", "train"]
