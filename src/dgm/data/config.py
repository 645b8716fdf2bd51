"""What a run trains on, as stored in config.json and set by the CLI's data flags."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from dgm.data.dataset import TensorData, get


@dataclasses.dataclass
class DataConfig:
    """A dataset name plus the options given for it; ``None`` keeps the loader's default."""

    name: str = "digits"
    root: str | None = None  # the data's folder or file (--data-root)
    binarize: Literal["none", "static", "dynamic"] | None = None  # images: binary pixels
    scale: Literal["unit", "byte"] | None = None  # images: [0, 1] floats or {0..255}
    valid_fraction: float | None = None  # share of the train split held out for validation
    test_fraction: float | None = None  # your files: share held out as the test split
    data_seed: int | None = None  # seeds the split, static binarization and toy sampling
    num_samples: int | None = None  # toy 2-D densities: examples per split
    condition: Literal["none", "lowres"] | None = None  # images: lowres adds c = the pooled image
    lowres_factor: int | None = None  # images: pooling factor of the lowres context (default 4)
    image_size: int | None = None  # your pictures: resized to this square size (default 32)
    channels: int | None = None  # your pictures: 1 grey, 3 RGB, 0 detect (default)
    label_column: str | None = None  # your CSV: the column holding class labels
    block_size: int | None = None  # text: characters per sequence (text 64, words 16)
    env: str | None = None  # transitions: the gymnasium environment (Pendulum-v1, CartPole-v1)
    episodes: int | None = None  # transitions: random-policy episodes per split (default 50)

    def options(self) -> dict[str, Any]:
        """Loader options that were given (``data_seed`` is the loaders' ``seed``)."""
        fields = dataclasses.asdict(self)
        fields["seed"] = fields.pop("data_seed")
        return {k: v for k, v in fields.items() if k not in ("name", "root") and v is not None}

    def load(self, split: str) -> TensorData:
        return get(self.name, split, self.root, **self.options())
