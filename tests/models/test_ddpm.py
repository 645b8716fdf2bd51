"""DDPM parts: the bound's terms against torch/scipy closed forms, the discretized decoder
as a probability over the levels, the U-Net and the conditioning paths of the model."""

import math

import pytest
import torch
from scipy import stats
from torch.distributions import Normal, kl_divergence

import dgm
from dgm.models.diffusion import bound
from dgm.models.diffusion.schedules import betas_for
from dgm.nn.unet import UNet, timestep_embedding


@pytest.mark.parametrize("levels", [2, 5, 256])
def test_discretized_decoder_sums_to_one_over_the_levels(levels):
    grid = torch.linspace(-1, 1, levels, dtype=torch.float64)[:, None]  # (L, 1): each level
    for mean, std in ((0.3, 0.01), (-0.99, 0.2), (1.5, 0.05), (0.0, 3.0)):
        lp = bound.decoder_log_prob(grid, torch.full_like(grid, mean), std, levels)
        torch.testing.assert_close(lp.logsumexp(0), torch.zeros((), dtype=torch.float64))


def test_log_normal_interval_is_accurate_in_both_tails():
    a = torch.tensor([-0.5, 8.0, -40.0, 30.0], dtype=torch.float64)
    b = torch.tensor([0.7, 9.0, -39.0, 31.0], dtype=torch.float64)
    exact = [
        math.log(stats.norm.cdf(0.7) - stats.norm.cdf(-0.5)),
        math.log(stats.norm.sf(8.0) - stats.norm.sf(9.0)),
        stats.norm.logcdf(-39.0)
        + math.log1p(-math.exp(stats.norm.logcdf(-40) - stats.norm.logcdf(-39))),
        stats.norm.logsf(30.0) + math.log1p(-math.exp(stats.norm.logsf(31) - stats.norm.logsf(30))),
    ]
    torch.testing.assert_close(
        bound.log_normal_interval(a, b), torch.tensor(exact, dtype=torch.float64)
    )


def test_prior_and_step_kls_match_torch():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 3, generator=g, dtype=torch.float64)
    ab = 0.3
    q = Normal(math.sqrt(ab) * x0, math.sqrt(1 - ab))
    expect = kl_divergence(q, Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(bound.prior_kl(x0, ab), expect)
    m1, m2 = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    v1, v2 = torch.rand(2, 4, 3, generator=g, dtype=torch.float64) + 0.1
    expect = kl_divergence(Normal(m1, v1.sqrt()), Normal(m2, v2.sqrt())).sum(-1)
    torch.testing.assert_close(bound.gaussian_kl(m1, v1, m2, v2), expect)


def test_cosine_schedule_follows_its_alpha_bar():
    betas = betas_for("cosine", 100)
    ab = torch.cumprod(1 - betas, 0)
    t = torch.arange(1, 101, dtype=torch.float64) / 100
    f = (
        torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        / math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    )
    torch.testing.assert_close(ab[:-1], f[:-1])  # the last β is clipped at 0.999
    with pytest.raises(ValueError, match="linear' or 'cosine"):
        betas_for("quadratic", 10)


def test_unet_keeps_the_shape_for_odd_sizes_and_uses_time_label_and_context():
    torch.manual_seed(0)
    net = UNet(2, channels=8, channel_mult=(1, 2, 2), num_classes=3, extra_channels=1).double()
    x = torch.randn(2, 2, 7, 9, dtype=torch.float64)
    ctx = torch.randn(2, 1, 7, 9, dtype=torch.float64)
    t, y = torch.tensor([3, 3]), torch.tensor([0, 0])
    out = net(x, t, y, ctx)
    assert out.shape == x.shape
    assert not torch.allclose(out, net(x, torch.tensor([40, 40]), y, ctx))
    assert not torch.allclose(out, net(x, t, torch.tensor([2, 2]), ctx))
    assert not torch.allclose(out, net(x, t, y, ctx + 1))
    mixed = net(x, torch.tensor([3, 40]), torch.tensor([0, 2]), ctx)  # each row its own
    for i, (ti, yi) in enumerate(((3, 0), (40, 2))):
        alone = net(x[i : i + 1], torch.tensor([ti]), torch.tensor([yi]), ctx[i : i + 1])
        torch.testing.assert_close(mixed[i : i + 1], alone)
    emb = timestep_embedding(torch.tensor([0.0, 5.0]), 7)
    assert emb.shape == (2, 7) and torch.equal(emb[0, :3], torch.zeros(3))


def test_label_dropout_trains_the_null_label_on_the_stated_share():
    model = dgm.create("ddpm", (2,), num_timesteps=10, num_classes=3, condition_dropout=0.25)
    seen = []
    forward = model.net.forward
    model.net.forward = lambda x, t, label=None, extra=None: (
        seen.append(label) or forward(x, t, label, extra)
    )
    x, y = torch.randn(4000, 2), torch.randint(3, (4000,))
    model.train().loss(x, y)
    null = (seen[0] == 3).double().mean().item()
    assert abs(null - 0.25) < 5 * math.sqrt(0.25 * 0.75 / 4000)
    model.eval().loss(x, y)  # no dropout outside training
    assert not (seen[1] == 3).any()


def test_a_dropped_context_reaches_the_network_as_no_context():
    """Context dropout trains the unconditional ε that guidance asks for: a dropped row's
    network input is the one given without c (zeros and a cleared presence flag), and a
    kept row's is the one given with its c."""
    torch.manual_seed(0)
    model = dgm.create("ddpm", (3,), num_timesteps=10, context_shape=(2,), condition_dropout=0.5)
    x, c = torch.randn(4, 3), torch.randn(4, 2)
    t = torch.tensor([1, 4, 7, 9])
    keep = torch.tensor([True, False, True, False])
    with torch.no_grad():
        got = model._net(x, t, c, keep)
        without, with_c = model._net(x, t, None), model._net(x, t, c)
    torch.testing.assert_close(got[~keep], without[~keep])
    torch.testing.assert_close(got[keep], with_c[keep])
    assert not torch.allclose(without, with_c)  # the context matters


def test_byte_images_need_integers_and_samples_are_levels():
    model = dgm.create("ddpm", (1, 4, 4), num_timesteps=5, unet_channels=4, num_levels=256)
    with pytest.raises(ValueError, match="integer tensor"):
        model.log_prob(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="--scale byte"):
        model.log_prob(torch.full((2, 1, 4, 4), 300))
    s = model.sample(3, generator=torch.Generator().manual_seed(0), sampler="ddim", steps=3)
    assert s.dtype == torch.long and 0 <= s.min() and s.max() <= 255
    terms = model.bound_terms(s, timesteps=2)
    assert set(terms) == {"prior", "decoder", "diffusion", "diffusion_se"}
    assert all(v.shape == (3,) and torch.isfinite(v).all() for v in terms.values())
    assert (terms["decoder"] >= 0).all()  # a probability: −log P ≥ 0


def test_config_and_option_errors_name_the_fix():
    with pytest.raises(ValueError, match="num_levels must be 0"):
        dgm.create("ddpm", (2,), num_levels=1)
    with pytest.raises(ValueError, match="condition_dropout"):
        dgm.create("ddpm", (2,), num_classes=2, condition_dropout=1.0)
    model = dgm.create("ddpm", (2,), num_timesteps=10)
    with pytest.raises(ValueError, match="sampler must be"):
        model.sample(2, sampler="euler")
    with pytest.raises(ValueError, match=r"steps must be an int in 1..num_timesteps \(10\)"):
        model.sample(2, steps=11)
    with pytest.raises(ValueError, match="conditional models"):
        model.sample(2, guidance_scale=2.0)
    with pytest.raises(ValueError, match=r"x_T has shape \(3, 2\), expected \(2, 2\)"):
        model.sample(2, x_T=torch.zeros(3, 2))
