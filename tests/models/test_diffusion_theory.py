"""DDPM theory on the real classes, in float64: the forward process and its posterior
against their closed forms, and, with the optimal ε-predictor of Gaussian data plugged in
as the network, the samplers against the data's moments and the variational bound against
the exact log-density. Tolerances are in Monte Carlo standard errors."""

import math

import pytest
import torch
from torch import nn

import dgm
from dgm.models.diffusion.schedulers import DDIMScheduler, DDPMScheduler
from dgm.models.diffusion.schedules import NoiseSchedule, betas_for

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)


class OptimalEps(nn.Module):
    """E[ε | x_t] for x_0 ~ N(μ, Σ): x_t = a x_0 + s ε with a = √ᾱ_t, s = √(1 − ᾱ_t) is
    N(a μ, a²Σ + s²I) and Cov(ε, x_t) = s I, so ε*(x_t, t) = s (a²Σ + s²I)⁻¹ (x_t − a μ),
    linear in x_t. With labels, class y has mean μ + y (for the guidance tests)."""

    def __init__(self, schedule: NoiseSchedule, mu: torch.Tensor, cov: torch.Tensor) -> None:
        super().__init__()
        self.schedule, self.mu = schedule, mu
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))  # model.dtype
        ab = schedule.alphas_cumprod
        a, s = ab.sqrt(), (1 - ab).sqrt()  # (T,)
        C = a[:, None, None] ** 2 * cov + s[:, None, None] ** 2 * torch.eye(len(mu))  # (T, D, D)
        self.gain = s[:, None, None] * torch.linalg.inv(C)  # (T, D, D): ε* = gain (x_t − a μ)

    def forward(self, x, t, label=None, extra=None):
        a = self.schedule.alphas_cumprod[t].sqrt()[:, None]  # (B, 1)
        mu = self.mu.expand(len(x), -1)
        if label is not None:
            mu = mu + label[:, None].double()
        return torch.einsum("bij,bj->bi", self.gain[t], x - a * mu)  # (B, D)


def gaussian_ddpm(T, schedule="linear", **config):
    model = dgm.create("ddpm", (2,), num_timesteps=T, schedule=schedule, **config).double()
    model.net = OptimalEps(model.schedule, MU, COV)
    return model


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_forward_chain_matches_q_xt_given_x0_in_mean_and_variance(schedule):
    s = NoiseSchedule(betas_for(schedule, 50))
    g = torch.Generator().manual_seed(0)
    n, x0 = 40_000, torch.tensor([2.0, -1.0], dtype=torch.float64)
    x = x0.expand(n, 2).clone()
    for t in range(50):  # x_t = √(1 − β_t) x_{t−1} + √β_t z, one step at a time
        b = s.betas[t]
        x = (1 - b).sqrt() * x + b.sqrt() * torch.randn(n, 2, generator=g, dtype=torch.float64)
        if t in (0, 9, 24, 49):
            ab = s.alphas_cumprod[t]
            var = 1 - ab
            mean_se = (var / n).sqrt()
            assert ((x.mean(0) - ab.sqrt() * x0).abs() <= 5 * mean_se).all()
            var_se = var * math.sqrt(2 / (n - 1))
            assert ((x.var(0) - var).abs() <= 5 * var_se).all()
            direct = s.q_sample(
                x0.expand(n, 2), torch.full((n,), t), torch.randn(n, 2, generator=g).double()
            )
            assert ((direct.mean(0) - ab.sqrt() * x0).abs() <= 5 * mean_se).all()


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_posterior_coefficients_are_bayes_rule(schedule):
    """q(x_{t−1} | x_t, x_0) ∝ N(x_{t−1}; √ᾱ_{t−1} x_0, 1 − ᾱ_{t−1}) N(x_t; √α_t x_{t−1}, β_t):
    precision 1/(1 − ᾱ_{t−1}) + α_t/β_t, mean = variance · (√ᾱ_{t−1} x_0 / (1 − ᾱ_{t−1})
    + √α_t x_t / β_t)."""
    s = NoiseSchedule(betas_for(schedule, 30))
    ab_prev, alpha, beta = s.alphas_cumprod[:-1], s.alphas[1:], s.betas[1:]
    var = 1 / (1 / (1 - ab_prev) + alpha / beta)
    torch.testing.assert_close(s.posterior_variance[1:], var)
    torch.testing.assert_close(s.posterior_coef_x0[1:], var * ab_prev.sqrt() / (1 - ab_prev))
    torch.testing.assert_close(s.posterior_coef_xt[1:], var * alpha.sqrt() / beta)
    # the first step: x_0 is known, the posterior is a point mass at it
    assert s.posterior_variance[0] == 0 and s.posterior_coef_xt[0] == 0
    torch.testing.assert_close(s.posterior_coef_x0[0], torch.tensor(1.0, dtype=torch.float64))


def _moments_within(x, bias):
    n = len(x)
    mean_se = (COV.diagonal() / n).sqrt()
    assert ((x.mean(0) - MU).abs() <= 5 * mean_se + bias).all(), x.mean(0)
    cov = torch.cov(x.T)
    cov_se = ((COV**2 + COV.diagonal()[:, None] * COV.diagonal()[None]) / n).sqrt()
    assert ((cov - COV).abs() <= 5 * cov_se + bias).all(), cov


@pytest.mark.parametrize(
    ("sampler", "T", "steps"), [("ddpm", 1000, 0), ("ddpm", 1000, 100), ("ddim", 1000, 250)]
)
def test_samplers_with_the_optimal_eps_reproduce_the_gaussian(sampler, T, steps):
    model = gaussian_ddpm(T)
    g = torch.Generator().manual_seed(1)
    x = model.sample(20_000, generator=g, sampler=sampler, steps=steps)
    _moments_within(x, bias=0.01)


def test_a_sampler_far_from_its_limit_is_caught():
    """The moment check has power: 3 ancestral steps miss the covariance."""
    model = gaussian_ddpm(1000)
    x = model.sample(20_000, generator=torch.Generator().manual_seed(1), steps=3)
    with pytest.raises(AssertionError):
        _moments_within(x, bias=0.01)


def test_variational_bound_is_below_the_exact_log_density_and_tight_with_many_steps():
    """E_data[bound] ≤ E_data[log p_θ] ≤ E_data[log p_data] (Jensen, then Gibbs); with
    T = 1000, the optimal ε and σ_t² = β_t the gap is a few hundredths of a nat. With
    σ_t² = β̃_t ("small") it stays near 1 nat however many steps: the first steps, where
    the true reverse variance is β_t, not β̃_t ≈ β_t (t − 1)/t, cost the same for any T."""
    g = torch.Generator().manual_seed(2)
    n = 2000
    data = torch.distributions.MultivariateNormal(MU, COV)
    x = MU + torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(COV).T
    exact = data.log_prob(x)
    gaps = {}
    for variance in ("large", "small"):
        model = gaussian_ddpm(1000, bound_timesteps=0, variance=variance)  # every t
        torch.manual_seed(3)
        with torch.no_grad():
            gap = exact - model.log_prob(x)  # (n,) ≥ 0 on average
        se = (gap.std() / math.sqrt(n)).item()
        assert gap.mean() >= -3 * se
        gaps[variance] = gap.mean().item()
    assert gaps["large"] < 0.05 + 3 * se
    assert gaps["small"] > 0.5


def test_sampled_timesteps_estimate_the_full_sum_with_its_standard_error():
    model = gaussian_ddpm(200)
    x = MU.expand(64, 2)
    torch.manual_seed(4)
    full = model.bound_terms(x, timesteps=0)
    torch.manual_seed(4)
    est = model.bound_terms(x, timesteps=8)
    z = (est["diffusion"] - full["diffusion"]).mean() / (
        est["diffusion_se"].pow(2).mean() / 64
    ).sqrt()
    assert z.abs() < 5 and (est["diffusion_se"] > 0).all() and (full["diffusion_se"] == 0).all()


def test_ddim_at_eta_zero_is_deterministic_given_x_T():
    model = gaussian_ddpm(100)
    x_T = torch.randn(50, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    a = model.sample(
        50, x_T=x_T, sampler="ddim", steps=20, generator=torch.Generator().manual_seed(6)
    )
    b = model.sample(
        50, x_T=x_T, sampler="ddim", steps=20, generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(a, b)
    c = model.sample(
        50, x_T=x_T, sampler="ddim", steps=20, eta=1.0, generator=torch.Generator().manual_seed(6)
    )
    d = model.sample(
        50, x_T=x_T, sampler="ddim", steps=20, eta=1.0, generator=torch.Generator().manual_seed(7)
    )
    assert not torch.equal(c, d)  # η > 0 draws noise


def guided_model():
    model = dgm.create(
        "ddpm", (2,), num_timesteps=50, num_classes=2, condition_dropout=0.1
    ).double()
    net = OptimalEps(model.schedule, MU, COV)
    net.forward = lambda x, t, label=None, extra=None: OptimalEps.forward(
        net, x, t, torch.where(label == 2, -3, label), extra
    )  # the null label 2 is its own "class" with mean μ − 3
    model.net = net
    return model


def test_guidance_scale_zero_is_the_unconditional_and_one_the_conditional_sampler():
    model = guided_model()
    y = torch.tensor([0, 1] * 10)
    x_T = torch.randn(20, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)

    def draw(c, s):
        return model.sample(
            20, c, x_T=x_T, guidance_scale=s, generator=torch.Generator().manual_seed(9)
        )

    torch.testing.assert_close(draw(y, 0.0), draw(None, 1.0), rtol=0, atol=0)
    # guidance 1: the scheduler loop run by hand with the conditional ε alone
    sched = model.scheduler("ddpm")
    x, g = x_T.clone(), torch.Generator().manual_seed(9)
    for t in sched.timesteps:
        eps = model.net(x, torch.full((20,), t), y)
        x = sched.step(eps, t, x, generator=g)
    torch.testing.assert_close(draw(y, 1.0), x, rtol=0, atol=0)
    # guidance s: ε_u + s (ε_c − ε_u)
    t = torch.full((20,), 10)
    eps_c, eps_u = model.net(x_T, t, y), model.net(x_T, t, torch.full((20,), 2))
    torch.testing.assert_close(model.guided_eps(x_T, t, y, 3.0), eps_u + 3 * (eps_c - eps_u))
    assert not torch.allclose(draw(y, 3.0), draw(y, 1.0))


@pytest.mark.parametrize("steps", [30, 7])
def test_ddim_at_eta_one_is_the_ancestral_step_with_the_posterior_variance(steps):
    """Song et al.: η = 1 gives σ² = β̃ and the posterior mean, i.e. DDPM ("small"), also
    on a respaced chain."""
    s = NoiseSchedule(betas_for("cosine", 30))
    ddim, ddpm = DDIMScheduler(s, steps, eta=1.0), DDPMScheduler(s, steps, "small")
    g = torch.Generator().manual_seed(10)
    x, eps = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    for t in ddim.timesteps:
        a = ddim.step(eps, t, x, generator=torch.Generator().manual_seed(t))
        b = ddpm.step(eps, t, x, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(a, b)


def test_ddim_between_the_two_is_song_et_als_step_with_sigma_proportional_to_eta():
    """η = 0.5 (η = 0 and 1 hide η² for η): x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε + σ z with
    σ = η √((1 − ᾱ_s) / (1 − ᾱ_t)) √(1 − ᾱ_t / ᾱ_s), no noise at the last step."""
    s = NoiseSchedule(betas_for("cosine", 30))
    ddim = DDIMScheduler(s, 6, eta=0.5)
    g = torch.Generator().manual_seed(12)
    x, eps = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    for t, prev in zip(ddim.timesteps, [*ddim.timesteps[1:], -1], strict=True):
        ab = s.alphas_cumprod[t].item()
        ab_prev = s.alphas_cumprod[prev].item() if prev >= 0 else 1.0
        x0 = (x - (1 - ab) ** 0.5 * eps) / ab**0.5
        sigma = 0.5 * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) ** 0.5
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(t), dtype=x.dtype)
        want = ab_prev**0.5 * x0 + (1 - ab_prev - sigma**2) ** 0.5 * eps
        want = want + (sigma * z if prev >= 0 else 0)
        got = ddim.step(eps, t, x, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_a_clipped_ddim_step_moves_along_the_noise_the_clamped_x0_implies(eta):
    """With ``clip``, x̂_0 is clamped and the step's direction uses the ε that the clamped
    x̂_0 implies, ε' = (x − √ᾱ_t x̂_0) / √(1 − ᾱ_t) (diffusers' DDIM does the same): checked
    at points whose x̂_0 falls outside [−1, 1], where it matters."""
    s = NoiseSchedule(betas_for("cosine", 30))
    ddim = DDIMScheduler(s, 6, eta=eta, clip=1.0)
    g = torch.Generator().manual_seed(11)
    x = 3 * torch.randn(4, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 3, generator=g, dtype=torch.float64)
    for t, prev in zip(ddim.timesteps, [*ddim.timesteps[1:], -1], strict=True):
        ab = s.alphas_cumprod[t].item()
        ab_prev = s.alphas_cumprod[prev].item() if prev >= 0 else 1.0
        raw = (x - (1 - ab) ** 0.5 * eps) / ab**0.5
        assert (raw.abs() > 1).any()  # the clamp acts
        x0 = raw.clamp(-1, 1)
        implied = (x - ab**0.5 * x0) / (1 - ab) ** 0.5
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) ** 0.5
        noise = torch.randn(4, 3, generator=torch.Generator().manual_seed(t), dtype=x.dtype)
        want = ab_prev**0.5 * x0 + max(1 - ab_prev - sigma**2, 0.0) ** 0.5 * implied
        if sigma > 0 and t != ddim.timesteps[-1]:
            want = want + sigma * noise
        got = ddim.step(eps, t, x, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(got, want)
