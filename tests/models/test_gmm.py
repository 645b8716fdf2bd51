"""The Gaussian mixture against theory and scikit-learn, in float64: EM never lowers the
likelihood and takes scikit-learn's steps from the same start; the density integrates to
1; marginals and the conditional mixture of the missing dimensions equal their closed
forms, and ``complete`` draws from that conditional; BIC finds the true K."""

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from torch.distributions import MultivariateNormal

import dgm
from dgm.models.classical.gmm import GaussianMixture, GMMConfig, select_components


def clusters(n: int = 150, d: int = 3, k: int = 3, spread: float = 6.0, seed: int = 0):
    """k elongated Gaussian clusters of n points each in d dimensions, float64."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    for i in range(k):
        a = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.7
        parts.append(torch.randn(n, d, generator=g, dtype=torch.float64) @ a + spread * i)
    return torch.cat(parts)


def make(d: int = 3, **config) -> GaussianMixture:
    return dgm.create("gmm", (d,), **config).double()


def dense_covariances(model: GaussianMixture) -> torch.Tensor:
    cov = model.covariances()
    return cov if model.full else torch.diag_embed(cov)  # (K, D, D)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_em_log_likelihood_never_decreases(covariance):
    model = make(num_components=4, covariance=covariance, tol=0.0)
    history = model.fit(clusters(), max_steps=30)
    assert len(history) == 30
    assert all(b >= a - 1e-10 for a, b in itertools.pairwise(history))
    assert history[-1] > history[0] + 1e-3  # EM moved
    final = model.log_prob(clusters()).mean().item()
    assert final >= history[-1] - 1e-10  # the last update did not lower it either


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_em_matches_scikit_learn_from_the_same_start(covariance):
    x, steps = clusters(), 8
    model = make(num_components=3, covariance=covariance, tol=0.0, reg_covar=1e-4)
    model.seed_components(x)
    cov = model.covariances()
    precisions = torch.linalg.inv(cov) if model.full else 1 / cov
    sk = SkGaussianMixture(
        3,
        covariance_type=covariance,
        reg_covar=1e-4,
        tol=0.0,
        max_iter=steps,
        weights_init=model.log_weights.exp().numpy(),
        means_init=model.means.numpy(),
        precisions_init=precisions.numpy(),
    )
    with pytest.warns(UserWarning):  # "did not converge": tol=0 runs every iteration
        sk.fit(x.numpy())
    history = model.fit(x, max_steps=steps)
    np.testing.assert_allclose(model.log_weights.exp().numpy(), sk.weights_, rtol=1e-8)
    np.testing.assert_allclose(model.means.numpy(), sk.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.covariances().numpy(), sk.covariances_, rtol=1e-7)
    assert history[-1] == pytest.approx(sk.lower_bound_, rel=1e-10)  # before the last update
    np.testing.assert_allclose(model.log_prob(x).numpy(), sk.score_samples(x.numpy()), rtol=1e-9)


@pytest.mark.parametrize("d", [1, 5, 40])
def test_full_log_prob_whitened_once_equals_the_torch_mixture(d):
    # _joint whitens by L_k⁻¹ with one matrix product per component (the fast path); it
    # must equal torch's MultivariateNormal mixture, which solves per row, on covariances
    # of very different scales (conditioning ~1e4) and points far in the tails
    g = torch.Generator().manual_seed(d)
    K = 4
    model = make(d, num_components=K)
    a = torch.randn(K, d, d, generator=g, dtype=torch.float64)
    cov = a @ a.mT / d + torch.logspace(-2, 2, K, dtype=torch.float64)[:, None, None] * torch.eye(
        d, dtype=torch.float64
    )
    model.scale.copy_(torch.linalg.cholesky(cov))
    model.means.copy_(torch.randn(K, d, generator=g, dtype=torch.float64) * 3)
    model.log_weights.copy_(torch.randn(K, generator=g, dtype=torch.float64).log_softmax(0))
    x = torch.randn(300, d, generator=g, dtype=torch.float64) * 10
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=model.log_weights),
        MultivariateNormal(model.means, covariance_matrix=cov),
    )
    np.testing.assert_allclose(model.log_prob(x).numpy(), mix.log_prob(x).numpy(), rtol=1e-10)


def test_em_statistics_get_no_subnormal_responsibilities(monkeypatch):
    # far-apart clusters in 40-D put log-responsibilities near −720, whose exp is
    # subnormal: EM flushes them to 0 (they change no sum, and they slow the matrix
    # products ~2x), and the fit still equals scikit-learn's from the same start
    x = clusters(n=100, d=40, k=3, spread=4.0, seed=5)
    model = make(40, num_components=3, tol=0.0, reg_covar=1e-3)
    model.seed_components(x)
    sk = SkGaussianMixture(
        3,
        reg_covar=1e-3,
        tol=0.0,
        max_iter=3,
        weights_init=model.log_weights.exp().numpy(),
        means_init=model.means.numpy(),
        precisions_init=torch.linalg.inv(model.covariances()).numpy(),
    )
    with pytest.warns(UserWarning):
        sk.fit(x.numpy())
    seen = []
    statistics = model._statistics
    monkeypatch.setattr(model, "_statistics", lambda f, r: seen.append(r) or statistics(f, r))
    model.fit(x, max_steps=3)
    r = torch.cat(seen)
    tiny = torch.finfo(r.dtype).tiny
    assert bool(((r == 0) | (r >= tiny)).all())
    assert bool((r == 0).any())  # the case arose: some responsibilities were flushed
    np.testing.assert_allclose(model.log_prob(x).numpy(), sk.score_samples(x.numpy()), rtol=1e-9)


def test_kmeans_plus_plus_seeding_is_seeded_and_a_converged_fit_reads_no_data():
    x = clusters()
    a, b = make(num_components=3, init_seed=3), make(num_components=3, init_seed=3)
    a.seed_components(x)
    b.seed_components(x)
    assert torch.equal(a.means, b.means)
    model = make(num_components=3, tol=1e-3)
    history = model.fit(clusters(spread=2.0), max_steps=200)  # overlapping: several steps
    assert bool(model.converged) and len(history) < 200
    gains = [b - a for a, b in itertools.pairwise(history)]
    assert gains[-1] < 1e-3 and min(gains[:-1]) >= 1e-3  # stops at the first small gain

    def no_data():
        raise AssertionError("a converged model read the data")
        yield

    before = model.means.clone()
    model.fit_step(no_data())
    assert torch.equal(model.means, before)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_density_integrates_to_one_on_a_grid(covariance):
    model = make(d=2, num_components=3, covariance=covariance)
    model.fit(clusters(d=2, spread=3.0), max_steps=20)
    lo, hi = model.means.min().item() - 8, model.means.max().item() + 8
    grid = torch.linspace(lo, hi, 301, dtype=torch.float64)
    xx = torch.cartesian_prod(grid, grid)  # (301², 2)
    dens = model.log_prob(xx).exp().reshape(301, 301)
    total = torch.trapezoid(torch.trapezoid(dens, grid, dim=1), grid)
    assert total.item() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_marginal_of_the_observed_dimensions_is_the_closed_form(covariance):
    model = make(d=4, num_components=3, covariance=covariance)
    model.fit(clusters(d=4), max_steps=10)
    x = clusters(n=2, d=4, seed=1)  # (6, 4)
    keep = torch.tensor([True, False, True, False])
    cov = dense_covariances(model)
    comp = MultivariateNormal(model.means[:, keep], cov[:, keep][:, :, keep])
    expected = (comp.log_prob(x[:, None, keep]) + model.log_weights).logsumexp(-1)
    torch.testing.assert_close(model.log_prob_observed(x, keep), expected)
    with_nan = x.clone()
    with_nan[:, ~keep] = math.nan
    torch.testing.assert_close(model.log_prob(with_nan), expected)
    rows = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.5  # per row
    for i in range(len(x)):
        o = rows[i]
        if o.any():
            ci = MultivariateNormal(model.means[:, o], cov[:, o][:, :, o])
            want = (ci.log_prob(x[i, o]) + model.log_weights).logsumexp(-1)
            torch.testing.assert_close(model.log_prob_observed(x[i : i + 1], o)[0], want)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_conditional_of_the_missing_dimensions_is_the_closed_form(covariance):
    model = make(d=4, num_components=3, covariance=covariance)
    model.fit(clusters(d=4), max_steps=10)
    x = clusters(n=2, d=4, seed=2)
    keep = torch.tensor([False, True, True, False])
    o, m = keep.nonzero().squeeze(-1), (~keep).nonzero().squeeze(-1)
    cond = model.missing_given_observed(x, keep)
    cov = dense_covariances(model)
    for k in range(3):
        s_oo, s_mo = cov[k][o][:, o], cov[k][m][:, o]
        gain = s_mo @ torch.linalg.inv(s_oo)  # Σ_mo Σ_oo⁻¹
        mean = model.means[k, m] + (x[:, o] - model.means[k, o]) @ gain.T  # (B, Dm)
        var = cov[k][m][:, m] - gain @ s_mo.T
        comp = cond.component_distribution
        torch.testing.assert_close(comp.mean[:, k], mean)
        got = comp.covariance_matrix if model.full else torch.diag_embed(comp.variance)
        torch.testing.assert_close(got[:, k], var.expand(len(x), -1, -1))
    joint = MultivariateNormal(model.means[:, o], cov[:, o][:, :, o]).log_prob(x[:, None, o])
    weights = (joint + model.log_weights).softmax(-1)
    torch.testing.assert_close(cond.mixture_distribution.probs, weights)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_complete_draws_from_the_conditional_mixture(covariance):
    model = make(d=3, num_components=3, covariance=covariance)
    model.fit(clusters(spread=2.0), max_steps=10)  # overlapping: the posterior is mixed
    keep = torch.tensor([True, False, False])
    x = clusters(n=1, spread=2.0, seed=3)[1:2]  # one row
    n = 4000
    rows = x.expand(n, 3).clone()
    rows[:, ~keep] = math.nan  # missing values may be NaN
    draws = model.complete(rows, keep, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws[:, 0], rows[:, 0]) and torch.isfinite(draws).all()
    cond = model.missing_given_observed(x, keep)
    assert (cond.mixture_distribution.probs.max() < 0.99).all()  # more than one component
    y = draws[:, 1:]  # (n, 2)
    se = y.std(0) / math.sqrt(n)
    assert ((y.mean(0) - cond.mean[0]).abs() < 4 * se).all()
    comp = cond.component_distribution
    w, mu, sd = cond.mixture_distribution.probs[0], comp.mean[0], comp.variance[0].sqrt()
    for t in y.quantile(torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=y.dtype), dim=0):
        cdf = (w[:, None] * torch.special.ndtr((t - mu) / sd)).sum(0)  # (2,)
        empirical = (y <= t).double().mean(0)
        assert ((empirical - cdf).abs() < 5 * (cdf * (1 - cdf) / n).sqrt()).all()
    within = comp.covariance_matrix[0, :, 0, 1] if model.full else torch.zeros(3).double()
    dm = mu - cond.mean[0]  # (K, 2)
    cov01 = (w * (within + dm[:, 0] * dm[:, 1])).sum()  # the two missing dimensions' covariance
    centred = (y - cond.mean[0]).prod(-1)  # (n,)
    assert (centred.mean() - cov01).abs() < 5 * centred.std() / math.sqrt(n)
    again = model.complete(rows, keep, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


def test_complete_with_one_component_is_the_conditional_gaussian():
    model = make(d=4, num_components=1)
    a = torch.tensor(
        [[1.0, 0, 0, 0], [0.9, 0.5, 0, 0], [-0.6, 0.7, 0.4, 0], [0.3, -0.8, 0.5, 0.3]],
        dtype=torch.float64,
    )
    model.scale.copy_(a[None])  # Σ = A Aᵀ, strongly correlated
    model.means.copy_(torch.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=torch.float64))
    keep = torch.tensor([False, True, False, True])
    x = torch.tensor([[0.0, -1.0, 0.0, 2.0]], dtype=torch.float64)
    cov = a @ a.T
    o, m = keep.nonzero().squeeze(-1), (~keep).nonzero().squeeze(-1)
    gain = cov[m][:, o] @ torch.linalg.inv(cov[o][:, o])
    mean = model.means[0, m] + gain @ (x[0, o] - model.means[0, o])
    var = cov[m][:, m] - gain @ cov[o][:, m]
    n = 20000
    draws = model.complete(x.expand(n, 4), keep, generator=torch.Generator().manual_seed(0))
    y = draws[:, m]  # (n, 2)
    assert ((y.mean(0) - mean).abs() < 4 * (var.diagonal() / n).sqrt()).all()
    se = ((var.diagonal()[:, None] * var.diagonal()[None] + var**2) / n).sqrt()
    assert ((torch.cov(y.T) - var).abs() < 5 * se).all()


def test_samples_follow_the_mixture():
    model = make(d=2, num_components=3)
    model.fit(clusters(d=2), max_steps=10)
    n = 20000
    s = model.sample(n, generator=torch.Generator().manual_seed(0))
    mix = model.distribution()
    se = (mix.variance / n).sqrt()
    assert ((s.mean(0) - mix.mean).abs() < 4 * se).all()
    cov = torch.cov(s.T)
    closed = (model.log_weights.exp()[:, None, None] * dense_covariances(model)).sum(0)
    dm = model.means - mix.mean
    closed = closed + (model.log_weights.exp()[:, None, None] * dm[:, :, None] * dm[:, None]).sum(0)
    torch.testing.assert_close(cov, closed, rtol=0.05, atol=0.05)


def test_bic_picks_the_true_number_of_components():
    x = clusters(n=200, d=2, k=3, spread=10.0)
    best, bics = select_components(x, [1, 2, 3, 4, 5, 6])
    assert best.config.num_components == 3 and min(bics, key=bics.get) == 3
    assert best.bic(x) == bics[3]
    assert make(d=2, num_components=3).num_parameters() == 2 + 3 * 2 + 3 * 3
    assert make(d=2, num_components=3, covariance="diag").num_parameters() == 2 + 6 + 6


def test_images_are_flattened_and_errors_name_the_fix():
    model = dgm.create("gmm", (1, 4, 4), num_components=2, covariance="diag").double()
    x = torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model.fit(x, max_steps=5)
    assert model.sample(3).shape == (3, 1, 4, 4) and model.log_prob(x).shape == (40,)
    with pytest.raises(ValueError, match="at least num_components = 5 points"):
        make(num_components=5).fit_step([(clusters()[:3], None)])
    bad = clusters()
    bad[0, 0] = math.nan
    with pytest.raises(ValueError, match="complete training data"):
        make(num_components=2).fit_step([(bad, None)])
    with pytest.raises(ValueError, match="covariance must be 'full' or 'diag'"):
        GaussianMixture((2,), GMMConfig(covariance="spherical"))
    with pytest.raises(ValueError, match="one mask shared by every row"):
        make().missing_given_observed(clusters()[:2], torch.ones(2, 3, dtype=torch.bool))
