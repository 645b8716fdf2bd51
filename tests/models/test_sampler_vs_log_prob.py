"""Every model's sampler against its own log_prob, on tiny shapes in float64.

A model with an exact likelihood defines a distribution twice: by ``log_prob`` and by
``sample``. Discrete models with few states: the empirical law of the samples against
exp(log_prob) over every state (or over every pair of dimensions, the marginals computed
from the enumeration), in total variation with enough draws that a 0.05 error fails.
Real 2-d models: exp(log_prob) on a grid (it must hold the samples' mass) against the
samples' means, second moments and a 4 x 4 quantile-cell histogram. A VAE's samples
against its marginal p(x) by quadrature over a 1-d latent.
"""

import itertools
import math

import pytest
import torch

import dgm
from contract_models import registered_contract_models
from dgm import registry
from dgm.model import Likelihood
from exact_reference import (
    TV_TOLERANCE,
    codes,
    draws_for,
    every_x,
    expand,
    naive_loop,
    randomised,
    total_variation,
    vae_marginal,
    values,
)
from helpers import registered
from test_contract import IDS, VARIANTS, conditions

# Real-valued models in two dimensions, so the grid check covers every family whose
# contract variants have another shape.
REAL_2D = [
    ("maf", (2,), {"num_transforms": 2, "hidden_sizes": (8,)}),
    ("maf", (2,), {"num_transforms": 2, "hidden_sizes": (8,), "batch_norm": True}),
    ("iaf", (2,), {"num_transforms": 2, "hidden_sizes": (8,)}),
    ("nice", (2,), {"num_couplings": 2, "hidden_sizes": (8,)}),
    ("realnvp", (2,), {"num_couplings": 2, "hidden_sizes": (8,), "context_shape": (2,)}),
    ("glow", (2,), {"steps_per_level": 2, "hidden_sizes": (8,), "num_classes": 3}),
    ("gmm", (2,), {"num_components": 2}),
    ("kde", (2,), {}),
    ("rnade", (2,), {"hidden_size": 16, "num_components": 3}),
    ("rnade", (2,), {"hidden_size": 16, "num_components": 3, "num_classes": 3}),
    ("rnade", (2,), {"hidden_size": 16, "num_components": 3, "context_shape": (2,)}),
    ("gaussian_mlp", (2,), {"hidden_sizes": (8,), "context_shape": (3,)}),
    ("naive_bayes", (2,), {"num_classes": 3, "feature": "gaussian"}),
    # Gaussian emissions: two steps of a scalar sequence (the discrete variants hold the rest)
    ("hmm", (2,), {"num_states": 3}),
    ("hmm", (2,), {"num_states": 2, "training": "gradient"}),
    ("test_gaussian", (2,), {}),
    ("test_em_mixture", (2,), {}),
    ("test_context_gaussian", (2,), {"context_shape": (2,)}),
]
REAL_IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items())}" for n, _, o in REAL_2D]
# Exact likelihood, but samples that only approximate it: SGLD for a finite number of steps.
APPROXIMATE_SAMPLERS = {"ebm"}


@pytest.fixture(scope="module", autouse=True)
def _test_models():
    with registered(), registered_contract_models():
        yield


def discrete_exact(model) -> bool:
    return (
        model.likelihood is Likelihood.EXACT
        and model.support.is_discrete
        and len(values(model)) <= 4
        and len(values(model)) ** model.num_dims <= 4096
    )


def test_every_exact_model_is_held_to_its_log_prob():
    """Each registered model with an exact likelihood has a case below (or is named as an
    approximate sampler), so a new model is covered or fails here."""
    covered = {n for n, _, _ in REAL_2D}
    for name, shape, overrides in VARIANTS:
        if discrete_exact(dgm.create(name, shape, **overrides)):
            covered.add(name)
    for name in dgm.available_models():
        spec = registry.spec(name)
        if spec.cls.likelihood is Likelihood.EXACT and name not in APPROXIMATE_SAMPLERS:
            assert name in covered, f"{name}: no sampler-vs-log_prob check covers it"


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_discrete_samples_follow_exp_log_prob(variant):
    name, shape, overrides = variant
    if not discrete_exact(dgm.create(name, shape, **overrides)):
        return
    model = randomised(name, shape, **overrides)
    V, D = len(values(model)), model.num_dims
    c = conditions(model, 2, torch.Generator().manual_seed(2))
    c = None if c is None else c[1:]
    every = every_x(model)
    probs = model.log_prob(every, expand(c, len(every))).softmax(0).detach()  # (S,)
    full = len(every) <= 8  # the whole joint, else every pair of dimensions
    n = draws_for(len(every) if full else V * V)
    with torch.no_grad(), naive_loop(model):
        drawn = model.sample(n, expand(c, n), generator=torch.Generator().manual_seed(3))
    if full:
        tv = total_variation(codes(drawn, V), probs)
        assert tv < TV_TOLERANCE, f"samples are {tv:.3f} in TV from exp(log_prob) ({n} draws)"
        return
    for i, j in itertools.combinations(range(D), 2):
        key = codes(every, V, [i, j])
        pair = torch.zeros(V * V, dtype=probs.dtype).index_add_(0, key, probs)
        tv = total_variation(codes(drawn, V, [i, j]), pair)
        assert tv < TV_TOLERANCE, f"(x_{i}, x_{j}): {tv:.3f} in TV from exp(log_prob)"


def test_an_ensemble_of_random_orders_samples_its_mixture():
    """MADE with M mask sets of different random orders: log_prob is the mixture
    (1/M) Σ_m p_m(x), and each sample draws a mask set, then x in that set's own order (no
    single order exists). A sampler that used mask set 0's order for every set (the
    shared-order variants hide it) would draw from none of them."""
    model = randomised(  # mask_seed 1: three different orders; strong conditionals
        "made", (1, 2, 2), 2.0, hidden_sizes=(16,), num_masks=3, ordering="random", mask_seed=1
    )
    orders = {tuple(model._order(m).tolist()) for m in range(3)}
    assert len(orders) == 3  # or a wrong order could go unseen
    every = every_x(model)
    probs = model.log_prob(every).softmax(0).detach()  # (16,)
    n = draws_for(len(every))
    with torch.no_grad():
        drawn = model.sample(n, generator=torch.Generator().manual_seed(3))
    tv = total_variation(codes(drawn, 2), probs)
    assert tv < TV_TOLERANCE, f"samples are {tv:.3f} in TV from the mixture ({n} draws)"


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("fvsbn", {}),
        ("nade", {"hidden_size": 8}),
        ("made", {"hidden_sizes": (16,), "ordering": "random"}),
        ("made", {"hidden_sizes": (16,), "num_masks": 3}),
        ("pixelcnn", {"hidden_channels": 4, "num_layers": 2}),
        ("pixelrnn", {"hidden_channels": 4}),
        # three levels per sub-pixel (1 x 2 pixels: 9 states): the value heads' softmax
        (
            "pixelcnn",
            {"hidden_channels": 4, "num_layers": 2, "head": "categorical", "num_levels": 3},
        ),
        (
            "pixelcnn",
            {"hidden_channels": 4, "num_layers": 2, "head": "logistic_mixture", "num_levels": 3},
        ),
        ("pixelrnn", {"hidden_channels": 4, "head": "categorical", "num_levels": 3}),
    ],
)
def test_samples_at_temperature_t_follow_each_conditional_tempered(name, overrides):
    """At temperature T every conditional's logits are divided by T: the samples follow
    Π_d softmax(logits_d(x before d) / T)[x_d], enumerated here over every x (T = 1, the
    default, hides a T used the wrong way round)."""
    levels = overrides.get("num_levels", 2)
    model = randomised(name, (1, 2, 2) if levels == 2 else (1, 1, 2), **overrides)
    every = every_x(model)
    T = 0.5
    with torch.no_grad():
        logits = model.conditional_logits(every)  # (states, D, levels)
        tempered = (logits / T).log_softmax(-1)
        picked = tempered.gather(-1, every.reshape(len(every), -1, 1).long()).squeeze(-1)
        probs = picked.sum(-1).exp()  # (16,): sums to 1, an autoregressive law
        assert float(probs.sum()) == pytest.approx(1.0)
        n = draws_for(len(every))
        with naive_loop(model):
            drawn = model.sample(n, generator=torch.Generator().manual_seed(3), temperature=T)
    tv = total_variation(codes(drawn, levels), probs)
    assert tv < TV_TOLERANCE, f"samples at T = {T} are {tv:.3f} in TV from the tempered law"


def test_a_categorical_made_tempers_its_256_level_softmax():
    """MADE's categorical head at T = 0.5: the first dimension in the order follows
    softmax(logits / T) over its 256 levels (its logits do not depend on x)."""
    model = randomised("made", (2,), 0.5, head="categorical", hidden_sizes=(16,))
    first = int(model._order(0)[0])
    T = 0.5
    with torch.no_grad():
        zero = torch.zeros(1, 2, dtype=torch.long)
        probs = (model.conditional_logits(zero)[0, first] / T).softmax(-1)  # (256,)
        # 20,000 draws: E TV <= 0.045 for an exact sampler; ignoring T gives 0.21 here
        drawn = model.sample(20_000, generator=torch.Generator().manual_seed(3), temperature=T)
    tv = total_variation(drawn[:, first].long(), probs)
    assert tv < 0.1, f"samples at T = {T} are {tv:.3f} in TV from the tempered law"


def grid_moments(model, c, drawn, points=201):
    """(grid (G, G, 2), cell probabilities (G, G)) of exp(log_prob) on a grid that covers
    the samples with two standard deviations to spare, and the grid's total mass."""
    lo = drawn.min(0).values - 2 * drawn.std(0)
    hi = drawn.max(0).values + 2 * drawn.std(0)
    axes = [torch.linspace(lo[k].item(), hi[k].item(), points, dtype=torch.float64) for k in (0, 1)]
    xx = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)  # (G, G, 2)
    flat = xx.reshape(-1, 2)
    with torch.no_grad():
        lp = model.log_prob(flat.reshape(-1, *model.event_shape), expand(c, len(flat)))
    dens = lp.exp().reshape(points, points)
    mass = torch.trapezoid(torch.trapezoid(dens, axes[1]), axes[0])
    weights = dens * (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
    return xx, weights / weights.sum(), mass.item()


@pytest.mark.parametrize("variant", REAL_2D, ids=REAL_IDS)
def test_real_2d_samples_follow_exp_log_prob_on_a_grid(variant):
    name, shape, overrides = variant
    model = randomised(name, shape, scale=0.3, **overrides)
    c = conditions(model, 2, torch.Generator().manual_seed(2))
    c = None if c is None else c[1:]
    n = 20000
    with torch.no_grad():
        drawn = model.sample(n, expand(c, n), generator=torch.Generator().manual_seed(3))
    drawn = drawn.reshape(n, 2).double()
    xx, w, mass = grid_moments(model, c, drawn)
    assert abs(mass - 1) < 0.02, f"exp(log_prob) holds {mass:.3f} of its mass where samples lie"
    feats = lambda x: torch.stack(  # noqa: E731
        [x[..., 0], x[..., 1], x[..., 0] ** 2, x[..., 1] ** 2, x[..., 0] * x[..., 1]], -1
    )
    want = (feats(xx) * w[..., None]).sum((0, 1))  # (5,)
    sd = ((feats(xx) - want) ** 2 * w[..., None]).sum((0, 1)).sqrt()
    got = feats(drawn).mean(0)
    z = (got - want) / (sd / math.sqrt(n))
    names = ["E x0", "E x1", "E x0²", "E x1²", "E x0 x1"]
    report = dict(zip(names, zip(got.tolist(), want.tolist(), strict=True), strict=True))
    assert (z.abs() < 5).all(), f"sample vs grid moments {report}, z = {z.tolist()}"
    # 4 x 4 cells at the grid marginals' quartiles
    edges = []
    for k in (0, 1):
        marginal = w.sum(1 - k).cumsum(0)
        axis = xx[:, 0, 0] if k == 0 else xx[0, :, 1]
        i = torch.searchsorted(marginal, torch.tensor([0.25, 0.5, 0.75]).double())
        edges.append((axis[i] + axis[i - 1]) / 2)  # between grid points: each cell whole
    cell = lambda x: (  # noqa: E731
        torch.bucketize(x[..., 0].contiguous(), edges[0]) * 4
        + torch.bucketize(x[..., 1].contiguous(), edges[1])
    )
    probs = torch.zeros(16, dtype=torch.float64).index_add_(0, cell(xx).flatten(), w.flatten())
    tv = total_variation(cell(drawn), probs)
    assert tv < TV_TOLERANCE, f"quartile cells: samples {tv:.3f} in TV from the grid"


@pytest.mark.parametrize("name", ["vae", "gmvae"])
def test_vae_samples_follow_the_marginal_by_quadrature(name):
    """An ELBO model's samples against its true marginal p(x) = ∫ p(x | z) p(z) dz, by
    quadrature over a 1-d latent (the ELBO itself is only a bound)."""
    model = randomised(name, (1, 2, 2), scale=1.0, latent_dim=1, hidden_sizes=(8,))
    every = every_x(model)
    with torch.no_grad():
        probs = vae_marginal(model, every).softmax(0)
        n = draws_for(16)
        drawn = model.sample(n, generator=torch.Generator().manual_seed(3))
    tv = total_variation(codes(drawn, 2), probs)
    assert tv < TV_TOLERANCE, f"{name}: samples {tv:.3f} in TV from the marginal"
