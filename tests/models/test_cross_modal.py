"""Conditioning across modalities: the text encoder, a VAE conditioned on a text (text to
image) and a char_rnn conditioned on an image (a captioner), on tiny problems whose answer
is known: each condition picks one target, and a short fit learns the pairing."""

import pytest
import torch

import dgm
from dgm.nn.text_encoder import TextEncoder


def encoder():
    torch.manual_seed(0)
    return TextEncoder(vocab_size=6, features=5, embedding_dim=4, hidden_size=7).double()


def test_text_encoder_ignores_trailing_padding_exactly():
    enc = encoder()
    texts = torch.tensor([[3, 1, 4, 0, 0], [2, 0, 5, 5, 0], [5, 5, 5, 5, 5]])  # (3, 5)
    feats = enc(texts)  # (3, 5)
    longer = torch.cat([texts, torch.zeros(3, 4, dtype=torch.long)], dim=1)  # (3, 9)
    torch.testing.assert_close(enc(longer), feats, rtol=0, atol=0)
    for i, n in enumerate([3, 4, 5]):  # each text alone, cut right after its last character
        torch.testing.assert_close(enc(texts[i : i + 1, :n]), feats[i : i + 1])
    assert enc.lengths(texts).tolist() == [3, 4, 5]  # an inner 0 is a character
    empty = enc(torch.zeros(2, 4, dtype=torch.long))
    torch.testing.assert_close(empty, enc.out.bias.expand(2, -1))  # no text: the zero state


def test_text_encoder_tells_texts_apart_and_orders_matter():
    enc = encoder()
    texts = torch.tensor([[3, 1, 4], [1, 3, 4], [3, 1, 5], [3, 1, 0], [2, 2, 2]])
    feats = enc(texts)  # (5, 5)
    dist = torch.cdist(feats, feats) + torch.eye(5)
    assert dist.min() > 1e-3  # every pair differs, a reordering and a shorter text too
    with pytest.raises(ValueError, match=r"integer token ids \(B, T\)"):
        enc(texts.double())
    with pytest.raises(ValueError, match="pad must be a token"):
        TextEncoder(vocab_size=3, features=2, pad=3)


def fit(model, x, c, steps, lr=0.03):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model.loss(x, c).value.backward()
        opt.step()
    return model.eval()


def test_a_text_conditioned_vae_draws_the_image_its_text_names():
    # two texts ("ab", "a": the same start), each naming one of two 4-pixel images
    texts = torch.tensor([[1, 2, 0], [1, 0, 0]])
    images = torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1]])
    c, x = texts.repeat(32, 1), images.repeat(32, 1)  # (64, 3), (64, 4)
    torch.manual_seed(0)
    model = dgm.create(
        "vae", (4,), latent_dim=1, hidden_sizes=(16,), context_shape=(3,), context_vocab=3
    )
    assert isinstance(model.text_encoder, TextEncoder) and model.cond_width == 64
    fit(model, x, c, steps=150)
    g = torch.Generator().manual_seed(0)
    for text, image in zip(texts, images, strict=True):
        mean = model.sample(200, text, generator=g, mean=True).mean(0)  # (4,)
        assert (mean - image).abs().max() < 0.1, (text, mean)
    with pytest.raises(ValueError, match=r"text of shape \(T,\)"):
        dgm.create("vae", (4,), context_shape=(2, 2), context_vocab=3)


def test_an_image_conditioned_char_rnn_captions_each_image():
    # two 2x2 "images", each with its own 3-token caption
    images = torch.tensor([[[[1.0, 0], [0, 1]]], [[[0, 1], [1, 0]]]])  # (2, 1, 2, 2)
    captions = torch.tensor([[1, 2, 0], [2, 1, 1]])
    c, x = images.repeat(32, 1, 1, 1), captions.repeat(32, 1)
    torch.manual_seed(0)
    model = dgm.create(
        "char_rnn", (3,), vocab_size=3, cell="gru", hidden_size=16, context_shape=(1, 2, 2)
    )
    fit(model, x, c, steps=100)
    g = torch.Generator().manual_seed(0)
    for image, caption in zip(images, captions, strict=True):
        drawn = model.sample(50, image, generator=g)  # (50, 3): c without the batch dim
        assert (drawn == caption).all(-1).float().mean() > 0.9
        assert model.log_prob(caption[None], image[None]).exp() > 0.9


def test_the_image_only_moves_the_start_state():
    torch.manual_seed(0)
    kw = {"vocab_size": 4, "cell": "lstm", "hidden_size": 5, "num_layers": 2}
    plain = dgm.create("char_rnn", (3,), **kw).double()
    captioner = dgm.create("char_rnn", (3,), context_shape=(2,), **kw).double()
    missing = captioner.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == [f"context_net.{i}.{p}" for i in (0, 2) for p in ("bias", "weight")]
    x = torch.randint(4, (6, 3))
    c = torch.randn(6, 2, dtype=torch.float64)
    assert not torch.allclose(captioner.log_prob(x, c), plain.log_prob(x))
    with torch.no_grad():  # no offset from the image: the unconditional model
        captioner.context_net[2].weight.zero_()
        captioner.context_net[2].bias.zero_()
    torch.testing.assert_close(captioner.log_prob(x, c), plain.log_prob(x))
    with pytest.raises(ValueError, match="is conditional: pass c"):
        captioner.sample(2)
