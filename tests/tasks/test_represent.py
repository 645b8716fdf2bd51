"""Representations: codes are the encoder's mean (or a flow's z), decodings its mean (the
expected level for a categorical decoder), a linear probe on codes that are the label is
perfect where the raw inputs do not separate linearly, and the 2-D projections keep what
they should (PCA of 2-D data is a rigid motion)."""

import dataclasses

import numpy as np
import pytest
import torch
from torch.distributions import Distribution, Independent, Normal

import dgm
from dgm.model import GenerativeModel
from dgm.tasks.represent import (
    codes,
    decode_mean,
    linear_probe,
    project,
    projection_plot,
    reconstruct,
)


class BandCode(GenerativeModel):
    """x in [0, 1)^3; the label is the parity of the band floor(8 x_0), which no linear
    function of x finds; the code is that label, one-hot (a Normal around it)."""

    def __init__(self) -> None:
        super().__init__((3,), _Empty())

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> Distribution:
        onehot = torch.nn.functional.one_hot(band_label(x), 2).double()  # (B, 2)
        return Independent(Normal(onehot, 0.1), 1)

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return z[:, :1].expand(-1, 3)

    def prior(self) -> Distribution:
        return Independent(Normal(torch.zeros(2), torch.ones(2)), 1)


@dataclasses.dataclass
class _Empty:  # a config with no fields
    pass


def band_label(x):
    return (x[:, 0] * 8).floor().long() % 2


def test_probe_on_codes_that_are_the_label_is_perfect_and_beats_raw_inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(600, 3, generator=g, dtype=torch.float64)
    y = band_label(x)
    model = BandCode()
    z = codes(model, x, batch_size=128)
    assert z.shape == (600, 2)
    assert linear_probe(z[:400], y[:400], z[400:], y[400:]) == 1.0
    raw = linear_probe(x[:400], y[:400], x[400:], y[400:])
    assert raw < 0.75  # alternating bands: no hyperplane separates them


def test_codes_and_decodings_are_means_in_any_batch_size():
    model = dgm.create("vae", (1, 3, 3), latent_dim=2, hidden_sizes=(8,), decoder="categorical")
    model = model.double()
    x = torch.randint(256, (5, 1, 3, 3))
    z = codes(model, x, batch_size=2)
    torch.testing.assert_close(z, model.encode(x).mean.detach())
    means = decode_mean(model, z, batch_size=3)  # (5, 1, 3, 3): Σ_v v p(v) per pixel
    probs = model.decode(z).base_dist.probs  # (5, 1, 3, 3, 256)
    expected = (probs * torch.arange(256, dtype=torch.float64)).sum(-1)
    torch.testing.assert_close(means, expected.detach())
    assert ((means >= 0) & (means <= 255)).all()
    torch.testing.assert_close(reconstruct(model, x), means)


def test_a_conditional_models_codes_and_decodings_read_each_examples_own_label():
    """Batches smaller than the data: each batch reads its own slice of c."""
    torch.manual_seed(0)
    model = dgm.create("vae", (1, 2, 2), latent_dim=2, hidden_sizes=(8,), num_classes=3)
    model = model.double()
    x = torch.bernoulli(torch.full((5, 1, 2, 2), 0.5, dtype=torch.float64))
    c = torch.tensor([0, 1, 2, 2, 1])
    z = codes(model, x, c, batch_size=2)
    torch.testing.assert_close(z, model.encode(x, c).mean.detach())
    assert not torch.allclose(z, model.encode(x, c.flip(0)).mean.detach())  # c matters
    means = decode_mean(model, z, c, batch_size=2)
    torch.testing.assert_close(means, model.decode(z, c).base_dist.probs.detach())


def test_pca_of_two_dimensional_codes_is_a_rigid_motion_and_tsne_runs():
    g = np.random.default_rng(0)
    pts = g.normal(size=(50, 2)) * [3.0, 0.5] + [4.0, -1.0]
    out = project(pts, "pca")

    def dist(a):
        return np.linalg.norm(a[:, None] - a[None], axis=-1)

    np.testing.assert_allclose(dist(out), dist(pts), atol=1e-9)
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-9)
    emb = project(g.normal(size=(40, 5)), "tsne")
    assert emb.shape == (40, 2) and np.isfinite(emb).all()
    one = project(np.arange(6.0)[:, None], "pca")  # 1-D codes: a zero second axis
    assert one.shape == (6, 2) and (one[:, 1] == 0).all()


def test_projection_plot_is_an_image_and_errors_name_the_fix():
    img = projection_plot(np.zeros((4, 2)), torch.tensor([0, 1, 2, 1]), title="t", size=200)
    assert img.size == (200, 200) and img.mode == "RGB"
    with pytest.raises(ValueError, match=r"expected \(N, 2\) and \(N,\)"):
        projection_plot(np.zeros((4, 3)), torch.zeros(4))
    with pytest.raises(ValueError, match="choose one of pca, tsne"):
        project(np.zeros((5, 2)), "umap")
    with pytest.raises(ValueError, match="at least two classes"):
        linear_probe(torch.zeros(3, 2), torch.zeros(3), torch.zeros(1, 2), torch.zeros(1))
    with pytest.raises(ValueError, match="not Encodable"):
        codes(dgm.create("fvsbn", (1, 2, 2)), torch.zeros(1, 1, 2, 2))
