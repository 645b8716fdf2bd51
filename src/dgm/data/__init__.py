"""Datasets: ``dgm.data.get(name, split, root, **options)`` returns a ``TensorData``.

Image data (Fashion-MNIST, MNIST, sklearn's 8x8 digits), 2-D toy densities and the
user's own files (``tensors``, ``images``, ``csv``) register themselves on import.
"""

from dgm.data import files, images, text, toy  # noqa: F401  (registers the datasets)
from dgm.data.config import DataConfig
from dgm.data.dataset import (
    SPLITS,
    TensorData,
    available_datasets,
    dataset_options,
    get,
    register_dataset,
)

__all__ = [
    "SPLITS",
    "DataConfig",
    "TensorData",
    "available_datasets",
    "dataset_options",
    "get",
    "register_dataset",
]
