"""2-D toy densities: reproducible sampling, normalized log_prob that agrees with the samples."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.datasets import make_moons

from dgm.data import available_datasets, dataset_options, get
from dgm.data.toy import (
    TOY_DENSITIES,
    Checkerboard,
    EightGaussians,
    Grid25,
    Moons,
    Pinwheel,
    TwoCircles,
)

NAMES = ["moons", "eight_gaussians", "grid25", "checkerboard", "two_circles", "pinwheel"]
WITH_DENSITY = [n for n in NAMES if n != "pinwheel"]


def grid(lo: float, hi: float, step: float) -> tuple[torch.Tensor, float]:
    """Cell centres of a square grid over [lo, hi]^2 (float64), and the cell area."""
    c = torch.arange(lo + step / 2, hi, step, dtype=torch.float64)
    return torch.cartesian_prod(c, c), step**2  # (m^2, 2)


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_loads(name):
    assert name in available_datasets()
    assert dataset_options(name) == {"num_samples": 10000, "seed": 0}
    density = TOY_DENSITIES[name]
    splits = {s: get(name, s, num_samples=500) for s in ("train", "valid", "test")}
    for ds in splits.values():
        assert ds.x.shape == (500, 2) and ds.x.dtype == torch.float32
        assert ds.y.dtype == torch.long and 0 <= ds.y.min() and ds.y.max() < ds.num_classes
        assert ds.num_classes == density.num_components and ds.density is density
        assert len(ds.y.unique()) == ds.num_classes  # every component shows up
    assert not torch.equal(splits["train"].x, splits["valid"].x)
    assert not torch.equal(splits["valid"].x, splits["test"].x)
    assert torch.equal(get(name, "valid", num_samples=500).x, splits["valid"].x)
    assert not torch.equal(get(name, "valid", num_samples=500, seed=1).x, splits["valid"].x)
    assert len(get(name, "train", root="/ignored")) == 10000
    with pytest.raises(ValueError, match="num_samples"):
        get(name, "train", num_samples=0)


@pytest.mark.parametrize("name", NAMES)
def test_sampling_is_reproducible(name):
    d = TOY_DENSITIES[name]
    a = d.sample(1000, torch.Generator().manual_seed(5))
    b = d.sample(1000, torch.Generator().manual_seed(5))
    c = d.sample(1000, torch.Generator().manual_seed(6))
    assert a.shape == (1000, 2) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert d.sample(0).shape == (0, 2)


@pytest.mark.parametrize("name", WITH_DENSITY)
def test_log_prob_integrates_to_one(name):
    points, area = grid(-5, 5, 0.025)
    log_p = TOY_DENSITIES[name].log_prob(points)
    assert log_p.shape == (len(points),) and log_p.dtype == torch.float64
    assert abs(log_p.exp().sum().item() * area - 1) < 1e-3


@pytest.mark.parametrize("name", WITH_DENSITY)
def test_log_prob_matches_a_histogram_of_samples(name):
    d, bin_width, fine = TOY_DENSITIES[name], 0.25, 5  # fine x fine sub-cells per bin
    points, area = grid(-5, 5, bin_width / fine)
    m = round(10 / bin_width)
    p = (d.log_prob(points).exp() * area).view(m, fine, m, fine).sum((1, 3)).flatten()
    x = d.sample(200_000, torch.Generator().manual_seed(0)).double()
    assert torch.isfinite(d.log_prob(x[:20_000])).all()  # samples lie in the support
    cell = ((x + 5) / bin_width).floor().long().clamp(0, m - 1)
    counts = torch.bincount(cell[:, 0] * m + cell[:, 1], minlength=m * m).double()
    total_variation = 0.5 * (counts / len(x) - p).abs().sum().item()
    assert total_variation < 0.04


def test_eight_gaussians_exact_values():
    d = EightGaussians()
    peak = -math.log(8 * 2 * math.pi * 0.2**2)  # at a mean the other modes add < e^-40
    torch.testing.assert_close(d.log_prob(d.means), torch.full((8,), peak, dtype=torch.float64))
    assert torch.allclose(d.means.norm(dim=-1), torch.full((8,), 2.0, dtype=torch.float64))
    x = d.sample(50_000, torch.Generator().manual_seed(1))
    assert abs(x.norm(dim=-1).mean() - 2.0) < 0.02


def test_grid25_modes_and_exact_values():
    d = Grid25()
    ticks = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0], dtype=torch.float64)
    # mode k (the label y) is column k % 5, row k // 5: x varies fastest
    assert d.means.tolist() == [[ticks[k % 5].item(), ticks[k // 5].item()] for k in range(25)]
    peak = -math.log(25 * 2 * math.pi * 0.1**2)  # neighbours 20 std away add < e^-200
    torch.testing.assert_close(d.log_prob(d.means), torch.full((25,), peak, dtype=torch.float64))
    x, k = d.sample_labeled(5000, torch.Generator().manual_seed(1))
    assert ((x.double() - d.means[k]).norm(dim=-1) < 5 * 0.1).all()  # each near its own mode
    assert torch.bincount(k, minlength=25).min() > 5000 / 25 * 0.7


def test_checkerboard_support():
    d = Checkerboard()
    points, area = grid(-5, 5, 0.05)  # square edges fall between cell centres
    log_p = d.log_prob(points)
    assert set(log_p.unique().tolist()) == {-math.inf, -math.log(32)}
    assert log_p.exp().sum().item() * area == pytest.approx(1, abs=1e-9)
    inside = torch.tensor([[-3.0, -3.0], [-1.0, -1.0], [1.0, -3.0], [3.5, -0.5]])
    outside = torch.tensor([[-3.0, -1.0], [1.0, -1.0], [4.5, 0.0], [0.0, -4.1]])
    assert torch.isfinite(d.log_prob(inside)).all()
    assert torch.isinf(d.log_prob(outside)).all()


def test_two_circles_matches_quadrature_over_the_angle():
    d = TwoCircles()
    x = torch.tensor(
        [[0.0, 0.0], [1.5, 0.0], [0.3, -2.2], [3.0, 3.0], [5.0, 1.0]], dtype=torch.float64
    )
    theta = torch.arange(4096, dtype=torch.float64) * (2 * math.pi / 4096)
    ring = torch.stack([theta.cos(), theta.sin()], -1)  # (4096, 2)
    centres = torch.cat([1.5 * ring, 3.0 * ring])  # (8192, 2) both rings, equal weights
    d2 = ((x[:, None] - centres) ** 2).sum(-1)
    brute = torch.logsumexp(-d2 / (2 * 0.2**2), -1) - math.log(8192 * 2 * math.pi * 0.2**2)
    torch.testing.assert_close(d.log_prob(x), brute)


def test_log_prob_shapes_and_dtype():
    for name in WITH_DENSITY:
        d = TOY_DENSITIES[name]
        x = d.sample(12).view(3, 4, 2)
        assert d.log_prob(x).shape == (3, 4) and d.log_prob(x).dtype == torch.float32
        with pytest.raises(ValueError, match="expected"):
            d.log_prob(torch.zeros(5, 3))


def test_moons_lie_on_sklearns_half_circles():
    ours, k = Moons(noise=0.0).sample_labeled(5000, torch.Generator().manual_seed(0))
    theirs, label = make_moons(n_samples=4000, noise=None)
    theirs, label = torch.from_numpy(theirs).float(), torch.from_numpy(label)
    for moon in (0, 1):  # the same arcs, and the same component numbering
        d = torch.cdist(ours[k == moon], theirs[label == moon])
        assert d.min(1).values.max() < 0.01 and d.min(0).values.max() < 0.01


def test_pinwheel():
    d = Pinwheel()
    with pytest.raises(NotImplementedError, match="closed-form"):
        d.log_prob(torch.zeros(3, 2))
    x, k = d.sample_labeled(20_000, torch.Generator().manual_seed(0))
    assert abs(x.norm(dim=-1).mean() - 2.0) < 0.15  # radial feature ~ 1 + 0.3 noise, times 2
    # |x| / 2 = √(f_r² + f_t²) ≈ |f_r|: its spread is the radial std 0.3 (tangential: 0.1)
    assert abs((x.norm(dim=-1) / 2).std() - 0.3) < 0.02
    # Each arm starts near angle 2 pi k / 5 (plus the twist rate * e at the mean radius).
    angle = torch.atan2(-x[:, 1], x[:, 0])
    expected = 2 * math.pi * k / 5 + 0.25 * math.e
    assert (torch.remainder(angle - expected + math.pi, 2 * math.pi) - math.pi).abs().median() < 0.3
