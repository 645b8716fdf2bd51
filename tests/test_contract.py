"""One contract, checked for every registered model (zuko's test_flows.py in spirit), in float64.

Each registered name is built from its defaults; variants add the options that change
the support or the conditioning. Adding a model to the registry adds it here.
"""

import json

import pytest
import torch
from torch.distributions import constraints

import dgm
from dgm.config import from_dict, to_dict
from dgm.model import LatentVariableModel, Likelihood
from dgm.registry import spec
from dgm.train import checkpoint as ckpt

EVENT_SHAPE = (1, 6, 5)
VARIANTS = [(name, {}) for name in dgm.available_models()] + [
    ("vae", {"decoder": "gaussian"}),
    ("vae", {"decoder": "gaussian", "decoder_std": 0.5}),
    ("vae", {"decoder": "categorical", "hidden_sizes": (16,)}),
    ("vae", {"architecture": "conv", "conv_channels": 4, "hidden_sizes": (8,)}),
    ("vae", {"num_classes": 3, "iw_samples": 3}),
    ("gmvae", {"num_classes": 3, "num_components": 4, "decoder": "gaussian"}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items())}" if o else n for n, o in VARIANTS]


def in_support(support, shape, g):
    if support is constraints.boolean:
        return torch.bernoulli(torch.full(shape, 0.4, dtype=torch.float64), generator=g)
    if isinstance(support, constraints.integer_interval):
        return torch.randint(
            support.lower_bound, support.upper_bound + 1, shape, generator=g
        ).double()
    if support is constraints.real:
        return torch.randn(shape, generator=g, dtype=torch.float64)
    raise AssertionError(f"no test data for support {support}")


@pytest.fixture(params=VARIANTS, ids=IDS)
def case(request):
    name, overrides = request.param
    torch.manual_seed(0)
    model = dgm.create(name, EVENT_SHAPE, **overrides).double()
    g = torch.Generator().manual_seed(1)
    x = in_support(model.support, (5, *EVENT_SHAPE), g)
    c = torch.arange(5) % model.num_classes if model.conditional else None
    return name, model, x, c


def test_shapes_and_finite_log_prob(case):
    _, model, x, c = case
    lp = model.log_prob(x, c)
    assert lp.shape == (5,) and lp.dtype == torch.float64 and torch.isfinite(lp).all()
    assert model.likelihood in (Likelihood.EXACT, Likelihood.LOWER_BOUND)
    if isinstance(model, LatentVariableModel):
        iw = model.log_prob_iw(x, 7, c)
        assert iw.shape == (5,) and torch.isfinite(iw).all()


def test_gradients_reach_every_parameter(case):
    _, model, x, c = case
    model.train()
    for phase in model.phases:
        model.loss(x, c, phase=phase).value.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_samples_have_the_event_shape_and_lie_in_the_support(case):
    _, model, _, _ = case
    c = torch.arange(12) % model.num_classes if model.conditional else None
    gen = torch.Generator().manual_seed(3)
    s = model.sample(12, c, generator=gen)
    assert s.shape == (12, *EVENT_SHAPE) and s.dtype == torch.float64
    assert model.support.check(s).all()
    again = model.sample(12, c, generator=torch.Generator().manual_seed(3))
    assert torch.equal(s, again)  # the generator drives every draw


def test_save_load_gives_the_same_log_prob(case, tmp_path):
    _, model, x, c = case
    model = model.float()
    ckpt.write_json(tmp_path / ckpt.CONFIG, ckpt.run_config(model))
    ckpt.save_weights(tmp_path / ckpt.WEIGHTS, model, step=0)
    loaded = dgm.load(tmp_path)
    model.eval()
    torch.manual_seed(5)
    a = model.log_prob(x.float(), c)
    torch.manual_seed(5)
    assert torch.equal(a, loaded.log_prob(x.float(), c))


def test_config_round_trips_through_json(case):
    name, model, _, _ = case
    back = from_dict(spec(name).config_cls, json.loads(json.dumps(to_dict(model.config))))
    assert back == model.config


def test_conditioning_is_checked(case):
    _, model, x, _c = case
    if model.conditional:
        with pytest.raises(ValueError, match="conditional on"):
            model.log_prob(x)
        with pytest.raises(ValueError, match="labels outside"):
            model.log_prob(x, torch.full((5,), model.num_classes))
    else:
        with pytest.raises(ValueError, match="unconditional"):
            model.log_prob(x, torch.zeros(5, dtype=torch.long))
        with pytest.raises(ValueError, match="unconditional"):
            model.sample(2, torch.zeros(2, dtype=torch.long))


def test_wrong_shapes_are_rejected_naming_the_expected_shape(case):
    _, model, x, c = case
    with pytest.raises(ValueError, match=r"expected \(batch, 1, 6, 5\)"):
        model.log_prob(x.reshape(5, -1), c)
    with pytest.raises(ValueError, match=r"expected \(batch, 1, 6, 5\)"):
        model.log_prob(x[0], c)


def test_values_outside_the_support_are_rejected(case):
    _, model, x, c = case
    if model.support is constraints.real:
        bad = x.clone()
        bad[0, 0, 0, 0] = float("nan")
        with pytest.raises(ValueError, match="NaN"):
            model.log_prob(bad, c)
    else:
        with pytest.raises(ValueError, match="outside the support"):
            model.log_prob(x + 0.5, c)
