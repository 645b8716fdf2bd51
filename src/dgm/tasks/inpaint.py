"""Inpainting: which pixels of an image are observed (``image_mask``) and a picture of
originals, masked inputs and completions (``completion_grid``), for ``Completable`` models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from dgm.config import option

MASKS = ("bottom-half", "top-half", "left-half", "right-half", "center", "random")


@dataclasses.dataclass
class CompleteOptions:
    """What ``dgm complete`` hides and how many examples (field comments are the help)."""

    # pixels to hide: a half, the central square, or each pixel with probability 0.5
    mask: str = option(choices=MASKS)
    n: int = option(8, flag="-n")  # examples to complete
    # picture file (its suffix picks the format; missing folders are created); rows of
    # originals, masked inputs and completions. Default: RUN_DIR/complete-MASK.png
    out: Path | None = option(None, metavar="FILE")


def image_mask(kind: str, shape: Sequence[int], generator: torch.Generator | None = None) -> Tensor:
    """The observed mask (True = observed) of images of ``shape`` (N, C, H, W), a bool
    tensor of that shape on the CPU; every channel of a pixel is hidden together.

    ``bottom-half``/``top-half`` hide H // 2 rows at the bottom/top (the middle row of an
    odd height stays observed), ``left-half``/``right-half`` W // 2 columns, ``center`` the
    central (H // 2) x (W // 2) square, and ``random`` each pixel with probability 0.5,
    drawn from ``generator`` (a CPU generator)."""
    if kind not in MASKS:
        raise ValueError(f"unknown mask {kind!r}; one of: {', '.join(MASKS)}")
    if len(shape) != 4:
        raise ValueError(f"image_mask needs a shape (N, C, H, W), got {tuple(shape)}")
    n, c, h, w = (int(s) for s in shape)
    hidden = torch.zeros(n, 1, h, w, dtype=torch.bool)
    hh, hw = h // 2, w // 2
    if kind == "bottom-half":
        hidden[..., h - hh :, :] = True
    elif kind == "top-half":
        hidden[..., :hh, :] = True
    elif kind == "left-half":
        hidden[..., :, :hw] = True
    elif kind == "right-half":
        hidden[..., :, w - hw :] = True
    elif kind == "center":
        top, left = (h - hh) // 2, (w - hw) // 2
        hidden[..., top : top + hh, left : left + hw] = True
    else:
        hidden = torch.rand(n, 1, h, w, generator=generator) < 0.5
    return (~hidden).expand(n, c, h, w).clone()


def masked_input(x: Tensor, observed_mask: Tensor, value_range: Sequence[float]) -> Tensor:
    """x as floats with the hidden pixels set to mid-grey of ``value_range`` (low, high)."""
    low, high = (float(v) for v in value_range)
    grey = torch.full_like(x, (low + high) / 2, dtype=torch.float32)
    return torch.where(observed_mask.to(x.device), x.float(), grey)


def completion_grid(
    x: Tensor,
    observed_mask: Tensor,
    completed: Tensor,
    value_range: Sequence[float],
    columns: int = 8,
) -> tuple[Tensor, int]:
    """Images (3 * columns * number of blocks, C, H, W) and the images per row for
    ``image_grid``: blocks of three rows (originals, masked inputs with hidden pixels
    mid-grey, completions), each column one example, ``columns`` examples per block (the
    last block padded with mid-grey)."""
    n = len(x)
    cols = max(1, min(columns, n))
    masked = masked_input(x, observed_mask, value_range)
    low, high = (float(v) for v in value_range)
    blank = torch.full((1, *x.shape[1:]), (low + high) / 2, dtype=torch.float32, device=x.device)
    rows = []
    for start in range(0, n, cols):
        for images in (x, masked, completed):
            block = images[start : start + cols].float()
            pad = blank.expand(cols - len(block), *x.shape[1:])
            rows.append(torch.cat([block, pad]))
    return torch.cat(rows), cols


def save_completion_grid(
    x: Tensor,
    observed_mask: Tensor,
    completed: Tensor,
    value_range: Sequence[float],
    out: Path,
) -> None:
    """Write the picture of ``completion_grid`` (rows of originals, masked inputs and
    completions) to ``out``, its suffix picking the format; missing folders are made."""
    from dgm.report.plots import image_grid, save_picture

    images, columns = completion_grid(x, observed_mask, completed, value_range)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_picture(image_grid(images, nrow=columns, value_range=tuple(value_range)), out)
