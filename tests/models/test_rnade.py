"""RNADE: autoregressive structure through the Jacobian, normalisation by quadrature, the
one-pass log_prob against a naive per-dimension MixtureSameFamily, the sampler's law and
temperature against closed-form moments, and a real learning check on eight_gaussians.
Float64 throughout."""

import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal, Normal

import dgm
from dgm.models.autoregressive.rnade import LOG_SCALE_MAX, LOG_SCALE_MIN, mixture_log_prob
from helpers import quiet_config

CONFIGS = [{"rescale": True}, {"rescale": False}]


def build(shape, **overrides):
    torch.manual_seed(0)
    overrides = {"hidden_size": 7, "num_components": 3, **overrides}
    model = dgm.create("rnade", shape, **overrides).double()
    with torch.no_grad():  # move every parameter off its start so nothing is symmetric
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("overrides", CONFIGS, ids=["rho", "no-rho"])
def test_jacobian_of_the_mixture_parameters_is_autoregressive(overrides):
    model = build((2, 3), **overrides)
    D = model.num_dims

    def params(v):  # (D,) -> (D, 3K): logits, means, log-scales of every conditional
        return torch.cat(model.mixture_params(v[None]), dim=-1)[0]

    g = torch.Generator().manual_seed(0)
    J = sum(
        torch.autograd.functional.jacobian(
            params, torch.randn(D, generator=g, dtype=torch.float64)
        ).abs()  # (D, 3K, D)
        for _ in range(5)
    ).amax(1)  # (D, D): conditional i, input j
    later = torch.arange(D)[None, :] >= torch.arange(D)[:, None]  # j >= i
    assert (J[later] == 0).all(), "the parameters of x_i depend on x_j for some j >= i"
    for i in range(1, D):
        assert (J[i, :i] > 0).all(), f"the parameters of x_{i} miss some x_j, j < {i}"


def test_density_integrates_to_one_on_a_2d_grid():
    model = build((2,))
    grid = torch.linspace(-8, 8, 801, dtype=torch.float64)  # step 0.02
    points = torch.cartesian_prod(grid, grid)  # (801², 2)
    with torch.no_grad():
        density = model.log_prob(points).exp().view(801, 801)
    total = torch.trapezoid(torch.trapezoid(density, grid, dim=1), grid, dim=0)
    assert abs(total.item() - 1) < 1e-3, total.item()


@pytest.mark.parametrize("overrides", CONFIGS, ids=["rho", "no-rho"])
def test_one_pass_log_prob_equals_a_naive_mixture_same_family_per_dimension(overrides):
    model = build((5,), **overrides)
    x = 1.5 * torch.randn(40, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    K = model.config.num_components
    total = torch.zeros(40, dtype=torch.float64)
    for d in range(5):
        a = model.c + x[:, :d] @ model.W[:, :d].T  # (B, H): the hidden input from x_<d only
        if model.log_rho is not None:
            a = a * model.log_rho[d].exp()
        out = torch.sigmoid(a) @ model.V[d] + model.b[d]  # (B, 3K)
        logits, means, log_scales = out[:, :K], out[:, K : 2 * K], out[:, 2 * K :]
        scales = log_scales.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp()
        mix = MixtureSameFamily(Categorical(logits=logits), Normal(means, scales))
        total = total + mix.log_prob(x[:, d])
    torch.testing.assert_close(model.log_prob(x), total)


def test_log_sum_exp_equals_mixture_same_family_also_at_extreme_parameters():
    g = torch.Generator().manual_seed(2)
    logits = 5 * torch.randn(100, 4, generator=g, dtype=torch.float64)
    means = 3 * torch.randn(100, 4, generator=g, dtype=torch.float64)
    log_scales = torch.empty(100, 4, dtype=torch.float64).uniform_(-7, 5, generator=g)
    x = 10 * torch.randn(100, generator=g, dtype=torch.float64)
    mix = MixtureSameFamily(Categorical(logits=logits), Normal(means, log_scales.exp()))
    torch.testing.assert_close(mixture_log_prob(x, logits, means, log_scales), mix.log_prob(x))


def test_log_scales_are_clamped_so_extreme_weights_stay_finite():
    model = build((3,))
    with torch.no_grad():
        model.b.mul_(1e4)  # log-scales of ±1e3 without the clamp
    x = torch.randn(6, 3, dtype=torch.float64)
    _, _, log_scales = model.mixture_params(x)
    assert log_scales.min() >= LOG_SCALE_MIN and log_scales.max() <= LOG_SCALE_MAX
    assert torch.isfinite(model.log_prob(x)).all()


@pytest.mark.parametrize("T", [1.0, 0.4])
def test_samples_follow_the_mixture_and_temperature_scales_the_sigmas(T):
    """One dimension: p(x_0) is the mixture of the hidden bias alone, so the draws' mean and
    variance have closed forms; T multiplies every σ: Var = Σ π (T² σ² + μ²) − mean²."""
    model = build((1,), num_components=4)
    logits, means, log_scales = (p[0, 0] for p in model.mixture_params(torch.zeros(1, 1)))
    pi, sigma = logits.softmax(-1), log_scales.exp()
    mean = (pi * means).sum()
    var = (pi * (T**2 * sigma**2 + means**2)).sum() - mean**2
    n = 40_000
    x = model.sample(n, generator=torch.Generator().manual_seed(3), temperature=T)[:, 0]
    assert abs(x.mean() - mean) < 5 * x.std() / math.sqrt(n)
    assert abs(x.var() - var) < 5 * (x - x.mean()).square().std() / math.sqrt(n)


def test_temperature_below_one_shrinks_the_spread_of_the_samples():
    model = build((2, 2))
    spread = {
        T: model.sample(4000, generator=torch.Generator().manual_seed(4), temperature=T).std(0)
        for T in (1.0, 0.3)
    }
    assert (spread[0.3] < spread[1.0]).all()
    again = model.sample(8, generator=torch.Generator().manual_seed(4))
    assert torch.equal(again, model.sample(8, generator=torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError, match="temperature must be positive"):
        model.sample(2, temperature=0.0)


def test_completion_keeps_the_observed_dims():
    model = build((2, 3))
    x = model.sample(8, generator=torch.Generator().manual_seed(5))
    mask = torch.rand(x.shape, generator=torch.Generator().manual_seed(6)) < 0.5
    out = model.complete(x, mask, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out[mask], x[mask]) and not torch.equal(out[~mask], x[~mask])
    assert torch.equal(model.complete(x, torch.ones_like(mask)), x)


def test_a_short_run_on_eight_gaussians_beats_an_untrained_model_and_one_gaussian(tmp_path):
    from dgm.data import DataConfig, get
    from dgm.train import train

    options = {"hidden_size": 32, "num_components": 10}
    config = quiet_config(steps=400, batch_size=256, lr=1e-2, warmup_steps=20)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and immune to busy cores
    try:
        data = DataConfig("eight_gaussians")
        model, _ = train("rnade", data, tmp_path / "r", config, progress=False, **options)
    finally:
        torch.set_num_threads(threads)
    train_x = get("eight_gaussians", "train").x.double()
    test = get("eight_gaussians", "test")
    test_x = test.x.double()
    torch.manual_seed(config.seed)
    untrained = dgm.create("rnade", (2,), **options).double()
    gaussian = MultivariateNormal(train_x.mean(0), torch.cov(train_x.T))  # fitted by ML
    with torch.no_grad():
        after = -model.double().eval().log_prob(test_x).mean().item()
        before = -untrained.log_prob(test_x).mean().item()
    one = -gaussian.log_prob(test_x).mean().item()
    true = -test.density.log_prob(test_x).mean().item()
    print(f"rnade: test NLL {before:.3f} -> {after:.3f} nats")
    print(f"one fitted Gaussian {one:.3f} nats, the true density {true:.3f} nats")
    assert after < before - 1 and after < one - 1


# -- class conditioning: p(x | c) ------------------------------------------------------------


def test_each_class_integrates_to_one_and_the_label_changes_log_prob():
    model = build((2,), num_classes=3)
    grid = torch.linspace(-8, 8, 401, dtype=torch.float64)  # step 0.04
    points = torch.cartesian_prod(grid, grid)  # (401², 2)
    with torch.no_grad():
        for k in range(3):
            density = model.log_prob(points, k).exp().view(401, 401)
            total = torch.trapezoid(torch.trapezoid(density, grid, dim=1), grid, dim=0)
            assert abs(total.item() - 1) < 1e-3, (k, total.item())
        x = points[::997]
        assert (model.log_prob(x, 0) - model.log_prob(x, 1)).abs().min() > 1e-3
    with pytest.raises(ValueError, match="is conditional: pass c"):
        model.log_prob(x)


def test_class_keeps_the_jacobian_structure_and_the_one_pass_equals_the_naive_one():
    model = build((5,), num_classes=3)
    c = torch.tensor([2])
    J = (
        torch.autograd.functional.jacobian(
            lambda v: torch.cat(model.mixture_params(v[None], c), dim=-1)[0],
            torch.randn(5, dtype=torch.float64),
        )
        .abs()
        .amax(1)
    )  # (D, D): conditional i, input j
    below = torch.ones(5, 5, dtype=torch.bool).tril(-1)  # j < i
    assert (J[~below] == 0).all() and (J[below] > 0).all()
    x = 1.5 * torch.randn(40, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    labels = torch.arange(40) % 3
    K, total = model.config.num_components, torch.zeros(40, dtype=torch.float64)
    for d in range(5):
        a = model.c + model.class_hidden[labels] + x[:, :d] @ model.W[:, :d].T  # (B, H)
        out = torch.sigmoid(a * model.log_rho[d].exp()) @ model.V[d] + model.b[d]  # (B, 3K)
        logits, means, log_scales = out[:, :K], out[:, K : 2 * K], out[:, 2 * K :]
        scales = log_scales.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp()
        total = total + MixtureSameFamily(
            Categorical(logits=logits), Normal(means, scales)
        ).log_prob(x[:, d])
    torch.testing.assert_close(model.log_prob(x, labels), total)


def test_samples_of_a_class_follow_its_mixture_and_completion_keeps_the_label():
    model = build((1,), num_components=4, num_classes=3)
    n = 20_000
    mixed = torch.tensor([0, 2]).repeat(n)  # (2n,): rows of classes 0 and 2 in one batch
    drawn = model.sample(2 * n, mixed, generator=torch.Generator().manual_seed(0))[:, 0]
    for k in (0, 2):
        params = model.mixture_params(torch.zeros(1, 1), torch.tensor([k]))
        logits, means, log_scales = (p[0, 0] for p in params)
        pi, sigma = logits.softmax(-1), log_scales.exp()
        mean = (pi * means).sum()
        var = (pi * (sigma**2 + means**2)).sum() - mean**2
        x = drawn[mixed == k]
        assert abs(x.mean() - mean) < 5 * x.std() / math.sqrt(n)
        assert abs(x.var() - var) < 5 * (x - x.mean()).square().std() / math.sqrt(n)
    model = build((2, 3), num_classes=3)
    labels = torch.arange(8) % 3
    x = model.sample(8, labels, generator=torch.Generator().manual_seed(5))
    mask = torch.rand(x.shape, generator=torch.Generator().manual_seed(6)) < 0.5
    out = model.complete(x, mask, labels, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out[mask], x[mask]) and not torch.equal(out[~mask], x[~mask])
