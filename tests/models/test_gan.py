"""The ``gan`` model: objectives by name, networks, outputs, conditioning, per-phase
optimiser settings, EMA sampling and the trainer's validation of a model without a
likelihood. The theory of the objectives is in test_gan_theory.py."""

import dataclasses
import typing

import pytest
import torch
from torch.nn.utils.parametrize import is_parametrized

import dgm
from dgm import run_dir
from dgm.data import TensorData
from dgm.models.adversarial.gan import GANConfig
from dgm.models.adversarial.nets import ConvGenerator
from dgm.models.adversarial.objectives import OBJECTIVES
from dgm.train import TrainConfig, Trainer

TINY = {"hidden_sizes": (16,), "latent_dim": 4}


def quiet(**kw):
    base = dict(steps=20, batch_size=32, eval_every=0, sample_every=0, log_every=0)
    base |= dict(checkpoint_every=0, device="cpu", warmup_steps=1)
    return TrainConfig(**{**base, **kw})


def test_every_objective_of_the_config_is_an_object_and_trains_a_step():
    names = typing.get_args(typing.get_type_hints(GANConfig)["objective"])
    assert set(names) == set(OBJECTIVES) and len(names) == 12
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    for name in names:
        torch.manual_seed(0)
        model = dgm.create("gan", (2,), objective=name, **TINY)
        for phase in dict.fromkeys(model.phases):
            out = model.loss(x, phase=phase)
            assert torch.isfinite(out.value), (name, phase)
            out.value.backward()
    with pytest.raises(ValueError, match=r"objective must be one of.*got 'wgn'"):
        dgm.create("gan", (2,), objective="wgn")


def test_log_prob_says_there_is_no_likelihood_and_points_to_sample_quality():
    model = dgm.create("gan", (2,), **TINY)
    for error in (ValueError, NotImplementedError):
        with pytest.raises(error, match=r"no likelihood.*dgm eval DIR --sample-quality"):
            model.log_prob(torch.zeros(3, 2))


def test_projection_discriminator_is_psi_of_phi_plus_the_class_embedding_dot_phi():
    torch.manual_seed(0)
    model = dgm.create("gan", (3,), num_classes=4, **TINY).double()
    d = model.discriminator
    x = torch.randn(6, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    h = torch.nn.functional.leaky_relu(x @ d.features[1].weight.T + d.features[1].bias, 0.2)
    psi = h @ d.psi.weight[0] + d.psi.bias[0]
    by_hand = psi + (d.embed.weight[y] * h).sum(-1)
    torch.testing.assert_close(d(x, y), by_hand)
    model = dgm.create("gan", (3,), context_shape=(2,), **TINY).double()
    d, c = model.discriminator, torch.randn(6, 2, dtype=torch.float64)
    phi = d.features(x)
    torch.testing.assert_close(d(x, c), d.psi(phi)[:, 0] + ((c @ d.embed.weight.T) * phi).sum(-1))


def test_architecture_and_output_follow_the_event_shape():
    for shape in ((1, 8, 8), (3, 28, 28), (1, 8, 12), (2, 12, 8)):  # square or not
        model = dgm.create("gan", shape, conv_channels=4, latent_dim=3)
        assert isinstance(model.generator, ConvGenerator)
        x = model.sample(2, generator=torch.Generator().manual_seed(0))
        assert x.shape == (2, *shape) and 0 <= x.min() and x.max() <= 1  # unit: a sigmoid
    assert not isinstance(dgm.create("gan", (1, 6, 5), **TINY).generator, ConvGenerator)
    with pytest.raises(ValueError, match=r"multiples of 4.*--architecture mlp"):
        dgm.create("gan", (1, 6, 5), architecture="conv")
    model = dgm.create("gan", (1, 4, 4), **TINY)
    with pytest.raises(ValueError, match=r"outside the support.*--output real"):
        model.loss(torch.full((2, 1, 4, 4), 2.0), phase="generator")


def test_binary_output_samples_bernoulli_pixels_or_thresholds_them():
    torch.manual_seed(0)
    model = dgm.create("gan", (1, 4, 4), output="binary", **TINY)
    x = model.sample(64, generator=torch.Generator().manual_seed(1))
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    cold = model.sample(64, threshold=True, generator=torch.Generator().manual_seed(1))
    p = model._probabilities(64, None, generator=torch.Generator().manual_seed(1))
    assert torch.equal(cold, (p > 0.5).float())
    fake = model._fake(5, None)  # straight through: binary values, gradient to G
    assert set(fake.unique().tolist()) <= {0.0, 1.0} and fake.requires_grad


def test_temperature_scales_the_noise():
    model = dgm.create("gan", (2,), **TINY)
    x = model.sample(5, temperature=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(x, x[:1].expand(5, 2))  # every z is 0: G(0)


def test_wgan_clips_the_critic_before_each_use_and_spectral_norm_normalises_it():
    torch.manual_seed(0)
    model = dgm.create("gan", (2,), objective="wgan", clip=0.05, **TINY)
    model.loss(torch.randn(4, 2), phase="discriminator")
    assert all(p.abs().max() <= 0.05 for p in model.discriminator.parameters())
    model = dgm.create("gan", (2,), spectral_norm=True, hidden_sizes=(16, 16), latent_dim=4)
    layer = model.discriminator.features[1]
    assert is_parametrized(layer, "weight")
    for _ in range(30):  # power iteration runs in each training forward
        model.loss(torch.randn(4, 2), phase="discriminator")
    assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2) == pytest.approx(1, abs=1e-3)
    weighted = [m for m in model.discriminator.modules() if isinstance(m, torch.nn.Linear)]
    assert len(weighted) >= 3 and all(is_parametrized(m, "weight") for m in weighted)  # ψ too
    for image in (False, True):  # every weighted layer, the projection head's included
        shape = (1, 8, 8) if image else (2,)
        disc = dgm.create("gan", shape, spectral_norm=True, num_classes=3, **TINY).discriminator
        layers = [m for m in disc.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        assert layers and all(is_parametrized(m, "weight") for m in layers), image


def test_the_gradient_penalty_weight_reaches_the_objective():
    """gp_weight = λ: the penalty of the same critic and points is λ times its λ = 1 value
    (every other test ran at the default λ = 10)."""
    torch.manual_seed(0)
    x, fake = torch.randn(6, 2), torch.randn(6, 2)
    values = {}
    for weight in (1.0, 2.5):
        model = dgm.create("gan", (2,), objective="wgan_gp", gp_weight=weight, **TINY)
        torch.manual_seed(1)  # the same interpolation points
        critic = torch.nn.Linear(2, 1)
        torch.nn.init.constant_(critic.weight, 3.0)
        values[weight] = model.objective.penalty(lambda t, f=critic: f(t)[:, 0], x, fake)
    torch.testing.assert_close(values[2.5], 2.5 * values[1.0])
    assert values[1.0] > 0


def test_per_phase_learning_rates_and_betas_reach_the_optimizers():
    model = dgm.create(
        "gan",
        (2,),
        n_critic=3,
        lr_discriminator=4e-4,
        betas_generator=(0.0, 0.9),
        betas_discriminator=(0.5, 0.99),
        **TINY,
    )
    data = TensorData(torch.randn(64, 2))
    trainer = Trainer(model, data, None, quiet(lr=1e-3, steps=2), progress=False)
    d, g = trainer.optimizers["discriminator"], trainer.optimizers["generator"]
    assert d.param_groups[0]["initial_lr"] == 4e-4 and d.param_groups[0]["betas"] == (0.5, 0.99)
    assert g.param_groups[0]["initial_lr"] == 1e-3 and g.param_groups[0]["betas"] == (0.0, 0.9)
    assert {id(p) for p in g.param_groups[0]["params"]} == {
        id(p) for p in model.generator.parameters()
    }
    assert model.phases == ("discriminator",) * 3 + ("generator",)
    last = trainer.fit()
    assert {"discriminator/loss", "generator/loss", "discriminator/divergence"} <= set(last)


def test_conditional_samples_honour_the_class():
    """Three classes at separated centres: a conditional GAN trained briefly puts the
    samples of class k nearest to centre k."""
    torch.manual_seed(0)
    centres = torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    y = torch.arange(600) % 3
    data = TensorData(centres[y] + 0.3 * torch.randn(600, 2), y, num_classes=3)
    model = dgm.create("gan", (2,), num_classes=3, hidden_sizes=(32, 32), latent_dim=4)
    Trainer(model, data, None, quiet(steps=300, batch_size=64, lr=2e-3), progress=False).fit()
    for k in range(3):
        x = model.sample(200, torch.full((200,), k), generator=torch.Generator().manual_seed(k))
        nearest = torch.cdist(x, centres).argmin(1)
        assert (nearest == k).float().mean() > 0.9, k


@pytest.mark.parametrize("reuse_fakes", [False, True])
def test_a_conditional_discriminator_reads_the_batchs_labels_in_every_call(reuse_fakes):
    """Every objective, both phases: the discriminator scores reals, fakes and a gradient
    penalty's interpolates with the batch's labels (a call without them still trains,
    and the class test above still passes, since the generator phase keeps them)."""
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    c = torch.tensor([0, 1, 2, 2, 1, 0])
    for name in OBJECTIVES:
        torch.manual_seed(0)
        model = dgm.create(
            "gan", (2,), objective=name, num_classes=3, reuse_fakes=reuse_fakes, **TINY
        )
        seen = []
        forward = model.discriminator.forward
        model.discriminator.forward = lambda t, c=None, f=forward, s=seen: (s.append(c), f(t, c))[1]
        for phase in dict.fromkeys(model.phases):
            model.loss(x, c, phase=phase).value.backward()
        assert len(seen) >= 3 and all(got is not None and torch.equal(got, c) for got in seen), (
            name,
            seen,
        )


def test_a_loaded_ema_run_samples_from_the_averaged_generator(tmp_path):
    torch.manual_seed(0)
    model = dgm.create("gan", (2,), **TINY)
    data = TensorData(torch.randn(128, 2) + 2)
    config = quiet(steps=10, ema_decay=0.9, checkpoint_every=10)
    trainer = Trainer(model, data, None, config, tmp_path, progress=False)
    trainer.fit()
    run_dir.write_json(tmp_path / run_dir.CONFIG, run_dir.run_config(model))
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    with trainer.ema.swapped_in():
        expected = model.eval().sample(8, generator=gen())
    raw = model.sample(8, generator=gen())
    loaded = dgm.load(tmp_path)
    torch.testing.assert_close(loaded.sample(8, generator=gen()), expected)
    assert not torch.allclose(expected, raw)
    torch.testing.assert_close(dgm.load(tmp_path, ema=False).sample(8, generator=gen()), raw)


def test_validation_reports_every_phase_even_with_a_gradient_penalty():
    torch.manual_seed(0)
    model = dgm.create("gan", (2,), objective="wgan_gp", **TINY)
    data = TensorData(torch.randn(64, 2))
    trainer = Trainer(model, data, data, quiet(steps=2, eval_every=2), progress=False)
    last = trainer.fit()
    assert {"valid/discriminator/penalty", "valid/generator/loss"} <= set(last)
    assert "valid/discriminator/divergence" in last


def test_config_fields_have_comments_and_defaults():
    for f in dataclasses.fields(GANConfig):
        assert f.default is not dataclasses.MISSING, f.name
