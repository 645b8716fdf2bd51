"""Noise schedules of a DDPM: the β's, the forward process q(x_t | x_0) and the posterior
q(x_{t−1} | x_t, x_0).

Timesteps are indexed 0..T−1 here; index i is step t = i + 1 of Ho et al. (2020), so
``alphas_cumprod[i]`` is ᾱ_{i+1} = Π_{s ≤ i+1} (1 − β_s) and ᾱ_0 = 1 (before the first
step). Every table is float64 on the CPU; ``at`` gathers entries for a batch of indices in
the dtype and on the device of the tensor they multiply.

References:
    Ho, Jain & Abbeel 2020, Denoising Diffusion Probabilistic Models, arXiv:2006.11239.
    Nichol & Dhariwal 2021, Improved Denoising Diffusion Probabilistic Models,
    arXiv:2102.09672 (the cosine schedule).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

Schedule = Literal["linear", "cosine"]
MAX_BETA = 0.999  # cosine schedule: β clipped below 1 so that the last step keeps some x_0


def betas_for(schedule: Schedule, num_timesteps: int) -> Tensor:
    """β_1..β_T (float64, (T,)). ``linear``: Ho et al.'s 1e-4 to 0.02 for T = 1000, scaled
    by 1000 / T so that a shorter chain destroys the data as fully (Nichol & Dhariwal);
    ``cosine``: ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2) with s = 0.008.

    Example:
        >>> b = betas_for("linear", 1000)
        >>> round(b[0].item(), 6), round(b[-1].item(), 6)
        (0.0001, 0.02)
    """
    if not isinstance(num_timesteps, int) or num_timesteps < 1:
        raise ValueError(f"num_timesteps must be an int >= 1, got {num_timesteps!r}")
    T = num_timesteps
    if schedule == "linear":
        scale = 1000 / T
        return torch.linspace(1e-4 * scale, min(0.02 * scale, MAX_BETA), T, dtype=torch.float64)
    if schedule == "cosine":
        s = 0.008
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]  # (T + 1,): ᾱ at t = 0..T
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=MAX_BETA)
    raise ValueError(f"schedule must be 'linear' or 'cosine', got {schedule!r}")


def at(table: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """``table[t]`` for a batch of indices t (B,), shaped (B, 1, ..., 1) to broadcast
    against ``like`` (B, *event) and in its dtype and device."""
    values = table.to(like.device)[t.to(like.device)].to(like.dtype)  # (B,)
    return values.reshape(-1, *([1] * (like.dim() - 1)))  # (B, 1, ..., 1)


class NoiseSchedule:
    """The tables of one schedule: β_t, α_t = 1 − β_t, ᾱ_t, and the posterior
    q(x_{t−1} | x_t, x_0) = N(c0_t x_0 + ct_t x_t, β̃_t) with
    c0_t = β_t √ᾱ_{t−1} / (1 − ᾱ_t), ct_t = (1 − ᾱ_{t−1}) √α_t / (1 − ᾱ_t) and
    β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) (Ho et al. 2020, eq. 6-7).

    Example:
        >>> s = NoiseSchedule(betas_for("cosine", 10))
        >>> s.num_timesteps, bool((s.alphas_cumprod.diff() < 0).all())
        (10, True)
    """

    def __init__(self, betas: Tensor) -> None:
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if len(betas) == 0 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be a non-empty sequence of values in (0, 1)")
        self.betas = betas  # (T,)
        self.alphas = 1 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)  # ᾱ_t
        self.alphas_cumprod_prev = torch.cat([betas.new_ones(1), self.alphas_cumprod[:-1]])
        ab, ab_prev = self.alphas_cumprod, self.alphas_cumprod_prev
        self.posterior_variance = betas * (1 - ab_prev) / (1 - ab)  # β̃_t (0 at the first step)
        self.posterior_coef_x0 = betas * ab_prev.sqrt() / (1 - ab)
        self.posterior_coef_xt = (1 - ab_prev) * self.alphas.sqrt() / (1 - ab)

    @property
    def num_timesteps(self) -> int:
        return len(self.betas)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, a draw of q(x_t | x_0) given ε ~ N(0, I)."""
        ab = at(self.alphas_cumprod, t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def predict_x0(self, xt: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t, the x_0 that ε explains."""
        ab = at(self.alphas_cumprod, t, xt)
        return (xt - (1 - ab).sqrt() * eps) / ab.sqrt()

    def posterior_mean(self, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """The mean of q(x_{t−1} | x_t, x_0)."""
        return at(self.posterior_coef_x0, t, xt) * x0 + at(self.posterior_coef_xt, t, xt) * xt
