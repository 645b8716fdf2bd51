"""Datasets: ``dgm.data.get(name, split, root, **options)`` returns a ``TensorData``,
which describes itself in a typed ``DataInfo`` (``data.info``); each dataset's options
are a dataclass of ``dgm.data.options``.

Image data (Fashion-MNIST, MNIST, sklearn's 8x8 digits), 2-D toy densities, binned
categorical tables (``wine_bins``, ``breast_cancer_bins``) and the user's own files
(``tensors``, ``images``, ``csv``, ``csv_categorical``) register themselves on import;
Fashion-MNIST with captions (``fashion_mnist_text``, ``fashion_mnist_captions``) too.

Transitions of gymnasium's classic-control environments (``transitions``: x = Δs, c =
(s, a)) are the data of dynamics models for model-based control.

Nothing outside pip is needed: ``words`` ships in the dependency ``english-words``.
Fashion-MNIST and ``fortunes`` read optional Debian packages when present;
``DGM_SYSTEM_DATA=off`` hides those files, ``require`` makes the tests that need them fail
rather than skip (``dgm.data.system``).
"""

from dgm.data import (  # noqa: F401  (registers)
    captions,
    files,
    images,
    ood,
    sequences,
    shards,
    tabular,
    text,
    toy,
    transitions,
)
from dgm.data.config import DataConfig
from dgm.data.dataset import (
    SPLITS,
    DataInfo,
    TensorData,
    available_datasets,
    data_info,
    dataset_options,
    get,
    register_dataset,
)

__all__ = [
    "SPLITS",
    "DataConfig",
    "DataInfo",
    "TensorData",
    "available_datasets",
    "data_info",
    "dataset_options",
    "get",
    "register_dataset",
]
