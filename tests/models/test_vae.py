"""VAE and GMVAE behaviour: decoders, β and its warm-up, IWAE, conditioning, conv nets,
the mixture prior, argument checks and gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.distributions import Distribution, MixtureSameFamily, Normal

import dgm
from dgm.models.latent.vae import IW_MAX_ELEMENTS
from dgm.nn import ConvDecoder, ConvEncoder

SMALL = {"latent_dim": 2, "hidden_sizes": (8,)}
DECODERS = [
    {"decoder": "bernoulli"},
    {"decoder": "gaussian"},
    {"decoder": "gaussian", "decoder_std": 0.3},
    {"decoder": "categorical"},
]


def data(model, n: int = 4, seed: int = 0, c=None) -> torch.Tensor:
    return model.sample(n, c, generator=torch.Generator().manual_seed(seed))


# -- decoders -------------------------------------------------------------------------------


def test_bernoulli_decoder_normalises_over_all_binary_x():
    model = dgm.create("vae", (3,), **SMALL).double()
    dist = model.decode(torch.randn(2, 2, dtype=torch.float64))
    assert isinstance(dist, Distribution)
    assert dist.batch_shape == (2,) and dist.event_shape == (3,)
    xs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)), dtype=torch.float64)  # (8, 3)
    total = dist.log_prob(xs[:, None]).logsumexp(0)  # (2,)
    torch.testing.assert_close(total, torch.zeros(2, dtype=torch.float64))


def test_categorical_decoder_normalises_over_256_values_and_samples_integers():
    model = dgm.create("vae", (1,), decoder="categorical", **SMALL).double()
    dist = model.decode(torch.randn(2, 2, dtype=torch.float64))
    values = torch.arange(256).view(256, 1, 1)  # (256, 1, 1): every value of the one pixel
    total = dist.log_prob(values).logsumexp(0)  # (2,)
    torch.testing.assert_close(total, torch.zeros(2, dtype=torch.float64))
    assert not dist.sample().is_floating_point()
    x = data(model, 50)
    assert x.dtype == torch.long and x.min() >= 0 and x.max() <= 255
    # mean=True: E[x | z] = Σ_v v p(v | z) of the same z, within 0..255
    means = model.sample(50, generator=torch.Generator().manual_seed(1), mean=True)
    z = model._sample_prior(50, torch.Generator().manual_seed(1))
    probs = model.decode(z).base_dist.probs.detach()  # (50, 1, 256)
    torch.testing.assert_close(means, probs @ torch.arange(256, dtype=torch.float64))
    assert ((means >= 0) & (means <= 255)).all()


@pytest.mark.parametrize("std", [None, 0.3])
def test_gaussian_decoder_is_a_normal(std):
    model = dgm.create("vae", (5,), decoder="gaussian", decoder_std=std, **SMALL)
    dist = model.decode(torch.randn(4, 2))
    assert isinstance(dist.base_dist, Normal) and dist.event_shape == (5,)
    scale = dist.base_dist.scale.expand(4, 5)
    if std is None:
        assert (scale > 0).all() and scale.std() > 0  # learned from z
    else:
        torch.testing.assert_close(scale, torch.full((4, 5), std))


def test_decode_keeps_leading_sample_dims():
    model = dgm.create("vae", (1, 8, 8), architecture="conv", conv_channels=4, **SMALL)
    dist = model.decode(torch.randn(7, 3, 2))  # (k, B, latent)
    assert dist.batch_shape == (7, 3) and dist.event_shape == (1, 8, 8)
    with pytest.raises(ValueError, match=r"expected \(\*batch, B, 2\)"):
        model.decode(torch.randn(3, 5))


# -- objectives -----------------------------------------------------------------------------


def test_beta_weights_the_kl_term():
    x = torch.bernoulli(torch.full((16, 6), 0.5))
    loss = dgm.create("vae", (6,), beta=0.0, **SMALL).loss(x)
    torch.testing.assert_close(loss.value, loss.metrics["reconstruction"])
    loss = dgm.create("vae", (6,), beta=2.5, **SMALL).loss(x)
    m = loss.metrics
    torch.testing.assert_close(loss.value, m["reconstruction"] + 2.5 * m["kl"])
    torch.testing.assert_close(m["nelbo"], m["reconstruction"] + m["kl"])
    assert m["kl"] > 0 and m["beta"] == 2.5


def test_kl_warmup_follows_the_training_step_the_trainer_sets():
    model = dgm.create("vae", (6,), beta=2.0, kl_warmup_steps=4, **SMALL).train()
    x = torch.bernoulli(torch.full((8, 6), 0.5))
    betas = []
    for step in range(6):
        model.training_step = step
        betas.append(model.loss(x).metrics["beta"].item())
    assert betas == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    assert model.loss(x).metrics["beta"] == 2.0  # calling loss does not advance it
    assert "num_updates" not in model.state_dict()  # the schedule lives in the run, not here
    fresh = dgm.create("vae", (6,), beta=2.0, kl_warmup_steps=4, **SMALL).train()
    assert fresh.loss(x).metrics["beta"] == 0.0


@pytest.mark.parametrize("name", ["vae", "gmvae"])
def test_iwae_objective_is_minus_mean_log_prob_iw(name):
    model = dgm.create(name, (6,), iw_samples=5, **SMALL).double()
    x = torch.bernoulli(torch.full((8, 6), 0.5, dtype=torch.float64))
    torch.manual_seed(0)
    loss = model.loss(x)
    torch.manual_seed(0)
    torch.testing.assert_close(loss.value, -model.log_prob_iw(x, 5).mean())
    torch.manual_seed(1)
    assert loss.value != model.loss(x).value  # a fresh draw: the seed is what made them equal
    with pytest.raises(ValueError, match="set beta=1"):
        dgm.create(name, (6,), iw_samples=5, beta=2.0)


def test_log_prob_iw_of_1000_samples_is_chunked():
    model = dgm.create("vae", (1, 28, 28), latent_dim=4, hidden_sizes=(16,))
    rows = []
    model.decoder.register_forward_hook(lambda m, i, o: rows.append(len(i[0])))
    x = torch.bernoulli(torch.full((100, 1, 28, 28), 0.3))
    with torch.no_grad():
        lp = model.log_prob_iw(x, 1000)
    assert lp.shape == (100,) and torch.isfinite(lp).all()
    assert sum(rows) == 1000 * 100 and len(rows) > 1
    assert max(rows) * 784 <= IW_MAX_ELEMENTS  # decoder outputs per chunk stay under budget


# -- conditioning ---------------------------------------------------------------------------


def test_conditional_vae_needs_c_and_unconditional_rejects_it():
    model = dgm.create("vae", (6,), num_classes=3, **SMALL)
    assert model.sample(4, torch.tensor([0, 1, 2, 0])).shape == (4, 6)
    assert model.sample(4, 2).shape == (4, 6)
    z = torch.randn(2, 2)
    assert not torch.equal(model.decode(z, 0).mean, model.decode(z, 1).mean)
    x = data(model, 4, c=1)
    assert model.log_prob(x, torch.tensor([0, 1, 2, 1])).shape == (4,)
    with pytest.raises(ValueError, match=r"conditional: pass c, a LongTensor of labels in 0\.\.2"):
        model.sample(4)
    with pytest.raises(ValueError, match="conditional: pass c"):
        model.log_prob(x)
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        model.log_prob(x, torch.tensor([0, 1, 2, 3]))
    plain = dgm.create("vae", (6,), **SMALL)
    with pytest.raises(ValueError, match="unconditional: pass c=None"):
        plain.log_prob(x, torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="unconditional"):
        plain.sample(2, 1)


# -- architectures --------------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(4, 4), (5, 7), (8, 8), (28, 28), (4, 9), (9, 4)])
def test_conv_nets_handle_any_size(hw):
    enc = ConvEncoder((2, *hw), 6, channels=4)
    dec = ConvDecoder(6, (3, *hw), channels=4)
    assert enc(torch.zeros(5, 2, *hw)).shape == (5, 6)
    assert dec(torch.zeros(5, 6)).shape == (5, 3, *hw)
    assert dec.grid == (4, -(-hw[0] // 4), -(-hw[1] // 4))  # the first grid, each axis its own


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8)])
def test_conv_vae(shape):
    model = dgm.create("vae", shape, architecture="conv", conv_channels=4, **SMALL)
    x = data(model, 3)
    assert x.shape == (3, *shape)
    assert model.log_prob(x).shape == (3,) and model.log_prob_iw(x, 4).shape == (3,)
    with pytest.raises(ValueError, match="architecture='mlp'"):
        dgm.create("vae", (1, 3, 8), architecture="conv")


# -- GMVAE ----------------------------------------------------------------------------------


def test_gmvae_prior_is_a_uniform_mixture_with_monte_carlo_kl():
    model = dgm.create("gmvae", (6,), num_components=7, **SMALL)
    prior = model.prior()
    assert isinstance(prior, MixtureSameFamily)
    assert prior.mixture_distribution.probs.shape == (7,)
    torch.testing.assert_close(prior.mixture_distribution.probs, torch.full((7,), 1 / 7))
    assert prior.component_distribution.batch_shape == (7,)
    assert prior.event_shape == (2,)
    x = torch.bernoulli(torch.full((8, 6), 0.5))
    kls = []
    for name in ("vae", "gmvae"):
        m = dgm.create(name, (6,), **SMALL)
        kls.append([m.loss(x).metrics["kl"] for _ in range(2)])
    assert kls[0][0] == kls[0][1]  # VAE: analytic KL, independent of the draw
    assert kls[1][0] != kls[1][1]  # GMVAE: log q(z|x) − log p(z) at the draw


def test_gmvae_prior_density_integrates_to_one():
    model = dgm.create("gmvae", (6,), latent_dim=1, num_components=5).double()
    with torch.no_grad():
        model.prior_means.copy_(torch.linspace(-3, 3, 5).view(5, 1))
        model.prior_raw_scales.copy_(torch.linspace(-1, 1, 5).view(5, 1))
    grid = torch.linspace(-15, 15, 30_001, dtype=torch.float64).view(-1, 1)  # (N, 1)
    mass = model.prior().log_prob(grid).exp().sum() * (grid[1] - grid[0])
    torch.testing.assert_close(mass, torch.ones(1, dtype=torch.float64), rtol=0, atol=1e-8)
    z = model._sample_prior(20_000, torch.Generator().manual_seed(0))  # draws follow the prior
    torch.testing.assert_close(z.mean(), model.prior().mean.squeeze(), rtol=0, atol=0.05)


# -- arguments ------------------------------------------------------------------------------


def test_wrong_shape_names_the_expected_shape():
    model = dgm.create("vae", (1, 8, 8), **SMALL)
    with pytest.raises(ValueError, match=r"expected \(batch, 1, 8, 8\)"):
        model.log_prob(torch.zeros(3, 64))
    with pytest.raises(ValueError, match=r"expected \(batch, 1, 8, 8\)"):
        model.loss(torch.zeros(1, 8, 8))


@pytest.mark.parametrize(
    ("decoder", "bad", "message"),
    [
        ("bernoulli", 0.5, "outside the support"),
        ("categorical", 256, "outside the support"),
        ("categorical", -1, "outside the support"),
        ("categorical", 1.5, "pass an integer tensor"),
    ],
)
def test_values_outside_the_support_are_rejected(decoder, bad, message):
    model = dgm.create("vae", (4,), decoder=decoder, **SMALL)
    x = torch.zeros(2, 4, dtype=torch.long if decoder == "categorical" else torch.float32)
    model.log_prob(x)
    if isinstance(bad, float) and not x.is_floating_point():
        x = x.float()
    x[1, 2] = bad
    for fn in (model.log_prob, model.loss, lambda v: model.log_prob_iw(v, 3)):
        with pytest.raises(ValueError, match=message):
            fn(x)


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="decoder='gaussian' only"):
        dgm.create("vae", (4,), decoder="bernoulli", decoder_std=0.1)
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        dgm.create("vae", (4,), latent_dim=0)


# -- every variant: float64, sampling, gradients --------------------------------------------


@pytest.mark.parametrize("name", ["vae", "gmvae"])
@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("dec", DECODERS, ids=lambda d: "-".join(map(str, d.values())))
def test_gradients_reach_every_parameter(name, arch, dec):
    extra = {"num_components": 3} if name == "gmvae" else {}
    model = dgm.create(
        name, (1, 4, 5), architecture=arch, conv_channels=3, num_classes=2, **dec, **SMALL, **extra
    ).double()
    c = torch.tensor([0, 1, 1])
    x = data(model, 3, c=c)
    assert x.dtype == (torch.long if model.integer_data else torch.float64)
    assert model.support.check(x).all()
    torch.testing.assert_close(x, data(model, 3, c=c))  # the generator makes it repeatable
    model.loss(x, c).value.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing
    assert model.log_prob(x, c).dtype == torch.float64
    assert torch.isfinite(model.log_prob_iw(x, 3, c)).all()


# -- the fast log-likelihoods and the IWAE estimator ------------------------------------------


def _x_for(model, shape: tuple[int, ...]) -> torch.Tensor:
    """x of ``shape`` in the model's support, float64 (integer for the categorical head)."""
    g = torch.Generator().manual_seed(7)
    if model.config.decoder == "bernoulli":
        return torch.bernoulli(torch.full(shape, 0.4, dtype=torch.float64), generator=g)
    if model.config.decoder == "categorical":
        return torch.randint(0, 256, shape, generator=g)
    return torch.randn(shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("dec", DECODERS, ids=lambda d: "-".join(map(str, d.values())))
def test_head_log_likelihood_equals_the_torch_distribution(dec):
    head = dgm.create("vae", (1, 4, 5), **dec, **SMALL).head
    g = torch.Generator().manual_seed(0)
    params = 3 * torch.randn(6, 3, head.num_params, 1, 4, 5, generator=g, dtype=torch.float64)
    x = _x_for(dgm.create("vae", (1, 4, 5), **dec, **SMALL), (3, 1, 4, 5))  # broadcasts on 6
    expected = head.distribution(params, validate=True).log_prob(head.target(x))  # (6, 3)
    got = head.log_likelihood(params, x)
    assert got.shape == (6, 3) and got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["vae", "gmvae"])
@pytest.mark.parametrize("classes", [0, 3], ids=["unconditional", "conditional"])
@pytest.mark.parametrize("dec", DECODERS, ids=lambda d: "-".join(map(str, d.values())))
def test_elbo_and_iwae_terms_equal_the_torch_distribution_values(name, classes, dec):
    extra = {"num_components": 4} if name == "gmvae" else {}
    model = dgm.create(name, (1, 4, 5), num_classes=classes, **dec, **SMALL, **extra).double()
    x = _x_for(model, (3, 1, 4, 5))
    c = torch.tensor([0, 2, 1]) if classes else None
    target, prior = model.head.target(x), model.prior()

    torch.manual_seed(0)
    rec, kl = model.elbo_terms(x, c)
    torch.manual_seed(0)
    q = model.encode(x, c)
    z = q.rsample()  # the same draw
    rec_ref = model.decode(z, c).log_prob(target)
    if name == "vae":
        kl_ref = torch.distributions.kl_divergence(q, prior)
    else:
        kl_ref = q.log_prob(z) - prior.log_prob(z)
    torch.testing.assert_close(rec, rec_ref, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(kl, kl_ref, rtol=1e-12, atol=1e-10)

    k = 5
    torch.manual_seed(1)
    iw = model.log_prob_iw(x, k, c, max_elements=2 * 3 * model._draw_cost())  # 2 draws a chunk
    torch.manual_seed(1)
    q = model.encode(x, c)
    z = q.rsample((k,))  # (k, B, latent)
    log_w = model.decode(z, c).log_prob(target) + prior.log_prob(z) - q.log_prob(z)  # (k, B)
    iw_ref = torch.logsumexp(log_w, 0) - torch.log(torch.tensor(float(k), dtype=torch.float64))
    torch.testing.assert_close(iw, iw_ref, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("name", ["vae", "gmvae"])
def test_log_prob_iw_keeps_no_graph_unless_asked(name):
    extra = {"num_components": 3} if name == "gmvae" else {}
    model = dgm.create(name, (6,), **SMALL, **extra)
    x = torch.bernoulli(torch.full((4, 6), 0.5))
    lp = model.log_prob_iw(x, 5)
    assert lp.grad_fn is None and not lp.requires_grad  # an estimator: no graph by default
    with torch.no_grad():
        assert not model.log_prob_iw(x, 5, grad=True).requires_grad  # the caller's no_grad wins
    lp = model.log_prob_iw(x, 5, grad=True)
    assert lp.grad_fn is not None
    lp.sum().backward()
    assert all(p.grad is not None and p.grad.any() for p in model.parameters())
    # IWAE training (iw_samples > 1) takes the differentiable path
    iwae = dgm.create(name, (6,), iw_samples=4, **SMALL, **extra)
    loss = iwae.loss(x).value
    assert loss.grad_fn is not None
    loss.backward()
    assert all(p.grad is not None and p.grad.any() for p in iwae.parameters())
