"""Imputation: fill in missing dimensions and measure how well they were filled.

Masks (True = observed): those of ``dgm.tasks.inpaint.MASKS`` (images: bottom-half,
top-half, left-half, right-half, center), ``random`` (each dimension hidden with
probability 0.5, seeded) or a file (.npy / .pt boolean array of one example's shape
or of the whole batch's). Methods: mean imputation (the training data's mean per
dimension) and multiple imputation, m draws from a ``Completable`` model
(``complete(x, observed_mask)``). Metrics, per method:

- RMSE over the missing entries of the estimate (the mean of the m draws), on the data's
  scale;
- log-likelihood of the held-out values, log p(x_mis | x_obs) in nats per example, where the
  model can score it: log p(x) − log p(x_obs) for ``Marginalizes`` models, or the sum of
  the missing dimensions' conditionals for a ``DiscreteAutoregressive`` model whose order
  puts every observed dimension before every missing one. Otherwise it is not available
  (a VAE's bound on log p(x) minus a bound on log p(x_obs) bounds nothing).

References:
    Rubin 1987, Multiple Imputation for Nonresponse in Surveys, Wiley.
    Mattei & Frellsen 2018, arXiv:1802.04826 (VAE imputation by Metropolis-within-Gibbs).

Example:
    >>> import torch
    >>> x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> mask = torch.tensor([[True, False], [False, True]])
    >>> filled = mean_impute(x, mask, torch.tensor([0.0, 0.0]))
    >>> filled.tolist(), rmse(x, filled, mask)
    ([[1.0, 0.0], [0.0, 4.0]], 2.5495097567963922)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dgm.config import option
from dgm.model import Completable, DiscreteAutoregressive, GenerativeModel, Marginalizes
from dgm.tasks.inpaint import MASKS, image_mask

MASK_KINDS = MASKS  # the masks of dgm complete, one set of names; or a .npy / .pt mask file
FORMER_NAMES = {"random-50": "random"}  # read still by make_mask; the CLI names the new one


@dataclasses.dataclass
class ImputeOptions:
    """What ``dgm impute`` hides and draws (field comments are the command's help)."""

    # images: bottom-half, top-half, left-half, right-half, center (dgm complete's masks);
    # any data: random (each value hidden with probability 0.5); or a .npy / .pt boolean
    # mask file (True = observed)
    mask: str = option(metavar="MASK")
    m: int = option(5, flag="-m")  # imputations per example
    n: int = option(100, flag="-n")  # examples
    # inpainting grid picture (image runs; default: DIR/impute-MASK.png)
    out: Path | None = option(None, metavar="FILE")


def make_mask(kind: str, shape: Sequence[int], generator: torch.Generator | None = None) -> Tensor:
    """The observed mask (bool, True = observed) for a batch of ``shape`` (N, *event): one
    of ``MASKS`` (``dgm.tasks.inpaint.image_mask``) for images (N, C, H, W); ``random``
    (each dimension hidden with probability 0.5, drawn from ``generator``) for any shape;
    anything else is read as a mask file (``load_mask``)."""
    shape = tuple(int(s) for s in shape)
    image = len(shape) == 4
    kind = FORMER_NAMES.get(kind, kind)
    if kind in MASKS and image:
        return image_mask(kind, shape, generator)
    if kind == "random":
        return torch.rand(shape, generator=generator) < 0.5
    if kind in MASKS:
        raise ValueError(
            f"--mask {kind} hides part of an image, but examples have shape {shape[1:]}, "
            "not (C, H, W): use --mask random or a mask file"
        )
    return load_mask(kind, shape)


def load_mask(path: str | Path, shape: Sequence[int]) -> Tensor:
    """A boolean mask (True = observed) from a .npy or .pt file, of one example's shape
    (used for every example) or of the whole batch's ``shape``; anything else is an error
    naming both shapes."""
    path = Path(path)
    if path.suffix not in (".npy", ".pt"):
        raise ValueError(
            f"--mask {path}: not one of {', '.join(MASK_KINDS)} nor a .npy / .pt mask file"
        )
    if not path.is_file():
        raise ValueError(f"mask file {path} does not exist; give a .npy or .pt boolean array")
    if path.suffix == ".npy":
        mask = torch.from_numpy(np.load(path, allow_pickle=False))
    else:
        mask = torch.load(path, weights_only=True)
        if not isinstance(mask, Tensor):
            raise ValueError(f"mask file {path} holds a {type(mask).__name__}, not a tensor")
    if mask.dtype != torch.bool:
        values = mask.unique()
        if not bool(((values == 0) | (values == 1)).all()):
            raise ValueError(
                f"mask file {path} holds values other than 0/1 (True = observed): save a "
                "boolean array"
            )
        mask = mask.bool()
    shape = tuple(int(s) for s in shape)
    if tuple(mask.shape) == shape[1:]:
        return mask.expand(shape).clone()
    if tuple(mask.shape) != shape:
        raise ValueError(
            f"mask file {path} has shape {tuple(mask.shape)}; expected one example's shape "
            f"{shape[1:]} or the whole batch's {shape}"
        )
    return mask


def mean_impute(x: Tensor, observed_mask: Tensor, mean: Tensor) -> Tensor:
    """x with missing entries replaced by ``mean`` (one example's shape, broadcast), as
    floats."""
    return torch.where(observed_mask, x.double(), mean.double().expand_as(x))


def multiple_impute(
    model: GenerativeModel,
    x: Tensor,
    observed_mask: Tensor,
    m: int,
    c: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """m completions of x by ``model.complete``, shape (m, *x.shape), in x's dtype."""
    from dgm.capabilities import require

    require(model, Completable, "multiple imputation")
    if m < 1:
        raise ValueError(f"-m must be at least 1, got {m}")
    mask = observed_mask.to(x.device)
    with torch.no_grad():
        return torch.stack([model.complete(x, mask, c, generator) for _ in range(m)])


def rmse(x: Tensor, estimate: Tensor, observed_mask: Tensor) -> float:
    """Root mean squared error over the missing entries (where ``observed_mask`` is
    False), on x's scale."""
    missing = ~observed_mask.to(x.device)
    if not bool(missing.any()):
        raise ValueError("the mask hides nothing: there are no missing values to score")
    err = x.double()[missing] - estimate.to(x.device).double()[missing]
    return float(err.pow(2).mean().sqrt())


def heldout_log_likelihood(
    model: GenerativeModel, x: Tensor, observed_mask: Tensor, c: Tensor | None = None
) -> Tensor | None:
    """log p(x_mis | x_obs) in nats per example (batch,), or None where the model cannot
    score it exactly: ``Marginalizes`` models give log p(x) − log p(x_obs); a
    ``DiscreteAutoregressive`` model the sum of the missing dimensions' log-conditionals when
    its order puts every observed dimension (of every example) before every missing one."""
    mask = observed_mask.to(x.device).expand_as(x)
    with torch.no_grad():
        if isinstance(model, Marginalizes):
            full = model.log_prob(x, c)
            return (full - model.log_prob_observed(x, mask, c)).double().cpu()
        if isinstance(model, DiscreteAutoregressive):
            order = model.ordering().to(x.device)  # (D,)
            observed = mask.flatten(1)[:, order]  # (B, D) in the model's order
            if bool((observed[:, 1:] & ~observed[:, :-1]).any()):
                return None  # an observed dimension after a missing one
            logits = model.conditional_logits(x, c)  # (B, D, V), flattened dimensions
            values = model.check_x(x).flatten(1).long()  # (B, D)
            logp = logits.log_softmax(-1).gather(-1, values[..., None])[..., 0]  # (B, D)
            return (logp * ~mask.flatten(1)).sum(-1).double().cpu()
    return None


def compare_imputations(
    model: GenerativeModel,
    x: Tensor,
    observed_mask: Tensor,
    m: int,
    train_x: Tensor,
    c: Tensor | None = None,
    generator: torch.Generator | None = None,
    label: str = "model",
) -> tuple[list[dict[str, Any]], Tensor, Tensor | None]:
    """Mean imputation (the baseline: each missing value filled with its dimension's mean
    over ``train_x``; probabilities for dynamically binarized data) against ``m`` draws of
    ``model`` (their mean is the estimate). Returns the rows ``{"method", "rmse",
    "heldout_log_lik"}`` (RMSE on x's scale, log p(x_mis | x_obs) in nats per example or
    None), the draws (m, *x.shape) and the held-out log-likelihood per example (or None)."""
    mean = train_x.double().mean(0).to(x.device)  # (*event)
    draws = multiple_impute(model, x, observed_mask, m, c, generator)  # (m, n, *event)
    held = heldout_log_likelihood(model, x, observed_mask, c)
    rows = [
        {
            "method": "mean",
            "rmse": rmse(x, mean_impute(x, observed_mask, mean), observed_mask),
            "heldout_log_lik": None,
        },
        {
            "method": f"{label} (m={m})",
            "rmse": rmse(x, draws.double().mean(0), observed_mask),
            "heldout_log_lik": None if held is None else float(held.mean()),
        },
    ]
    return rows, draws, held
