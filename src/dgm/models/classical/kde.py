"""Gaussian kernel density estimation.

p(x) = (1/N) Σ_i N(x; x_i, diag(s²)) over the N stored training points x_i (flattened,
D dimensions), with kernel standard deviations s_d = h σ_d: σ_d the training data's
standard deviation in dimension d (or one pooled σ̄ for all, ``standardize=False``) and
the bandwidth factor h from Scott's rule n^(−1/(D+4)), Silverman's (n (D+2)/4)^(−1/(D+4))
(scipy's ``gaussian_kde`` factors) or the held-out likelihood of a grid of factors.

References:
    Rosenblatt 1956, Remarks on some nonparametric estimates of a density function,
    Annals of Mathematical Statistics 27(3); Parzen 1962, On estimation of a probability
    density function and mode, Annals of Mathematical Statistics 33(3).
    Scott 1992, Multivariate Density Estimation, Wiley; Silverman 1986, Density
    Estimation for Statistics and Data Analysis, Chapman & Hall.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import Tensor

from dgm.model import GenerativeModel, Likelihood
from dgm.registry import register

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
BLOCK_ELEMENTS = 1 << 17  # (rows, points) pairs per block of the log-sum-exp: 1 MiB in float64
GRID_LOW, GRID_HIGH = 1 / 8, 4  # bandwidth=validation: factors from Scott's h/8 to 4h


@dataclasses.dataclass
class KDEConfig:
    bandwidth: Literal["scott", "silverman", "validation"] = "scott"  # rule for the factor h
    standardize: bool = True  # s_d = h σ_d per dimension; False: h σ̄ in all (images)
    validation_fraction: float = 0.2  # bandwidth=validation: training points held out
    bandwidth_grid: int = 16  # bandwidth=validation: factors tried, log-spaced h/8 .. 4h
    max_points: int = 0  # keep a random subset of this many training points (0: all of them)
    chunk_size: int = 2048  # training points per log-sum-exp chunk: memory O(batch × chunk)
    kde_seed: int = 0  # seeds the validation split and the subset


def scott_factor(n: int, d: int) -> float:
    """Scott's rule: h = n^(−1/(d+4))."""
    return n ** (-1.0 / (d + 4))


def silverman_factor(n: int, d: int) -> float:
    """Silverman's rule: h = (n (d+2)/4)^(−1/(d+4))."""
    return (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))


@register("kde", KDEConfig)
class KernelDensity(GenerativeModel):
    """Gaussian kernel density estimate (Rosenblatt 1956, Parzen 1962): exact log_prob in nats.

    ``fit_step`` stores the training points (all of them, or ``max_points`` of them drawn
    with ``kde_seed``) and the kernel standard deviations s (D,); later steps change
    nothing. The points are a data-sized buffer: ``dgm.load`` resizes it to what the run
    saved. ``log_prob`` is a log-sum-exp over the points, in chunks of ``chunk_size`` so
    memory stays O(batch × chunk). With ``bandwidth="validation"`` a share of the points
    is held out, each factor of a log-spaced grid around Scott's is scored by the
    held-out log-likelihood of a KDE on the rest, and the best factor, rescaled by
    (N / N_fit)^(−1/(D+4)) to the full set, is kept. σ_d below 10⁻³ σ̄ (a pixel that never
    changes) is raised to it. Until fitted, the model is N(0, I) (one point at 0, s = 1).

    A NaN in x marks a missing value: the marginal of a Gaussian-kernel KDE over the
    observed dimensions is the KDE of the points' observed dimensions, exactly, and
    ``complete`` draws the missing ones from the exact conditional (a point chosen with
    weight ∝ its kernel on the observed part, then its kernel on the missing part).

    References:
        Rosenblatt 1956; Parzen 1962; Scott 1992; Silverman 1986.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("kde", (2,))
        >>> x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
        >>> metrics = model.fit_step([(x, None)])
        >>> model.points.shape, round(float(metrics["bandwidth"]), 3)  # 500 ** (-1 / 6)
        (torch.Size([500, 2]), 0.355)
    """

    likelihood = Likelihood.EXACT
    data_sized_buffers = ("points",)

    def __init__(self, event_shape: Iterable[int], config: KDEConfig) -> None:
        super().__init__(event_shape, config)
        if config.bandwidth not in ("scott", "silverman", "validation"):
            raise ValueError(
                f"bandwidth must be 'scott', 'silverman' or 'validation', got {config.bandwidth!r}"
            )
        if not 0 < config.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must lie in (0, 1), got {config.validation_fraction}"
            )
        if config.bandwidth_grid < 1 or config.chunk_size < 1 or config.max_points < 0:
            raise ValueError(
                "bandwidth_grid and chunk_size must be >= 1 and max_points >= 0, got "
                f"{config.bandwidth_grid}, {config.chunk_size}, {config.max_points}"
            )
        D = self.num_dims
        self.register_buffer("points", torch.zeros(1, D))  # (N, D): resized by the fit
        self.register_buffer("scale", torch.ones(D))  # (D,) kernel standard deviations s
        self.register_buffer("bandwidth", torch.ones(()))  # the factor h
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    # -- densities ---------------------------------------------------------------------------

    def _log_kernel_sums(
        self, flat: Tensor, observed: Tensor, points: Tensor, scale: Tensor
    ) -> Tensor:
        """log (1/N) Σ_i N(x_o; p_{i,o}, diag(s_o²)) for rows (B, D) whose missing entries
        hold any finite value, against ``points`` (N, D): (B,)."""
        m = observed.to(flat.dtype)  # (B, D)
        complete = bool(observed.all())
        center = points.mean(0)  # (D,): distances lose less precision around the data
        a = (flat - center) / scale * m  # (B, D), 0 where missing
        a_sq = (a * a).sum(-1, keepdim=True)  # (B, 1)
        terms = []
        for p in points.split(self.config.chunk_size):
            p = (p - center) / scale  # (M, D)
            p_sq = p * p  # (M, D)
            p_norm = p_sq.sum(-1)  # (M,): |p|² when every dimension is observed
            # rows in blocks of BLOCK_ELEMENTS pairs: the (rows, M) temporaries stay in
            # cache and reuse freed memory (one (B, M) block for B = 4000 touched fresh
            # pages in every operation: 219k page faults, ~80% of a 2-D KDE's time)
            rows = max(1, BLOCK_ELEMENTS // len(p))
            lse = []
            blocks = zip(a.split(rows), a_sq.split(rows), m.split(rows), strict=True)
            for a_b, a_sq_b, m_b in blocks:
                far = p_norm if complete else m_b @ p_sq.T  # (M,) or (b, M): |p_o|²
                sq = torch.addmm(a_sq_b + far, a_b, p.T, alpha=-2)  # (b, M)
                lse.append((-0.5 * sq.clamp_min(0)).logsumexp(-1))  # (b,)
            terms.append(torch.cat(lse))  # (B,)
        const = -(m * (scale.log() + HALF_LOG_2PI)).sum(-1) - math.log(len(points))  # (B,)
        return torch.stack(terms, -1).logsumexp(-1) + const

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x) in nats, exact, shape (B,); NaN entries are integrated out."""
        x = self.check_x(x)
        self.check_c(c, len(x))
        flat = x.flatten(1)  # (B, D)
        observed = ~torch.isnan(flat)
        return self._log_kernel_sums(
            torch.where(observed, flat, 0.0), observed, self.points, self.scale
        )

    def log_prob_observed(
        self, x: Tensor, observed_mask: Tensor, c: Tensor | None = None
    ) -> Tensor:
        """log p(x_o) in nats (B,), the dimensions where ``observed_mask`` is False
        integrated out."""
        mask = _expand_mask(x, observed_mask)
        x = self.check_x(torch.where(mask, x, 0.0))
        self.check_c(c, len(x))
        return self._log_kernel_sums(x.flatten(1), mask.flatten(1), self.points, self.scale)

    def complete(
        self,
        x: Tensor,
        observed_mask: Tensor,
        c: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """x with its unobserved dimensions drawn from p(x_m | x_o): point i with weight ∝
        N(x_o; p_{i,o}, s_o²) (Gumbel-max over chunks), then N(p_{i,m}, s_m²)."""
        mask = _expand_mask(x, observed_mask)
        x = self.check_x(torch.where(mask, x, 0.0))
        self.check_c(c, len(x))
        flat, m = x.flatten(1), mask.flatten(1).to(self.points.dtype)  # (B, D)
        center = self.points.mean(0)  # (D,), as in _log_kernel_sums
        a = (flat - center) / self.scale * m  # (B, D)
        best = torch.full((len(x),), -math.inf, dtype=flat.dtype, device=flat.device)
        index = torch.zeros(len(x), dtype=torch.long, device=flat.device)
        for start, p in zip(
            range(0, len(self.points), self.config.chunk_size),
            self.points.split(self.config.chunk_size),
            strict=True,
        ):
            p = (p - center) / self.scale  # (M, D)
            sq = (a * a).sum(-1, keepdim=True) - 2 * a @ p.T + m @ (p * p).T  # (B, M)
            u = torch.rand(sq.shape, generator=generator, device=sq.device).to(sq.dtype)
            gumbel = -(-u.clamp_min(1e-30).log()).log()  # (B, M)
            score, arg = (-0.5 * sq.clamp_min(0) + gumbel).max(-1)  # (B,)
            better = score > best
            best = torch.where(better, score, best)
            index = torch.where(better, arg + start, index)
        eps = torch.randn(flat.shape, generator=generator, device=flat.device).to(flat.dtype)
        draw = (self.points[index] + self.scale * eps).reshape(x.shape)
        return torch.where(mask, x, draw)

    def sample(
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Tensor:
        """n draws, (n, *event_shape): a training point uniformly, plus kernel noise."""
        self.sample_settings(options)  # no options: refuses any
        self.check_c(c, n)
        device = self.points.device
        i = torch.randint(len(self.points), (n,), generator=generator, device=device)
        eps = torch.randn(n, self.num_dims, generator=generator, device=device)
        return (self.points[i] + self.scale * eps.to(self.points.dtype)).reshape(
            n, *self.event_shape
        )

    # -- fitting -----------------------------------------------------------------------------

    def kernel_scale(self, points: Tensor, factor: float) -> Tensor:
        """s (D,) = factor × the points' per-dimension standard deviations (ddof 1), or ×
        their pooled σ̄ = sqrt(mean variance) without ``standardize``; σ_d ≥ 10⁻³ σ̄."""
        var = points.var(0)  # (D,)
        pooled = var.mean().sqrt()
        if not bool(pooled > 0):
            raise ValueError("the training points are all equal: a KDE needs spread data")
        sigma = var.sqrt().clamp_min(1e-3 * pooled) if self.config.standardize else pooled
        return factor * sigma.expand(self.num_dims)

    def validation_scores(self, points: Tensor) -> tuple[Tensor, Tensor, int]:
        """The validation rule's grid and scores on (N, D) points: (factors (G,), mean
        held-out log-likelihood per factor (G,), N_fit). The held-out share is drawn with
        ``kde_seed``; factors are log-spaced from Scott's h(N_fit)/8 to 4 h(N_fit)."""
        n, d = len(points), self.num_dims
        held = max(1, round(self.config.validation_fraction * n))
        if n - held < 2:
            raise ValueError(
                f"bandwidth=validation needs at least 2 points left to fit, got {n} points "
                f"of which {held} are held out (lower validation_fraction)"
            )
        g = torch.Generator().manual_seed(self.config.kde_seed + 1)
        order = torch.randperm(n, generator=g).to(points.device)
        fit, valid = points[order[held:]], points[order[:held]]
        h = scott_factor(n - held, d)
        factors = h * torch.logspace(
            math.log10(GRID_LOW), math.log10(GRID_HIGH), self.config.bandwidth_grid
        ).to(torch.float64)
        if self.config.bandwidth_grid == 1:
            factors = torch.tensor([h], dtype=torch.float64)
        observed = torch.ones_like(valid, dtype=torch.bool)
        scores = [
            self._log_kernel_sums(valid, observed, fit, self.kernel_scale(fit, float(f))).mean()
            for f in factors
        ]
        return factors, torch.stack(scores), n - held

    def fit_step(self, batches: Iterable[tuple[Tensor, Tensor | None]]) -> dict[str, Tensor]:
        """Store the training points and the kernel scale (the whole fit, on the first
        call; later calls return at once, reading no data). Reports ``bandwidth`` (h) and
        ``points``; with ``bandwidth="validation"`` also the best held-out
        ``validation_log_likelihood`` (nats per example)."""
        if bool(self.fitted):
            return {"bandwidth": self.bandwidth.clone()}
        rows = []
        for x, c in batches:
            x = self.check_x(x)
            self.check_c(c, len(x))
            rows.append(x.flatten(1))  # (B, D)
        points = torch.cat(rows)  # (N, D)
        if bool(torch.isnan(points).any()):
            raise ValueError("a KDE stores complete training points: x contains NaN")
        cap = self.config.max_points
        if cap and len(points) > cap:
            g = torch.Generator().manual_seed(self.config.kde_seed)
            points = points[torch.randperm(len(points), generator=g)[:cap].to(points.device)]
        n, d = len(points), self.num_dims
        if n < 2:
            raise ValueError(f"a KDE needs at least 2 training points, got {n}")
        metrics = {}
        rule = self.config.bandwidth
        if rule == "validation":
            factors, scores, n_fit = self.validation_scores(points)
            best = int(scores.argmax())
            factor = float(factors[best]) * (n / n_fit) ** (-1.0 / (d + 4))
            metrics["validation_log_likelihood"] = scores[best].clone()
        else:
            factor = (scott_factor if rule == "scott" else silverman_factor)(n, d)
        self.points = points.clone()  # a new shape: re-register the data-sized buffer
        self.scale.copy_(self.kernel_scale(points, factor))
        self.bandwidth.fill_(factor)
        self.fitted.fill_(True)
        ones = torch.ones((), dtype=points.dtype, device=points.device)
        return metrics | {"bandwidth": self.bandwidth.clone(), "points": n * ones}


def _expand_mask(x: Tensor, observed_mask: Tensor) -> Tensor:
    mask = torch.as_tensor(observed_mask, device=x.device)
    if mask.dtype != torch.bool:
        raise ValueError(f"observed_mask must be a bool tensor, got {mask.dtype}")
    try:
        return mask.expand_as(x)
    except RuntimeError:
        raise ValueError(
            f"observed_mask has shape {tuple(mask.shape)}, which does not broadcast to "
            f"x's {tuple(x.shape)}"
        ) from None
