"""Theory checks of the GMVAE bounds on a linear-Gaussian model with a mixture prior.

The real ``gmvae`` class with ``hidden_sizes=()`` and a fixed-σ Gaussian decoder is the model
p(z) = (1/K) Σ_k N(m_k, S_k), S_k = diag s_k², p(x | z) = N(Wz + b, σ² I), so
    p(x) = (1/K) Σ_k N(x; b + W m_k, W S_k Wᵀ + σ² I)
exactly. The encoder is set to an affine q(z | x) that is deliberately not the posterior (a
mixture): the least-squares z for x, with twice the likelihood's spread, so its tails cover
the posterior and the importance weights p(x, z) / q(z | x) are bounded. All in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import (
    Categorical,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
)

import dgm
from dgm.models.latent.gmvae import MIN_PRIOR_STD

D, LATENT, K, SIGMA, BATCH = 4, 2, 3, 0.5, 8
F64 = torch.float64
MEANS = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], dtype=F64)  # (K, latent)
SCALES = torch.tensor([[0.5, 0.8], [0.9, 0.3], [0.6, 0.6]], dtype=F64)  # (K, latent)


def make_model(seed: int = 0):
    """The GMVAE set to W, b and the prior above; returns (model, W, b, x), x from p(x)."""
    g = torch.Generator().manual_seed(seed)
    model = dgm.create(
        "gmvae",
        (D,),
        latent_dim=LATENT,
        hidden_sizes=(),
        decoder="gaussian",
        decoder_std=SIGMA,
        num_components=K,
    ).double()
    q, _ = torch.linalg.qr(torch.randn(D, LATENT, generator=g, dtype=F64))  # orthonormal columns
    W = q * torch.tensor([2.0, 1.5], dtype=F64)  # (D, latent); WᵀW = diag(4, 2.25)
    b = torch.randn(D, generator=g, dtype=F64)
    with torch.no_grad():
        model.decoder[0].weight.copy_(W)
        model.decoder[0].bias.copy_(b)
        model.prior_means.copy_(MEANS)
        model.prior_raw_scales.copy_((SCALES - MIN_PRIOR_STD).expm1().log())  # softplus⁻¹
        # q(z | x) = N(A x + c, diag std²): A = W⁺, std = 2 σ / |W_j|, both constant in x
        A = torch.linalg.pinv(W)  # (latent, D)
        lin = model.encoder[0]
        lin.weight[:LATENT].copy_(A)
        lin.bias[:LATENT].copy_(-A @ b)
        lin.weight[LATENT:].zero_()
        lin.bias[LATENT:].copy_((2 * SIGMA / W.norm(dim=0)).log())
    k = torch.randint(K, (BATCH,), generator=g)
    z = MEANS[k] + SCALES[k] * torch.randn(BATCH, LATENT, generator=g, dtype=F64)  # (B, latent)
    x = z @ W.T + b + SIGMA * torch.randn(BATCH, D, generator=g, dtype=F64)  # (B, D)
    return model, W, b, x


def log_marginal(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log p(x) = log (1/K) Σ_k N(x; b + W m_k, W S_k Wᵀ + σ² I), shape (B,)."""
    cov = W @ torch.diag_embed(SCALES**2) @ W.T + SIGMA**2 * torch.eye(D, dtype=F64)  # (K, D, D)
    comps = MultivariateNormal(MEANS @ W.T + b, cov)  # batch shape (K,)
    return comps.log_prob(x[:, None]).logsumexp(-1) - math.log(K)  # (B,)


def expected_elbo(model, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """E_q[log p(x | z) + log p(z) − log q(z | x)] per example: the first and last terms in
    closed form, E_q log p(z) by a 100 x 100-point Gauss–Hermite rule, which moves by < 1e-5
    from 100 to 300 points (the Monte-Carlo standard errors are 1e-2)."""
    q = model.encode(x)
    mu, std = q.base_dist.loc.detach(), q.base_dist.scale.detach()  # (B, latent) each
    resid = x - mu @ W.T - b  # (B, D)
    rec = -0.5 * ((resid**2).sum(1) + (std**2 * (W * W).sum(0)).sum(1)) / SIGMA**2
    rec = rec - D * math.log(SIGMA * math.sqrt(2 * math.pi))
    entropy = std.log().sum(1) + 0.5 * LATENT * math.log(2 * math.pi * math.e)
    nodes, weights = np.polynomial.hermite_e.hermegauss(100)  # ∫ f(t) e^{-t²/2} dt rule
    t = torch.cartesian_prod(*[torch.from_numpy(nodes)] * LATENT)  # (n², latent)
    w = torch.from_numpy(np.outer(weights, weights).ravel() / (2 * math.pi))  # (n²,), sums to 1
    prior = MixtureSameFamily(
        Categorical(logits=torch.zeros(K, dtype=F64)), Independent(Normal(MEANS, SCALES), 1)
    )  # torch's own mixture: an independent reference for the model's prior
    log_pz = prior.log_prob(mu[:, None] + std[:, None] * t)  # (B, n²)
    return rec + entropy + log_pz @ w


def repeated(fn, x: torch.Tensor, repeats: int) -> torch.Tensor:
    """fn on `repeats` copies of the batch: independent draws, shape (repeats, B)."""
    with torch.no_grad():
        return fn(x.repeat(repeats, 1)).view(repeats, len(x))


def mean_se(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard error over the first dimension."""
    return v.mean(0), v.std(0) / math.sqrt(len(v))


@pytest.fixture(scope="module")
def setup():
    model, W, b, x = make_model()
    return model, x, log_marginal(x, W, b), expected_elbo(model, x, W, b)


def test_the_model_is_the_linear_gaussian_mixture():
    """The prior and the decoder hold the parameters the closed forms use."""
    model, W, b, _ = make_model()
    prior = model.prior()
    torch.testing.assert_close(prior.mixture_distribution.probs, torch.full((K,), 1 / K, dtype=F64))
    torch.testing.assert_close(prior.component_distribution.base_dist.scale, SCALES)
    z = torch.randn(5, LATENT, dtype=F64)
    reference = MixtureSameFamily(
        Categorical(logits=torch.zeros(K, dtype=F64)), Independent(Normal(MEANS, SCALES), 1)
    )
    torch.testing.assert_close(prior.log_prob(z), reference.log_prob(z), rtol=0, atol=1e-12)
    decoded = model.decode(z)
    torch.testing.assert_close(decoded.mean, z @ W.T + b)
    torch.testing.assert_close(decoded.stddev, torch.full((5, D), SIGMA, dtype=F64))


def test_elbo_matches_its_expectation_and_lies_below_log_likelihood(setup):
    """The ELBO with its Monte-Carlo KL is unbiased for its closed form, which lies below
    log p(x) by KL(q ‖ p(z | x))."""
    torch.manual_seed(0)
    model, x, logp, elbo_exact = setup
    gap = logp - elbo_exact  # KL(q ‖ p(z | x)) > 0: q is not the posterior
    assert (gap > 0.1).all() and gap.mean() > 0.5, gap  # far enough off to mean something
    elbo, se = mean_se(repeated(model.log_prob, x, 80_000))  # (B,) each
    assert ((elbo - elbo_exact).abs() < 4 * se).all(), (elbo - elbo_exact) / se
    assert (elbo < logp - 10 * se).all(), (logp - elbo) / se  # below, significantly
    assert (se < 0.03).all()  # the check has power: a 0.12-nat error would fail


def test_iwae_increases_with_k_towards_log_likelihood(setup):
    """E IWAE_1 < E IWAE_10 < E IWAE_100 < log p(x) (Burda et al. 2015, Thm 1), each gap
    significant in standard errors of the batch mean."""
    torch.manual_seed(1)
    model, x, logp, _ = setup
    est = {"logp": (logp.mean().item(), 0.0)}
    for k in (1, 10, 100):
        batch_means = repeated(lambda v, k=k: model.log_prob_iw(v, k), x, 1000).mean(1)  # (R,)
        est[k] = tuple(v.item() for v in mean_se(batch_means))
    for lo, hi in ((1, 10), (10, 100), (100, "logp")):
        (m_lo, s_lo), (m_hi, s_hi) = est[lo], est[hi]
        assert m_hi - m_lo > 4 * math.hypot(s_lo, s_hi), (lo, hi, est)


def test_iwae_converges_to_log_likelihood(setup):
    """IWAE_5000 ≈ log p(x). Its bias is about Var(w) / (2 k E[w]²) for the importance
    weights w (Nowozin 2018, Debiasing Evidence Approximations, ICLR, Prop. 1): estimated
    from single draws (log_prob_iw with k = 1 is log w) it must be small, and the difference
    must lie within twice that bias plus 4 standard errors of the mean of 8 repeats."""
    torch.manual_seed(2)
    model, x, logp, elbo_exact = setup
    k = 5000
    log_w = repeated(lambda v: model.log_prob_iw(v, 1), x, 20_000)  # (R, B)
    rel_var = (log_w - log_w.logsumexp(0)).exp().pow(2).sum(0) * len(log_w) - 1  # (B,)
    bias = rel_var / (2 * k)  # (B,)
    assert (bias < 0.005).all(), bias
    iwae, se = mean_se(repeated(lambda v: model.log_prob_iw(v, k), x, 8))  # (B,) each
    assert ((logp - iwae).abs() < 2 * bias + 4 * se).all(), ((logp - iwae), bias, se)
    assert ((logp - iwae).abs() < 0.05 * (logp - elbo_exact)).all()  # closed most of the gap


def test_a_prior_draw_at_temperature_t_scales_each_components_noise_not_its_mean():
    """z ~ p(z) at temperature T: N(m_k, (T s_k)²) around each component's own mean m_k
    (components far apart, so each draw's component is the nearest mean; T = 1 hides a T
    that also shrank the means)."""
    model = dgm.create("gmvae", (1, 2, 2), latent_dim=2, hidden_sizes=(8,), num_components=2)
    model = model.double()
    with torch.no_grad():
        model.prior_means.copy_(torch.tensor([[10.0, 0.0], [-10.0, 5.0]]))
    scales = model.prior().component_distribution.base_dist.scale.detach()  # (2, 2)
    T, n = 0.5, 20000
    z = model._sample_prior(n, torch.Generator().manual_seed(0), T)
    k = torch.cdist(z, model.prior_means.detach()).argmin(1)
    for j in range(2):
        zj = z[k == j]
        assert len(zj) > n / 3  # uniform weights
        se = T * scales[j] / math.sqrt(len(zj))
        assert ((zj.mean(0) - model.prior_means[j].detach()).abs() < 5 * se).all()
        torch.testing.assert_close(zj.std(0), T * scales[j], rtol=0.05, atol=0)
