"""One EM iteration of the GMM against the textbook update computed here (Bishop 2006,
eqs. 9.23-9.27): responsibilities under the current parameters, then the weighted
weights, means and covariances. A fit that is only checked once converged cannot see an
M-step that is wrong away from the fixed point (e.g. the mean shift added, not removed,
in the covariance)."""

import math

import pytest
import torch

import dgm


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_one_em_iteration_is_the_closed_form_update(covariance):
    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [
            torch.randn(150, 2, generator=g, dtype=torch.float64) * 0.7 + torch.tensor([2.0, 0]),
            torch.randn(100, 2, generator=g, dtype=torch.float64)
            @ torch.tensor([[1.0, 0.6], [0.0, 0.5]], dtype=torch.float64)
            - 1,
        ]
    )
    model = dgm.create("gmm", (2,), num_components=2, covariance=covariance, tol=0.0).double()
    model.fit_step([(x, None)])  # seeds by k-means++ and iterates once
    with torch.no_grad():  # a starting point away from the fixed point
        model.means.copy_(torch.tensor([[1.0, 1.0], [-2.0, 0.5]], dtype=torch.float64))
    weights, means = model.log_weights.exp().clone(), model.means.clone()
    if covariance == "full":
        covs = model.scale @ model.scale.transpose(-1, -2)
    else:
        covs = torch.diag_embed(model.scale**2)
    comps = torch.distributions.MultivariateNormal(means, covs)
    joint = comps.log_prob(x[:, None, :]) + weights.log()  # (N, K)
    r = joint.softmax(-1)
    nk = r.sum(0)
    new_means = (r.T @ x) / nk[:, None]
    diff = x[:, None, :] - new_means[None]  # (N, K, D)
    new_covs = torch.einsum("nk,nki,nkj->kij", r, diff, diff) / nk[:, None, None]
    reg = model.config.reg_covar
    model.fit_step([(x, None)])
    torch.testing.assert_close(model.log_weights.exp(), nk / len(x))
    torch.testing.assert_close(model.means, new_means)
    if covariance == "full":
        got = model.scale @ model.scale.transpose(-1, -2)
        torch.testing.assert_close(got, new_covs + reg * torch.eye(2, dtype=torch.float64))
    else:
        want = torch.diagonal(new_covs, dim1=-2, dim2=-1) + reg
        torch.testing.assert_close(model.scale**2, want)
    assert math.isfinite(model.log_likelihood.item())
