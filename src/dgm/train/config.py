"""The trainer's configuration: one dataclass, stored in config.json, one CLI flag per field."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from dgm.config import from_dict, option


@dataclasses.dataclass
class TrainConfig:
    steps: int = 1000  # total optimisation steps (one batch per phase call)
    batch_size: int = 128  # examples per step, per process
    lr: float = 1e-3  # peak learning rate, reached after the warm-up
    weight_decay: float = 0.0  # AdamW's decoupled weight decay (0: plain Adam)
    # Which parameters weight_decay shrinks: "matrices", the weights of >= 2 dims that are
    # not embedding tables (biases and norm scales are left alone, as nanoGPT does), or
    # "all". A config.json written before this field existed resumes with "all", what it
    # trained with (``saved_config``).
    weight_decay_on: Literal["matrices", "all"] = "matrices"  # matrices: no biases/norms/embeddings
    adam_betas: tuple[float, ...] = (0.9, 0.999)  # Adam's β1,β2 (GANs often use 0.5,0.999)
    warmup_steps: int = option(100, minimum=0)  # steps of linear learning-rate warm-up from 0
    decay_steps: int | None = None  # step where the cosine decay ends; none: --steps
    min_lr_ratio: float = 0.1  # the learning rate after the decay, as a fraction of --lr
    grad_clip: float | None = None  # clip the global gradient norm to this; none: no clipping
    ema_decay: float | None = None  # keep an EMA of the weights for eval/sample, e.g. 0.999
    eval_every: int = 1000  # steps between evaluations on the valid split (0 = never)
    # Early stopping: training ends, with a checkpoint, once this many evaluations in a row
    # found no lower valid NLL than the best (best.safetensors holds the best weights)
    patience: int = option(0, minimum=0)  # evaluations without a lower valid NLL (0: never stop)
    sample_every: int = 1000  # steps between sample pictures in samples/ (0 = never)
    sample_count: int = 0  # samples per picture in samples/; 0: 64 (1000 points for 2-D data)
    # the model's sample() options for those pictures, e.g. {"sampler": "ddim", "steps": 50}
    # (`dgm train` flags --sample-sampler, --sample-steps, ...)
    sample_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    log_every: int = 100  # steps between metrics.jsonl lines
    checkpoint_every: int = 1000  # steps between checkpoints (and always at the end)
    # DataLoader worker processes that read --data shards (0: the training process reads);
    # none: chosen from the cores (dgm.train.stream.default_workers)
    workers: int | None = None  # worker processes reading --data shards; none: from the cores
    # How processes share --data shards: "shards", each its own shards (each maps 1/N of
    # the files: what scales to many machines), or "rows", rank r takes rows r::N of the
    # batches of one process with N x --batch-size (the same batches and, for a loss
    # without noise, the same losses as that one process; each rank reads every shard)
    rank_split: Literal["shards", "rows"] = "shards"  # shards: own shards; rows: r::N of one order
    seed: int = 0  # seeds init, data order and sampling: a run is repeatable
    device: Literal["cpu", "cuda", "auto"] = "auto"  # auto = CUDA when present
    amp: bool = True  # bf16 autocast on CUDA (ignored on the CPU)

    def __post_init__(self) -> None:
        if self.sample_count < 0:
            raise ValueError(f"sample_count must be >= 0 (0: the default), got {self.sample_count}")
        for name in ("steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0: no worker processes), got {self.workers}")
        if self.patience and not self.eval_every:
            raise ValueError(
                f"patience {self.patience} counts evaluations, but eval_every is 0 (never): "
                "set eval_every, e.g. one epoch of steps"
            )
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive (or none), got {self.grad_clip}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1) (or none), got {self.ema_decay}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` at ``step`` (0-based): linear warm-up, cosine decay to
        ``min_lr_ratio`` at ``decay_steps``, constant after."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        horizon = self.decay_steps if self.decay_steps is not None else self.steps
        if step >= horizon or horizon <= self.warmup_steps:
            return self.min_lr_ratio
        progress = (step - self.warmup_steps) / (horizon - self.warmup_steps)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )


def saved_config(values: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of a run's config.json "train" entry. One written before
    ``weight_decay_on`` existed decayed every parameter: it gets ``"all"``, so a resumed run
    goes on exactly as it started (and its optimizer state keeps its groups)."""
    return from_dict(TrainConfig, {"weight_decay_on": "all", **values})
