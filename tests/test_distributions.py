"""The fast mixture log-density equals torch's elementwise MixtureSameFamily."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from dgm.distributions import DiagonalGaussianMixture


def _pair(k, d, dtype, scale_range=(0.3, 2.0), seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(k, generator=g, dtype=dtype)
    loc = torch.randn(k, d, generator=g, dtype=dtype) * 2
    lo, hi = scale_range
    scale = lo + (hi - lo) * torch.rand(k, d, generator=g, dtype=dtype)
    fast = DiagonalGaussianMixture(logits, loc, scale)
    slow = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, scale), 1))
    return fast, slow


def test_equals_the_elementwise_mixture_in_float64():
    fast, slow = _pair(50, 4, torch.float64)
    z = torch.randn(3, 7, 4, dtype=torch.float64) * 3
    assert torch.allclose(fast.log_prob(z), slow.log_prob(z), rtol=0, atol=1e-10)


def test_float32_error_is_small_at_unit_scale():
    fast, slow = _pair(500, 10, torch.float32, scale_range=(0.1, 2.0))
    z = slow.sample((2000,))
    comp = slow.component_distribution.base_dist
    exact = MixtureSameFamily(
        Categorical(logits=slow.mixture_distribution.logits.double()),
        Independent(Normal(comp.loc.double(), comp.scale.double()), 1),
    ).log_prob(z.double())
    assert (fast.log_prob(z).double() - exact).abs().max() < 1e-3


def test_normalises_in_one_dimension():
    fast, _ = _pair(5, 1, torch.float64)
    grid = torch.linspace(-15, 15, 30001, dtype=torch.float64).unsqueeze(-1)
    mass = fast.log_prob(grid).exp().sum() * (grid[1, 0] - grid[0, 0])
    assert mass.item() == pytest.approx(1.0, abs=1e-6)


def test_gradients_match():
    fast, slow = _pair(20, 3, torch.float64)
    z = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(fast.log_prob(z).sum(), z)
    (g2,) = torch.autograd.grad(slow.log_prob(z).sum(), z)
    assert torch.allclose(g1, g2, atol=1e-10)
    assert math.isfinite(g1.sum().item())
