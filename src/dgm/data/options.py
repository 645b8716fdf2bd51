"""Each dataset's options, one frozen dataclass per kind of loader.

A loader is registered with its options class (``register_dataset(name, summary,
options=ImageOptions)``) and called as ``load(split, root, options)``; ``dgm.data.get``
builds the options from keywords, so an option the dataset does not take is an error
naming the datasets that do. The field comments are the help of the ``dgm train`` data
flags (``seed`` is ``--data-seed`` there, apart from the trainer's ``--seed``). Values are
checked where they enter, in ``__post_init__``.

Example:
    >>> ImageOptions(binarize="static").lowres
    0
    >>> ImageOptions(scale="byte", binarize="static")
    Traceback (most recent call last):
    ...
    ValueError: binarize='static' draws from [0, 1] pixels: use scale='unit'
"""

from __future__ import annotations

import dataclasses
from typing import Literal

VALID_FRACTION = 1 / 12  # 5000 of MNIST's 60000 train images, the customary validation set
SPLIT_FRACTION = 0.1  # your files: default share held out for test, and of the rest for valid
TABLE_TEST_FRACTION = 0.2  # small tables: a fifth held out, so the test NLL is not one handful
NOISE_SAMPLES = 1000  # uniform_noise images per split by default
TOY_SAMPLES = 10000  # toy 2-D points per split by default
BLOCK_SIZE = 64  # default characters per sequence of running text
WORD_LENGTH = 16  # default length of a padded word: 97.1 % of web2 fits with its end token
GAUSSIAN_SAMPLES = 2000  # hmm_gaussian sequences per split by default
GAUSSIAN_LENGTH = 20  # hmm_gaussian steps per sequence by default

BINARIZE = ("none", "static", "dynamic")
SCALES = ("unit", "byte")
CONDITIONS = ("none", "lowres")


@dataclasses.dataclass(frozen=True)
class DatasetOptions:
    """Base of every options class: checks the fields that several share."""

    def __post_init__(self) -> None:
        values = dataclasses.asdict(self)
        for name in ("valid_fraction", "test_fraction"):
            if name in values and not 0 <= values[name] < 1:
                raise ValueError(f"{name} must be in [0, 1), got {values[name]}")
        seed = values.get("seed", 0)
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        n = values.get("num_samples", 1)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"num_samples must be a positive int, got {n!r}")
        binarize, scale = values.get("binarize", "none"), values.get("scale", "unit")
        if binarize not in BINARIZE:
            raise ValueError(f"binarize must be one of {BINARIZE}, got {binarize!r}")
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        if binarize != "none" and scale != "unit":
            raise ValueError(f"binarize={binarize!r} draws from [0, 1] pixels: use scale='unit'")


@dataclasses.dataclass(frozen=True)
class ImageOptions(DatasetOptions):
    """Options of the built-in image datasets (fashion_mnist, mnist, digits, mnist_subset,
    digits28, uniform_noise)."""

    binarize: Literal["none", "static", "dynamic"] = "none"  # images: binary pixels
    scale: Literal["unit", "byte"] = "unit"  # images: [0, 1] floats or {0..255}
    valid_fraction: float = VALID_FRACTION  # share of the train split held out for validation
    seed: int = 0  # seeds the split, static binarization and toy sampling
    condition: Literal["none", "lowres"] = "none"  # images: lowres adds c = the pooled image
    lowres_factor: int = 4  # images: pooling factor of the lowres context

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}, got {self.condition!r}")
        if not isinstance(self.lowres_factor, int) or self.lowres_factor < 2:
            raise ValueError(f"lowres_factor must be an int >= 2, got {self.lowres_factor!r}")

    @property
    def lowres(self) -> int:
        """The pooling factor of the context, 0 when the images carry none."""
        return self.lowres_factor if self.condition == "lowres" else 0


@dataclasses.dataclass(frozen=True)
class NoiseOptions(ImageOptions):
    """``uniform_noise``: the image options and how many images each split holds."""

    num_samples: int = NOISE_SAMPLES  # toy 2-D densities: examples per split


@dataclasses.dataclass(frozen=True)
class ToyOptions(DatasetOptions):
    """The 2-D toy densities (moons, eight_gaussians, ...)."""

    num_samples: int = TOY_SAMPLES  # toy 2-D densities: examples per split
    seed: int = 0  # seeds the split, static binarization and toy sampling


@dataclasses.dataclass(frozen=True)
class SplitOptions(DatasetOptions):
    """Data split by a seeded permutation: your arrays (``tensors``)."""

    valid_fraction: float = SPLIT_FRACTION  # share of the train split held out for validation
    test_fraction: float = SPLIT_FRACTION  # your files: share held out as the test split
    seed: int = 0  # seeds the split, static binarization and toy sampling


@dataclasses.dataclass(frozen=True)
class BinnedTableOptions(SplitOptions):
    """The binned sklearn tables (``wine_bins``, ``breast_cancer_bins``)."""

    test_fraction: float = TABLE_TEST_FRACTION  # your files: share held out as the test split


@dataclasses.dataclass(frozen=True)
class TableOptions(SplitOptions):
    """Your CSV of categories (``csv_categorical``)."""

    label_column: str | None = None  # your CSV: the column holding class labels


@dataclasses.dataclass(frozen=True)
class CsvOptions(TableOptions):
    """Your CSV (``csv``): a column mixing numbers and words is refused, or read as
    categories."""

    mixed: Literal["refuse", "categories"] = "refuse"  # your CSV: a column of numbers and words

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mixed not in ("refuse", "categories"):
            raise ValueError(f"mixed must be 'refuse' or 'categories', got {self.mixed!r}")


@dataclasses.dataclass(frozen=True)
class PictureOptions(DatasetOptions):
    """Your pictures (``images``)."""

    image_size: int = 32  # your pictures: resized to this square size
    channels: int = 0  # your pictures: 1 grey, 3 RGB, 0 detect
    binarize: Literal["none", "static", "dynamic"] = "none"  # images: binary pixels
    scale: Literal["unit", "byte"] = "unit"  # images: [0, 1] floats or {0..255}
    valid_fraction: float = SPLIT_FRACTION  # share of the train split held out for validation
    test_fraction: float = SPLIT_FRACTION  # your files: share held out as the test split
    seed: int = 0  # seeds the split, static binarization and toy sampling


@dataclasses.dataclass(frozen=True)
class TextOptions(DatasetOptions):
    """Running text (``text``, ``fortunes``): contiguous splits, no seed."""

    block_size: int = BLOCK_SIZE  # text: characters per sequence
    valid_fraction: float = SPLIT_FRACTION  # share of the train split held out for validation
    test_fraction: float = SPLIT_FRACTION  # your files: share held out as the test split

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.block_size, int) or self.block_size < 2:
            raise ValueError(f"block_size must be an int >= 2, got {self.block_size!r}")
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError("valid_fraction + test_fraction must leave some text to train on")


@dataclasses.dataclass(frozen=True)
class WordsOptions(TextOptions):
    """``words``: one padded word a row, split by a seeded permutation."""

    block_size: int = WORD_LENGTH  # text: characters per sequence
    seed: int = 0  # seeds the split, static binarization and toy sampling


@dataclasses.dataclass(frozen=True)
class HMMSequenceOptions(DatasetOptions):
    """``hmm_gaussian``: how many sequences of how many steps, seeded."""

    num_samples: int = GAUSSIAN_SAMPLES  # toy 2-D densities: examples per split
    block_size: int = GAUSSIAN_LENGTH  # text: characters per sequence
    seed: int = 0  # seeds the split, static binarization and toy sampling

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.block_size, int) or self.block_size < 1:
            raise ValueError(f"block_size must be an int >= 1, got {self.block_size!r}")


@dataclasses.dataclass(frozen=True)
class TransitionOptions(DatasetOptions):
    """``transitions``: random-policy episodes of a gymnasium classic-control environment."""

    env: str = "Pendulum-v1"  # transitions: the gymnasium environment (Pendulum-v1, CartPole-v1)
    episodes: int = 50  # transitions: random-policy episodes per split
    seed: int = 0  # seeds the split, static binarization and toy sampling

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.episodes, int) or self.episodes < 1:
            raise ValueError(f"episodes must be an int >= 1, got {self.episodes!r}")


@dataclasses.dataclass(frozen=True)
class TextToImageOptions(DatasetOptions):
    """``fashion_mnist_text``: the Fashion-MNIST images (x) as ``fashion_mnist`` gives them."""

    binarize: Literal["none", "static", "dynamic"] = "none"  # images: binary pixels
    scale: Literal["unit", "byte"] = "unit"  # images: [0, 1] floats or {0..255}
    valid_fraction: float = VALID_FRACTION  # share of the train split held out for validation
    seed: int = 0  # seeds the split, static binarization and toy sampling


@dataclasses.dataclass(frozen=True)
class CaptionOptions(DatasetOptions):
    """``fashion_mnist_captions``: captions (x) of the [0, 1] images (c)."""

    valid_fraction: float = VALID_FRACTION  # share of the train split held out for validation
    seed: int = 0  # seeds the split, static binarization and toy sampling


__all__ = [
    "BinnedTableOptions",
    "CaptionOptions",
    "CsvOptions",
    "DatasetOptions",
    "HMMSequenceOptions",
    "ImageOptions",
    "NoiseOptions",
    "PictureOptions",
    "SplitOptions",
    "TableOptions",
    "TextOptions",
    "TextToImageOptions",
    "ToyOptions",
    "WordsOptions",
]
