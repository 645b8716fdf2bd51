"""2-D toy densities for quick experiments and for checking density estimates exactly.

Each density has ``sample(n, generator) -> (n, 2)`` float32 and ``log_prob(x) -> (...)`` in
nats where the density is known (all but the pinwheel); ``sample_labeled`` also returns the
mixture component of each point (the dataset's ``y``). Registered as datasets with options
``num_samples`` (points per split, default 10000 for train, valid and test alike) and
``seed``; each split is drawn with its own seed derived from ``seed``, so the splits are
independent and reproducible. ``root`` is ignored. ``TensorData.density`` is the density.

Example:
    >>> import torch
    >>> d = EightGaussians()
    >>> x = d.sample(4, torch.Generator().manual_seed(0))
    >>> x.shape, d.log_prob(x).shape
    (torch.Size([4, 2]), torch.Size([4]))
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch
from torch import Tensor

from dgm.data.dataset import SPLITS, TensorData, register_dataset
from dgm.data.options import ToyOptions


class ToyDensity:
    """Base class: a mixture of ``num_components`` parts in the plane."""

    num_components: int = 1

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` independent points, (n, 2) float32."""
        return self.sample_labeled(n, generator)[0]

    def sample_labeled(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``n`` points (n, 2) float32 and the component each came from, (n,) long."""
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        """Log density at points ``x`` (..., 2), in nats; shape (...)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form density")


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")


def _check_points(x: Tensor) -> None:
    if x.shape[-1:] != (2,):
        raise ValueError(f"x has shape {tuple(x.shape)}, expected (..., 2)")


class EightGaussians(ToyDensity):
    """Equal mixture of 8 isotropic Gaussians (std ``std``) whose means lie equally spaced
    on a circle of radius ``radius`` (the first on the positive x axis). Defaults 2.0 and
    0.2 keep the modes well apart; Grathwohl et al. 2019 (FFJORD, arXiv:1810.01367) use
    radius 2*sqrt(2) and std 0.5/sqrt(2)."""

    num_components = 8

    def __init__(self, radius: float = 2.0, std: float = 0.2) -> None:
        self.radius, self.std = radius, std
        angle = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        self.means = radius * torch.stack([angle.cos(), angle.sin()], -1)  # (8, 2)

    def sample_labeled(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        _check_n(n)
        k = torch.randint(8, (n,), generator=generator)
        x = self.means[k] + self.std * torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return x.float(), k

    def log_prob(self, x: Tensor) -> Tensor:
        _check_points(x)
        means = self.means.to(x.device, x.dtype)
        d2 = ((x[..., None, :] - means) ** 2).sum(-1)  # (..., 8)
        log_norm = math.log(2 * math.pi * self.std**2) + math.log(8)
        return torch.logsumexp(-d2 / (2 * self.std**2), -1) - log_norm


class Grid25(ToyDensity):
    """Equal mixture of 25 isotropic Gaussians (std ``std``) centred on the 5x5 grid
    {-2, -1, 0, 1, 2}^2 times ``spacing``, numbered row by row from the lower left. The
    mode-collapse benchmark of the GAN literature (VEEGAN, Srivastava et al. 2017,
    arXiv:1705.07761); defaults 2.0 and 0.1 keep neighbouring modes 20 std apart."""

    num_components = 25

    def __init__(self, spacing: float = 2.0, std: float = 0.1) -> None:
        self.spacing, self.std = spacing, std
        ticks = spacing * torch.arange(-2, 3, dtype=torch.float64)
        self.means = torch.cartesian_prod(ticks, ticks).flip(-1)  # (25, 2) x fastest

    def sample_labeled(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        _check_n(n)
        k = torch.randint(25, (n,), generator=generator)
        x = self.means[k] + self.std * torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return x.float(), k

    def log_prob(self, x: Tensor) -> Tensor:
        _check_points(x)
        means = self.means.to(x.device, x.dtype)
        d2 = ((x[..., None, :] - means) ** 2).sum(-1)  # (..., 25)
        log_norm = math.log(2 * math.pi * self.std**2) + math.log(25)
        return torch.logsumexp(-d2 / (2 * self.std**2), -1) - log_norm


class Checkerboard(ToyDensity):
    """Uniform on the 8 black squares of a 4x4 board of 2x2 squares over [-4, 4)^2; a
    square (i, j), counted from the lower left corner, is black when i + j is even.
    Density 1/32 on black squares, 0 elsewhere."""

    num_components = 8

    def __init__(self) -> None:
        cells = [(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0]
        self.corners = torch.tensor(cells, dtype=torch.float64) * 2 - 4  # (8, 2) lower-left

    def sample_labeled(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        _check_n(n)
        k = torch.randint(8, (n,), generator=generator)
        x = self.corners[k] + 2 * torch.rand(n, 2, generator=generator, dtype=torch.float64)
        return x.float(), k

    def log_prob(self, x: Tensor) -> Tensor:
        _check_points(x)
        cell = torch.floor((x + 4) / 2)  # (..., 2) square indices
        on_board = ((cell >= 0) & (cell <= 3)).all(-1)
        black = on_board & (cell.sum(-1) % 2 == 0)
        inside = torch.full_like(x[..., 0], -math.log(32))
        return torch.where(black, inside, torch.full_like(inside, -math.inf))


class TwoCircles(ToyDensity):
    """Two concentric rings of radii ``radii``, chosen with equal probability, blurred by
    isotropic Gaussian noise of std ``std``. The density is exact:
    p(x) = exp(-(|x| - r)^2 / (2 std^2)) i0e(r |x| / std^2) / (2 pi std^2) per ring."""

    num_components = 2

    def __init__(self, radii: tuple[float, float] = (1.5, 3.0), std: float = 0.2) -> None:
        self.radii, self.std = radii, std

    def sample_labeled(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        _check_n(n)
        k = torch.randint(2, (n,), generator=generator)
        theta = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        r = torch.tensor(self.radii, dtype=torch.float64)[k]
        ring = r[:, None] * torch.stack([theta.cos(), theta.sin()], -1)  # (n, 2)
        x = ring + self.std * torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return x.float(), k

    def log_prob(self, x: Tensor) -> Tensor:
        _check_points(x)
        s2 = self.std**2
        norm = x.norm(dim=-1, keepdim=True)  # (..., 1)
        r = torch.tensor(self.radii, device=x.device, dtype=x.dtype)  # (2,)
        log_ring = -((norm - r) ** 2) / (2 * s2) + torch.special.i0e(r * norm / s2).log()
        return torch.logsumexp(log_ring, -1) - math.log(2 * math.pi * s2) - math.log(2)


class Moons(ToyDensity):
    """sklearn's two interleaving half circles, picked with equal probability: the upper
    (cos t, sin t) and the lower (1 - cos t, 0.5 - sin t), t ~ Uniform(0, pi), plus
    isotropic Gaussian noise of std ``noise``. ``log_prob`` integrates the Gaussian over t
    by Gauss-Legendre quadrature with ``nodes`` points per moon (error below 1e-9 nats
    wherever the density exceeds e^-20, for the default noise 0.1)."""

    num_components = 2

    def __init__(self, noise: float = 0.1, nodes: int = 128) -> None:
        self.noise = noise
        u, w = np.polynomial.legendre.leggauss(nodes)  # nodes on [-1, 1], weights sum to 2
        self.t = torch.from_numpy((u + 1) * (math.pi / 2))  # (nodes,) in (0, pi)
        self.log_w = torch.from_numpy(np.log(w / 2))  # (nodes,) mean over t ~ U(0, pi)

    @staticmethod
    def _arc(t: Tensor, k: Tensor) -> Tensor:
        upper = torch.stack([t.cos(), t.sin()], -1)
        lower = torch.stack([1 - t.cos(), 0.5 - t.sin()], -1)
        return torch.where(k[:, None] == 0, upper, lower)  # (n, 2)

    def sample_labeled(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        _check_n(n)
        k = torch.randint(2, (n,), generator=generator)
        t = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return (self._arc(t, k) + self.noise * noise).float(), k

    def log_prob(self, x: Tensor) -> Tensor:
        _check_points(x)
        t = self.t.repeat(2)  # (2 * nodes,) both moons, float64
        centers = self._arc(t, torch.arange(2).repeat_interleave(len(self.t))).to(x.device)
        log_w = self.log_w.to(x.device).repeat(2) - math.log(2)  # (2 * nodes,)
        out = []
        for chunk in x.reshape(-1, 2).double().split(8192):
            d2 = (chunk**2).sum(-1, keepdim=True) + (centers**2).sum(-1) - 2 * chunk @ centers.T
            out.append(torch.logsumexp(log_w - d2.clamp_min(0) / (2 * self.noise**2), -1))
        log_norm = math.log(2 * math.pi * self.noise**2)
        return (torch.cat(out) - log_norm).reshape(x.shape[:-1]).to(x.dtype)


class Pinwheel(ToyDensity):
    """The pinwheel of Johnson et al. 2016 (SVAE, arXiv:1603.06277) as scaled in FFJORD:
    ``num_arms`` arms, radial std 0.3, tangential std 0.1, twist rate 0.25, times 2. Its
    density has no closed form, so ``log_prob`` raises."""

    def __init__(
        self,
        num_arms: int = 5,
        radial_std: float = 0.3,
        tangential_std: float = 0.1,
        rate: float = 0.25,
    ) -> None:
        self.num_arms, self.rate = num_arms, rate
        self.stds = torch.tensor([radial_std, tangential_std], dtype=torch.float64)
        self.num_components = num_arms

    def sample_labeled(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        _check_n(n)
        k = torch.randint(self.num_arms, (n,), generator=generator)
        f = torch.randn(n, 2, generator=generator, dtype=torch.float64) * self.stds
        f[:, 0] += 1
        angle = k * (2 * math.pi / self.num_arms) + self.rate * f[:, 0].exp()
        c, s = angle.cos(), angle.sin()
        x = torch.stack([f[:, 0] * c + f[:, 1] * s, f[:, 1] * c - f[:, 0] * s], -1)  # (n, 2)
        return (2 * x).float(), k


def _register(name: str, density: ToyDensity, summary: str) -> None:
    def load(split: str, root: str | None, options: ToyOptions) -> TensorData:
        words = [zlib.crc32(name.encode()), SPLITS.index(split), options.seed]
        split_seed = int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> 1)
        gen = torch.Generator().manual_seed(split_seed)
        x, y = density.sample_labeled(options.num_samples, gen)
        return TensorData(x, y, name=name, num_classes=density.num_components, density=density)

    load.__doc__ = f"{summary}: ``num_samples`` points (n, 2) for ``split``; ``root`` is unused."
    register_dataset(name, summary, ToyOptions)(load)


TOY_DENSITIES: dict[str, ToyDensity] = {
    "moons": Moons(),
    "eight_gaussians": EightGaussians(),
    "grid25": Grid25(),
    "checkerboard": Checkerboard(),
    "two_circles": TwoCircles(),
    "pinwheel": Pinwheel(),
}
for _name, _summary in [
    ("moons", "2-D toy: two interleaving half circles with Gaussian noise"),
    ("eight_gaussians", "2-D toy: 8 Gaussians on a circle of radius 2"),
    ("grid25", "2-D toy: 25 Gaussians on a 5x5 grid"),
    ("checkerboard", "2-D toy: uniform on the black squares of a 4x4 checkerboard"),
    ("two_circles", "2-D toy: two concentric noisy rings"),
    ("pinwheel", "2-D toy: five-arm pinwheel"),
]:
    _register(_name, TOY_DENSITIES[_name], _summary)
