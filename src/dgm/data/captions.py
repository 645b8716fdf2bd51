"""Fashion-MNIST with captions: each image paired with a short text naming the garment.

Each class has a few paraphrases of its name ("t-shirt", "a top", "tee", ...); every image
gets one of its class's paraphrases, drawn with a generator seeded by ``seed`` and the split
(the same pairing in both datasets, fixed for a split). A caption is ``CAPTION_LENGTH``
character tokens of the fixed vocabulary ``VOCAB``, padded with the end token "\\n"
(token 0), like the ``words`` dataset. Two datasets, one per direction:

- ``fashion_mnist_text``: x the image (the ``fashion_mnist`` loader's options: binarize,
  scale), c the caption tokens (N, T) int64: text to image. ``context_vocab`` is the
  vocabulary size, so a model with a ``context_vocab`` field reads c as a text.
- ``fashion_mnist_captions``: x the caption tokens (N, T), c the image (N, 1, 28, 28),
  floats in [0, 1]: image to text (a captioner).

Both record ``vocab`` (token i is ``vocab[i]``), which ``dgm train`` writes into the run's
config.json: ``dgm sample`` decodes drawn captions with it, and encodes a ``--prompt``
text into the c of a text-conditioned model (``dgm.data.text.prompt_context``). How often
drawn captions name their image's class is measured by ``dgm.evaluate.caption_accuracy``.

Example:
    >>> encode_captions(["tee", "a bag"]).shape
    torch.Size([2, 16])
"""

from __future__ import annotations

import dataclasses
import string

import numpy as np
import torch
from torch import Tensor

from dgm.data.dataset import TensorData, register_dataset
from dgm.data.images import FASHION_CLASSES, load_fashion_mnist, split_seed
from dgm.data.options import CaptionOptions, ImageOptions, TextToImageOptions
from dgm.data.text import END, encode_padded

CLASS_NAMES = FASHION_CLASSES  # Fashion-MNIST's labels 0..9
PARAPHRASES: tuple[tuple[str, ...], ...] = (  # per class; no text names two classes
    ("t-shirt", "a top", "tee", "a t-shirt"),
    ("trousers", "pants", "a pair of pants"),
    ("pullover", "a sweater", "jumper"),
    ("dress", "a dress", "frock"),
    ("coat", "a coat", "jacket"),
    ("sandal", "a sandal", "sandals"),
    ("shirt", "a shirt", "blouse"),
    ("sneaker", "a sneaker", "trainers"),
    ("bag", "a bag", "handbag"),
    ("ankle boot", "a boot", "boots"),
)
VOCAB = END + " -" + string.ascii_lowercase  # sorted; token 0 is the end token (padding)
CAPTION_LENGTH = 16  # tokens per caption: the longest paraphrase (15) plus one end token
PAIRING = "fashion_mnist_text"  # the name seeding the paraphrase draw of both datasets


class CaptionData(TensorData):
    """``TensorData`` of Fashion-MNIST images and their captions, one as x and the other
    as c; ``info`` holds the caption vocabulary, the class names and, when x are the
    captions, their end token (when c is the caption, ``context_vocab``)."""


def encode_captions(texts: list[str], length: int = CAPTION_LENGTH, vocab: str = VOCAB) -> Tensor:
    """``texts`` as int64 tokens (N, length) of the caption vocabulary, each padded with
    the end token (``dgm.data.text.encode_padded`` with this dataset's defaults)."""
    return encode_padded(texts, length, vocab)


def _paired(
    split: str, root: str | None, options: TextToImageOptions | CaptionOptions
) -> tuple[TensorData, Tensor]:
    """(images, captions (N, T)) of a split: the image data and each image's caption, a
    paraphrase of its class drawn uniformly, seeded by ``seed`` and the split."""
    seed = options.seed
    images = load_fashion_mnist(split, root, ImageOptions(**dataclasses.asdict(options)))
    table = encode_captions([t for texts in PARAPHRASES for t in texts])  # (P, T): every text
    count = torch.tensor([len(texts) for texts in PARAPHRASES])  # (K,)
    first = count.cumsum(0) - count  # (K,): row of each class's first paraphrase
    gen = np.random.default_rng(split_seed(PAIRING, split, seed))
    pick = torch.from_numpy(gen.integers(0, 1 << 30, size=len(images)))  # (N,)
    row = first[images.y] + pick % count[images.y]  # (N,)
    return images, table[row]  # (N, T)


@register_dataset(
    "fashion_mnist_text",
    "Fashion-MNIST images x given a caption c (text to image)",
    TextToImageOptions,
)
def load_fashion_mnist_text(
    split: str, root: str | None, options: TextToImageOptions
) -> CaptionData:
    """x the images as ``fashion_mnist`` gives them, c their captions (N, 16) int64."""
    images, captions = _paired(split, root, options)
    return CaptionData(
        images.x,
        images.y,
        name="fashion_mnist_text",
        num_classes=images.num_classes,
        dynamic_binarize=images.dynamic_binarize,
        context=captions,
        value_range=images.value_range,
        vocab=VOCAB,
        context_vocab=len(VOCAB),
        class_names=CLASS_NAMES,
    )


@register_dataset(
    "fashion_mnist_captions",
    "captions x of Fashion-MNIST images c (image to text)",
    CaptionOptions,
)
def load_fashion_mnist_captions(
    split: str, root: str | None, options: CaptionOptions
) -> CaptionData:
    """x the captions (N, 16) int64, c the images (N, 1, 28, 28) in [0, 1]."""
    images, captions = _paired(split, root, options)
    return CaptionData(
        captions,
        images.y,
        name="fashion_mnist_captions",
        num_classes=images.num_classes,
        context=images.x,
        value_range=None,
        vocab=VOCAB,
        end_token=VOCAB.index(END),
        class_names=CLASS_NAMES,
    )


__all__ = [
    "CAPTION_LENGTH",
    "CLASS_NAMES",
    "PARAPHRASES",
    "VOCAB",
    "CaptionData",
    "encode_captions",
    "load_fashion_mnist_captions",
    "load_fashion_mnist_text",
]
