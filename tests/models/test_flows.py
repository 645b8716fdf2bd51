"""Flow models on the contract: densities that integrate to 1 (2-D quadrature), the
autoregressive structure of MAF and IAF through the Jacobian, the base space as an exact
Encodable, temperature, conditioning and the torch Distribution view; dequantized integer
data, BatchNorm inside a model, ActNorm's initialisation before the trainer's EMA.
float64 throughout."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import Distribution

import dgm
from dgm.data import TensorData
from dgm.model import Encodable, Likelihood
from dgm.models.flows.conditioners import MLPConditioner
from dgm.models.flows.transforms import ActNorm, BatchNormFlow, ScaleLayer, Squeeze
from dgm.train import Trainer
from helpers import fit_tracking_ema, perturbed, quiet_config

VECTOR_FLOWS = {  # name: small config for 2-D data
    "maf": {"num_transforms": 3, "hidden_sizes": (16,), "scale_bound": 1.0},
    "iaf": {"num_transforms": 3, "hidden_sizes": (16,), "scale_bound": 1.0},
    "nice": {"num_couplings": 3, "hidden_sizes": (16,)},
    "realnvp": {"num_couplings": 3, "hidden_sizes": (16,), "scale_bound": 1.0},
    "glow": {
        "architecture": "mlp",
        "steps_per_level": 3,
        "hidden_sizes": (16,),
        "scale_bound": 1.0,
    },
}
DEPTH = {"maf": "num_transforms", "iaf": "num_transforms", "glow": "steps_per_level"}
SHAPED_FLOWS = {  # id: (name, shape of one x, config): images, and glow's vector steps
    "realnvp-conv": ("realnvp", (1, 4, 4), {"architecture": "conv", "hidden_channels": 4}),
    "realnvp-conv-classes": (
        "realnvp",
        (3, 4, 4),
        {"architecture": "conv", "hidden_channels": 4, "num_classes": 2},
    ),
    "glow": ("glow", (1, 4, 4), {"steps_per_level": 2, "hidden_channels": 4}),
    "glow-context": (
        "glow",
        (3, 4, 4),
        {"steps_per_level": 2, "hidden_channels": 4, "context_shape": (2,)},
    ),
    "glow-mlp-classes": (
        "glow",
        (3,),
        {"steps_per_level": 2, "hidden_sizes": (8,), "num_classes": 2},
    ),
    "glow-mlp-context": (
        "glow",
        (1, 2, 2),
        {"architecture": "mlp", "steps_per_level": 2, "hidden_sizes": (8,), "context_shape": (3,)},
    ),
}


def make(name, shape=(2,), scale=0.2, **extra):
    torch.manual_seed(0)
    model = dgm.create(name, shape, **{**VECTOR_FLOWS.get(name, {}), **extra})
    return perturbed(model, scale)


def grid_integral(model, c=None, half_width=10.0, n=401):
    """∫ p(x | c) dx over [-w, w]² by the trapezoid rule."""
    t = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    xs = torch.cartesian_prod(t, t)  # (n², 2)
    cc = None if c is None else c.expand(len(xs), *c.shape[1:])
    with torch.no_grad():
        p = model.log_prob(xs, cc).exp().view(n, n)
    return torch.trapezoid(torch.trapezoid(p, t, dim=1), t)


@pytest.mark.parametrize("name", [*VECTOR_FLOWS, "maf-batch_norm", "realnvp-batch_norm"])
def test_density_integrates_to_one_on_a_2d_grid(name):
    name, _, bn = name.partition("-")
    model = make(name, **({"batch_norm": True} if bn else {}))
    if bn:  # running statistics away from (0, 1), as after training
        model.train()
        model.loss(torch.randn(64, 2, dtype=torch.float64) * 2 + 1)
        model.eval()
    total = grid_integral(model)
    assert abs(total.item() - 1) < 0.01, total


@pytest.mark.parametrize("name", list(VECTOR_FLOWS))
def test_conditional_density_integrates_to_one_for_each_class(name):
    model = make(name, num_classes=2, scale=0.1, **{DEPTH.get(name, "num_couplings"): 2})
    for label in (0, 1):  # the labels spread the mass wider: a wider grid
        total = grid_integral(model, torch.tensor([label]), half_width=15.0)
        assert abs(total.item() - 1) < 0.01, total
    x = torch.randn(4, 2, dtype=torch.float64)
    a, b = model.log_prob(x, torch.zeros(4, dtype=torch.long)), model.log_prob(x, 1)
    assert not torch.allclose(a, b)  # the label reaches the networks


@pytest.mark.parametrize("name", ["maf", "iaf"])
def test_one_step_is_autoregressive_through_the_jacobian(name):
    model = make(name, (4,), num_transforms=1, hidden_sizes=(16, 16))
    x = torch.randn(4, dtype=torch.float64)
    J = jacobian(lambda v: model.encode(v[None])[0], x)  # (D, D): ∂z_i / ∂x_j
    assert (J.triu(1) == 0).all() and (J.tril(-1) != 0).any()
    z = model.encode(x[None])[0]
    J = jacobian(lambda v: model.decode(v[None])[0], z)  # the sampling direction
    assert (J.triu(1) == 0).all()
    # two steps reverse the order in between: the map is no longer triangular
    two = make(name, (4,), num_transforms=2, hidden_sizes=(16, 16))
    J = jacobian(lambda v: two.encode(v[None])[0], x)
    assert (J.triu(1) != 0).any()


@pytest.mark.parametrize("name", list(VECTOR_FLOWS))
def test_encode_decode_round_trip_and_log_prob_is_change_of_variables(name):
    model = make(name, (1, 2, 2))
    assert isinstance(model, Encodable)
    x = torch.randn(5, 1, 2, 2, dtype=torch.float64)
    z = model.encode(x)
    assert z.shape == x.shape
    torch.testing.assert_close(model.decode(z), x)
    J = jacobian(lambda v: model.encode(v[None])[0].flatten(), x[0]).reshape(4, 4)
    expected = model.prior().log_prob(z[:1]) + torch.linalg.slogdet(J).logabsdet
    torch.testing.assert_close(model.log_prob(x[:1]), expected)
    with pytest.raises(ValueError, match=r"z has shape \(5, 4\), expected \(batch, 1, 2, 2\)"):
        model.decode(z.view(5, 4))


@pytest.mark.parametrize("name", list(VECTOR_FLOWS))
def test_temperature_scales_the_base_noise(name):
    model = make(name)
    g = torch.Generator().manual_seed(0)
    hot = model.sample(6, generator=g, temperature=0.5)
    z = model.encode(hot)
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(z, 0.5 * torch.randn(6, 2, generator=g, dtype=torch.float64))
    with pytest.raises(ValueError, match="temperature must be positive"):
        model.sample(2, temperature=0.0)


def test_as_distribution_is_a_torch_distribution_with_batched_conditions():
    model = make("maf", num_classes=3)
    d = model.as_distribution(torch.tensor([0, 1, 2, 1]))
    assert isinstance(d, Distribution) and d.batch_shape == (4,) and d.event_shape == (2,)
    torch.manual_seed(1)
    x = d.sample((5,))
    assert x.shape == (5, 4, 2) and x.grad_fn is None and d.support.check(x).all()
    lp = d.log_prob(x)
    assert lp.shape == (5, 4)
    c = torch.tensor([0, 1, 2, 1]).repeat(5)
    torch.testing.assert_close(lp.flatten(), model.log_prob(x.reshape(20, 2), c))
    r = d.rsample((2,))
    r.sum().backward()  # reparameterised: gradients reach the flow's parameters
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    one = model.as_distribution(2)
    assert one.batch_shape == () and one.sample().shape == (2,)
    torch.testing.assert_close(one.log_prob(x[0]), model.log_prob(x[0], 2))


def test_context_conditioning_reaches_the_flow():
    model = make("maf", (2,), context_shape=(3,))
    x = torch.randn(4, 2, dtype=torch.float64)
    ctx = torch.randn(4, 3, dtype=torch.float64)
    assert not torch.allclose(model.log_prob(x, ctx), model.log_prob(x, ctx + 1))
    torch.testing.assert_close(model.decode(model.encode(x, ctx), ctx), x)


@pytest.mark.parametrize("case", list(SHAPED_FLOWS))
def test_flows_after_a_first_batch_invert_exactly_and_log_prob_is_change_of_variables(case):
    name, shape, config = SHAPED_FLOWS[case]
    torch.manual_seed(0)
    model = dgm.create(name, shape, **config).double()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, *shape, generator=g, dtype=torch.float64)  # images in [0, 1]
    cond = model.conditioning
    c = None
    if cond.kind == "classes":
        c = torch.arange(6) % cond.num_classes
    elif cond.kind == "context":
        c = torch.randn(6, *cond.context_shape, generator=g, dtype=torch.float64)
    model.train()
    model.loss(x, c)  # ActNorm's data-dependent initialisation on this first batch
    model = perturbed(model, 0.05)
    z = model.encode(x, c)
    assert z.shape == x.shape
    torch.testing.assert_close(model.decode(z, c), x)
    D = x[0].numel()
    for i in (0, 3):
        ci = None if c is None else c[i : i + 1]
        J = jacobian(lambda v, ci=ci: model.encode(v[None], ci)[0].flatten(), x[i])
        logdet = torch.linalg.slogdet(J.reshape(D, D)).logabsdet
        expected = model.prior().log_prob(z[i : i + 1]) + logdet
        torch.testing.assert_close(model.log_prob(x[i : i + 1], ci), expected)
    if c is not None:  # the condition reaches the couplings
        other = (c + 1) % 2 if cond.kind == "classes" else c + 1
        assert not torch.allclose(model.log_prob(x, other), model.log_prob(x, c))


def test_multi_scale_factors_out_half_the_channels_after_the_first_scale():
    """The factored-out half bypasses the later scales: changing a later scale's network
    leaves those z values unchanged."""
    torch.manual_seed(0)
    model = dgm.create("glow", (1, 4, 4), steps_per_level=1, hidden_channels=4).double().eval()
    model = perturbed(model, 0.1)
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    z = model.encode(x)
    inner = model.transform.transforms[-2].inner  # FactorOut's next level
    with torch.no_grad():
        for p in inner.parameters():
            p.add_(0.5)
    z2 = model.encode(x)
    squeeze = model.transform.transforms[0]
    kept, moved = squeeze(z)[0], squeeze(z2)[0]  # (3, 4, 2, 2): channels 0-1 left the flow
    torch.testing.assert_close(kept[:, :2], moved[:, :2])
    assert not torch.allclose(kept[:, 2:], moved[:, 2:])


def test_bad_configs_name_the_fix():
    with pytest.raises(ValueError, match="num_transforms must be >= 1"):
        dgm.create("maf", (2,), num_transforms=0)
    with pytest.raises(ValueError, match="divisible by 4"):
        dgm.create("glow", (1, 6, 6))
    with pytest.raises(ValueError, match="divisible by 2"):
        dgm.create("realnvp", (1, 3, 4), architecture="conv")
    with pytest.raises(ValueError, match="architecture='mlp' for vectors"):
        dgm.create("glow", (2,), architecture="conv")
    with pytest.raises(ValueError, match=r"architecture must be one of \(.auto., .mlp., .conv.\)"):
        dgm.create("glow", (2,), architecture="dense")
    with pytest.raises(ValueError, match=r"logit_alpha must lie in \[0, 0.5\)"):
        dgm.create("realnvp", (1, 4, 4), dequantize="uniform", logit_alpha=0.6)


# -- Glow on vectors ---------------------------------------------------------------------------


def test_glow_picks_vector_steps_for_vectors_and_multi_scale_for_images():
    vector = dgm.create("glow", (2,), steps_per_level=2, hidden_sizes=(8,))
    kinds = [type(t).__name__ for t in vector.transform.transforms]
    assert kinds == ["Reshape", *["ActNorm", "InvertibleConv1x1", "AffineCoupling"] * 2, "Reshape"]
    assert vector.transform.transforms[2].weight().shape == (2, 2)  # a 2×2 linear map
    image = dgm.create("glow", (1, 4, 4), steps_per_level=1, hidden_channels=4)
    assert not any(isinstance(m, MLPConditioner) for m in image.modules())
    assert any(isinstance(m, Squeeze) for m in image.modules())


def test_glow_vector_actnorm_initialises_on_the_first_batch_to_zero_mean_unit_variance():
    torch.manual_seed(0)
    model = dgm.create("glow", (3,), steps_per_level=2, hidden_sizes=(8,)).double()
    model = perturbed(model, 0.1)  # every later ActNorm input is a non-trivial mix of x
    norms = [m for m in model.modules() if isinstance(m, ActNorm)]
    g = torch.Generator().manual_seed(2)
    scale, shift = torch.tensor([3.0, 0.2, 1.0]), torch.tensor([5.0, -1.0, 0.0])
    x = torch.randn(256, 3, generator=g, dtype=torch.float64) * scale + shift
    for m in norms:
        m.initialized.fill_(False)
    model.initialize(x)
    assert all(bool(m.initialized) for m in norms) and not model.training
    outputs = []
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o[0])) for m in norms]
    model.log_prob(x)  # eval: the stored values, the same inputs as the initialising pass
    for h in hooks:
        h.remove()
    assert len(outputs) == 2
    for z in outputs:  # (256, 3) each: standardised per feature
        torch.testing.assert_close(z.mean(0), torch.zeros(3, dtype=torch.float64))
        torch.testing.assert_close(z.var(0, correction=0), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize(
    ("name", "shape", "options"),
    [
        ("realnvp", (4,), {}),
        ("realnvp", (1, 4, 4), {"architecture": "conv"}),
        ("glow", (4,), {}),
        ("glow", (1, 4, 4), {"architecture": "conv"}),
    ],
)
def test_every_coupling_takes_the_flows_options(name, shape, options):
    """scale_bound reaches every coupling of every architecture, and RealNVP's batch_norm
    adds BatchNorm bijections in each (the defaults hide an option dropped on one path)."""
    model = make(name, shape, scale_bound=0.5, **options)
    bounds = [m.bound for m in model.modules() if hasattr(m, "bound")]
    assert bounds and set(bounds) == {0.5}
    if name == "realnvp":
        normed = make(name, shape, batch_norm=True, **options)
        assert any(isinstance(m, BatchNormFlow) for m in normed.modules())
        assert not any(isinstance(m, BatchNormFlow) for m in model.modules())


def test_iaf_samples_in_one_pass_per_step_and_maf_evaluates_in_one():
    """IAF is MAF turned around: drawing samples runs each step's MADE once, scoring runs
    it at least D times; MAF the other way round (a MAF built for IAF passes every density
    test)."""
    D, K = 3, 2
    calls = {}
    for name in ("maf", "iaf"):
        model = make(name, (D,), num_transforms=K, hidden_sizes=(8,))
        count = [0]
        for m in model.modules():
            if type(m).__name__ == "MADE":
                m.register_forward_hook(lambda *_, c=count: c.__setitem__(0, c[0] + 1))
        with torch.no_grad():
            model.sample(4)
            sampled, count[0] = count[0], 0
            model.log_prob(torch.randn(4, D, dtype=torch.float64))
        calls[name] = (sampled, count[0])
    (iaf_draw, iaf_score), (maf_draw, maf_score) = calls["iaf"], calls["maf"]
    assert iaf_draw == maf_score == K and min(iaf_score, maf_draw) >= D * K, calls


@pytest.mark.parametrize("name", ["nice", "realnvp"])
def test_couplings_alternate_so_every_output_depends_on_another_input(name):
    """Two couplings (additive, affine) on alternating halves: each output of encode depends
    on some other input (couplings on the same half leave that half an identity)."""
    from torch.autograd.functional import jacobian

    model = make(name, (4,), num_couplings=2, hidden_sizes=(32,))
    reached = torch.zeros(4, dtype=torch.bool)  # outputs that depend on another input
    for v in torch.randn(8, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64):
        J = jacobian(lambda u: model.encode(u[None])[0], v)  # (out, in)
        reached |= (J - torch.diag(J.diagonal())).abs().amax(1) > 1e-6
    assert reached.all(), reached


# -- BatchNorm inside a model ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["maf", "realnvp"])
def test_batch_norm_flow_is_a_bijection_in_training_mode_and_only_loss_uses_the_batch(name):
    model = make(name, (3,), batch_norm=True)
    assert any(isinstance(m, BatchNormFlow) for m in model.modules())
    model.train()
    x = torch.randn(16, 3, dtype=torch.float64) * 2 + 1
    model.loss(x)  # a training loss: the running statistics move
    torch.testing.assert_close(model.decode(model.encode(x)), x)  # running statistics
    lp_train = model.log_prob(x)
    before = [b.clone() for b in model.buffers()]
    loss = model.loss(x).value  # batch statistics: differs from the running-statistics NLL
    assert not torch.allclose(loss, -lp_train.mean())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.buffers(), strict=True))
    model.eval()
    torch.testing.assert_close(model.log_prob(x), model.log_prob(x))
    bn = next(m for m in model.modules() if isinstance(m, BatchNormFlow))
    assert not bn.use_batch_statistics
    z = model.encode(x)
    model.train()  # train or eval: the same bijection outside a loss
    torch.testing.assert_close(model.encode(x), z)


# -- dequantized integer data ------------------------------------------------------------------


def identity_flow(shape, **config):
    """A dequantized flow whose transform is the identity (a scaling by exp(0)): the
    dequantization and logit steps alone."""
    model = dgm.create("maf", shape, num_transforms=1, hidden_sizes=(4,), **config)
    model.transform = ScaleLayer(shape)
    return model.double()


def test_identity_flow_on_logit_data_gives_the_hand_computed_bound():
    a, L = 0.05, 256
    model = identity_flow((1, 2, 2), dequantize="uniform", logit_alpha=a)
    assert model.likelihood is Likelihood.DEQUANTIZED and model.integer_data
    x = torch.tensor([[[[0, 255], [17, 128]]], [[[3, 3], [200, 254]]]])
    torch.manual_seed(0)
    u = torch.rand(x.shape, dtype=torch.float64)  # the draw the model makes next
    torch.manual_seed(0)
    lp = model.log_prob(x)
    y = (x + u) / L
    p = a + (1 - 2 * a) * y
    v = torch.log(p / (1 - p))  # logit
    hand = -0.5 * v**2 - 0.5 * math.log(2 * math.pi)  # log N(v; 0, 1)
    hand = hand + math.log(1 - 2 * a) - torch.log(p * (1 - p))  # log |dv/dy|
    hand = hand.flatten(1).sum(1) - 4 * math.log(L)  # − D ln L: the 0..255 scale
    torch.testing.assert_close(lp, hand, rtol=1e-12, atol=1e-12)
    loss = model.loss(x)  # its bits/dim metric is −log_prob / (D ln 2)
    torch.testing.assert_close(loss.metrics["bits_per_dim"], loss.value / (4 * math.log(2)))


def test_dequantized_flow_takes_integers_samples_integers_and_encodes_cell_centres():
    model = make("realnvp", (1, 2, 2), dequantize="uniform", num_levels=16)
    x = torch.randint(16, (5, 1, 2, 2))
    assert torch.equal(model.decode(model.encode(x)), x)
    # encode is deterministic: the transform of the cell centres' logits, no noise drawn
    with torch.no_grad():
        z = model.encode(x)
        torch.manual_seed(123)
        assert torch.equal(model.encode(x), z)
        expected = model.transform(model.logit((x.double() + 0.5) / 16)[0], None)[0]
    torch.testing.assert_close(z, expected)
    s = model.sample(20, generator=torch.Generator().manual_seed(0))
    assert s.dtype == torch.long and ((s >= 0) & (s < 16)).all()
    with pytest.raises(ValueError, match="integer tensor"):
        model.log_prob(x.double())
    with pytest.raises(ValueError, match=r"outside the support.*integers 0..15"):
        model.log_prob(x + 16)
    real = make("realnvp", (1, 2, 2))
    with pytest.raises(ValueError, match="--dequantize uniform"):
        real.log_prob(x)
    d = model.as_distribution()
    assert d.sample((3,)).dtype == torch.long
    with pytest.raises(ValueError, match="use sample"):
        d.rsample()


# -- ActNorm's data-dependent initialisation and the trainer's EMA ----------------------------


def test_trainer_initialises_actnorm_before_the_ema_and_the_ema_is_the_exact_average():
    decay = 0.75
    torch.manual_seed(0)
    model = dgm.create(
        "glow", (1, 4, 4), steps_per_level=1, hidden_channels=4, dequantize="uniform"
    )
    g = torch.Generator().manual_seed(0)
    data = TensorData((torch.rand(64, 1, 4, 4, generator=g) * 40 + 100).long())
    cfg = quiet_config(steps=3, batch_size=16, lr=0.01, ema_decay=decay)
    trainer = Trainer(model, data, None, cfg, progress=False)
    norms = [m for m in model.modules() if isinstance(m, ActNorm)]
    assert norms and all(bool(m.initialized) for m in norms)  # before any step
    assert all(m.log_scale.abs().sum() > 0 for m in norms)
    start = trainer.ema.state_dict()  # the EMA starts from the initialised weights
    for k, p in model.named_parameters():
        assert torch.equal(start[k].double(), p.detach().double()), k
    ema = fit_tracking_ema(trainer, decay)
    assert all(bool(ema[k]) for k in ema if k.endswith("initialized"))
