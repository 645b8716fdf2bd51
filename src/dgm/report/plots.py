"""Sample grids as PNG files, drawn with Pillow alone."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from dgm.io import atomic_write


def image_grid(x: Tensor, nrow: int | None = None, pad: int = 2) -> Image.Image:
    """Images (n, C, H, W) with C in {1, 3}, values in [0, 1] or {0..255}, as one grid."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"image_grid expects (n, 1 or 3, H, W), got {tuple(x.shape)}")
    x = x.detach().float().cpu()
    if x.max() > 1.0:  # byte scale
        x = x / 255.0
    n, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = torch.ones(c, ncol * (h + pad) + pad, nrow * (w + pad) + pad) * 0.5
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[
            :,
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + q * (w + pad) : pad + q * (w + pad) + w,
        ] = x[i]
    arr = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()  # (H, W, C)
    img = Image.fromarray(arr[..., 0] if c == 1 else arr, mode="L" if c == 1 else "RGB")
    scale = max(1, 256 // max(img.size))  # small images (8x8 digits) are upscaled to be seen
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def scatter(x: Tensor, size: int = 384, limit: float | None = None) -> Image.Image:
    """2-D points (n, 2) as a scatter plot on a square canvas."""
    pts = x.detach().float().cpu().numpy()
    limit = limit or float(np.abs(pts).max() * 1.05 + 1e-9)
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    uv = (pts / limit + 1) / 2 * (size - 1)  # (n, 2) pixel coordinates
    for u, v in uv:
        draw.point((float(u), float(size - 1 - v)), fill=(20, 60, 160))
    return img


def save_samples(x: Tensor, path: str | Path) -> bool:
    """Save samples as a picture when their shape has one (images or 2-D points);
    returns whether a file was written."""
    if x.dim() == 4 and x.shape[1] in (1, 3):
        img = image_grid(x)
    elif x.dim() == 2 and x.shape[1] == 2:
        img = scatter(x)
    else:
        return False
    atomic_write(Path(path), lambda p: img.save(p, format="PNG"))
    return True
