"""One contract, checked for every registered model (zuko's test_flows.py in spirit), in float64.

Each registered name is built from its defaults; variants add the options that change
the support or the conditioning. The test models of tests/helpers.py and
tests/contract_models.py bring the kinds the VAE family lacks: no likelihood (a GAN),
closed-form fitting (EM), a float context with condition dropout, integer tokens of shape
(T,) with a token prompt. Adding a model to the registry adds it here; a model declaring
a capability (``Encodable``, ``ImportanceWeighted``, ``Completable``,
``DiscreteAutoregressive``, ``Marginalizes``, ``ClosedFormFit``) is held to that
capability's checks below.
"""

import inspect
import itertools
import json
import math

import pytest
import torch
from torch.distributions import Distribution, constraints

import dgm
from contract_models import registered_contract_models
from dgm import run_dir
from dgm.config import from_dict, to_dict
from dgm.model import (
    ClosedFormFit,
    Completable,
    DiscreteAutoregressive,
    ELBOTerms,
    Encodable,
    ImportanceWeighted,
    Likelihood,
    Marginalizes,
)
from dgm.registry import spec
from helpers import registered

IMAGE = (1, 6, 5)
VARIANTS = [
    ("vae", IMAGE, {}),
    ("gmvae", IMAGE, {}),
    ("vae", IMAGE, {"decoder": "gaussian"}),
    ("vae", IMAGE, {"decoder": "gaussian", "decoder_std": 0.5}),
    ("vae", IMAGE, {"decoder": "categorical", "hidden_sizes": (16,)}),
    ("vae", IMAGE, {"architecture": "conv", "conv_channels": 4, "hidden_sizes": (8,)}),
    ("vae", IMAGE, {"num_classes": 3, "iw_samples": 3}),
    ("vae", IMAGE, {"num_classes": 3, "condition_dropout": 0.5}),
    ("vae", IMAGE, {"context_shape": (1, 3, 1), "decoder": "gaussian"}),
    ("vae", IMAGE, {"context_shape": (4,), "architecture": "conv", "conv_channels": 4}),
    ("vae", IMAGE, {"context_shape": (5,), "context_vocab": 4, "text_features": 6}),
    ("gmvae", IMAGE, {"num_classes": 3, "num_components": 4, "decoder": "gaussian"}),
    ("maf", (2,), {"num_transforms": 2, "hidden_sizes": (8,)}),
    ("maf", (1, 2, 2), {"num_transforms": 2, "hidden_sizes": (8,), "num_classes": 3}),
    ("iaf", (3,), {"num_transforms": 2, "hidden_sizes": (8,), "context_shape": (2,)}),
    ("nice", (1, 2, 2), {"num_couplings": 2, "hidden_sizes": (8,), "num_classes": 3}),
    ("realnvp", (3,), {"num_couplings": 2, "hidden_sizes": (8,), "context_shape": (2,)}),
    ("realnvp", (1, 4, 4), {"architecture": "conv", "hidden_channels": 4, "num_classes": 3}),
    ("glow", (1, 4, 4), {"steps_per_level": 2, "hidden_channels": 4}),
    ("glow", (2, 2, 2), {"num_scales": 1, "hidden_channels": 4, "context_shape": (1, 2, 1)}),
    ("glow", (2,), {"steps_per_level": 2, "hidden_sizes": (8,), "num_classes": 3}),
    ("ddpm", (2,), {"num_timesteps": 8, "hidden_size": 8, "num_blocks": 1}),
    ("ddpm", (3,), {"num_timesteps": 4, "hidden_size": 8, "num_classes": 3, "num_levels": 2}),
    (
        "ddpm",
        (3,),
        {"num_timesteps": 5, "hidden_size": 8, "context_shape": (2,), "condition_dropout": 0.3},
    ),
    # T = 8, not 4: encode (DDIM inversion) solves x_t = G(x_t) per step; at T = 4 this
    # untrained U-Net's last step has ‖∂G/∂x‖ ≈ 4 at the root (measured), so the fixed-point
    # iteration expands and Anderson acceleration stalls; at T = 8 it converges (float64).
    ("ddpm", (1, 4, 4), {"num_timesteps": 8, "unet_channels": 4, "num_levels": 256}),
    (
        "ddpm",
        (1, 4, 3),
        {"num_timesteps": 4, "unet_channels": 4, "num_classes": 3, "condition_dropout": 0.5},
    ),
    ("ddpm", (1, 4, 4), {"num_timesteps": 3, "unet_channels": 4, "context_shape": (1, 2, 2)}),
    ("ebm", (2,), {"hidden_sizes": (8,), "quadrature_points": 40, "replay_size": 16}),
    ("ebm", (2,), {"hidden_sizes": (8,), "objective": "dsm", "num_classes": 3}),
    ("ebm", (3,), {"hidden_sizes": (8,), "objective": "dsm"}),
    (
        "ebm",
        IMAGE,
        {"architecture": "conv", "conv_channels": 4, "replay_size": 8, "init_range": (0.0, 1.0)},
    ),
    ("maf", (3,), {"num_transforms": 2, "hidden_sizes": (8,), "batch_norm": True}),
    (
        "realnvp",
        (1, 4, 4),
        {"architecture": "conv", "hidden_channels": 4, "batch_norm": True, "dequantize": "uniform"},
    ),
    (
        "glow",
        (1, 4, 4),
        {"steps_per_level": 1, "hidden_channels": 4, "dequantize": "variational", "num_levels": 16},
    ),
    ("test_gaussian", (4,), {}),
    ("test_em_mixture", (3,), {}),
    ("gmm", (3,), {"num_components": 2}),
    ("hmm", (4,), {"num_states": 2, "vocab_size": 3}),
    ("hmm", (3, 2), {"num_states": 3}),
    ("hmm", (4,), {"num_states": 2, "vocab_size": 3, "training": "gradient"}),
    ("hmm", (3,), {"num_states": 2, "training": "gradient"}),
    ("gmm", (1, 2, 2), {"num_components": 2, "covariance": "diag"}),
    ("kde", (3,), {}),
    ("kde", (1, 1, 2), {"bandwidth": "validation", "standardize": False, "bandwidth_grid": 4}),
    ("test_gan", (3,), {}),
    ("gan", (2,), {"hidden_sizes": (8,), "latent_dim": 3}),
    ("gan", (3,), {"objective": "wgan", "hidden_sizes": (8, 4), "n_critic": 2}),
    (
        "gan",
        IMAGE,
        {"output": "binary", "hidden_sizes": (8,), "num_classes": 3, "objective": "wgan_gp"},
    ),
    (
        "gan",
        (1, 4, 4),
        {"output": "real", "conv_channels": 2, "context_shape": (2,), "spectral_norm": True},
    ),
    ("test_constant_critic", (2,), {}),
    ("test_context_gaussian", (2, 2), {}),
    ("test_context_gaussian", (3,), {"context_shape": (2, 2), "condition_dropout": 0.2}),
    ("test_token_chain", (4,), {}),
    ("test_token_chain", (3,), {"context_shape": (2,), "context_vocab": 5}),
    ("char_rnn", (4,), {"vocab_size": 3, "cell": "lstm", "hidden_size": 6, "embedding_dim": 4}),
    ("char_rnn", (4,), {"vocab_size": 3, "cell": "gru", "hidden_size": 6, "num_layers": 1}),
    ("char_rnn", (3,), {"vocab_size": 3, "cell": "rnn", "hidden_size": 5, "embedding_dim": 3}),
    ("char_rnn", (3,), {"vocab_size": 3, "hidden_size": 4, "context_shape": (1, 2, 2)}),
    ("gpt", (4,), {"vocab_size": 3, "n_layer": 2, "n_head": 2, "n_embd": 8}),
    ("fvsbn", (1, 2, 2), {}),
    ("fvsbn", (1, 2, 3), {}),
    ("nade", (1, 2, 2), {"hidden_size": 8}),
    ("made", (1, 2, 2), {"hidden_sizes": (16,)}),
    ("made", (1, 2, 3), {"hidden_sizes": (16, 8), "ordering": "random"}),
    ("made", (1, 2, 2), {"hidden_sizes": (16,), "num_masks": 3}),
    (
        "made",
        (2, 2),
        {"hidden_sizes": (8,), "num_masks": 3, "ordering": "random", "ensemble_masks": False},
    ),
    ("made", (1, 1, 2), {"hidden_sizes": (16,), "head": "categorical"}),
    ("rnade", (2,), {"hidden_size": 16, "num_components": 3}),
    ("fvsbn", (1, 2, 2), {"num_classes": 3}),
    ("nade", (1, 2, 2), {"hidden_size": 8, "num_classes": 3}),
    ("made", (1, 2, 2), {"hidden_sizes": (16,), "num_masks": 2, "num_classes": 3}),
    ("rnade", (2,), {"hidden_size": 16, "num_components": 3, "num_classes": 3}),
    ("rnade", (2,), {"hidden_size": 8, "num_components": 2, "context_shape": (2,)}),
    ("gaussian_mlp", (3,), {"hidden_sizes": (8,), "context_shape": (4,)}),
    ("gaussian_mlp", (1, 2), {"hidden_sizes": (), "context_shape": (2, 3)}),  # flattened: 6
    ("naive_bayes", (1, 2, 2), {"num_classes": 3}),
    ("naive_bayes", (3,), {"num_classes": 2, "feature": "categorical", "num_categories": 3}),
    ("naive_bayes", (2,), {"num_classes": 3, "feature": "gaussian"}),
    ("bayes_net", (3,), {}),
    ("bayes_net", (2, 2), {"structure": '{"1": ["0"], "3": ["0", "2"]}', "num_categories": 2}),
    ("pixelcnn", (1, 2, 3), {"variant": "plain", "hidden_channels": 4, "num_layers": 2}),
    ("pixelcnn", (1, 2, 2), {"hidden_channels": 4, "num_layers": 2}),
    (
        "pixelcnn",
        (1, 1, 2),
        {"variant": "plain", "head": "categorical", "num_levels": 4, "hidden_channels": 4},
    ),
    (
        "pixelcnn",
        (1, 2, 2),
        {"head": "logistic_mixture", "num_levels": 4, "num_mixtures": 2, "hidden_channels": 4},
    ),
    ("pixelcnn", (1, 2, 2), {"hidden_channels": 4, "num_layers": 2, "num_classes": 3}),
    ("pixelcnn", (1, 2, 2), {"variant": "plain", "hidden_channels": 4, "context_shape": (1, 3, 1)}),
    ("pixelcnn", (1, 2, 2), {"hidden_channels": 4, "num_layers": 2, "context_shape": (3,)}),
    ("pixelcnn", (3, 2, 1), {"head": "categorical", "num_levels": 3, "hidden_channels": 6}),
    ("pixelrnn", (1, 2, 3), {"hidden_channels": 4, "num_layers": 2, "first_kernel": 3}),
    ("pixelrnn", (3, 2, 1), {"head": "logistic_mixture", "num_levels": 4, "hidden_channels": 6}),
    ("pixelrnn", (1, 2, 2), {"hidden_channels": 4, "num_layers": 1, "num_classes": 3}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items())}" if o else n for n, _, o in VARIANTS]


def test_every_registered_model_is_covered():
    assert {n for n, _, _ in VARIANTS} == set(dgm.available_models())  # test models included


def in_support(support, shape, g):
    if support is constraints.boolean:
        return torch.bernoulli(torch.full(shape, 0.4, dtype=torch.float64), generator=g)
    if isinstance(support, constraints.integer_interval):
        return torch.randint(support.lower_bound, support.upper_bound + 1, shape, generator=g)
    if support is constraints.real:
        return torch.randn(shape, generator=g, dtype=torch.float64)
    raise AssertionError(f"no test data for support {support}")


def conditions(model, n, g):
    """A valid c for a batch of n, whatever the model conditions on."""
    cond = model.conditioning
    if cond.kind == "classes":
        return torch.arange(n) % cond.num_classes
    if cond.kind == "context" and cond.context_vocab:
        return torch.randint(cond.context_vocab, (n, *cond.context_shape), generator=g)
    if cond.kind == "context":
        return torch.rand((n, *cond.context_shape), generator=g, dtype=torch.float64)
    return None


@pytest.fixture(scope="module", autouse=True)
def _test_models():
    with registered(), registered_contract_models():
        yield


@pytest.fixture(params=VARIANTS, ids=IDS)
def case(request):
    name, shape, overrides = request.param
    torch.manual_seed(0)
    model = dgm.create(name, shape, **overrides).double()
    g = torch.Generator().manual_seed(1)
    x = in_support(model.support, (5, *shape), g)
    return name, model, x, conditions(model, 5, g)


def has_likelihood(model):
    return model.likelihood is not Likelihood.NONE


# -- the contract every model keeps -------------------------------------------------------


def test_shapes_and_finite_log_prob(case):
    _, model, x, c = case
    if not has_likelihood(model):
        with pytest.raises(NotImplementedError, match="no likelihood"):
            model.log_prob(x, c)
        return
    lp = model.log_prob(x, c)
    assert lp.shape == (5,) and lp.dtype == torch.float64 and torch.isfinite(lp).all()


def test_dtype_and_device_follow_the_model(case):
    _, model, _, _ = case
    assert model.dtype == torch.float64 and model.device == torch.device("cpu")
    assert model.float().dtype == torch.float32


def test_param_groups_cover_the_phases(case):
    _, model, _, _ = case
    if isinstance(model, ClosedFormFit):
        return  # fitted by fit_step, not by optimizers
    groups = model.param_groups()
    assert set(groups) == set(model.phases)
    owned = set()
    for entries in groups.values():
        for entry in entries:
            params = entry["params"] if isinstance(entry, dict) else [entry]
            owned |= {id(p) for p in params}
    assert owned == {id(p) for p in model.parameters() if p.requires_grad}


def test_gradients_reach_every_parameter_through_the_phases(case):
    _, model, x, c = case
    if isinstance(model, ClosedFormFit):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            metrics = model.fit_step([(x, c)])
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in metrics.values())
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
        return
    model.train()
    for phase in dict.fromkeys(model.phases):
        out = model.loss(x, c, phase=phase)
        assert out.value.dim() == 0 and torch.isfinite(out.value)
        assert all(v.dim() == 0 and not v.requires_grad for v in out.metrics.values())
        out.value.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_samples_have_the_event_shape_dtype_and_support(case):
    _, model, _, _ = case
    c = conditions(model, 12, torch.Generator().manual_seed(2))
    s = model.sample(12, c, generator=torch.Generator().manual_seed(3))
    assert s.shape == (12, *model.event_shape)
    assert s.dtype == (torch.long if model.integer_data else torch.float64)
    assert model.support.check(s).all()
    again = model.sample(12, c, generator=torch.Generator().manual_seed(3))
    assert torch.equal(s, again)  # the generator drives every draw


def test_sample_options_round_trip_and_unknown_options_are_refused(case):
    _, model, _, _ = case
    c = conditions(model, 2, torch.Generator().manual_seed(2))
    with pytest.raises(ValueError, match="no_such_option"):
        model.sample(2, c, no_such_option=1)
    if model.sample_options is not None:
        opts = model.sample_options()
        assert from_dict(model.sample_options, json.loads(json.dumps(to_dict(opts)))) == opts
        model.sample(2, c, **to_dict(opts))  # every option is accepted by name


def test_save_load_gives_the_same_model(case, tmp_path):
    _, model, x, c = case
    model = model.float()
    c = c.float() if c is not None and c.is_floating_point() else c
    x = x.float() if x.is_floating_point() else x
    run_dir.write_json(tmp_path / run_dir.CONFIG, run_dir.run_config(model))
    run_dir.save_weights(tmp_path / run_dir.WEIGHTS, model, step=0)
    loaded = dgm.load(tmp_path)
    model.eval()
    gen = torch.Generator().manual_seed(4)
    a = model.sample(3, c[:3] if c is not None else None, generator=gen)
    gen = torch.Generator().manual_seed(4)
    assert torch.equal(a, loaded.sample(3, c[:3] if c is not None else None, generator=gen))
    if has_likelihood(model):
        torch.manual_seed(5)
        a = model.log_prob(x, c)
        torch.manual_seed(5)
        assert torch.equal(a, loaded.log_prob(x, c))


def test_config_round_trips_through_json(case):
    name, model, _, _ = case
    back = from_dict(spec(name).config_cls, json.loads(json.dumps(to_dict(model.config))))
    assert back == model.config


def test_conditioning_is_checked_for_its_kind(case):
    _, model, x, c = case
    cond = model.conditioning
    # the contract's properties are not shadowed by a model's own methods
    assert model.conditional is (cond.kind != "none") and isinstance(model.num_classes, int)
    call = model.log_prob if has_likelihood(model) else (lambda x, c: model.sample(len(x), c))
    if cond.kind == "none":
        with pytest.raises(ValueError, match="unconditional"):
            call(x, torch.zeros(5, dtype=torch.long))
        return
    if cond.optional:
        call(x, None)  # trained with condition dropout: c=None is the unconditional model
    else:
        with pytest.raises(ValueError, match="is conditional: pass c"):
            call(x, None)
    if cond.kind == "classes":
        with pytest.raises(ValueError, match="labels outside"):
            call(x, torch.full((5,), cond.num_classes))
        with pytest.raises(ValueError, match=r"expected a LongTensor of labels"):
            call(x, torch.zeros(5))
        return
    with pytest.raises(ValueError, match=r"shape \(5, " + r", ".join(map(str, cond.context_shape))):
        call(x, c[:, None])
    if cond.context_vocab:
        with pytest.raises(ValueError, match="integer tokens"):
            call(x, c.double())
        with pytest.raises(ValueError, match="tokens outside"):
            call(x, torch.full_like(c, cond.context_vocab))
    else:
        with pytest.raises(ValueError, match="floats"):
            call(x, c.long())


def test_wrong_shapes_are_rejected_naming_the_expected_shape(case):
    _, model, x, c = case
    call = (
        model.log_prob
        if has_likelihood(model)
        else (lambda x, c: model.loss(x, c, phase=model.phases[0]))  # checks x in its loss
    )
    expected = r"expected \(batch, " + ", ".join(map(str, model.event_shape)) + r"\)"
    with pytest.raises(ValueError, match=expected):
        call(x.reshape(5, -1, 1), c)
    with pytest.raises(ValueError, match=expected):
        call(x[0], c)


def test_values_and_dtypes_outside_the_support_are_rejected(case):
    _, model, x, c = case
    call = (
        model.log_prob
        if has_likelihood(model)
        else (lambda x, c: model.loss(x, c, phase=model.phases[0]))
    )
    if model.integer_data:
        with pytest.raises(ValueError, match="integer tensor"):
            call(x.double(), c)
        with pytest.raises(ValueError, match="outside the support"):
            call(x + 10_000, c)
        return
    with pytest.raises(ValueError, match="float tensor"):
        call(x.long(), c)
    bad = x.clone()
    bad.view(-1)[0] = math.inf
    with pytest.raises(ValueError, match=r"infinite|outside the support"):
        call(bad, c)
    if model.support is not constraints.real:
        with pytest.raises(ValueError, match="outside the support"):
            call(x + 0.5, c)
    if not isinstance(model, Marginalizes):
        bad.view(-1)[0] = math.nan
        with pytest.raises(ValueError, match="NaN"):
            call(bad, c)


# -- capabilities: each model that declares one passes its check ---------------------------


def build(variant):
    name, shape, overrides = variant
    torch.manual_seed(0)
    model = dgm.create(name, shape, **overrides).double()
    g = torch.Generator().manual_seed(1)
    return model, in_support(model.support, (6, *shape), g), g


def repeat(t, r):
    """The batch t repeated r times along dim 0, (r * B, ...), example b at rows b, B + b, ...
    (None stays None)."""
    return None if t is None else t.repeat(r, *[1] * (t.dim() - 1))


def test_every_capability_is_declared_by_some_model():
    """No capability check below runs on nothing."""
    models = [build(v)[0] for v in VARIANTS]
    for cap in (
        Encodable,
        ImportanceWeighted,
        ELBOTerms,
        Completable,
        DiscreteAutoregressive,
        Marginalizes,
        ClosedFormFit,
    ):
        assert any(isinstance(m, cap) for m in models), f"no model declares {cap.__name__}"


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_encodable_maps_into_the_prior_space_and_back(variant):
    model, x, g = build(variant)
    if not isinstance(model, Encodable):
        return
    c = conditions(model, len(x), g)
    prior = model.prior()
    code = model.encode(x, c)
    z = code.sample() if isinstance(code, Distribution) else code
    assert z.shape == (len(x), *prior.event_shape)
    back = model.decode(z, c)
    if isinstance(back, Distribution):  # p(x | z): the event is one x
        assert back.batch_shape == (len(x),) and back.event_shape == model.event_shape
        assert torch.isfinite(back.log_prob(x)).all()
    else:  # a deterministic encoder: decode inverts encode exactly
        torch.testing.assert_close(back, x)
    from_prior = model.decode(prior.sample((4,)), conditions(model, 4, g))
    if isinstance(from_prior, Distribution):
        shape = from_prior.batch_shape + from_prior.event_shape
    else:
        shape = from_prior.shape
    assert shape == (4, *model.event_shape)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_importance_weighted_bound_keeps_no_graph_and_tightens(variant):
    model, x, g = build(variant)
    if not isinstance(model, ImportanceWeighted):
        return
    c = conditions(model, len(x), g)
    iw = model.log_prob_iw(x, 7, c)
    assert iw.shape == (len(x),) and torch.isfinite(iw).all() and iw.grad_fn is None
    torch.manual_seed(0)
    # r independent estimates of each example's bound in one call on the batch repeated r
    # times (the same draws as r calls, without r passes of per-call overhead)
    xr, cr = repeat(x, 200), repeat(c, 200)
    one = model.log_prob_iw(xr, 1, cr).view(200, len(x)).mean(0)
    many = model.log_prob_iw(repeat(x, 20), 50, repeat(c, 20)).view(20, len(x)).mean(0)
    assert (many >= one - 0.05 * one.abs().clamp_min(1)).all()  # E[IWAE_50] ≥ E[IWAE_1]
    if has_likelihood(model) and isinstance(model, ELBOTerms):
        elbo = model.log_prob(xr, cr).detach().view(200, len(x)).mean(0)
        torch.testing.assert_close(elbo, one, rtol=0.02, atol=0.5)  # IWAE_1 is the ELBO


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_elbo_terms_add_up_to_log_prob(variant):
    model, x, g = build(variant)
    if not isinstance(model, ELBOTerms):
        return
    c = conditions(model, len(x), g)
    torch.manual_seed(3)
    rec, kl = model.elbo_terms(x, c)
    torch.manual_seed(3)
    torch.testing.assert_close(rec - kl, model.log_prob(x, c))


def all_values(model):
    """Every x of a small discrete model, (V^D, *event_shape)."""
    if model.support is constraints.boolean:  # binary x are floats in {0, 1}
        grid = itertools.product((0.0, 1.0), repeat=model.num_dims)
        return torch.tensor(list(grid), dtype=model.dtype).reshape(-1, *model.event_shape)
    hi = model.support.upper_bound
    grid = itertools.product(range(model.support.lower_bound, hi + 1), repeat=model.num_dims)
    return torch.tensor(list(grid)).reshape(-1, *model.event_shape)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_discrete_autoregressive_conditionals_are_causal_and_sum_to_log_prob(variant):
    model, x, g = build(variant)
    if not isinstance(model, DiscreteAutoregressive) or not model.support.is_discrete:
        return  # real x (naive Bayes with gaussian features): no discrete conditionals
    c = conditions(model, len(x), g)
    order = model.ordering()
    assert sorted(order.tolist()) == list(range(model.num_dims))
    logits = model.conditional_logits(x, c)  # (B, D, V)
    chosen = logits.log_softmax(-1).gather(-1, x.reshape(len(x), -1, 1).long()).squeeze(-1)
    torch.testing.assert_close(chosen.sum(-1), model.log_prob(x, c))
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))
    for d in range(model.num_dims):  # changing x_d moves only the conditionals after it
        changed = x.clone().reshape(len(x), -1)
        changed[:, d] = (changed[:, d] + 1) % logits.shape[-1]
        moved = (model.conditional_logits(changed.reshape(x.shape), c) - logits).abs()
        moved = moved.amax(dim=(0, 2))  # (D,)
        assert (moved[position <= position[d]] == 0).all(), f"x_{d} leaks backwards"
    if model.num_dims <= 4:  # the conditionals define a normalised distribution
        every = all_values(model)
        cc = None if c is None else c[:1].expand(len(every), *c.shape[1:])
        total = model.log_prob(every, cc).logsumexp(0)
        torch.testing.assert_close(total, torch.zeros((), dtype=total.dtype))


def exact_completion(model, x, mask, c):
    """p(x_missing | x_observed) by enumeration over every x of a small discrete model."""
    every = all_values(model)
    agrees = (every == x).reshape(len(every), -1)[:, mask.reshape(-1)].all(-1)
    cc = None if c is None else c.expand(len(every), *c.shape[1:])
    lp = model.log_prob(every, cc).masked_fill(~agrees, -math.inf)
    return every, lp.softmax(0)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_completion_keeps_the_observed_part_and_draws_the_exact_conditional(variant):
    model, x, g = build(variant)
    if not isinstance(model, Completable):
        return
    c = conditions(model, len(x), g)
    mask = torch.rand(x.shape, generator=g) < 0.5
    # a Markov-chain completer (the VAEs' Gibbs chain) runs a few steps for the checks of
    # shape, dtype, support and the observed part, which hold after any number of steps;
    # the law its chain converges to is tested in tests/models/test_completion_reference.py
    short = {"steps": 3} if "steps" in inspect.signature(model.complete).parameters else {}
    out = model.complete(x, mask, c, generator=torch.Generator().manual_seed(0), **short)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out[mask], x[mask]) and model.support.check(out).all()
    full = model.complete(x, torch.ones_like(mask), c, **short)
    assert torch.equal(full, x)
    if model.integer_data and model.num_dims <= 4:  # the law of the completion is exact
        m = torch.zeros(model.event_shape, dtype=torch.bool)
        m.view(-1)[0] = True  # observe the first dimension only
        x1, c1 = x[:1], None if c is None else c[:1]
        every, probs = exact_completion(model, x1, m, c1)
        n = 4000
        draws = model.complete(
            x1.expand(n, *x1.shape[1:]),
            m,
            None if c1 is None else c1.expand(n, *c1.shape[1:]),
            generator=torch.Generator().manual_seed(1),
        )
        # each draw's row in `every` (a dict: comparing every draw with every row was most
        # of this test's time); a draw outside `every` counts for none, as before
        row_of = {tuple(r): j for j, r in enumerate(every.reshape(len(every), -1).tolist())}
        found = [row_of.get(tuple(d), -1) for d in draws.reshape(n, -1).tolist()]
        found = torch.tensor([j for j in found if j >= 0], dtype=torch.long)
        freq = torch.bincount(found, minlength=len(every)).double() / n
        se = (probs * (1 - probs) / n).sqrt()
        assert ((freq - probs).abs() <= 5 * se + 1e-9).all()


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_marginalisation_integrates_out_the_missing_dimensions(variant):
    model, x, g = build(variant)
    if not isinstance(model, Marginalizes):
        return
    c = conditions(model, len(x), g)
    everything = torch.ones(x.shape, dtype=torch.bool)
    torch.testing.assert_close(model.log_prob_observed(x, everything, c), model.log_prob(x, c))
    mask = everything.clone()
    mask.reshape(len(x), -1)[:, 0] = False  # the first dimension is missing
    marginal = model.log_prob_observed(x, mask, c)
    if not model.integer_data:
        with_nan = x.clone()
        with_nan[~mask] = math.nan  # NaN means missing in float data
        torch.testing.assert_close(model.log_prob(with_nan, c), marginal)
    if model.integer_data or model.support is constraints.boolean:  # Σ over x_0's values
        s = model.support
        values = (0.0, 1.0) if s is constraints.boolean else range(s.lower_bound, s.upper_bound + 1)
        terms = []
        for v in values:
            filled = x.clone().reshape(len(x), -1)
            filled[:, 0] = v
            terms.append(model.log_prob(filled.reshape(x.shape), c))
        torch.testing.assert_close(marginal, torch.stack(terms).logsumexp(0))
        return
    grid = torch.linspace(-30, 30, 6001, dtype=torch.float64)  # ∫ dx_0 by the trapezoid rule
    values = []
    for part in grid.split(500):  # 500 grid points of every example in one log_prob call
        filled = x.reshape(1, len(x), -1).repeat(len(part), 1, 1)  # (G, B, D)
        filled[:, :, 0] = part[:, None]
        cc = None if c is None else c.repeat(len(part), *[1] * (c.dim() - 1))  # (G * B, ...)
        lp = model.log_prob(filled.reshape(len(part) * len(x), *x.shape[1:]), cc)  # (G * B,)
        values.append(lp.exp().view(len(part), len(x)))  # (G, B)
    integral = torch.trapezoid(torch.cat(values), grid, dim=0)
    torch.testing.assert_close(integral.log(), marginal, rtol=1e-4, atol=1e-4)
