"""The terms of a DDPM's variational bound (Ho et al. 2020, eq. 5), per example, in nats.

−log p(x_0) ≤ L_T + Σ_{t=2}^T L_{t−1} + L_0 with
- L_T = KL(q(x_T | x_0) ‖ N(0, I)), the prior term;
- L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)), x_t ~ q(x_t | x_0): two Gaussians,
  N(μ̃, β̃_t) and N(μ_θ, σ_t²) with σ_t² = β_t ("large") or β̃_t ("small");
- L_0 = −log p_θ(x_0 | x_1), the decoder: N(x̂_0(x_1), β_1) per dimension, a density for
  real-valued data and, for data on L levels mapped to [−1, 1], the probability of the
  level's bin of width 2/(L − 1) (the discretized Gaussian; the outer bins reach ±∞).

References:
    Ho, Jain & Abbeel 2020, arXiv:2006.11239 (eq. 5 and 13, the discretized decoder).
    Sohl-Dickstein et al. 2015, Deep Unsupervised Learning using Nonequilibrium
    Thermodynamics, arXiv:1503.03585.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

EDGE = 1e3  # a standardised bin edge this far out is ±∞ (Φ(−1e3) is 0 in every float)


def _sum(x: Tensor) -> Tensor:
    return x.flatten(1).sum(1)  # (B, *event) -> (B,)


def prior_kl(x0: Tensor, alpha_bar_T: float) -> Tensor:
    """KL(N(√ᾱ_T x_0, 1 − ᾱ_T) ‖ N(0, 1)) summed over the dimensions, (B,)."""
    var = 1 - alpha_bar_T
    return _sum(0.5 * (var + alpha_bar_T * x0**2 - 1 - math.log(var)))


def gaussian_kl(mean_q: Tensor, var_q: Tensor, mean_p: Tensor, var_p: Tensor) -> Tensor:
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) summed over dimensions, (B,):
    ½ (σ_q²/σ_p² − 1 − log(σ_q²/σ_p²)) + (μ_q − μ_p)² / (2σ_p²) per dimension."""
    ratio = var_q / var_p
    return _sum(0.5 * (ratio - 1 - ratio.log()) + (mean_q - mean_p) ** 2 / (2 * var_p))


def log_normal_interval(a: Tensor, b: Tensor) -> Tensor:
    """log(Φ(b) − Φ(a)) for a < b, accurate in both tails: the interval is reflected into
    the lower half (Φ(b) − Φ(a) = Φ(−a) − Φ(−b)) and log Φ(b) + log(1 − Φ(a)/Φ(b)) taken."""
    flip = (a + b) > 0
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + torch.log1p(-torch.exp(log_lo - log_hi).clamp(max=1 - torch.finfo(a.dtype).eps))


def decoder_log_prob(x0: Tensor, mean: Tensor, std: float, num_levels: int) -> Tensor:
    """log p(x_0 | x_1) summed over dimensions, (B,): a Gaussian density N(mean, std²)
    for ``num_levels`` = 0 (real data), else the discretized Gaussian over the levels
    −1, −1 + 2/(L−1), ..., 1 (the first and last bins open to ±∞), a probability."""
    if num_levels == 0:
        z = (x0 - mean) / std
        return _sum(-0.5 * z**2 - math.log(std) - 0.5 * math.log(2 * math.pi))
    half = 1 / (num_levels - 1)  # half a bin
    a = ((x0 - half - mean) / std).masked_fill(x0 <= -1 + half / 2, -EDGE)
    b = ((x0 + half - mean) / std).masked_fill(x0 >= 1 - half / 2, EDGE)
    return _sum(log_normal_interval(a, b))
