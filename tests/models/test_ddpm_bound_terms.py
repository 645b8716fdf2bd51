"""DDPM's variational bound term by term (Ho et al. 2020, eq. 5) at small T, where every
term matters (at T = 1000 a prior term off by a step is invisible; at T = 4 it is tens
of nats). The network is a fixed linear ε-predictor, ε̂(x_t, t) = G_t (x_t − √ᾱ_t μ), so
x̂_0 − x_0 = A_t + B_t ε is linear in the forward noise and each term's expectation over
the noise has a closed form, computed here from the betas alone:

- prior: KL(N(√ᾱ_T x_0, 1 − ᾱ_T) ‖ N(0, 1)), deterministic;
- L_{t−1}, t ≥ 2: ½(β̃_t/β_t − 1 − log(β̃_t/β_t)) + c_t² E[(x̂_0 − x_0)²] / (2β_t), with
  c_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) the posterior mean's weight on x_0 (variance "large");
- decoder: ½ log(2π β_1) + E[(x̂_0 − x_0)²] / (2β_1) (real data, no clipping).
"""

import math

import pytest
import torch
from torch import nn

import dgm

MU = 0.5  # the ε-predictor's data mean


class LinearEps(nn.Module):
    """ε̂(x_t, t) = G_t (x_t − √ᾱ_t μ) for 1-d x, with fixed gains G (T,)."""

    def __init__(self, alpha_bar: torch.Tensor, gains: torch.Tensor) -> None:
        super().__init__()
        self.alpha_bar, self.gains = alpha_bar, gains
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))  # model.dtype

    def forward(self, x, t, label=None, extra=None):
        return self.gains[t][:, None] * (x - self.alpha_bar[t].sqrt()[:, None] * MU)


def closed_form_terms(betas: torch.Tensor, gains: torch.Tensor, x0: float) -> dict[str, float]:
    """E over the forward noise of each bound term for one 1-d x_0, from the betas."""
    T = len(betas)
    alpha_bar = torch.tensor([math.prod(1 - b for b in betas[: t + 1].tolist()) for t in range(T)])
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    A = s * gains * (MU - x0)  # x̂_0 − x_0 = A + B ε
    B = s * (1 - s * gains) / a
    err2 = A**2 + B**2  # E[(x̂_0 − x_0)²] per t, (T,)
    ab_T = alpha_bar[-1].item()
    terms = {"prior": 0.5 * (1 - ab_T + ab_T * x0**2 - 1 - math.log(1 - ab_T))}
    terms["decoder"] = 0.5 * math.log(2 * math.pi * betas[0]) + err2[0].item() / (2 * betas[0])
    steps = []
    for t in range(1, T):  # index t is step t + 1 of the paper
        ab_prev = alpha_bar[t - 1].item()
        post_var = (1 - ab_prev) / (1 - alpha_bar[t].item()) * betas[t].item()
        ratio = post_var / betas[t].item()
        c = math.sqrt(ab_prev) * betas[t].item() / (1 - alpha_bar[t].item())
        steps.append(0.5 * (ratio - 1 - math.log(ratio)) + c**2 * err2[t].item() / (2 * betas[t]))
    terms["steps"] = steps
    terms["diffusion"] = sum(steps)
    return terms


@pytest.mark.parametrize("T", [1, 2, 3, 4])
def test_each_term_of_the_bound_matches_its_closed_form_at_small_T(T):
    model = dgm.create("ddpm", (1,), num_timesteps=T, bound_timesteps=0).double()
    betas = model.schedule.betas.clone()
    alpha_bar = torch.cumprod(1 - betas, 0)
    gains = torch.linspace(0.3, 0.9, T, dtype=torch.float64)
    model.net = LinearEps(alpha_bar, gains)
    n = 20000
    for x0 in (-1.5, 0.2, 2.0):
        x = torch.full((n, 1), x0, dtype=torch.float64)
        torch.manual_seed(1)
        with torch.no_grad():
            got = model.bound_terms(x, timesteps=0)
        want = closed_form_terms(betas, gains, x0)
        torch.testing.assert_close(got["prior"], torch.full((n,), want["prior"]).double())
        for key in ("decoder", "diffusion"):
            mean, se = got[key].mean().item(), got[key].std().item() / math.sqrt(n)
            assert abs(mean - want[key]) <= 5 * se + 1e-9, (
                f"T={T}, x0={x0}: {key} {mean:.4f} vs closed form {want[key]:.4f} (SE {se:.4f})"
            )


def test_sampled_timesteps_estimate_each_step_term():
    """With one t per example the diffusion estimate is (T − 1) L_{t−1} at a uniform t; its
    mean over many examples is the closed-form sum, so a wrong step term shows."""
    T = 4
    model = dgm.create("ddpm", (1,), num_timesteps=T).double()
    betas = model.schedule.betas.clone()
    gains = torch.tensor([0.2, 0.5, 0.7, 0.4], dtype=torch.float64)
    model.net = LinearEps(torch.cumprod(1 - betas, 0), gains)
    n, x0 = 60000, 1.0
    torch.manual_seed(2)
    with torch.no_grad():
        got = model.bound_terms(torch.full((n, 1), x0, dtype=torch.float64), timesteps=1)
    want = closed_form_terms(betas, gains, x0)
    d = got["diffusion"]
    assert abs(d.mean().item() - want["diffusion"]) <= 5 * d.std().item() / math.sqrt(n)


@pytest.mark.parametrize("levels", [256, 0])
def test_the_bound_of_level_data_clamps_the_predicted_x0_as_sampling_does(levels, monkeypatch):
    """With num_levels > 0 (data in [−1, 1]) the decoder term and every L_{t−1} read x̂_0
    clamped to [−1, 1]; continuous data leave it as predicted. A network far from its
    initialisation predicts x̂_0 outside the range (small models near init never do)."""
    from dgm.models.diffusion import bound

    torch.manual_seed(0)
    model = dgm.create("ddpm", (3,), num_timesteps=6, num_levels=levels).double()
    with torch.no_grad():
        for p in model.net.parameters():
            p.mul_(20)
    seen = []
    decoder = bound.decoder_log_prob
    monkeypatch.setattr(
        bound,
        "decoder_log_prob",
        lambda x0, mean, *a: (seen.append(mean), decoder(x0, mean, *a))[1],
    )
    posterior = model.schedule.posterior_mean
    calls = []
    monkeypatch.setattr(
        model.schedule,
        "posterior_mean",
        lambda x0, xt, t: (calls.append(x0), posterior(x0, xt, t))[1],
    )
    x = torch.randint(0, 256, (8, 3)) if levels else torch.randn(8, 3, dtype=torch.float64)
    with torch.no_grad():
        model.bound_terms(x, timesteps=0)
    predicted = [seen[0], *calls[1::2]]  # the decoder's mean, then each term's x̂_0
    largest = max(float(p.abs().max()) for p in predicted)
    assert largest <= 1.0 if levels else largest > 1.0
