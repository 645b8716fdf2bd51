"""Units and bounds of dgm.evaluate.likelihood."""

import math

import pytest
import torch
from torch.distributions import Normal
from torch.distributions.transforms import CumulativeDistributionTransform

import dgm
from dgm.data import TensorData
from dgm.evaluate.likelihood import bits_per_dim, evaluate
from dgm.models.flows.transforms import Chain, ScaleLayer, TorchTransform
from helpers import DiagonalGaussian, GaussianConfig, ToyGAN, ToyGANConfig


def test_bits_per_dim_is_nats_over_d_ln2():
    assert bits_per_dim(784 * math.log(2) * 1.5, 784) == pytest.approx(1.5)


def uniform_flow(shape, levels):
    """A dequantized flow whose density of y = (x + u)/L is uniform on [0, 1)^D: z = Φ⁻¹(y),
    the standard-normal quantile, so log p(y) = log N(z) + log |dz/dy| = 0 (the scaling by
    exp(0) only gives the model a float64 parameter)."""
    model = dgm.create(
        "maf", shape, hidden_sizes=(4,), dequantize="uniform", num_levels=levels, logit_alpha=None
    )
    normal = Normal(torch.tensor(0.0).double(), torch.tensor(1.0).double())
    quantile = TorchTransform(CumulativeDistributionTransform(normal).inv)
    model.transform = Chain([ScaleLayer(shape), quantile])
    return model.double()


@pytest.mark.parametrize("levels", [256, 17])
def test_a_uniform_density_on_the_levels_gives_exactly_log2_levels_bits_per_dim(levels):
    # uniform on [0, L)^D: every one of the L^D integer x has P(x) = L^-D, and the bound is
    # tight (the density is constant on each cell): log2 L bits/dim, 8 for bytes
    shape = (1, 2, 3)
    x = torch.randint(levels, (50, *shape), generator=torch.Generator().manual_seed(0))
    data = TensorData(x.to(torch.uint8))
    out = evaluate(uniform_flow(shape, levels), data, batch_size=16)
    assert out["bound"] == "dequantized" and out["levels"] == levels and out["n"] == 50
    assert out["nll"] == pytest.approx(6 * math.log(levels), rel=1e-12)
    assert out["bits_per_dim"] == pytest.approx(math.log2(levels), rel=1e-12)


def test_exact_model_is_evaluated_exactly():
    model = DiagonalGaussian((3,), GaussianConfig()).double()
    x = torch.randn(37, 3, dtype=torch.float64)
    out = evaluate(model, TensorData(x), batch_size=10)
    assert out["bound"] == "exact" and out["n"] == 37
    assert out["nll"] == pytest.approx(-model.log_prob(x).mean().item(), rel=1e-12)
    assert out["bits_per_dim"] == pytest.approx(out["nll"] / (3 * math.log(2)))
    nll = -model.log_prob(x)  # its standard error over the examples, in both units
    assert out["nll_se"] == pytest.approx((nll.std() / math.sqrt(37)).item(), rel=1e-9)
    assert out["bits_per_dim_se"] == pytest.approx(out["nll_se"] / (3 * math.log(2)))


def test_latent_model_reports_consistent_elbo_terms_and_the_iwae_bound():
    model = dgm.create("vae", (5,), latent_dim=2, hidden_sizes=(8,))
    x = torch.bernoulli(torch.full((40, 5), 0.3))
    elbo = evaluate(model, TensorData(x), batch_size=16)
    assert elbo["bound"] == "elbo"
    assert elbo["kl"] + elbo["reconstruction"] == pytest.approx(elbo["nll"], rel=1e-6)
    iw = evaluate(model, TensorData(x), iw_samples=200)
    assert iw["bound"] == "iwae_200" and iw["nll"] < elbo["nll"]


def test_evaluation_errors_name_the_problem():
    gan = ToyGAN((2,), ToyGANConfig())
    with pytest.raises(ValueError, match="defines no likelihood"):
        evaluate(gan, TensorData(torch.randn(4, 2)))
    gauss = DiagonalGaussian((2,), GaussianConfig())
    with pytest.raises(
        ValueError, match=r"needs a model with an importance-weighted bound \(log_prob_iw\)"
    ):
        evaluate(gauss, TensorData(torch.randn(4, 2)), iw_samples=10)
    with pytest.raises(ValueError, match="empty"):
        evaluate(gauss, TensorData(torch.randn(0, 2)))


def test_validation_losses_weigh_each_batch_by_its_examples():
    """A GAN's validation signal: every phase's loss metrics averaged over the examples.
    Ten examples 0..9 in batches of 4, 4 and 2 whose losses are their batch means: 4.5
    (a mean of batch means would weigh the short last batch double: 6.2)."""
    from dgm.evaluate.likelihood import evaluate_losses
    from dgm.model import Loss
    from helpers import ConstantCritic, CriticConfig

    class BatchMean(ConstantCritic):
        def loss(self, x, c=None, *, phase="main"):
            return Loss(x.mean(), {"first": x[:, 0].mean() + (phase == "critic")})

    model = BatchMean((1,), CriticConfig(critic_steps=3))
    data = TensorData(torch.arange(10.0)[:, None])
    got = evaluate_losses(model, data, batch_size=4)
    assert got == pytest.approx({"critic/loss": 4.5, "critic/first": 5.5, "generator/loss": 4.5,
                                 "generator/first": 4.5, "n": 10})  # fmt: skip
    assert evaluate_losses(model, data, batch_size=10) == pytest.approx(got)
