"""Stochastic gradient Langevin dynamics (SGLD), a sampler kept apart from any network.

One step moves x down the gradient of an energy E and adds Gaussian noise,

    x ← x − ε ∇E(x) + τ √(2ε) ξ,   ξ ~ N(0, I),

which for τ = 1 is the unadjusted Langevin algorithm: as ε → 0 and the number of steps
grows, x is distributed as p(x) ∝ exp(−E(x)). τ < 1 samples the colder exp(−E/τ²), the
short-run setting of Du & Mordatch 2019; their decoupled step λ/2 and noise σ are ε = λ/2
and τ = σ / √λ here. The sampler knows nothing of models: ``run`` takes any energy
function, and ``step`` is the three-line update a caller can loop over itself.

References:
    Welling & Teh 2011, Bayesian Learning via Stochastic Gradient Langevin Dynamics, ICML.
    Du & Mordatch 2019, Implicit Generation and Generalization in Energy-Based Models,
    arXiv:1903.08689.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import Tensor


@dataclasses.dataclass
class SGLD:
    """Langevin steps of size ``step_size`` (ε) with noise scale ``noise`` (τ).

    ``run`` computes input gradients with ``torch.enable_grad()``, so it works inside
    ``torch.no_grad()`` (sampling, validation), and takes gradients with respect to x only:
    the parameters of the energy keep their ``.grad`` as it was. ``clamp`` keeps every
    coordinate in [low, high] after each step (images: the data's range).

    Example:
        >>> import torch
        >>> sgld = SGLD(step_size=0.05, steps=200)
        >>> x0 = torch.zeros(2000, 1, dtype=torch.float64)
        >>> x = sgld.run(lambda x: 0.5 * (x**2).sum(-1), x0, torch.Generator().manual_seed(0))
        >>> round(x.std().item(), 1)  # N(0, 1)
        1.0
    """

    step_size: float
    steps: int = 100
    noise: float = 1.0
    clamp: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.step_size > 0:
            raise ValueError(f"step_size must be positive, got {self.step_size}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0 (1 = exact Langevin), got {self.noise}")
        if self.clamp is not None and not self.clamp[0] < self.clamp[1]:
            raise ValueError(f"clamp must be (low, high) with low < high, got {self.clamp}")

    def step(
        self,
        x: Tensor,
        grad: Tensor,
        generator: torch.Generator | None = None,
        movable: Tensor | None = None,
    ) -> Tensor:
        """One update of x given ∇E(x); entries where ``movable`` (broadcast to x) is False
        stay exactly as they are."""
        xi = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        out = x - self.step_size * grad + self.noise * math.sqrt(2 * self.step_size) * xi
        if self.clamp is not None:
            out = out.clamp(*self.clamp)
        return out if movable is None else torch.where(movable, out, x)

    def run(
        self,
        energy: Callable[[Tensor], Tensor],
        x: Tensor,
        generator: torch.Generator | None = None,
        movable: Tensor | None = None,
    ) -> Tensor:
        """``steps`` updates from x under ``energy`` (x -> (batch,) energies); returns the
        last x, detached. ``generator`` drives the noise (None: torch's global RNG)."""
        x = x.detach()
        with torch.enable_grad():
            for _ in range(self.steps):
                x = x.requires_grad_(True)
                (grad,) = torch.autograd.grad(energy(x).sum(), x)
                x = self.step(x.detach(), grad, generator, movable)
        return x
