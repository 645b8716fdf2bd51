"""Caption accuracy: the share of drawn captions that name their image's class, for a
captioner trained on ``fashion_mnist_captions`` (x the caption, c the image). A caption
names the class when it is exactly one of that class's paraphrases
(``dgm.data.captions.PARAPHRASES``), end tokens stripped; a near miss ("a sneakers")
counts as wrong.

Example:
    >>> import torch
    >>> names_class("a sneaker", 7), names_class("a sneaker", 5)
    (True, False)
    >>> caption_accuracy(["a sneaker", "a bag"], torch.tensor([7, 7]))
    0.5
"""

from __future__ import annotations

import torch
from torch import Tensor

from dgm.data.captions import PARAPHRASES, CaptionData
from dgm.data.dataset import TensorData
from dgm.data.text import END


def names_class(caption: str, label: int) -> bool:
    """True when ``caption`` (end tokens stripped) is one of class ``label``'s paraphrases."""
    return caption.rstrip(END) in PARAPHRASES[int(label)]


def caption_accuracy(captions: list[str], labels: Tensor) -> float:
    """The share of ``captions`` that name the class of their image (``labels`` (N,))."""
    if len(captions) != len(labels) or not captions:
        raise ValueError(f"{len(captions)} captions for {len(labels)} labels: give one per label")
    return sum(names_class(t, y) for t, y in zip(captions, labels.tolist(), strict=True)) / len(
        captions
    )


def caption_accuracy_line(data: TensorData | None, captions: list[str]) -> str | None:
    """For ``dgm sample``: "caption accuracy ..." of ``captions`` drawn for the first
    examples of ``data`` (cycled, as ``grid_conditions`` takes them), or None when the data
    are not captioned images."""
    if not isinstance(data, CaptionData) or data.info.context_vocab or not captions:
        return None
    labels = data.y[torch.arange(len(captions)) % len(data)]  # (n,)
    hits = round(caption_accuracy(captions, labels) * len(captions))
    return (
        f"caption accuracy: {hits} of {len(captions)} captions name their image's class "
        f"({100 * hits / len(captions):.1f} %)"
    )


__all__ = ["caption_accuracy", "caption_accuracy_line", "names_class"]
