"""Theory checks of the VAE bounds on a linear-Gaussian model, where log p(x) is exact.

The real ``vae`` class with ``hidden_sizes=()`` and a fixed-σ Gaussian decoder is the model
p(z) = N(0, I), p(x | z) = N(Wz + b, σ² I), so p(x) = N(b, WWᵀ + σ² I). With orthogonal
columns in W the exact posterior is diagonal,
    Σ = (I + WᵀW / σ²)⁻¹,  mean = Σ Wᵀ (x − b) / σ²,
an affine map of x that the linear encoder represents exactly. All in float64.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

import dgm

D, LATENT, SIGMA, BATCH = 6, 3, 0.5, 8
F64 = torch.float64


def make_model(seed: int = 0):
    """The VAE set to W, b; returns (model, W, b, x) with x drawn from the model."""
    g = torch.Generator().manual_seed(seed)
    model = dgm.create(
        "vae", (D,), latent_dim=LATENT, hidden_sizes=(), decoder="gaussian", decoder_std=SIGMA
    ).double()
    q, _ = torch.linalg.qr(torch.randn(D, LATENT, generator=g, dtype=F64))  # orthonormal columns
    W = q * torch.tensor([2.0, 1.0, 0.5], dtype=F64)  # (D, d); WᵀW = diag(4, 1, 0.25)
    b = torch.randn(D, generator=g, dtype=F64)
    with torch.no_grad():
        model.decoder[0].weight.copy_(W)
        model.decoder[0].bias.copy_(b)
    z = torch.randn(BATCH, LATENT, generator=g, dtype=F64)
    x = z @ W.T + b + SIGMA * torch.randn(BATCH, D, generator=g, dtype=F64)  # (B, D)
    return model, W, b, x


def exact_posterior(W: torch.Tensor, b: torch.Tensor):
    """(A, c, std): q*(z | x) = N(A x + c, diag std²)."""
    var = 1.0 / (1.0 + (W * W).sum(0) / SIGMA**2)  # (d,), Σ is diagonal
    A = var[:, None] * W.T / SIGMA**2  # (d, D)
    return A, -A @ b, var.sqrt()


def set_encoder(model, A: torch.Tensor, c: torch.Tensor, std: torch.Tensor) -> None:
    """The encoder is one Linear(D, 2d) whose output splits into (μ, log σ)."""
    lin = model.encoder[0]
    with torch.no_grad():
        lin.weight[:LATENT].copy_(A)
        lin.bias[:LATENT].copy_(c)
        lin.weight[LATENT:].zero_()
        lin.bias[LATENT:].copy_(std.log())


def log_marginal(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    cov = W @ W.T + SIGMA**2 * torch.eye(D, dtype=F64)
    return MultivariateNormal(b, cov).log_prob(x)  # (B,)


def expected_elbo(x, W, b, A, c, std) -> torch.Tensor:
    """E_q[log p(x | z)] − KL(q ‖ N(0, I)) in closed form for q = N(Ax + c, diag std²)."""
    mu = x @ A.T + c  # (B, d)
    resid = x - mu @ W.T - b  # (B, D)
    rec = -0.5 * (resid**2).sum(1) / SIGMA**2 - D * math.log(SIGMA * math.sqrt(2 * math.pi))
    rec = rec - ((W * W).sum(0) * std**2).sum() / (2 * SIGMA**2)
    kl = 0.5 * ((mu**2).sum(1) + (std**2).sum() - LATENT - 2 * std.log().sum())
    return rec - kl


def repeated(fn, x: torch.Tensor, repeats: int) -> torch.Tensor:
    """fn on `repeats` copies of the batch: independent draws, shape (repeats, B)."""
    return fn(x.repeat(repeats, 1)).view(repeats, len(x))


def mean_se(v: torch.Tensor) -> tuple[float, float]:
    return v.mean().item(), (v.std() / math.sqrt(len(v))).item()


@pytest.fixture
def perturbed():
    """Model, data, exact log p(x) and the closed-form ELBO of a deliberately wrong q."""
    model, W, b, x = make_model()
    A, c, std = exact_posterior(W, b)
    A, c, std = 0.6 * A, c + 0.3, 2.0 * std
    set_encoder(model, A, c, std)
    return model, x, log_marginal(x, W, b), expected_elbo(x, W, b, A, c, std)


def test_exact_posterior_makes_the_bounds_tight():
    torch.manual_seed(0)
    model, W, b, x = make_model()
    set_encoder(model, *exact_posterior(W, b))
    logp = log_marginal(x, W, b)
    # p(x, z) / q*(z | x) = p(x) for every z: each importance weight is exact
    for k in (1, 10):
        torch.testing.assert_close(model.log_prob_iw(x, k), logp, rtol=0, atol=1e-10)
    # the ELBO with its analytic KL is unbiased for log p(x), not constant in z
    torch.testing.assert_close(
        expected_elbo(x, W, b, *exact_posterior(W, b)), logp, rtol=0, atol=1e-10
    )
    elbo = repeated(model.log_prob, x, 40_000)  # (R, B)
    se = elbo.std(0) / math.sqrt(len(elbo))
    assert ((elbo.mean(0) - logp).abs() < 4 * se).all()
    assert (se < 0.02).all()  # the check has power: a 0.1-nat error would fail


def test_elbo_matches_its_closed_form(perturbed):
    torch.manual_seed(1)
    model, x, _, elbo_exact = perturbed
    elbo = repeated(model.log_prob, x, 40_000)  # (R, B)
    se = elbo.std(0) / math.sqrt(len(elbo))
    assert ((elbo.mean(0) - elbo_exact).abs() < 4 * se).all()


def test_bounds_are_ordered_in_expectation(perturbed):
    """E ELBO = E IWAE_1 < E IWAE_5 < E IWAE_50 < log p(x) (Burda et al. 2015, Thm 1)."""
    torch.manual_seed(2)
    model, x, logp, _ = perturbed
    R = 2000
    est = {"elbo": mean_se(repeated(model.log_prob, x, R).mean(1))}
    for k in (1, 5, 50):
        est[k] = mean_se(repeated(lambda v, k=k: model.log_prob_iw(v, k), x, R).mean(1))
    est["logp"] = (logp.mean().item(), 0.0)

    def gap(lo: str | int, hi: str | int) -> tuple[float, float]:
        (m_lo, s_lo), (m_hi, s_hi) = est[lo], est[hi]
        return m_hi - m_lo, math.hypot(s_lo, s_hi)

    diff, se = gap("elbo", 1)
    assert abs(diff) < 4 * se, est  # the same bound, two estimators
    for lo, hi in ((1, 5), (5, 50), (50, "logp")):
        diff, se = gap(lo, hi)
        assert diff > 4 * se, (lo, hi, est)  # ordered, and significantly so


def test_iwae_converges_to_log_likelihood(perturbed):
    torch.manual_seed(3)
    model, x, logp, elbo_exact = perturbed
    elbo_gap = (logp - elbo_exact).mean().item()
    iw_gap = (logp - model.log_prob_iw(x, 5000)).mean().item()
    assert elbo_gap > 0.5  # q is far enough off for the test to mean something
    assert abs(iw_gap) < 0.05 * elbo_gap and abs(iw_gap) < 0.05, (iw_gap, elbo_gap)


def test_chunked_log_prob_iw_equals_unchunked(perturbed):
    model, x, _, _ = perturbed
    calls = []
    hook = model.decoder.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    try:
        torch.manual_seed(4)
        whole = model.log_prob_iw(x, 50)
        assert calls == [50 * BATCH]
        calls.clear()
        torch.manual_seed(4)
        chunked = model.log_prob_iw(x, 50, max_elements=7 * BATCH * D)  # 7 draws per chunk
        assert calls == [7 * BATCH] * 7 + [BATCH]
    finally:
        hook.remove()
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-12)
    grads = []
    for budget in (2**22, 7 * BATCH * D):
        model.zero_grad()
        torch.manual_seed(5)
        model.log_prob_iw(x, 50, max_elements=budget, grad=True).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)
