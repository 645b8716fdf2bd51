"""The fast mixture log-density equals torch's elementwise MixtureSameFamily."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from dgm import distributions
from dgm.distributions import BLOCK_ELEMENTS, DiagonalGaussianMixture, DiscretizedLogisticMixture


def _pair(k, d, dtype, scale_range=(0.3, 2.0), seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(k, generator=g, dtype=dtype)
    loc = torch.randn(k, d, generator=g, dtype=dtype) * 2
    lo, hi = scale_range
    scale = lo + (hi - lo) * torch.rand(k, d, generator=g, dtype=dtype)
    fast = DiagonalGaussianMixture(logits, loc, scale)
    slow = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, scale), 1))
    return fast, slow


@pytest.mark.parametrize("block", [BLOCK_ELEMENTS, 4 * 50])
def test_equals_the_elementwise_mixture_in_float64(block, monkeypatch):
    monkeypatch.setattr(distributions, "BLOCK_ELEMENTS", block)  # 4 * 50: blocks of 4 rows
    fast, slow = _pair(50, 4, torch.float64)
    z = torch.randn(3, 7, 4, dtype=torch.float64) * 3
    assert torch.allclose(fast.log_prob(z), slow.log_prob(z), rtol=0, atol=1e-10)


def _exact(mix: DiagonalGaussianMixture, z: torch.Tensor) -> torch.Tensor:
    """log p(z) from torch's elementwise mixture, in float64."""
    comp = mix.component_distribution.base_dist
    return MixtureSameFamily(
        Categorical(logits=mix.mixture_distribution.logits.double()),
        Independent(Normal(comp.loc.double(), comp.scale.double()), 1),
    ).log_prob(z.double())


@pytest.mark.parametrize("sigma", [1.0, 1e-2, 1e-3, 1e-4])
def test_float32_is_accurate_down_to_the_gmvae_scale_floor(sigma):
    """Expanding (z − μ)² cancels terms of about |z|² / σ²: done in float32, as before, this
    mixture was off by 0.009 nats at σ = 1, 76 at 1e-2 and 8e5 at 1e-4 (the GMVAE's floor).
    Centred, and formed in float64, the error stays at float32 rounding. The mixture sits at
    50, not 0, so that the centring is tested too: float64 alone leaves 2e-3 nats at 1e-4."""
    g = torch.Generator().manual_seed(0)
    K, D, N = 200, 10, 1000
    logits = torch.randn(K, generator=g)
    loc = 50 + 2 * torch.randn(K, D, generator=g)
    scale = sigma * (0.5 + torch.rand(K, D, generator=g))  # (K, D), in [σ/2, 3σ/2]
    loc[1:8], scale[1:8] = loc[0], scale[0]  # eight coincident components share the mass
    k = torch.randint(K, (N,), generator=g)
    near = loc[k] + scale[k] * torch.randn(N, D, generator=g)  # (N, D), each by a component
    far = 50 + 3 * torch.randn(N // 4, D, generator=g)  # (N / 4, D), mostly far from all
    mix = DiagonalGaussianMixture(logits, loc, scale)
    err = (mix.log_prob(near).double() - _exact(mix, near)).abs()
    assert err.max() < 1e-4, err.max()
    exact = _exact(mix, far)
    err = (mix.log_prob(far).double() - exact).abs()
    # far away log p(z) reaches -1e10: float32 itself holds it only to ~6e-8 relative
    assert (err < 1e-4 + 1e-6 * exact.abs()).all(), (err / exact.abs()).max()


def test_autocast_does_not_lower_the_precision():
    """Under bf16 autocast a float32 matmul runs in bf16 (3 significant digits): the terms
    are float64, which autocast leaves alone, so the result is the same bit for bit."""
    fast, _ = _pair(50, 4, torch.float32, scale_range=(1e-3, 1e-2))
    z = fast.sample((100,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = fast.log_prob(z.bfloat16())
    assert inside.dtype == torch.float32
    assert torch.equal(inside, fast.log_prob(z.bfloat16().float()))


def test_normalises_in_one_dimension():
    fast, _ = _pair(5, 1, torch.float64)
    grid = torch.linspace(-15, 15, 30001, dtype=torch.float64).unsqueeze(-1)
    mass = fast.log_prob(grid).exp().sum() * (grid[1, 0] - grid[0, 0])
    assert mass.item() == pytest.approx(1.0, abs=1e-6)


def test_gradients_match(monkeypatch):
    monkeypatch.setattr(distributions, "BLOCK_ELEMENTS", 3 * 20)  # blocks of 3 rows
    fast, slow = _pair(20, 3, torch.float64)
    z = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(fast.log_prob(z).sum(), z)
    (g2,) = torch.autograd.grad(slow.log_prob(z).sum(), z)
    assert torch.allclose(g1, g2, atol=1e-10)
    assert math.isfinite(g1.sum().item())


# -- the discretized logistic mixture (PixelCNN++'s likelihood) ---------------------------


def _dlm(batch, k, dtype=torch.float64, num_levels=256, loc_scale=1.0, log_scale=(-4.0, 1.0)):
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(*batch, k, generator=g, dtype=dtype)
    loc = loc_scale * (2 * torch.rand(*batch, k, generator=g, dtype=dtype) - 1)
    lo, hi = log_scale
    log_s = lo + (hi - lo) * torch.rand(*batch, k, generator=g, dtype=dtype)
    return DiscretizedLogisticMixture(logits, loc, log_s, num_levels=num_levels)


@pytest.mark.parametrize("num_levels", [256, 4])
def test_logistic_mixture_sums_to_one_over_every_value(num_levels):
    d = _dlm((6, 3), 5, num_levels=num_levels)
    every = d.all_log_probs()  # (6, 3, L)
    assert every.shape == (6, 3, num_levels)
    assert (every.logsumexp(-1).abs() < 1e-10).all()
    values = d.enumerate_support()  # (L, 6, 3)
    torch.testing.assert_close(
        d.log_prob(values).logsumexp(0), torch.zeros(6, 3, dtype=every.dtype)
    )
    torch.testing.assert_close(d.log_prob(values), every.movedim(-1, 0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logistic_mixture_stays_finite_at_extreme_scales_and_locations(dtype):
    log_s = torch.tensor([-80.0, -30.0, -7.0, 0.0, 10.0, 40.0, 800.0], dtype=dtype)
    loc = torch.tensor([-1e4, -3.0, -1.0, 0.0, 0.3, 1.0, 1e4], dtype=dtype)
    grid_s, grid_l = torch.meshgrid(log_s, loc, indexing="ij")  # every pair, K = 1
    d = DiscretizedLogisticMixture(
        torch.zeros_like(grid_s)[..., None], grid_l[..., None], grid_s[..., None]
    )
    every = d.all_log_probs()  # (7, 7, 256)
    assert torch.isfinite(every).all()
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert (every.logsumexp(-1).abs() < tol).all()
    # a tiny scale puts all the mass in the bin of the location (clamped to the edge bins);
    # at a bin edge (loc 0 lies between bins 127 and 128) it splits the mass in halves
    tiny = every[0].exp()  # (7 locations, 256)
    assert tiny[[0, 1, 2, 5, 6], [0, 0, 0, 255, 255]].min() > 1 - 1e-6
    assert tiny[4, 166] > 1 - 1e-6  # 0.3 lies in bin round(1.3 · 127.5) = 166
    torch.testing.assert_close(tiny[3, 127:129], torch.full((2,), 0.5, dtype=dtype))


def test_logistic_mixture_log_prob_is_the_difference_of_cdfs():
    d = _dlm((4,), 3, log_scale=(-3.0, 0.5))
    v = torch.arange(256)[:, None].expand(256, 4)  # every value for each of 4 mixtures
    x = (2 * v.double() / 255 - 1)[..., None]  # (256, 4, 1) bin centres
    cdf = lambda t: torch.sigmoid((t - d.loc) / d.log_scale.exp())  # noqa: E731
    upper = torch.where(v[..., None] == 255, 1.0, cdf(x + 1 / 255))
    lower = torch.where(v[..., None] == 0, 0.0, cdf(x - 1 / 255))
    direct = ((upper - lower) * d.logits.softmax(-1)).sum(-1).log()  # (256, 4)
    torch.testing.assert_close(d.log_prob(v), direct, rtol=1e-9, atol=1e-12)


def test_logistic_mixture_samples_follow_the_pmf():
    """χ² goodness of fit of 20000 draws against exp(all_log_probs), fixed seed."""
    from scipy.stats import chi2

    d = _dlm((2,), 3, num_levels=8, log_scale=(-2.0, -0.5))
    n = 20000
    draws = d.sample((n,), generator=torch.Generator().manual_seed(0))  # (n, 2)
    assert draws.dtype == torch.long and d.support.check(draws).all()
    probs = d.all_log_probs().exp()  # (2, 8)
    for b in range(2):
        counts = torch.bincount(draws[:, b], minlength=8).double()
        expected = n * probs[b]
        keep = expected > 5  # the χ² approximation needs expected counts above ~5
        stat = ((counts - expected)[keep] ** 2 / expected[keep]).sum().item()
        assert stat < chi2.ppf(0.999, int(keep.sum()) - 1), stat
        assert counts[~keep].sum() < 30
