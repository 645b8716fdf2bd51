"""Interpolation and latent arithmetic in the latent space of an ``Encodable`` model.

Two inputs are encoded (``represent.codes``: a VAE's posterior mean, a flow's z = f(x)),
joined by a path of codes and decoded (``represent.decode_mean``), so the path's ends are
the model's reconstructions of the inputs. ``lerp`` is the straight line; ``slerp`` is
the great-circle arc of White (2016), sin((1−t)Ω)/sin Ω z₀ + sin(tΩ)/sin Ω z₁ with Ω the
angle between the (flattened) codes. Between two codes of equal norm slerp keeps that norm
exactly; Gaussian codes in d dimensions all have norm ≈ √d, so slerp stays in the prior's
typical shell where the line's midpoint falls to norm ≈ √(d/2).

Latent arithmetic adds an attribute vector, the mean code of class A minus the mean code
of class B, to the codes of inputs (Larsen et al. 2016; White 2016): z + s v for a few
scales s. With v = 0 it gives the reconstructions, unchanged.

References:
    White 2016, Sampling Generative Networks, arXiv:1609.04468.
    Larsen et al. 2016, Autoencoding beyond pixels using a learned similarity metric,
    arXiv:1512.09300.

Example:
    >>> import torch
    >>> z0, z1 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    >>> arc = slerp(z0, z1, torch.linspace(0, 1, 5))  # (5, 1, 2): a quarter circle
    >>> [round(r, 6) for r in arc.norm(dim=-1).squeeze(1).tolist()]
    [1.0, 1.0, 1.0, 1.0, 1.0]
    >>> lerp(z0, z1, torch.tensor([0.5])).tolist()
    [[[0.5, 0.5]]]
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import Tensor

from dgm.config import option
from dgm.model import GenerativeModel
from dgm.tasks.represent import check_encodable, codes, decode_mean

METHODS = ("lerp", "slerp")
SCALES = (0.0, 0.5, 1.0, 1.5, 2.0)  # multiples of the attribute vector in the arithmetic grid


@dataclasses.dataclass
class InterpolateOptions:
    """The path ``dgm interpolate`` decodes and its latent arithmetic (field comments are
    the command's help)."""

    a: int = option(0, metavar="I")  # index of the first input
    b: int = option(1, metavar="J")  # index of the second input
    method: str = option("lerp", choices=METHODS)  # path in z
    steps: int = option(8, metavar="K", minimum=2)  # decoded points, ends included
    # strip picture (default: DIR/interpolate-METHOD.png): input a, the K decodings, input b;
    # for runs without pictures a .npy or .pt file of that strip (default: none)
    out: Path | None = option(None, metavar="FILE")
    # also add the attribute vector mean code(class A) - mean code(class B) to test inputs
    # of class B, at --scales (labelled data)
    arithmetic: str | None = option(None, metavar="A,B")
    scales: str = ",".join(f"{s:g}" for s in SCALES)  # multiples of the vector (columns)
    rows: int = 6  # inputs in the arithmetic grid
    n: int = option(1000, flag="-n")  # train examples averaged per class
    # arithmetic grid picture (default: DIR/arithmetic-A-B.png)
    arithmetic_out: Path | None = option(None, metavar="FILE")


def _check_ends(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    if z0.shape != z1.shape:
        raise ValueError(f"the end codes differ in shape: {tuple(z0.shape)} vs {tuple(z1.shape)}")
    if t.dim() != 1:
        raise ValueError(f"t has shape {tuple(t.shape)}, expected (K,) positions in [0, 1]")
    return t.to(z0.dtype).view(-1, *([1] * z0.dim()))  # (K, 1, ..., 1)


def parse_pair(text: str) -> tuple[int, int]:
    """The two class labels of ``--arithmetic A,B``."""
    parts = text.split(",")
    try:
        a, b = (int(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"--arithmetic {text!r}: give two class labels A,B, e.g. --arithmetic 1,0"
        ) from None
    return a, b


def parse_scales(text: str) -> tuple[float, ...]:
    """The multiples of the attribute vector in ``--scales 0,0.5,1``."""
    try:
        scales = tuple(float(s) for s in text.split(","))
    except ValueError:
        raise ValueError(f"--scales {text!r}: give numbers separated by commas") from None
    return scales


def lerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """(1 − t) z₀ + t z₁ for each of the K positions t: (K, *z0.shape)."""
    t = _check_ends(z0, z1, t)
    return (1 - t) * z0 + t * z1


def slerp(z0: Tensor, z1: Tensor, t: Tensor, *, eps: float = 1e-7) -> Tensor:
    """Spherical interpolation of White (2016) for each of the K positions t, row by row
    (z₀, z₁: (B, *code), each row a flattened vector): (K, B, *code). Rows at an angle
    below ``eps`` (nearly parallel) fall back to ``lerp``."""
    tt = _check_ends(z0, z1, t)  # (K, 1, ..., 1)
    a, b = z0.flatten(1), z1.flatten(1)  # (B, d)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(torch.finfo(a.dtype).tiny)
    omega = cos.clamp(-1, 1).acos().view(-1, *([1] * (z0.dim() - 1)))  # (B, 1, ...)
    sin = omega.sin()
    parallel = sin.abs() < eps
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    w0 = torch.where(parallel, 1 - tt, ((1 - tt) * omega).sin() / safe)  # (K, B, 1, ...)
    w1 = torch.where(parallel, tt, (tt * omega).sin() / safe)
    return w0 * z0 + w1 * z1


def path(z0: Tensor, z1: Tensor, steps: int, method: str = InterpolateOptions.method) -> Tensor:
    """``steps`` evenly spaced codes from z₀ to z₁ (both included) by ``method``:
    (steps, *z0.shape)."""
    if method not in METHODS:
        raise ValueError(f"unknown interpolation {method!r}: choose one of {', '.join(METHODS)}")
    if steps < 2:
        raise ValueError(f"an interpolation needs at least 2 steps (its two ends), got {steps}")
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)
    return (lerp if method == "lerp" else slerp)(z0, z1, t)


def interpolate(
    model: GenerativeModel,
    x: Tensor,
    steps: int = InterpolateOptions.steps,
    method: str = InterpolateOptions.method,
    c: Tensor | None = None,
) -> Tensor:
    """Decoded interpolation between the two inputs x = (2, *event_shape): (steps,
    *event_shape), whose first and last rows are the model's reconstructions of x[0] and
    x[1]. A conditional model encodes each input with its own c (2, ...) and decodes each
    point with the c of the nearer end."""
    check_encodable(model, "interpolation")
    if len(x) != 2:
        raise ValueError(f"x has {len(x)} examples, expected the 2 ends of the interpolation")
    z = codes(model, x, c)  # (2, *code)
    zs = path(z[:1], z[1:], steps, method).squeeze(1)  # (steps, *code)
    cs = None
    if c is not None:
        nearer = (torch.linspace(0, 1, steps) > 0.5).long().to(c.device)  # (steps,)
        cs = c[nearer]
    return decode_mean(model, zs, cs)


def attribute_vector(
    model: GenerativeModel,
    x: Tensor,
    y: Tensor,
    a: int,
    b: int,
    c: Tensor | None = None,
) -> Tensor:
    """The mean code of the examples of class a minus that of class b, (*code_shape)."""
    check_encodable(model, "latent arithmetic")
    for k in (a, b):
        if not bool((y == k).any()):
            present = sorted(torch.unique(y).tolist())
            raise ValueError(
                f"no example of class {k} to average (labels present: {present}): choose "
                "classes in the data, or more examples (-n)"
            )
    z = codes(model, x, c)  # (N, *code)
    y = y.to(z.device)
    return z[y == a].mean(0) - z[y == b].mean(0)


def arithmetic(
    model: GenerativeModel,
    x: Tensor,
    vector: Tensor,
    scales: tuple[float, ...] = SCALES,
    c: Tensor | None = None,
) -> Tensor:
    """decode(code(x) + s · vector) for each input and scale s: (B, len(scales),
    *event_shape). A zero vector (or s = 0) gives the reconstructions."""
    check_encodable(model, "latent arithmetic")
    z = codes(model, x, c)  # (B, *code)
    if vector.shape != z.shape[1:]:
        raise ValueError(
            f"the attribute vector has shape {tuple(vector.shape)}, expected one code's "
            f"shape {tuple(z.shape[1:])}"
        )
    s = torch.as_tensor(scales, dtype=z.dtype, device=z.device)  # (S,)
    shifted = z.unsqueeze(1) + s.view(1, -1, *([1] * vector.dim())) * vector.to(z)  # (B, S, ...)
    cs = None if c is None else c.repeat_interleave(len(s), dim=0)  # (B * S, ...)
    out = decode_mean(model, shifted.flatten(0, 1), cs)  # (B * S, *event)
    return out.view(len(z), len(s), *out.shape[1:])
