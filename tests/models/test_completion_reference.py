"""Every Completable model's ``complete`` against a reference computed from its own
log_prob, on masks shared by every row (a dimension observed in all rows is where a
sampler may skip work, and where it must still condition on the observed value).

Discrete models with few states: the law of the completion by enumeration (the exact
conditional, or for a model that draws in its order the ancestral law given the observed
dimensions before each missing one), checked in total variation with enough draws that a
0.05 TV error fails. Real-valued models: one missing dimension, its conditional density
on a grid from exp(log_prob), checked by Kolmogorov–Smirnov and by its mean in standard
errors. (VAE completion by Metropolis-within-Gibbs is not held here: with an untrained
encoder its chains mix too slowly for a test of this size.)
"""

import math

import pytest
import torch
from torch.distributions import constraints

import dgm
from contract_models import registered_contract_models
from dgm.model import Completable, Likelihood
from exact_reference import (
    TV_TOLERANCE,
    codes,
    completion_law,
    draws_for,
    expand,
    naive_loop,
    order_of,
    ordered,
    randomised,
    total_variation,
    values,
)
from helpers import registered
from test_contract import IDS, VARIANTS, conditions

MAX_HIDDEN_STATES = 8  # joint values of the missing dimensions, per mask


@pytest.fixture(scope="module", autouse=True)
def _test_models():
    with registered(), registered_contract_models():
        yield


def shared_masks(D: int, hidden: int) -> dict[str, torch.Tensor]:
    """Observed masks (D,) shared by every row: the first D - hidden dimensions observed,
    the last D - hidden observed, and ``hidden`` missing dimensions spread out among
    observed ones."""
    first = torch.arange(D) < D - hidden
    spread = torch.ones(D, dtype=torch.bool)
    spread[torch.linspace(0, D - 1, hidden).round().long()] = False
    if hidden == 1 and D > 2:
        spread = torch.ones(D, dtype=torch.bool)
        spread[D // 2] = False  # a middle dimension
    return {"first-observed": first, "last-observed": first.flip(0), "scattered": spread}


def exact_discrete(model) -> bool:
    """A discrete model whose log_prob is exact and whose states can be enumerated."""
    return (
        model.likelihood is Likelihood.EXACT
        and model.support.is_discrete
        and len(values(model)) ** model.num_dims <= 4096
        and len(values(model)) <= MAX_HIDDEN_STATES
    )


def real_with_exact_completion(model) -> bool:
    """A real-valued model with an exact log_prob whose completion claims the exact
    conditional (EBMs complete by finite-step SGLD, an approximation: not held here)."""
    from dgm.models.energy.ebm import EBM

    return (
        model.likelihood is Likelihood.EXACT
        and model.support is constraints.real
        and not isinstance(model, EBM)
    )


def completable(variant, kind, scale=0.5):
    """The variant's model, randomised, if it is Completable and of ``kind``; else None."""
    name, shape, overrides = variant
    probe = dgm.create(name, shape, **overrides)
    if not isinstance(probe, Completable) or not kind(probe):
        return None
    return randomised(name, shape, scale, **overrides)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_discrete_completion_on_shared_masks_follows_the_exact_law(variant):
    model = completable(variant, exact_discrete)
    if model is None:
        return
    shape = tuple(model.event_shape)
    V, D = len(values(model)), model.num_dims
    hidden = min(int(math.log(MAX_HIDDEN_STATES, V)), math.ceil(D / 2))
    g = torch.Generator().manual_seed(2)
    c = conditions(model, 2, g)
    c = None if c is None else c[1:]  # class 1, or one random context
    v = values(model)  # x alternates the highest and lowest value: every mask below
    alternating = [v[-1] if d % 2 == 0 else v[0] for d in range(D)]  # observes a nonzero
    x = torch.tensor(alternating, dtype=model.sample(1, c).dtype).reshape(1, *shape)
    for mask_name, mask in shared_masks(D, hidden).items():
        observed = mask.reshape(shape)
        _, law = completion_law(model, x, observed, c)
        n = draws_for(V**hidden)
        with naive_loop(model):
            out = model.complete(
                x.expand(n, *shape), observed, expand(c, n), torch.Generator().manual_seed(3)
            )
        assert torch.equal(out[:, observed], x.expand(n, *shape)[:, observed])
        tv = total_variation(codes(out, V), law)
        assert tv < TV_TOLERANCE, (
            f"{mask_name} observed in every row: completions are "
            f"{tv:.3f} in total variation from the {'ancestral' if ordered(model) else 'exact'}"
            f" law (tolerance {TV_TOLERANCE}, {n} draws)"
        )


def grid_conditional(model, x, d, c, grid):
    """Density of x_d on ``grid`` given the other dimensions of x (one row): the exact
    conditional ∝ exp log_prob, or for a model that draws in order and observes a later
    dimension (D = 2), the marginal of x_d (the later one integrated out on the grid)."""
    n, D = len(grid), model.num_dims
    flat = x.reshape(1, -1).expand(n, D).clone()
    flat[:, d] = grid
    order = order_of(model) if ordered(model) else None
    if order is not None and order.index(d) < D - 1:
        assert D == 2, "an ancestral grid reference is written for D = 2"
        other = 1 - d
        pairs = flat[:, None, :].expand(n, n, D).clone()
        pairs[:, :, other] = grid[None, :]
        lp = model.log_prob(pairs.reshape(n * n, *model.event_shape), expand(c, n * n))
        dens = torch.trapezoid(lp.view(n, n).exp(), grid, dim=1)
    else:
        dens = model.log_prob(flat.reshape(n, *model.event_shape), expand(c, n)).exp()
    return dens / torch.trapezoid(dens, grid)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_real_completion_on_shared_masks_matches_the_grid_conditional(variant):
    model = completable(variant, real_with_exact_completion)
    if model is None:
        return
    shape = tuple(model.event_shape)
    D, n = model.num_dims, 8000
    g = torch.Generator().manual_seed(2)
    c = conditions(model, 2, g)
    c = None if c is None else c[1:]
    spread = model.sample(2000, expand(c, 2000), generator=g).reshape(2000, D)
    # observed values far from 0, where a sampler that skips them (treats them as 0) shows
    x = spread[spread.norm(dim=1).argsort()[int(0.95 * len(spread))]].reshape(1, *shape)
    for mask_name, mask in shared_masks(D, 1).items():
        d = int((~mask).nonzero())
        lo, hi = spread[:, d].min().item(), spread[:, d].max().item()
        points = 401 if ordered(model) and D == 2 else 801  # a 2-d grid: G² log_probs
        grid = torch.linspace(lo - (hi - lo), hi + (hi - lo), points, dtype=torch.float64)
        dens = grid_conditional(model, x, d, c, grid)
        observed = mask.reshape(shape)
        out = model.complete(
            x.expand(n, *shape), observed, expand(c, n), torch.Generator().manual_seed(3)
        )
        drawn = out.reshape(n, D)[:, d]
        cdf = torch.cat([torch.zeros(1, dtype=dens.dtype), torch.cumulative_trapezoid(dens, grid)])
        empirical = torch.searchsorted(drawn.sort().values, grid, right=True) / n
        ks = (empirical - cdf).abs().max().item()
        mean = torch.trapezoid(grid * dens, grid)
        sd = torch.trapezoid((grid - mean) ** 2 * dens, grid).sqrt()
        z = (drawn.mean() - mean) / (sd / math.sqrt(n))
        where = f"{mask_name} observed in every row, x_{d} drawn"
        assert ks < 0.03, f"{where}: KS distance {ks:.3f} from the grid conditional"
        assert abs(z) < 5, f"{where}: mean {drawn.mean():.3f} vs {mean:.3f} ({z:.1f} SE)"


def test_the_tolerance_fails_a_sampler_off_by_005_in_total_variation():
    """The TV check's own power: with draws_for(K) draws, an exact sampler passes and one
    whose law is 0.05 away in TV fails, for K = 2 and K = 16 outcomes."""
    g = torch.Generator().manual_seed(0)
    for K in (2, 16):
        p = torch.rand(K, generator=g, dtype=torch.float64) + 0.2
        p = p / p.sum()
        off = p.clone()
        i, j = p.argmax(), p.argmin()
        off[i], off[j] = off[i] - 0.05, off[j] + 0.05  # TV 0.05
        n = draws_for(K)
        exact = torch.multinomial(p, n, replacement=True, generator=g)
        wrong = torch.multinomial(off, n, replacement=True, generator=g)
        assert total_variation(exact, p) < TV_TOLERANCE < total_variation(wrong, p)
