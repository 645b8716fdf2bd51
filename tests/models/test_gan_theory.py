"""GAN theory on small exact problems, through the real objective objects, in float64.

Discrete distributions give exact expectations (the objectives' ``weights``); 1-D
Gaussians are integrated by the trapezoid rule on a wide grid. Closed forms are written
here independently of the objectives (KL, JSD, Hellinger, Pearson, TV by their
definitions or their Gaussian formulas)."""

import math

import pytest
import torch
from torch import nn

from dgm.model import Conditioning
from dgm.models.adversarial.nets import ProjectionDiscriminator, mlp_features
from dgm.models.adversarial.objectives import (
    FGAN,
    OBJECTIVES,
    WGAN,
    WGANGP,
    Minimax,
    gradient_norms,
)

LOG4 = math.log(4.0)
F_NAMES = sorted(n for n, cls in OBJECTIVES.items() if issubclass(cls, FGAN))


def discrete_pair(k: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(k, generator=g, dtype=torch.float64) + 0.1
    q = torch.rand(k, generator=g, dtype=torch.float64) + 0.1
    return p / p.sum(), q / q.sum()


def kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return (p * (p / q).log()).sum()


def jsd(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    m = (p + q) / 2
    return (kl(p, m) + kl(q, m)) / 2


def closed_form(name: str, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """D_f(p ‖ q) of two discrete distributions, by each divergence's own definition."""
    return {
        "f_kl": lambda: kl(p, q),
        "f_reverse_kl": lambda: kl(q, p),
        "f_js": lambda: 2 * jsd(p, q),
        "f_pearson": lambda: ((p - q) ** 2 / q).sum(),
        "f_squared_hellinger": lambda: ((p.sqrt() - q.sqrt()) ** 2).sum(),
        "f_total_variation": lambda: (p - q).abs().sum() / 2,
    }[name]()


def quadrature(
    lo: float = -14.0, hi: float = 14.0, n: int = 8001
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and trapezoid weights on [lo, hi]."""
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    w = torch.full_like(x, (hi - lo) / (n - 1))
    w[0] = w[-1] = w[0] / 2
    return x, w


def normal_log_pdf(x: torch.Tensor, mu: float, sigma: float) -> torch.Tensor:
    return -((x - mu) ** 2) / (2 * sigma**2) - math.log(sigma) - 0.5 * math.log(2 * math.pi)


P_MU, P_SIGMA, Q_MU, Q_SIGMA = 0.0, 1.0, 0.8, 1.3  # p = data, q = model


def gaussian_weights() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nodes x, log p(x) − log q(x), and the quadrature weights of E_p and E_q."""
    x, w = quadrature()
    lp, lq = normal_log_pdf(x, P_MU, P_SIGMA), normal_log_pdf(x, Q_MU, Q_SIGMA)
    return x, lp - lq, w * lp.exp(), w * lq.exp()


def gaussian_kl(m1: float, s1: float, m2: float, s2: float) -> float:
    """KL(N(m1, s1²) ‖ N(m2, s2²))."""
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


# -- the original game ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["minimax", "nonsaturating", "kl"])
def test_optimal_discriminator_and_value_on_discrete_distributions(name):
    p, q = discrete_pair()
    obj = OBJECTIVES[name]()
    # fit a free logit per atom by the objective's own loss: it lands on D* = p/(p+q)
    v = torch.zeros(len(p), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [v],
        lr=1,
        max_iter=200,
        tolerance_grad=1e-14,
        tolerance_change=1e-20,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = obj.discriminator_loss(v, v, p, q)
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(torch.sigmoid(v.detach()), p / (p + q), rtol=0, atol=1e-6)
    # at D* exactly: V(G, D*) = −loss = 2 JSD − log 4, and D* is a stationary point
    star = (p.log() - q.log()).requires_grad_(True)
    loss = obj.discriminator_loss(star, star, p, q)
    (grad,) = torch.autograd.grad(loss, star)
    assert grad.abs().max() < 1e-14
    torch.testing.assert_close(-loss.detach(), 2 * jsd(p, q) - LOG4, rtol=0, atol=1e-14)
    torch.testing.assert_close(obj.divergence(loss.detach()), jsd(p, q), rtol=0, atol=1e-14)


def test_optimal_discriminator_and_value_on_gaussians_by_quadrature():
    """log p/q of two Gaussians is quadratic in x: a quadratic-logit discriminator fitted
    with the minimax loss recovers D* = p/(p+q), and V(G, D*) = 2 JSD − log 4."""
    x, log_ratio, wp, wq = gaussian_weights()
    obj = Minimax()
    coef = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    feats = torch.stack([x**2, x, torch.ones_like(x)], 1)  # (N, 3)
    opt = torch.optim.LBFGS(
        [coef], lr=1, max_iter=500, tolerance_grad=1e-13, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        v = feats @ coef
        loss = obj.discriminator_loss(v, v, wp, wq)
        loss.backward()
        return loss

    opt.step(closure)
    a = 1 / (2 * Q_SIGMA**2) - 1 / (2 * P_SIGMA**2)  # log p/q = a x² + b x + c
    b = P_MU / P_SIGMA**2 - Q_MU / Q_SIGMA**2
    c = Q_MU**2 / (2 * Q_SIGMA**2) - P_MU**2 / (2 * P_SIGMA**2) + math.log(Q_SIGMA / P_SIGMA)
    torch.testing.assert_close(
        coef.detach(), torch.tensor([a, b, c], dtype=torch.float64), atol=1e-4, rtol=0
    )
    loss = obj.discriminator_loss(log_ratio, log_ratio, wp, wq)  # at D* exactly
    _, w = quadrature()  # JSD by quadrature, from its definition with the mixture m
    p_dens, q_dens = normal_log_pdf(x, P_MU, P_SIGMA).exp(), normal_log_pdf(x, Q_MU, Q_SIGMA).exp()
    m_dens = (p_dens + q_dens) / 2
    js = 0.5 * (w * (torch.xlogy(p_dens, p_dens / m_dens) + torch.xlogy(q_dens, q_dens / m_dens)))
    js = js.sum()
    assert 0.05 < js < math.log(2)  # a non-trivial case
    torch.testing.assert_close(-loss, 2 * js - LOG4, rtol=0, atol=1e-12)


def test_hinge_optimal_critic_is_the_sign_of_p_minus_q_and_its_loss_is_2_minus_2_tv():
    """Per atom, p relu(1 − v) + q relu(1 + v) is least at v = sign(p − q) (±1), where it is
    2 min(p, q): the optimal loss is Σ 2 min(p, q) = 2 − 2 TV(p, q)."""
    p, q = discrete_pair(k=7, seed=3)
    obj = OBJECTIVES["hinge"]()
    tv = 0.5 * (p - q).abs().sum()
    star = torch.sign(p - q)
    loss = obj.discriminator_loss(star, star, p, q)
    torch.testing.assert_close(loss, 2 - 2 * tv, rtol=0, atol=1e-14)
    torch.testing.assert_close(obj.divergence(loss), tv, rtol=0, atol=1e-14)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):  # any other critic loses more; a scaled one too
        v = star + 0.3 * torch.randn(len(p), generator=g, dtype=torch.float64)
        assert obj.discriminator_loss(v, v, p, q) >= loss - 1e-14
    for scale in (0.5, 2.0):
        assert obj.discriminator_loss(scale * star, scale * star, p, q) > loss + 1e-3
    # the generator raises the critic's value on its samples: −E_q v
    torch.testing.assert_close(obj.generator_loss(star, q), -(q * star).sum())


def test_kl_generator_loss_at_the_optimal_discriminator_is_the_reverse_kl():
    p, q = discrete_pair(seed=1)  # p = data, q = model
    star = p.log() - q.log()
    obj = OBJECTIVES["kl"]()
    torch.testing.assert_close(obj.generator_loss(star, q), kl(q, p), rtol=0, atol=1e-14)
    _, log_ratio, _, wq = gaussian_weights()
    expected = gaussian_kl(Q_MU, Q_SIGMA, P_MU, P_SIGMA)  # KL(p_θ ‖ p_data)
    assert abs(obj.generator_loss(log_ratio, wq).item() - expected) < 1e-9


def test_minimax_generator_gradient_vanishes_as_d_of_g_goes_to_0_and_nonsaturating_does_not():
    """G(z) = z + θ against a fixed logistic D(x) = σ(w x + b) that rejects the fakes."""
    z = torch.linspace(-1, 1, 11, dtype=torch.float64)
    w = 4.0
    grads = {}
    for name in ("minimax", "nonsaturating"):
        obj = OBJECTIVES[name]()
        for b in (-10.0, -20.0, -30.0, -40.0):  # D(G(z)) → 0
            theta = torch.zeros((), dtype=torch.float64, requires_grad=True)
            (g,) = torch.autograd.grad(obj.generator_loss(w * (z + theta) + b), theta)
            grads[name, b] = g.item()
    mm = [abs(grads["minimax", b]) for b in (-10.0, -20.0, -30.0, -40.0)]
    assert mm == sorted(mm, reverse=True) and mm[-1] < 1e-11  # vanishes like D(G(z))
    for b in (-10.0, -20.0, -30.0, -40.0):
        assert grads["nonsaturating", b] == pytest.approx(-w, rel=0.01)  # stays at −w
        assert grads["minimax", b] < 0  # same direction, shrinking


# -- f-GANs -----------------------------------------------------------------------------------

INVERSE_ACTIVATION = {  # v with g_f(v) = t, for checking through discriminator_loss
    "f_kl": lambda t: t,
    "f_reverse_kl": lambda t: -torch.log(-t),
    "f_js": lambda t: -torch.log(2 * torch.exp(-t) - 1),
    "f_pearson": lambda t: t,
    "f_squared_hellinger": lambda t: -torch.log(1 - t),
}


@pytest.mark.parametrize("name", F_NAMES)
def test_f_divergence_bound_is_tight_at_the_optimal_critic_on_discrete_distributions(name):
    p, q = discrete_pair(k=5, seed=2)
    obj = OBJECTIVES[name]()
    truth = closed_form(name, p, q)
    torch.testing.assert_close(
        (q * obj.f(p / q)).sum(), truth, rtol=0, atol=1e-14
    )  # D_f = E_q f(p/q)
    t_star = obj.f_prime(p / q)
    torch.testing.assert_close(obj.bound(t_star, t_star, p, q), truth, rtol=0, atol=1e-13)
    v = torch.randn(50, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    torch.testing.assert_close(obj.fake_term(v), obj.conjugate(obj.activation(v)))  # f*(g_f(v))
    if name in INVERSE_ACTIVATION:  # the same value through the training loss
        v_star = INVERSE_ACTIVATION[name](t_star)
        torch.testing.assert_close(obj.activation(v_star), t_star)
        loss = obj.discriminator_loss(v_star, v_star, p, q)
        torch.testing.assert_close(-loss, truth, rtol=0, atol=1e-12)
    for seed in range(5):  # any other critic gives less (Fenchel–Young)
        t = obj.activation(
            torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        )
        assert obj.bound(t, t, p, q) <= truth + 1e-14


def gaussian_divergence(name: str) -> float:
    """D_f(N(P_MU, P_SIGMA²) ‖ N(Q_MU, Q_SIGMA²)) in closed form."""
    m1, s1, m2, s2 = P_MU, P_SIGMA, Q_MU, Q_SIGMA
    if name == "f_kl":
        return gaussian_kl(m1, s1, m2, s2)
    if name == "f_reverse_kl":
        return gaussian_kl(m2, s2, m1, s1)
    if name == "f_squared_hellinger":  # 2 (1 − Bhattacharyya coefficient)
        bc = math.sqrt(2 * s1 * s2 / (s1**2 + s2**2)) * math.exp(
            -((m1 - m2) ** 2) / (4 * (s1**2 + s2**2))
        )
        return 2 * (1 - bc)
    if name == "f_pearson":  # ∫ p²/q − 1, finite for 2 s2² > s1²
        d = 2 * s2**2 - s1**2
        return s2**2 / (s1 * math.sqrt(d)) * math.exp((m1 - m2) ** 2 / d) - 1
    raise KeyError(name)


@pytest.mark.parametrize("name", ["f_kl", "f_reverse_kl", "f_squared_hellinger", "f_pearson"])
def test_f_divergence_bound_at_the_optimal_critic_matches_gaussian_closed_forms(name):
    _, log_ratio, wp, wq = gaussian_weights()
    obj = OBJECTIVES[name]()
    t_star = obj.f_prime(log_ratio.exp())
    assert obj.bound(t_star, t_star, wp, wq).item() == pytest.approx(
        gaussian_divergence(name), abs=1e-8
    )


def test_total_variation_bound_matches_the_gaussian_closed_form():
    """Equal variances: TV = 2Φ(|Δμ|/2σ) − 1, and T* = ½ sign(p − q)."""
    x, w = quadrature()
    lp, lq = normal_log_pdf(x, 0.0, 1.0), normal_log_pdf(x, 1.1, 1.0)
    obj = OBJECTIVES["f_total_variation"]()
    t_star = obj.f_prime((lp - lq).exp())
    tv = 2 * torch.distributions.Normal(0.0, 1.0).cdf(torch.tensor(1.1 / 2)).item() - 1
    assert obj.bound(t_star, t_star, w * lp.exp(), w * lq.exp()).item() == pytest.approx(
        tv, abs=1e-6
    )


@pytest.mark.parametrize("name", F_NAMES)
def test_a_trained_critic_approaches_the_f_divergence_from_below(name):
    """A critic with a free output per atom, trained by Adam on the objective's own
    discriminator loss; its exact bound never exceeds D_f and ends within 1 %."""
    p, q = discrete_pair(k=5, seed=3)
    obj = OBJECTIVES[name]()
    truth = closed_form(name, p, q).item()
    v = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([v], lr=0.05)
    bounds = []
    for _ in range(600):
        loss = obj.discriminator_loss(v, v, p, q)
        opt.zero_grad()
        loss.backward()
        opt.step()
        bounds.append(-loss.item())
    assert max(bounds) <= truth + 1e-12  # from below, at every step
    assert bounds[-1] >= truth - 0.01 * truth
    assert bounds[-1] > bounds[0] + 0.5 * (truth - bounds[0])  # it did approach


# -- Wasserstein ------------------------------------------------------------------------------


def parallel_lines(theta: torch.Tensor, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """p = (0, U[0, 1]) and q_θ = (θ, U[0, 1]) on the same quantiles of U, (n, 2) each."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    real = torch.stack([torch.zeros_like(u), u], 1)
    fake = torch.stack([theta.expand(n), u], 1)
    return real, fake


@pytest.mark.parametrize("theta", [-1.0, -0.3, 0.1, 0.5, 2.0])
def test_wgan_critic_tracks_the_distance_between_parallel_lines_while_jsd_stays_log_2(theta):
    """Arjovsky et al. 2017, example 1: W(p, q_θ) = |θ|, JSD(p ‖ q_θ) = log 2 for θ ≠ 0."""
    torch.manual_seed(0)
    th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    real, fake = parallel_lines(th)
    wgan = WGAN(clip=1.0)  # a linear critic with |w_i| ≤ 1 is 1-Lipschitz along x_1
    critic = nn.Linear(2, 1).double()
    opt = torch.optim.Adam(critic.parameters(), lr=0.05)
    for _ in range(100):
        wgan.prepare(critic)
        loss = wgan.discriminator_loss(critic(real).squeeze(-1), critic(fake.detach()).squeeze(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    wgan.prepare(critic)
    estimate = wgan.divergence(
        wgan.discriminator_loss(critic(real).squeeze(-1), critic(fake).squeeze(-1))
    )
    assert estimate.item() == pytest.approx(abs(theta), abs=1e-12)
    (grad,) = torch.autograd.grad(wgan.generator_loss(critic(fake).squeeze(-1)), th)
    assert grad.item() == pytest.approx(math.copysign(1.0, theta), abs=1e-12)  # d|θ|/dθ
    # the GAN discriminator separates the lines: its JSD estimate goes to log 2 whatever θ
    gan = Minimax()
    d = nn.Linear(2, 1).double()
    opt = torch.optim.Adam(d.parameters(), lr=0.5)
    for _ in range(300):
        loss = gan.discriminator_loss(d(real).squeeze(-1), d(fake.detach()).squeeze(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    js = gan.divergence(loss.detach()).item()
    assert 0.9 * math.log(2) < js <= math.log(2)
    one_hot = torch.eye(2, dtype=torch.float64)  # the exact JSD of disjoint supports
    assert jsd(one_hot[0] + 1e-300, one_hot[1] + 1e-300).item() == pytest.approx(
        math.log(2), abs=1e-12
    )


def test_wgan_gp_critic_has_unit_gradient_norm_at_interpolates_after_training():
    torch.manual_seed(0)
    real = torch.randn(256, 2, dtype=torch.float64) * 0.3
    fake = torch.randn(256, 2, dtype=torch.float64) * 0.3 + torch.tensor(
        [2.0, 1.0], dtype=torch.float64
    )
    critic = ProjectionDiscriminator(mlp_features(2, (32, 32)), 32, Conditioning()).double()
    obj = WGANGP(weight=10.0)
    opt = torch.optim.Adam(critic.parameters(), lr=2e-3, betas=(0.5, 0.9))
    for _ in range(400):
        loss = obj.discriminator_loss(critic(real), critic(fake))
        loss = loss + obj.penalty(critic, real, fake)
        opt.zero_grad()
        loss.backward()
        opt.step()
    norms = gradient_norms(critic, real, fake).detach()
    # the penalised critic settles at slope k = 1 + W/(2λ), W = ‖(2, 1)‖ between the clouds'
    # means: the optimum of −k W + λ (k − 1)²; close to 1 for the usual λ = 10
    w1 = math.sqrt(5)
    assert abs(norms.mean().item() - (1 + w1 / 20)) < 0.02 and norms.std().item() < 0.05
    assert abs(norms.mean().item() - 1) < 0.15
    estimate = obj.divergence(obj.discriminator_loss(critic(real), critic(fake))).item()
    assert estimate == pytest.approx((1 + w1 / 20) * w1, rel=0.05)  # slope × W_1
