"""The VAE as p(x | c) for every kind of c: labels, an image context (super-resolution),
token contexts, condition dropout (c=None), and its sampling options."""

from __future__ import annotations

import pytest
import torch

import dgm
from dgm.data import get

SMALL = {"latent_dim": 2, "hidden_sizes": (16,)}


def test_the_context_reaches_both_networks():
    model = dgm.create("vae", (1, 4, 4), context_shape=(1, 2, 2), **SMALL).double()
    z = torch.randn(3, 2, dtype=torch.float64)
    c0 = torch.zeros(3, 1, 2, 2, dtype=torch.float64)
    c1 = torch.ones(3, 1, 2, 2, dtype=torch.float64)
    assert not torch.allclose(model.decode(z, c0).mean, model.decode(z, c1).mean)
    x = model.sample(3, c0, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(model.encode(x, c0).mean, model.encode(x, c1).mean)
    # one context without the batch dimension is used for every example
    torch.testing.assert_close(model.decode(z, c1[0]).mean, model.decode(z, c1).mean)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_condition_dropout_trains_both_models_and_accepts_no_condition(arch):
    extra = {"architecture": "conv", "conv_channels": 3} if arch == "conv" else {}
    model = dgm.create(
        "vae", (1, 4, 4), num_classes=3, condition_dropout=0.2, **SMALL, **extra
    ).double()
    assert model.conditioning.optional
    x = model.sample(64, torch.arange(64) % 3, generator=torch.Generator().manual_seed(0))
    c = torch.arange(64) % 3
    none = model.log_prob(x)  # c=None: the presence flag is off, the label zero
    assert none.shape == (64,) and torch.isfinite(none).all()
    z = torch.randn(64, 2, dtype=torch.float64)
    torch.testing.assert_close(
        model.decode(z, None).mean, model._decode(z, torch.zeros(64, 4, dtype=torch.float64)).mean
    )
    # in training a share of the examples see the "no condition" code, in evaluation none
    torch.manual_seed(0)
    feats = model._features(c.repeat(10), 640, drop=True)  # (640, 3 + 1)
    dropped = feats[:, -1] == 0
    assert 90 < dropped.sum() < 170  # about 20 % of 640 (128, sd 10)
    assert (feats[dropped, :3] == 0).all() and (feats[~dropped, :3].sum(-1) == 1).all()
    assert (model._features(c, 64)[:, -1] == 1).all()  # evaluation drops nothing
    with pytest.raises(ValueError, match=r"condition_dropout must lie in \[0, 1\)"):
        dgm.create("vae", (4,), num_classes=3, condition_dropout=1.0)
    with pytest.raises(ValueError, match="needs a condition"):
        dgm.create("vae", (4,), condition_dropout=0.1)


def test_token_contexts_are_read_by_the_text_encoder():
    model = dgm.create(
        "vae",
        (5,),
        context_shape=(3,),
        context_vocab=4,
        text_features=5,
        decoder="gaussian",
        **SMALL,
    ).double()
    assert model.cond_width == 5  # the text encoder's features (tests/models/test_cross_modal.py)
    c = torch.tensor([[0, 1, 3], [3, 3, 3]])
    x = model.sample(2, c, generator=torch.Generator().manual_seed(0))
    assert model.log_prob(x, c).shape == (2,)
    with pytest.raises(ValueError, match=r"tokens outside 0\.\.3"):
        model.log_prob(x, c + 1)


def test_sampling_options_temperature_and_mean():
    model = dgm.create("vae", (1, 4, 4), **SMALL).double()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    mean = model.sample(8, generator=g(), mean=True)
    assert ((mean > 0) & (mean < 1)).all() and not ((mean == 0) | (mean == 1)).all()
    draws = model.sample(8, generator=g())
    assert ((draws == 0) | (draws == 1)).all()
    # temperature 0+ puts z at the prior's mode: every mean is the decoder at z = 0
    cold = model.sample(4, generator=g(), mean=True, temperature=1e-9)
    at_zero = model.decode(torch.zeros(4, 2, dtype=torch.float64)).mean
    torch.testing.assert_close(cold, at_zero)
    with pytest.raises(ValueError, match="temperature must be positive"):
        model.sample(2, temperature=0.0)
    with pytest.raises(ValueError, match="has no field"):
        model.sample(2, temprature=0.5)
    cat = dgm.create("vae", (3,), decoder="categorical", **SMALL).double()
    m = cat.sample(5, mean=True)
    assert m.is_floating_point() and ((m >= 0) & (m <= 255)).all()


def test_lowres_condition_trains_a_super_resolution_cvae(tmp_path):
    """The whole path: data with a context, the trainer passes it, the model uses it."""
    from dgm.data import DataConfig
    from dgm.train import TrainConfig, train

    data = DataConfig(name="digits", binarize="static", condition="lowres", lowres_factor=2)
    config = TrainConfig(
        steps=300, batch_size=64, lr=3e-3, eval_every=0, sample_every=300, device="cpu"
    )
    model, _ = train(
        "vae", data, tmp_path / "sr", config, progress=False, latent_dim=2, hidden_sizes=(32,)
    )
    assert model.conditioning.context_shape == (1, 4, 4)
    test = get("digits", "test", binarize="static", condition="lowres", lowres_factor=2)
    x, c = test.x.double(), test.context.double()
    model = model.double().eval()
    torch.manual_seed(0)
    right = model.log_prob(x, c).mean()
    wrong = model.log_prob(x, c.roll(1, dims=0)).mean()  # another image's low-res version
    assert right > wrong + 1.0  # the model uses the context (3.7 nats when measured)
    assert (tmp_path / "sr" / "samples" / "step_0000300.png").is_file()


def test_lowres_context_is_the_pooled_grey_image():
    plain = get("digits", "test")
    cond = get("digits", "test", condition="lowres", lowres_factor=4)
    assert cond.context.shape == (300, 1, 2, 2)
    torch.testing.assert_close(cond.context[:, 0, 0, 0], plain.x[:, 0, :4, :4].mean((-1, -2)))
    binary = get("digits", "test", binarize="static", condition="lowres", lowres_factor=4)
    torch.testing.assert_close(binary.context, cond.context)  # pooled before binarization
    with pytest.raises(ValueError, match="does not divide"):
        get("digits", "test", condition="lowres", lowres_factor=3)
    with pytest.raises(ValueError, match="condition must be one of"):
        get("digits", "test", condition="highres")


def test_byte_images_are_integers_and_unit_images_floats():
    byte = get("digits", "test", scale="byte")
    assert byte.x.dtype == torch.uint8 and byte.value_range == (0.0, 255.0)
    batch = byte.batch(torch.arange(4))
    assert batch.x.dtype == torch.long
    unit = get("digits", "test")
    assert unit.x.dtype == torch.float32 and unit.value_range == (0.0, 1.0)
    torch.testing.assert_close(byte.x.float(), torch.round(unit.x * 255))
    model = dgm.create("vae", (1, 8, 8), decoder="categorical", **SMALL)
    assert model.log_prob(batch.x).shape == (4,)
    with pytest.raises(ValueError, match=r"integer tensor.*--scale byte"):
        model.log_prob(unit.x[:4])
