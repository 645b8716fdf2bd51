"""Exact references that a model's sampler and completion are held to, computed from the
model's own ``log_prob`` by enumeration (small discrete x) or on a grid (real x).

A sampler or a completion passes when its draws follow the reference: the total-variation
distance between the empirical and the exact law stays under ``TV_TOLERANCE`` with enough
draws that a 0.05 TV error cannot pass (``draws_for``: the expected TV of an exact sampler
is at most half the tolerance, and at least 6400 so that with two outcomes the tolerance
is 4 standard errors), and real-valued draws pass a Kolmogorov–Smirnov or moment
check against grid integration of exp(log_prob).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from unittest import mock

import torch
from torch import Tensor
from torch.distributions import constraints

import dgm
from dgm.model import ClosedFormFit, GenerativeModel

TV_TOLERANCE = 0.025  # a sampler 0.05 off in total variation fails (see draws_for)


def draws_for(states: int) -> int:
    """Draws that make an exact sampler's expected TV over ``states`` outcomes at most
    TV_TOLERANCE / 2: E TV ≤ ½ Σ sqrt(2 p (1-p) / (π n)) ≤ ½ sqrt(2 K / (π n))."""
    return max(6400, math.ceil(2 * states / (math.pi * TV_TOLERANCE**2)))


def values(model: GenerativeModel) -> list[float] | list[int]:
    """The values one dimension of a discrete model takes."""
    s = model.support
    if s is constraints.boolean:
        return [0.0, 1.0]
    return list(range(s.lower_bound, s.upper_bound + 1))


def every_x(model: GenerativeModel) -> Tensor:
    """Every x of a small discrete model, (V^D, *event_shape), in lexicographic order (so
    that state index = Σ_d x_d V^(D-1-d), see ``codes``)."""
    v = values(model)
    grid = torch.tensor(list(itertools.product(v, repeat=model.num_dims)))
    if model.support is constraints.boolean:
        grid = grid.to(model.dtype)
    return grid.reshape(-1, *model.event_shape)


def codes(x: Tensor, levels: int, dims: list[int] | None = None) -> Tensor:
    """Index of each row's values at ``dims`` (default: all) in lexicographic order, (B,)."""
    flat = x.reshape(len(x), -1).long()
    if dims is not None:
        flat = flat[:, dims]
    weights = levels ** torch.arange(flat.shape[1] - 1, -1, -1)
    return (flat * weights).sum(-1)


def total_variation(draws: Tensor, probs: Tensor) -> float:
    """½ Σ |empirical − probs| of integer outcomes ``draws`` (n,) against ``probs`` (K,)."""
    freq = torch.bincount(draws, minlength=len(probs)).double() / len(draws)
    return 0.5 * (freq - probs.double()).abs().sum().item()


def expand(c: Tensor | None, n: int) -> Tensor | None:
    return None if c is None else c[:1].expand(n, *c.shape[1:])


def ordered(model: GenerativeModel) -> bool:
    """Whether ``complete`` draws in the model's order, conditioning on the observed
    dimensions before each missing one only (``DrawsInOrder``), not on all of them."""
    from dgm.models.autoregressive.fixed_order import DrawsInOrder

    return isinstance(model, DrawsInOrder)


def order_of(model: GenerativeModel) -> list[int]:
    """The order a model draws its flattened dimensions in (natural if it names none)."""
    if hasattr(model, "ordering"):
        return model.ordering().tolist()
    return list(range(model.num_dims))


def completion_law(
    model: GenerativeModel, x: Tensor, observed: Tensor, c: Tensor | None
) -> tuple[Tensor, Tensor]:
    """(states (S, *event_shape), probs (S,)) of ``model.complete(x, observed, c)`` for one
    x, by enumeration of the model's log_prob: p(x_mis | x_obs) for a model whose
    completion is exact; for one that draws in order, Π over missing d of p(x_d | every
    dimension before d in the order), each conditional a ratio of marginals of log_prob."""
    every = every_x(model)
    S, V = len(every), len(values(model))
    lp = model.log_prob(every, expand(c, S)).double()  # (S,)
    flat = every.reshape(S, -1)
    obs = observed.reshape(-1)
    agrees = (flat[:, obs] == x.reshape(-1)[obs]).all(-1)  # (S,)
    if not ordered(model):
        return every, lp.masked_fill(~agrees, -math.inf).softmax(0)
    p = lp.softmax(0)

    def marginal(dims: list[int]) -> Tensor:  # Σ p over states that agree on dims, (S,)
        if not dims:
            return torch.ones(S, dtype=p.dtype)
        key = codes(every, V, dims)
        return torch.zeros(V ** len(dims), dtype=p.dtype).index_add_(0, key, p)[key]

    law = agrees.double()
    order = order_of(model)
    for k, d in enumerate(order):
        if not obs[d]:
            law = law * marginal(order[: k + 1]) / marginal(order[:k])
    return every, law / law.sum()


def naive_loop(model: GenerativeModel):
    """Pixel models sample and complete by their naive loop here: their fast samplers draw
    the same pixels for the same generator (tests/helpers.py,
    ``assert_fast_completion_is_naive``, shared masks included) and are far slower at 2x2
    pixels and thousands of rows."""
    if hasattr(model, "_fast_sampler"):
        return mock.patch.object(model, "_fast_sampler", return_value=None)
    return contextlib.nullcontext()


def randomised(name: str, shape: tuple[int, ...], scale: float = 0.5, **overrides):
    """``dgm.create(name, shape, **overrides)`` in float64, eval mode, seed 0, with strong
    dependencies between dimensions: a model fitted in closed form is fitted on correlated
    data (three clusters), any other has every parameter moved by ``scale`` N(0, 1)."""
    torch.manual_seed(0)
    model = dgm.create(name, shape, **overrides).double().eval()
    g = torch.Generator().manual_seed(7)
    if isinstance(model, ClosedFormFit):
        x, c = correlated_data(model, 600, g)
        model.fit_step([(x, c)])
        return model
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def correlated_data(
    model: GenerativeModel, n: int, g: torch.Generator
) -> tuple[Tensor, Tensor | None]:
    """n examples in the model's support from three clusters (dimension d copies its
    cluster's value with a probability from 0.95 down to 0.5, so no two dimensions play
    the same part), and labels = the cluster for a labelled model."""
    cluster = torch.randint(3, (n,), generator=g)
    D = model.num_dims
    if model.support is constraints.real:
        centres = torch.randn(3, D, generator=g, dtype=torch.float64) * 2
        x = centres[cluster] + 0.5 * torch.randn(n, D, generator=g, dtype=torch.float64)
    else:
        v = values(model)
        centres = torch.randint(len(v), (3, D), generator=g)
        noise = torch.randint(len(v), (n, D), generator=g)
        copy = torch.linspace(0.95, 0.5, D, dtype=torch.float64)  # unequal: no symmetry
        keep = torch.rand(n, D, generator=g, dtype=torch.float64) < copy
        idx = torch.where(keep, centres[cluster], noise)
        x = torch.tensor(v)[idx]
        x = x.to(model.dtype) if model.support is constraints.boolean else x
    c = cluster % model.num_classes if model.num_classes else None
    return x.reshape(n, *model.event_shape), c


def vae_marginal(model, every, c=None):
    """log p(x) of a VAE with a 1-d latent, by quadrature of p(x | z) p(z) over z."""
    z = torch.linspace(-10, 10, 4001, dtype=torch.float64)[:, None]  # (Z, 1)
    log_prior = model.prior().log_prob(z)  # (Z,)
    decoded = model.decode(z[:, None].expand(-1, len(every), -1), c)  # batch (Z, S)
    joint = decoded.log_prob(every) + log_prior[:, None]  # (Z, S)
    return torch.logsumexp(joint, 0) + math.log(z[1, 0] - z[0, 0])
