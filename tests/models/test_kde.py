"""The Gaussian KDE against its formulas, in float64: bandwidth rules, the log-sum-exp over
the stored points (chunked or not), a density that integrates to 1, exact marginals and
completions, the validation rule's choice, samples, and the data-sized points through
``dgm.load``."""

import math

import pytest
import torch
from scipy.stats import gaussian_kde
from torch.distributions import Normal

import dgm
from dgm import run_dir
from dgm.models.classical.kde import scott_factor, silverman_factor


def data(n: int = 200, d: int = 3, seed: int = 0) -> torch.Tensor:
    """Correlated, unevenly scaled points, float64."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ a + torch.arange(d)


def fitted(x: torch.Tensor, **config):
    model = dgm.create("kde", x.shape[1:], **config).double()
    metrics = model.fit_step([(x[: len(x) // 2], None), (x[len(x) // 2 :], None)])
    return model, metrics


def brute_log_prob(x, points, scale, keep=None):
    """log (1/N) Σ_i Π_d N(x_d; p_id, s_d) over the dimensions in ``keep``."""
    terms = Normal(points[None], scale).log_prob(x[:, None])  # (B, N, D)
    if keep is not None:
        terms = terms[..., keep]
    return terms.sum(-1).logsumexp(-1) - math.log(len(points))


@pytest.mark.parametrize("rule", ["scott", "silverman"])
@pytest.mark.parametrize("standardize", [True, False])
def test_bandwidth_rules_equal_their_formulas(rule, standardize):
    x = data(n=150, d=3)
    model, metrics = fitted(x, bandwidth=rule, standardize=standardize)
    n, d = 150, 3
    h = n ** (-1 / (d + 4)) if rule == "scott" else (n * (d + 2) / 4) ** (-1 / (d + 4))
    kde = gaussian_kde(x.numpy().T, bw_method=rule)  # scipy's factors
    assert h == pytest.approx(kde.factor, rel=1e-12)
    assert float(metrics["bandwidth"]) == pytest.approx(h, rel=1e-12)
    assert (scott_factor if rule == "scott" else silverman_factor)(n, d) == h
    sigma = x.std(0) if standardize else x.var(0).mean().sqrt().expand(3)  # ddof 1, as scipy
    torch.testing.assert_close(model.scale, h * sigma)


def test_log_prob_is_the_log_sum_exp_over_the_points_in_any_chunking():
    x = data()
    model, _ = fitted(x, chunk_size=7)
    q = data(n=9, seed=1)
    expected = brute_log_prob(q, x, model.scale)
    torch.testing.assert_close(model.log_prob(q), expected)
    whole, _ = fitted(x, chunk_size=10_000)
    torch.testing.assert_close(whole.log_prob(q), expected)


def test_density_integrates_to_one_on_a_grid():
    x = data(n=100, d=2)
    model, _ = fitted(x)
    margin = 8 * model.scale.max().item()
    lo, hi = x.min().item() - margin, x.max().item() + margin
    grid = torch.linspace(lo, hi, 501, dtype=torch.float64)
    dens = model.log_prob(torch.cartesian_prod(grid, grid)).exp().reshape(501, 501)
    total = torch.trapezoid(torch.trapezoid(dens, grid, dim=1), grid)
    assert total.item() == pytest.approx(1.0, abs=1e-4)


def test_marginal_over_observed_dimensions_is_exact():
    x = data()
    model, _ = fitted(x)
    q = data(n=6, seed=2)
    keep = torch.tensor([True, False, True])
    expected = brute_log_prob(q, x, model.scale, keep)
    torch.testing.assert_close(model.log_prob_observed(q, keep), expected)
    holes = q.clone()
    holes[:, ~keep] = math.nan
    torch.testing.assert_close(model.log_prob(holes), expected)


def test_complete_draws_from_the_exact_conditional():
    points = torch.tensor([[-2.0, -3.0], [0.0, 1.0], [1.0, 4.0]], dtype=torch.float64)
    model, _ = fitted(points)
    n = 6000
    rows = torch.tensor([[-0.5, math.nan]], dtype=torch.float64).expand(n, 2)
    keep = torch.tensor([True, False])
    draws = model.complete(rows, keep, generator=torch.Generator().manual_seed(0))
    assert (draws[:, 0] == -0.5).all()
    s = model.scale
    w = Normal(points[:, 0], s[0]).log_prob(torch.tensor(-0.5)).softmax(0)  # (3,)
    y = draws[:, 1]
    for t in (-3.0, -1.0, 0.5, 1.5, 3.0):
        cdf = (w * torch.special.ndtr((t - points[:, 1]) / s[1])).sum()
        empirical = (y <= t).double().mean()
        assert (empirical - cdf).abs() < 5 * (cdf * (1 - cdf) / n).sqrt() + 1e-3
    again = model.complete(rows, keep, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


@pytest.mark.parametrize("chunk_size", [2048, 2])  # 2: the points span two chunks
def test_complete_chooses_each_point_with_its_kernel_weight(chunk_size):
    points = torch.tensor([[0.0, -10.0], [1.0, 0.0], [2.0, 10.0]], dtype=torch.float64)
    model, _ = fitted(points, chunk_size=chunk_size)
    model.scale.copy_(torch.tensor([0.5, 0.1], dtype=torch.float64))
    n = 6000
    rows = torch.tensor([[0.8, 0.0]], dtype=torch.float64).expand(n, 2)
    draws = model.complete(
        rows, torch.tensor([True, False]), generator=torch.Generator().manual_seed(1)
    )
    chosen = (draws[:, 1:] - points[:, 1]).abs().argmin(-1)  # (n,): the point drawn around
    w = (-0.5 * ((0.8 - points[:, 0]) / 0.5) ** 2).softmax(0)  # 0.22, 0.73, 0.04
    freq = torch.bincount(chosen, minlength=3).double() / n
    assert ((freq - w).abs() < 5 * (w * (1 - w) / n).sqrt()).all()
    spread = draws[:, 1] - points[chosen, 1]
    assert abs(spread.std().item() - 0.1) < 0.005


def test_validation_picks_the_best_held_out_factor():
    x = data(n=120, d=2)
    model, metrics = fitted(x, bandwidth="validation", bandwidth_grid=6)
    factors, scores, n_fit = model.validation_scores(x)
    assert n_fit == 96 and len(factors) == 6
    g = torch.Generator().manual_seed(1)  # kde_seed + 1: the split
    order = torch.randperm(120, generator=g)
    fit, valid = x[order[24:]], x[order[:24]]
    for f, score in zip(factors, scores, strict=True):
        want = brute_log_prob(valid, fit, f * fit.std(0)).mean()
        torch.testing.assert_close(score, want)
    best = int(scores.argmax())
    assert float(metrics["validation_log_likelihood"]) == float(scores[best])
    rescaled = float(factors[best]) * (120 / 96) ** (-1 / 6)
    assert float(model.bandwidth) == pytest.approx(rescaled, rel=1e-12)
    torch.testing.assert_close(model.scale, rescaled * x.std(0))


def test_samples_are_points_plus_kernel_noise():
    x = data(n=50, d=2)
    model, _ = fitted(x)
    n = 20000
    s = model.sample(n, generator=torch.Generator().manual_seed(0))
    var = x.var(0, unbiased=False) + model.scale**2
    assert ((s.mean(0) - x.mean(0)).abs() < 4 * (var / n).sqrt()).all()
    assert ((s.var(0) / var - 1).abs() < 0.06).all()


def test_points_save_and_load_through_dgm_load(tmp_path):
    x = data(n=37).float()
    model = dgm.create("kde", (3,), max_points=30)
    model.fit_step([(x, None)])
    assert model.points.shape == (30, 3)
    run_dir.write_json(tmp_path / run_dir.CONFIG, run_dir.run_config(model))
    run_dir.save_weights(tmp_path / run_dir.WEIGHTS, model, step=1)
    loaded = dgm.load(tmp_path)
    assert loaded.points.shape == (30, 3) and torch.equal(loaded.points, model.points)
    assert bool(loaded.fitted) and torch.equal(loaded.scale, model.scale)
    torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x), rtol=0, atol=0)


def test_a_fitted_model_reads_no_more_data_and_errors_name_the_fix():
    model, _ = fitted(data())
    before = model.points.clone()

    def no_data():
        raise AssertionError("a fitted KDE read the data")
        yield

    model.fit_step(no_data())
    assert torch.equal(model.points, before)
    with pytest.raises(ValueError, match="at least 2 training points"):
        dgm.create("kde", (3,)).double().fit_step([(data(n=1), None)])
    with pytest.raises(ValueError, match="bandwidth must be"):
        dgm.create("kde", (3,), bandwidth="rule_of_thumb")
    holes = data()
    holes[0, 0] = math.nan
    with pytest.raises(ValueError, match="complete training points"):
        dgm.create("kde", (3,)).double().fit_step([(holes, None)])
