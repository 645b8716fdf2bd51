"""Representations: what an ``Encodable`` model's latent space knows about the data.

The code of x is the model's ``encode(x)``: the mean of q(z | x) for a VAE or GMVAE, the
base-space point z = f(x) for a flow (any ``Distribution`` gives its mean, a tensor is
taken as it is). A linear probe, scikit-learn's logistic regression on standardised
features, measures how linearly the codes separate the labels, beside the same probe on
the raw pixels; a 2-D projection of the codes (PCA, or t-SNE) coloured by label shows
the structure the model found. The helpers here (``check_encodable``, ``codes``,
``decode_mean``, ``reconstruct``) serve interpolation and design too.

References:
    Alain & Bengio 2016, Understanding intermediate layers using linear classifier
    probes, arXiv:1610.01644.
    van der Maaten & Hinton 2008, Visualizing Data using t-SNE, JMLR 9.

Example:
    >>> import torch
    >>> y = torch.tensor([0, 1] * 20)
    >>> feats = torch.nn.functional.one_hot(y).double() + 0.01 * torch.randn(40, 2)
    >>> linear_probe(feats, y, feats, y)
    1.0
    >>> project(feats.numpy(), "pca").shape
    (40, 2)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.distributions import Categorical, Distribution, Independent

from dgm.config import option
from dgm.model import Encodable, GenerativeModel

BATCH_SIZE = 500  # examples encoded or decoded per forward pass
PROJECTIONS = ("pca", "tsne")


@dataclasses.dataclass
class RepresentOptions:
    """The probe and projection of ``dgm represent`` (field comments are the help)."""

    projection: str = option("pca", choices=PROJECTIONS)  # 2-D projection
    n: int = option(1000, flag="-n")  # test examples
    train_n: int = 5000  # train examples for the probe
    out: Path | None = option(None, metavar="FILE")  # plot (default: DIR/represent-PROJECTION.png)


def check_encodable(model: GenerativeModel, what: str = "this task") -> None:
    """Refuse a model without a latent space (not ``Encodable``), naming the models that
    have one."""
    from dgm.capabilities import require

    require(model, Encodable, what)


def check_probeable(model: GenerativeModel) -> None:
    """Refuse a model a linear probe on its codes cannot judge: not ``Encodable``, or one
    that encodes x given its class label (the probe would read the label)."""
    check_encodable(model, "a representation")
    cond = model.conditioning
    if cond.kind == "classes" and not cond.optional:
        raise ValueError(
            f"{type(model).__name__} encodes x given its class label, so a probe on its codes "
            "would read the label: train an unconditional model (or one with "
            "--condition-dropout > 0, encoded without the label)"
        )


def compare_probes(
    model: GenerativeModel,
    train: tuple[Tensor, Tensor, Tensor | None],
    test: tuple[Tensor, Tensor, Tensor | None],
    *,
    batch_size: int = BATCH_SIZE,
    seed: int = 0,
) -> tuple[Tensor, float, float]:
    """The linear probe on the model's codes against the one on the raw values: (x, y, c)
    of the ``train`` and ``test`` examples; c is used only for a context the codes depend
    on (a class label is what the probe reads, so it is left out). Returns the test codes
    and both accuracies. ``seed`` seeds the encodings and the probe."""
    (x_fit, y_fit, c_fit), (x, y, c) = train, test
    torch.manual_seed(seed)
    if model.conditioning.kind != "context":  # the codes of x alone
        c_fit, c = None, None
    z_fit = codes(model, x_fit, c_fit, batch_size=batch_size)
    z_test = codes(model, x, c, batch_size=batch_size)
    on_codes = linear_probe(z_fit, y_fit, z_test, y, seed=seed)
    on_pixels = linear_probe(x_fit.double(), y_fit, x.double(), y)
    return z_test, on_codes, on_pixels


def _mean(out: Distribution | Tensor, what: str) -> Tensor:
    """A tensor as it is; a distribution's mean, where a Categorical over 0..K-1 (inside an
    ``Independent``) gives its expected value Σ_v v p(v) rather than torch's NaN."""
    if isinstance(out, Tensor):
        return out
    base = out.base_dist if isinstance(out, Independent) else out
    if isinstance(base, Categorical):
        probs = base.probs  # (*batch, K)
        levels = torch.arange(probs.shape[-1], device=probs.device, dtype=probs.dtype)
        return probs @ levels  # (*batch)
    try:
        return out.mean
    except NotImplementedError as e:
        raise ValueError(
            f"the model's {what} returns a {type(out).__name__} without a mean: "
            "a latent-space task needs one"
        ) from e


@torch.no_grad()
def codes(
    model: GenerativeModel,
    x: Tensor,
    c: Tensor | None = None,
    *,
    batch_size: int = BATCH_SIZE,
) -> Tensor:
    """The code of each x, (B, *code_shape) on the model's device: the mean of
    ``encode(x, c)`` (a VAE's posterior mean), or its tensor (a flow's z = f(x))."""
    check_encodable(model, "encoding")
    out = []
    for i in range(0, len(x), batch_size):
        ci = None if c is None else c[i : i + batch_size].to(model.device)
        chunk = x[i : i + batch_size].to(model.device)
        out.append(_mean(model.encode(chunk, ci), "encode"))  # type: ignore[attr-defined]
    return torch.cat(out)


@torch.no_grad()
def decode_mean(
    model: GenerativeModel,
    z: Tensor,
    c: Tensor | None = None,
    *,
    batch_size: int = BATCH_SIZE,
) -> Tensor:
    """What z decodes to as a picture, (B, *event_shape): the mean of ``decode(z, c)``
    (Bernoulli probabilities, a Gaussian's mean, the expected 8-bit level), or a flow's
    x = f⁻¹(z) itself."""
    check_encodable(model, "decoding")
    out = []
    for i in range(0, len(z), batch_size):
        ci = None if c is None else c[i : i + batch_size].to(model.device)
        chunk = z[i : i + batch_size].to(model.device)
        out.append(_mean(model.decode(chunk, ci), "decode"))  # type: ignore[attr-defined]
    return torch.cat(out)


def reconstruct(model: GenerativeModel, x: Tensor, c: Tensor | None = None) -> Tensor:
    """decode_mean(codes(x)): the model's reconstruction of x, (B, *event_shape)."""
    return decode_mean(model, codes(model, x, c), c)


def linear_probe(
    train_features: Tensor,
    train_y: Tensor,
    test_features: Tensor,
    test_y: Tensor,
    *,
    seed: int = 0,
) -> float:
    """Test accuracy of a linear probe: features flattened and standardised (train mean
    and std), then scikit-learn's multinomial logistic regression (L2, C = 1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(train_features) != len(train_y) or len(test_features) != len(test_y):
        raise ValueError(
            f"features and labels differ in length: train {len(train_features)} vs "
            f"{len(train_y)}, test {len(test_features)} vs {len(test_y)}"
        )
    if len(test_y) == 0:
        raise ValueError("the probe needs at least one test example")
    if len(torch.unique(torch.as_tensor(train_y))) < 2:
        raise ValueError("a linear probe needs training labels of at least two classes")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    train, test = (np.asarray(t.flatten(1).double().cpu()) for t in (train_features, test_features))
    probe.fit(train, np.asarray(train_y.cpu()))
    return float(probe.score(test, np.asarray(test_y.cpu())))


def project(
    features: np.ndarray, method: str = RepresentOptions.projection, *, seed: int = 0
) -> np.ndarray:
    """Features (N, k) in 2-D, (N, 2): PCA's first two components, or t-SNE (perplexity
    min(30, (N − 1)/3), PCA initialisation). One-dimensional codes get a zero second axis."""
    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}: choose one of {', '.join(PROJECTIONS)}")
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)  # (N, k)
    if len(x) < 3:
        raise ValueError(f"a 2-D projection needs at least 3 examples, got {len(x)}")
    if x.shape[1] < 2:
        return np.concatenate([x - x.mean(0), np.zeros_like(x)], axis=1)  # (N, 2)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(x) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def projection_plot(
    points: np.ndarray,
    labels: Tensor | np.ndarray,
    *,
    title: str = "",
    size: int = 480,
) -> Image.Image:
    """A scatter plot of 2-D points (N, 2) coloured by integer label, with a legend, as an
    RGB image of size x size pixels (matplotlib, drawn off-screen)."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pts = np.asarray(points, dtype=np.float64)
    y = np.asarray(torch.as_tensor(labels).cpu()).astype(int)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) != len(y):
        raise ValueError(
            f"points have shape {pts.shape} and labels {y.shape}, expected (N, 2) and (N,)"
        )
    fig = Figure(figsize=(size / 96, size / 96), dpi=96)
    ax = fig.add_subplot()
    cmap: Any = colormaps["tab10" if y.max(initial=0) < 10 else "tab20"]
    for k in np.unique(y):
        sel = y == k
        ax.scatter(pts[sel, 0], pts[sel, 1], s=4, color=cmap(int(k) % cmap.N), label=str(k))
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, markerscale=2.5, title="label", title_fontsize=7, framealpha=0.8)
    fig.tight_layout()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())  # (H, W, 4)
    return Image.fromarray(np.ascontiguousarray(rgba[..., :3]), mode="RGB")
