"""dgm.tasks.impute and the VAE's Metropolis-within-Gibbs completion: RMSE by hand, held-out
log-likelihood against closed forms and enumeration, the chain's stationary law against
quadrature, and mask-file errors."""

import itertools
import math

import numpy as np
import pytest
import torch

import dgm
from contract_models import registered_contract_models
from dgm.model import Completable
from dgm.tasks import impute


def test_rmse_of_mean_imputation_is_the_hand_computation():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[True, False, False], [False, True, True]])
    mean = x.mean(0)  # (2.5, 3.5, 4.5)
    filled = impute.mean_impute(x, mask, mean)
    assert filled.tolist() == [[1.0, 3.5, 4.5], [2.5, 5.0, 6.0]]
    hand = math.sqrt(((2 - 3.5) ** 2 + (3 - 4.5) ** 2 + (4 - 2.5) ** 2) / 3)
    assert impute.rmse(x, filled, mask) == pytest.approx(hand, rel=1e-12)
    with pytest.raises(ValueError, match="hides nothing"):
        impute.rmse(x, filled, torch.ones_like(mask))


def test_heldout_log_likelihood_of_a_gaussian_is_the_closed_form():
    with registered_contract_models():
        model = dgm.create("test_context_gaussian", (4,), context_shape=(2,)).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, generator=g, dtype=torch.float64)
    c = torch.rand(5, 2, generator=g, dtype=torch.float64)
    mask = torch.rand(5, 4, generator=g) < 0.5
    got = impute.heldout_log_likelihood(model, x, mask, c)
    with torch.no_grad():
        mean = model.bias + c @ model.weight.T  # (5, 4)
        terms = torch.distributions.Normal(mean, model.log_scale.exp()).log_prob(x)
    torch.testing.assert_close(got, (terms * ~mask).sum(-1))


def test_heldout_log_likelihood_of_an_autoregressive_model_is_enumeration():
    torch.manual_seed(0)
    model = dgm.create("fvsbn", (1, 2, 2)).double()
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)), dtype=torch.float64)
    every = every.view(16, 1, 2, 2)
    x = every[[3, 6, 13]]
    bottom = impute.make_mask("bottom-half", x.shape)  # raster order: observed rows first
    got = impute.heldout_log_likelihood(model, x, bottom)
    with torch.no_grad():
        lp = model.log_prob(every)  # (16,)
        top = every[:, 0, 0]  # (16, 2): the observed row
        expected = []
        for xi in x:
            same = (top == xi[0, 0]).all(-1)
            expected.append(model.log_prob(xi[None])[0] - lp[same].logsumexp(0))
    torch.testing.assert_close(got, torch.stack(expected))
    top_hidden = ~bottom  # a missing row before an observed one: no exact score
    assert impute.heldout_log_likelihood(model, x, top_hidden) is None
    vae = dgm.create("vae", (1, 2, 2), latent_dim=1, hidden_sizes=(4,))
    assert impute.heldout_log_likelihood(vae, x.float(), bottom) is None


def test_heldout_log_likelihood_reads_the_mask_in_the_models_own_order():
    """A MADE in the random order 2, 3, 1, 0 (flattened): observing the bottom row puts
    every observed dimension first in its order (exact, by enumeration); observing the top
    row, first in raster order, does not (None). Natural-order models hide the difference."""
    torch.manual_seed(0)
    model = dgm.create("made", (1, 2, 2), hidden_sizes=(16,), ordering="random", mask_seed=3)
    model = model.double().eval()
    assert model.ordering().tolist() == [2, 3, 1, 0]
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)), dtype=torch.float64)
    x = every[[3, 6, 13]].view(3, 1, 2, 2)
    bottom_row = torch.tensor([[False, False], [True, True]]).view(1, 1, 2, 2)
    got = impute.heldout_log_likelihood(model, x, bottom_row)
    with torch.no_grad():
        lp = model.log_prob(every.view(16, 1, 2, 2))  # (16,)
        expected = [
            lp[(every == xi.flatten()).all(-1)][0]
            - lp[(every[:, 2:] == xi.flatten()[2:]).all(-1)].logsumexp(0)
            for xi in x
        ]
    torch.testing.assert_close(got, torch.stack(expected))
    assert impute.heldout_log_likelihood(model, x, ~bottom_row) is None


def exact_conditional(model, x0, observed):
    """p(x_mis | x_obs) of a 3-pixel Bernoulli VAE with latent_dim 1, by quadrature over z."""
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)), dtype=torch.float64)
    z = torch.linspace(-10, 10, 4001, dtype=torch.float64)[:, None]  # (G, 1)
    with torch.no_grad():
        log_px_z = model.head.log_likelihood(model._decoder_params(z, None)[:, None], every)
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z)  # (G, 1)
        log_px = (log_px_z + log_pz).logsumexp(0)  # (8,), up to the grid step
    keep = (every[:, observed] == x0[observed]).all(-1)
    return every[keep], (log_px[keep] - log_px[keep].logsumexp(0)).exp()


def test_metropolis_within_gibbs_draws_the_exact_conditional_and_pseudo_gibbs_does_not():
    torch.manual_seed(0)
    model = dgm.create("vae", (3,), latent_dim=1, hidden_sizes=(8,)).double()
    assert isinstance(model, Completable)
    with torch.no_grad():  # a sharper decoder, so the conditional is far from uniform
        for p in model.decoder.parameters():
            p.mul_(3)
    x0 = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    observed = torch.tensor([True, False, False])
    values, exact = exact_conditional(model, x0, observed)
    n = 4000
    errors = {}
    for metropolis in (True, False):
        draws = model.complete(
            x0.expand(n, 3),
            observed,
            generator=torch.Generator().manual_seed(1),
            metropolis=metropolis,
        )
        assert (draws[:, 0] == 1).all()
        freq = (draws[:, None] == values[None]).all(-1).double().mean(0)
        errors[metropolis] = ((freq - exact).abs() / (exact * (1 - exact) / n).sqrt()).max()
    assert errors[True] < 5  # within five standard errors of the exact law
    assert errors[False] > errors[True]  # the untrained encoder biases pseudo-Gibbs


def test_multiple_imputation_keeps_the_observed_values():
    torch.manual_seed(0)
    model = dgm.create("vae", (1, 4, 4), latent_dim=2, hidden_sizes=(8,))
    x = torch.bernoulli(torch.full((3, 1, 4, 4), 0.5))
    mask = impute.make_mask("random", x.shape, torch.Generator().manual_seed(0))
    draws = impute.multiple_impute(model, x, mask, 4, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (4, 3, 1, 4, 4)
    assert (draws[:, mask] == x[mask]).all() and ((draws == 0) | (draws == 1)).all()
    flow = dgm.create("maf", (2,), num_transforms=1, hidden_sizes=(4,))
    with pytest.raises(ValueError, match="not Completable"):
        impute.multiple_impute(flow, torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool), 2)


def test_the_models_estimate_is_the_mean_of_its_draws():
    """compare_imputations scores the mean of the m draws (m = 4 here; one draw alone
    scores worse on average), and the baseline fills in the training means."""
    torch.manual_seed(0)
    model = dgm.create("vae", (1, 4, 4), latent_dim=2, hidden_sizes=(8,))
    x = torch.bernoulli(torch.full((6, 1, 4, 4), 0.5))
    train_x = torch.bernoulli(torch.full((20, 1, 4, 4), 0.3))
    mask = impute.make_mask("random", x.shape, torch.Generator().manual_seed(0))
    rows, draws, _ = impute.compare_imputations(
        model, x, mask, 4, train_x, generator=torch.Generator().manual_seed(0)
    )
    assert draws.shape == (4, 6, 1, 4, 4) and not torch.equal(draws[0], draws[1])
    baseline, mine = rows
    assert mine["method"] == "model (m=4)"
    assert mine["rmse"] == impute.rmse(x, draws.double().mean(0), mask)
    assert mine["rmse"] != impute.rmse(x, draws[0].double(), mask)
    filled = impute.mean_impute(x, mask, train_x.double().mean(0))
    assert baseline["rmse"] == pytest.approx(impute.rmse(x, filled, mask), rel=1e-12)


def test_masks_and_mask_file_errors(tmp_path):
    shape = (2, 1, 4, 4)
    bottom = impute.make_mask("bottom-half", shape)
    assert bottom[:, :, :2].all() and not bottom[:, :, 2:].any()
    random = impute.make_mask("random", (1000, 3), torch.Generator().manual_seed(0))
    assert abs(random.double().mean().item() - 0.5) < 0.03
    with pytest.raises(ValueError, match="random or a mask file"):
        impute.make_mask("bottom-half", (2, 5))
    one = np.zeros((1, 4, 4), dtype=bool)
    one[0, 0] = True
    np.save(tmp_path / "one.npy", one)
    got = impute.make_mask(str(tmp_path / "one.npy"), shape)
    assert got.shape == shape and torch.equal(got[1], torch.from_numpy(one))
    torch.save(torch.ones(shape, dtype=torch.bool), tmp_path / "all.pt")
    assert impute.make_mask(str(tmp_path / "all.pt"), shape).all()
    np.save(tmp_path / "wrong.npy", np.ones((1, 5, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"shape \(1, 5, 4\); expected one example's shape"):
        impute.make_mask(str(tmp_path / "wrong.npy"), shape)
    np.save(tmp_path / "grey.npy", np.full((1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="values other than 0/1"):
        impute.make_mask(str(tmp_path / "grey.npy"), shape)
    with pytest.raises(ValueError, match="does not exist"):
        impute.make_mask(str(tmp_path / "missing.npy"), shape)
    with pytest.raises(ValueError, match=r"nor a \.npy / \.pt mask file"):
        impute.make_mask("top-third", shape)
    top = impute.make_mask("top-half", shape)  # dgm complete's masks, one set of names
    assert not top[:, :, :2].any() and top[:, :, 2:].all()
