"""Samplers of a DDPM, kept apart from the network (the diffusers scheduler pattern).

A scheduler knows the noise schedule and nothing of the network: ``timesteps`` are the
indices it visits, from noisy to clean, and ``step(eps, t, x)`` turns x_t and the
network's ε(x_t, t) into x at the next (earlier) visited index. A sampling loop is three
lines::

    x = torch.randn(...)
    for t in scheduler.timesteps:
        x = scheduler.step(eps_model(x, t), t, x, generator=generator)

With fewer visited steps than the schedule has, both samplers use the respaced chain of
Nichol & Dhariwal (2021): ᾱ at the visited indices, β'_i = 1 − ᾱ_{τ_i} / ᾱ_{τ_{i−1}}.

References:
    Ho, Jain & Abbeel 2020, arXiv:2006.11239 (ancestral sampling, Algorithm 2).
    Song, Meng & Ermon 2020, Denoising Diffusion Implicit Models, arXiv:2010.02502 (η).
    Nichol & Dhariwal 2021, arXiv:2102.09672 (respacing).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from dgm.models.diffusion.schedules import NoiseSchedule

Variance = Literal["large", "small"]


def spaced_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` indices of 0..T−1, evenly spaced, always including T−1, descending.

    Example:
        >>> spaced_timesteps(10, 4)
        [9, 6, 3, 0]
    """
    if not isinstance(steps, int) or not 1 <= steps <= num_timesteps:
        raise ValueError(
            f"steps must be an int in 1..num_timesteps ({num_timesteps}), got {steps!r}"
        )
    grid = torch.linspace(0, num_timesteps - 1, steps, dtype=torch.float64).round().long()
    return sorted(set(grid.tolist()), reverse=True)


class _Scheduler:
    """The visited indices and ᾱ at each and at the index after it (1 at the end)."""

    def __init__(self, schedule: NoiseSchedule, steps: int, clip: float | None = None) -> None:
        self.schedule = schedule
        self.timesteps = spaced_timesteps(schedule.num_timesteps, steps)
        ab = schedule.alphas_cumprod
        after = [*self.timesteps[1:], -1]
        self._prev = {
            t: (ab[p].item() if p >= 0 else 1.0) for t, p in zip(self.timesteps, after, strict=True)
        }
        self.clip = clip  # clamp x̂_0 to [−clip, clip] (data known to lie in [−1, 1])

    def _x0(self, eps: Tensor, t: int, x: Tensor) -> tuple[Tensor, Tensor, float, float]:
        ab = self.schedule.alphas_cumprod[t].item()
        x0 = (x - (1 - ab) ** 0.5 * eps) / ab**0.5
        if self.clip is not None:
            x0 = x0.clamp(-self.clip, self.clip)
            eps = (x - ab**0.5 * x0) / (1 - ab) ** 0.5  # the ε that the clamped x̂_0 implies
        return x0, eps, ab, self._prev[t]

    def _noise(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


class DDPMScheduler(_Scheduler):
    """Ancestral sampling: x_{t−1} ~ N(μ̃(x̂_0, x_t), σ_t²), the mean of the posterior
    q(x_{t−1} | x_t, x̂_0) at the predicted x̂_0, with Ho et al.'s "large" σ_t² = β_t or
    "small" σ_t² = β̃_t (the posterior's own variance); the last step returns the mean,
    without noise (Ho et al.).

    Example:
        >>> import torch
        >>> from dgm.models.diffusion.schedules import NoiseSchedule, betas_for
        >>> sched = DDPMScheduler(NoiseSchedule(betas_for("linear", 20)), steps=5)
        >>> x = torch.zeros(3, 2)
        >>> for t in sched.timesteps:
        ...     x = sched.step(torch.zeros_like(x), t, x)
        >>> sched.timesteps, x.shape
        ([19, 14, 10, 5, 0], torch.Size([3, 2]))
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        steps: int,
        variance: Variance = "large",
        clip: float | None = None,
    ) -> None:
        super().__init__(schedule, steps, clip)
        if variance not in ("large", "small"):
            raise ValueError(f"variance must be 'large' or 'small', got {variance!r}")
        self.variance = variance

    def step(
        self, eps: Tensor, t: int, x: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        x0, _, ab, ab_prev = self._x0(eps, t, x)
        beta = 1 - ab / ab_prev  # β of the (respaced) step
        mean = (beta * ab_prev**0.5 * x0 + (1 - ab_prev) * (1 - beta) ** 0.5 * x) / (1 - ab)
        if t == self.timesteps[-1]:
            return mean
        variance = beta if self.variance == "large" else beta * (1 - ab_prev) / (1 - ab)
        return mean + variance**0.5 * self._noise(x, generator)


class DDIMScheduler(_Scheduler):
    """DDIM: x_{t−1} = √ᾱ_{t−1} x̂_0 + √(1 − ᾱ_{t−1} − σ²) ε + σ z with
    σ = η √((1 − ᾱ_{t−1}) / (1 − ᾱ_t)) √(1 − ᾱ_t / ᾱ_{t−1}) (Song et al. 2020, eq. 12):
    deterministic given x_T at η = 0, the ancestral sampler's variance at η = 1.

    Example:
        >>> import torch
        >>> from dgm.models.diffusion.schedules import NoiseSchedule, betas_for
        >>> sched = DDIMScheduler(NoiseSchedule(betas_for("cosine", 50)), steps=10, eta=0.0)
        >>> len(sched.timesteps), sched.step(torch.zeros(2, 3), 49, torch.ones(2, 3)).shape
        (10, torch.Size([2, 3]))
    """

    def __init__(
        self, schedule: NoiseSchedule, steps: int, eta: float = 0.0, clip: float | None = None
    ) -> None:
        super().__init__(schedule, steps, clip)
        if not eta >= 0:
            raise ValueError(f"eta must be >= 0 (0: deterministic DDIM), got {eta}")
        self.eta = eta

    def step(
        self, eps: Tensor, t: int, x: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        x0, eps, ab, ab_prev = self._x0(eps, t, x)
        sigma = self.eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) ** 0.5
        direction = max(1 - ab_prev - sigma**2, 0.0) ** 0.5 * eps
        out = ab_prev**0.5 * x0 + direction
        if sigma > 0 and t != self.timesteps[-1]:
            out = out + sigma * self._noise(x, generator)
        return out

    # -- the deterministic map and its inverse (η = 0, no clipping) ------------------------

    def coefficients(self, t: int) -> tuple[float, float]:
        """(a, k) of the η = 0, unclipped step from t to the next visited index s:
        x_s = a x_t + k ε(x_t, t), a = √(ᾱ_s/ᾱ_t), k = √(1 − ᾱ_s) − √(ᾱ_s (1 − ᾱ_t)/ᾱ_t)
        (ᾱ_s = 1 after the last index); ``step`` at η = 0 without ``clip`` is this map,
        which ``dgm.models.diffusion.inversion`` inverts."""
        ab, ab_prev = self.schedule.alphas_cumprod[t].item(), self._prev[t]
        return (ab_prev / ab) ** 0.5, (1 - ab_prev) ** 0.5 - (ab_prev * (1 - ab) / ab) ** 0.5
