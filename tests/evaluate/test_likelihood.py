"""Units and bounds of dgm.evaluate.likelihood."""

import math

import pytest
import torch

import dgm
from dgm.data import TensorData
from dgm.evaluate.likelihood import bits_per_dim, discrete_nll, evaluate
from helpers import DiagonalGaussian, GaussianConfig, ToyGAN, ToyGANConfig


def test_bits_per_dim_is_nats_over_d_ln2():
    assert bits_per_dim(784 * math.log(2) * 1.5, 784) == pytest.approx(1.5)


def test_discrete_correction_recovers_the_uniform_distribution_over_levels():
    # a uniform density on [0, 1)^D (NLL 0 nats) is, on the {0..255}^D scale, uniform over
    # 256^D values: -log P = D ln 256
    d = 12
    assert discrete_nll(0.0, d) == pytest.approx(-math.log(256.0**-d))
    assert discrete_nll(1.0, d, levels=16) == pytest.approx(1.0 + d * math.log(16))


def test_exact_model_is_evaluated_exactly():
    model = DiagonalGaussian((3,), GaussianConfig()).double()
    x = torch.randn(37, 3, dtype=torch.float64)
    out = evaluate(model, TensorData(x), batch_size=10)
    assert out["bound"] == "exact" and out["n"] == 37
    assert out["nll"] == pytest.approx(-model.log_prob(x).mean().item(), rel=1e-12)
    assert out["bits_per_dim"] == pytest.approx(out["nll"] / (3 * math.log(2)))


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
