"""Pictures of a run: sample grids (Pillow), 2-D samples over the data and the model's
density, and training curves, of one run or of several overlaid (matplotlib, drawn
off-screen with Agg)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from dgm.capabilities import modality
from dgm.io import atomic_write
from dgm.model import GenerativeModel, Likelihood


def default_range(x: Tensor) -> tuple[float, float]:
    """The value range of images when the data's own is not known: 0..255 for integer
    pixels, [0, 1] for float ones."""
    return (0.0, 255.0) if not x.is_floating_point() else (0.0, 1.0)


def image_grid(
    x: Tensor,
    nrow: int | None = None,
    pad: int = 2,
    value_range: tuple[float, float] | None = None,
) -> Image.Image:
    """Images (n, C, H, W) with C in {1, 3} as one grid. ``value_range`` (low, high) is the
    data's range (the dataset's scale, stored in the run's config); values outside it are
    clipped, so one stray sample pixel cannot darken the grid. Default: ``default_range``.
    """
    if x.dim() != 4 or modality(x.shape[1:]) != "image":
        raise ValueError(f"image_grid expects (n, 1 or 3, H, W), got {tuple(x.shape)}")
    low, high = value_range if value_range is not None else default_range(x)
    if not high > low:
        raise ValueError(f"value_range must have low < high, got {(low, high)}")
    x = (x.detach().float().cpu() - low) / (high - low)  # [0, 1]; clipped below
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


def picture_format(path: str | Path) -> str:
    """The Pillow format that ``path``'s suffix names ("PNG" for .png, "JPEG" for .jpg, ...);
    a suffix Pillow cannot write is refused with the ones it can."""
    writable = {e: f for e, f in Image.registered_extensions().items() if f in Image.SAVE}
    suffix = Path(path).suffix.lower()
    if suffix not in writable:
        usual = [e for e in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tiff") if e in writable]
        given = f"suffix {suffix!r}" if suffix else "no suffix"
        raise ValueError(
            f"{path} has {given}: name a picture file ending in {', '.join(usual)} (the "
            "suffix picks the format)"
        )
    return writable[suffix]


def has_picture(event_shape: tuple[int, ...] | torch.Size) -> bool:
    """Whether samples of this shape are drawn: images (C in {1, 3}, H, W) or 2-D points."""
    return modality(event_shape) in ("image", "points")


def _render(fig: Any) -> Image.Image:
    """A matplotlib Figure (drawn off-screen with Agg; pyplot's global state is never
    touched) as an RGB image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())  # (H, W, 4)
    return Image.fromarray(np.ascontiguousarray(rgba[..., :3]), mode="RGB")


def _limits(*clouds: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """Square axis limits holding the bulk (0.5..99.5 %) of every point cloud, with a margin."""
    pts = np.concatenate([c[np.isfinite(c).all(axis=1)] for c in clouds])  # (n, 2)
    if len(pts) == 0:
        return (-1.0, 1.0), (-1.0, 1.0)
    low, high = np.percentile(pts, 0.5, axis=0), np.percentile(pts, 99.5, axis=0)  # (2,)
    centre, half = (low + high) / 2, max(float((high - low).max()) / 2 * 1.15, 1e-3)
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


@torch.no_grad()
def _log_density(
    model: GenerativeModel, xs: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, str] | None:
    """``model.log_prob`` on the grid xs x ys, (len(ys), len(xs)), and what it is; None for
    a model without a likelihood, one that needs a c, or a grid outside its support."""
    if model.likelihood is Likelihood.NONE:
        return None
    if model.conditional and not model.conditioning.optional:
        return None
    gx, gy = np.meshgrid(xs, ys)  # (G, G) each
    grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], axis=1))  # (G*G, 2)
    grid = grid.to(model.device, model.dtype)
    try:
        lp = torch.cat([model.log_prob(chunk) for chunk in grid.split(4096)])  # (G*G,)
    except ValueError:  # the grid leaves the model's support (e.g. integer points)
        return None
    lp = lp.double().cpu().numpy().reshape(gx.shape)  # (G, G)
    if not np.isfinite(lp).any():
        return None
    lp = np.where(np.isfinite(lp), lp, np.nanmin(np.where(np.isfinite(lp), lp, np.nan)))
    what = "ELBO" if model.likelihood is Likelihood.LOWER_BOUND else "log p(x)"
    return lp, what


def scatter(
    x: Tensor,
    size: int = 384,
    *,
    data: Tensor | None = None,
    model: GenerativeModel | None = None,
) -> Image.Image:
    """2-D samples (n, 2) as a scatter plot with axes, size x size pixels, drawn over
    ``data`` (training points, grey) and, when ``model`` has a likelihood, the contours of
    its log-density (for latent models the one-sample ELBO) on a grid."""
    from matplotlib.figure import Figure

    pts = x.detach().double().cpu().numpy()  # (n, 2)
    ref = None if data is None else data.detach().double().cpu().numpy().reshape(-1, 2)
    xlim, ylim = _limits(pts, *([] if ref is None else [ref]))
    fig = Figure(figsize=(size / 96, size / 96), dpi=96)
    ax = fig.add_subplot()
    density = None
    if model is not None:
        xs, ys = np.linspace(*xlim, 80), np.linspace(*ylim, 80)  # (80,) each
        density = _log_density(model, xs, ys)
    if density is not None:
        lp, what = density
        floor = max(float(lp.min()), float(lp.max()) - 12.0)  # e^-12: where the mass ends
        levels = np.linspace(floor, float(lp.max()), 9)
        filled = ax.contourf(xs, ys, np.maximum(lp, floor), levels=levels, cmap="Blues")
        fig.colorbar(filled, ax=ax, shrink=0.8).ax.tick_params(labelsize=6)
        ax.set_title(f"model {what} (nats), samples, data", fontsize=8)
    else:
        ax.set_title("samples" + (" over the data" if ref is not None else ""), fontsize=8)
    if ref is not None:
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="0.55", linewidths=0, label="data")
    ax.scatter(pts[:, 0], pts[:, 1], s=5, c="tab:orange", linewidths=0, label="samples")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    if ref is not None:
        ax.legend(loc="upper right", fontsize=7, markerscale=2.5, framealpha=0.8)
    fig.tight_layout()
    return _render(fig)


def curve_series(records: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """(step, value) points of every training loss (``loss``, ``<phase>/loss``) and of the
    validation NLL (``valid/nll``) in metrics.jsonl records.

    Example:
        >>> curve_series([{"step": 10, "loss": 3.0}, {"step": 20, "loss": 2.0, "valid/nll": 2.5}])
        {'loss': [(10, 3.0), (20, 2.0)], 'valid/nll': [(20, 2.5)]}
    """
    series: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        for k, v in r.items():
            train_loss = not k.startswith("valid/") and k.rpartition("/")[2] == "loss"
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if (train_loss or k == "valid/nll") and number and "step" in r:
                series.setdefault(k, []).append((int(r["step"]), float(v)))
    return series


def _robust_ylim(ax: Any, curves: list[list[float]]) -> None:
    """y limits that leave out the first tenth of each curve (the initial drop, which may
    overflow the rest); nothing when no value is finite."""
    shown: list[float] = []
    for values in curves:
        finite = [v for v in values if math.isfinite(v)]
        shown += finite[len(finite) // 10 :]
    if shown:
        low, high = min(shown), max(shown)
        pad = 0.05 * (high - low) or 1.0
        ax.set_ylim(low - pad, high + pad)


def curves(records: list[dict[str, Any]], size: tuple[int, int] = (640, 400)) -> Image.Image:
    """Training curves from metrics.jsonl records: every phase's loss per logged step and,
    when present, the validation NLL (``valid/nll``, nats per example)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / 96, size[1] / 96), dpi=96)
    ax = fig.add_subplot()
    series = curve_series(records)
    for k, points in series.items():
        steps, values = zip(*points, strict=True)
        label = "valid NLL" if k == "valid/nll" else f"train {k}"
        style = {"marker": "o", "markersize": 3} if k == "valid/nll" else {}
        ax.plot(steps, values, label=label, linewidth=1.2, **style)
    _robust_ylim(ax, [[v for _, v in points] for points in series.values()])
    ax.set_xlabel("step")
    ax.set_ylabel("nats per example" if "valid/nll" in series else "loss")
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    else:
        ax.set_title("no metrics logged yet", fontsize=9)
    # fixed margins that hold the tick labels of this size: tight_layout measured every
    # label first, 40 % of the picture's CPU, and every run draws it at its end
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.11, top=0.97)
    return _render(fig)


def overlaid_curves(
    runs: list[tuple[str, list[dict[str, Any]]]], size: tuple[int, int] = (960, 400)
) -> Image.Image:
    """Two panels for (name, metrics.jsonl records) pairs: the training losses and the
    validation NLL (nats per example) of every run, one colour per run (line styles tell
    the phases of a multi-phase run apart)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / 96, size[1] / 96), dpi=96)
    train_ax, valid_ax = fig.subplots(1, 2)
    styles = ["-", "--", ":", "-."]
    for i, (name, records) in enumerate(runs):
        colour = f"C{i % 10}"
        series = curve_series(records)
        losses = [k for k in series if k != "valid/nll"]
        for j, k in enumerate(losses):
            steps, values = zip(*series[k], strict=True)
            label = name if len(losses) == 1 else f"{name} {k}"
            marker = "." if len(steps) < 50 else None  # a curve of one point stays visible
            train_ax.plot(
                steps, values, styles[j % 4], marker=marker, color=colour, label=label, lw=1.2
            )
        if "valid/nll" in series:
            steps, values = zip(*series["valid/nll"], strict=True)
            valid_ax.plot(steps, values, "o-", color=colour, label=name, markersize=3)
    for ax, title in ((train_ax, "training loss"), (valid_ax, "validation NLL (nats)")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        if ax.lines:
            ax.legend(fontsize=7)
            _robust_ylim(ax, [[float(y) for y in line.get_ydata()] for line in ax.lines])
        else:
            ax.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _render(fig)


def save_curves(metrics: str | Path, path: str | Path) -> None:
    """Draw the training curves of a metrics.jsonl into the picture file ``path``."""
    from dgm.run_dir import read_metrics

    img = curves(read_metrics(Path(metrics)))
    save_picture(img, path)


def save_picture(img: Image.Image, path: str | Path) -> None:
    """Write ``img`` atomically in the format ``path``'s suffix names."""
    fmt = picture_format(path)
    atomic_write(Path(path), lambda p: img.save(p, format=fmt))


def save_samples(
    x: Tensor,
    path: str | Path,
    value_range: tuple[float, float] | list[float] | None = None,
    *,
    data: Tensor | None = None,
    model: GenerativeModel | None = None,
) -> bool:
    """Save samples as a picture when their shape has one (images or 2-D points), in the
    format ``path``'s suffix names (.png, .jpg, .webp, ...); returns whether a file was
    written. ``value_range`` is the images' data range; for 2-D points ``data`` (n, 2) are
    drawn under the samples and ``model``'s density contours under both (``scatter``)."""
    kind = modality(x.shape[1:])
    if kind == "image":
        img = image_grid(x, value_range=tuple(value_range) if value_range else None)
    elif kind == "points":
        img = scatter(x, data=data, model=model)
    else:
        return False
    save_picture(img, path)
    return True
