"""Every bijection of dgm.models.flows.transforms, in float64 on random inputs: exact inverse
both ways, and log_det equal to slogdet of the autograd Jacobian (one example at a time)."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from dgm.models.flows.conditioners import (
    ConvConditioner,
    MLPConditioner,
    channel_mask,
    checkerboard_mask,
)
from dgm.models.flows.dequantization import UniformDequantization, VariationalDequantization
from dgm.models.flows.transforms import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    BatchNormFlow,
    Chain,
    ChannelCoupling,
    CheckerboardCoupling,
    FactorOut,
    Inverse,
    InvertibleConv1x1,
    LogitTransform,
    MaskedAffineAutoregressive,
    Permutation,
    Reverse,
    ScaleLayer,
    Squeeze,
    batch_statistics,
)
from helpers import perturbed

K = 3  # width of the condition features


def affine_vec(c):
    return AffineCoupling(checkerboard_mask((4,), 1), MLPConditioner(4, (8,), 2, c))


def affine_img(c):
    return AffineCoupling(checkerboard_mask((2, 4, 4), 0), ConvConditioner(2, 4, 2, c))


def affine_channels(c):
    return AffineCoupling(channel_mask((4, 2, 2), 1), ConvConditioner(4, 4, 2, c))


def batch_norm_trained(shape):
    bn = BatchNormFlow(shape[0]).double()
    with batch_statistics(bn):  # a training loss: the running statistics move
        bn(torch.randn(16, *shape, dtype=torch.float64) * 2 + 1)
    assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    return bn


def factor_out(c):
    inner = AffineCoupling(checkerboard_mask((2, 2, 2), 0), ConvConditioner(2, 4, 2, c))
    return Chain([Squeeze(), FactorOut(2, inner), Inverse(Squeeze())])


CASES = {  # name: (builder taking the condition width, event shape, conditional?)
    "affine_coupling_vector": (affine_vec, (4,), True),
    "affine_coupling_checkerboard": (affine_img, (2, 4, 4), True),
    "affine_coupling_channels": (affine_channels, (4, 2, 2), True),
    "checkerboard_coupling": (
        lambda c: CheckerboardCoupling((2, 4, 2), 1, ConvConditioner(2, 4, 2, c)),
        (2, 4, 2),
        True,
    ),
    "channel_coupling": (
        lambda c: ChannelCoupling(4, 1, ConvConditioner(2, 4, 2, c)),
        (4, 2, 2),
        True,
    ),
    "additive_coupling": (
        lambda c: AdditiveCoupling(checkerboard_mask((5,), 0), MLPConditioner(5, (8,), 1, c)),
        (5,),
        True,
    ),
    "scale_layer": (lambda c: ScaleLayer((3,)), (3,), False),
    "squeeze": (lambda c: Squeeze(), (2, 4, 2), False),
    "factor_out": (factor_out, (1, 4, 4), True),
    "actnorm_vector": (lambda c: ActNorm(3), (3,), False),
    "actnorm_image": (lambda c: ActNorm(2), (2, 3, 2), False),
    "conv1x1_image": (lambda c: InvertibleConv1x1(3), (3, 2, 2), False),
    "conv1x1_vector": (lambda c: InvertibleConv1x1(4), (4,), False),
    "made_affine": (lambda c: MaskedAffineAutoregressive(4, (16,), c), (4,), True),
    "inverse_made_affine": (lambda c: Inverse(MaskedAffineAutoregressive(3, (8,), c)), (3,), True),
    "permutation": (lambda c: Permutation(torch.tensor([2, 0, 3, 1])), (4,), False),
    "reverse": (lambda c: Reverse(), (3, 2, 1), False),
    "batch_norm": (lambda c: batch_norm_trained((3,)), (3,), False),
    "batch_norm_image": (lambda c: batch_norm_trained((2, 2, 2)), (2, 2, 2), False),
    "logit": (lambda c: LogitTransform(0.05), (3,), False),
    "chain": (
        lambda c: Chain([ActNorm(4), affine_vec(c), Reverse(), InvertibleConv1x1(4)]),
        (4,),
        True,
    ),
}


def build(name, conditional):
    make, shape, takes_c = CASES[name]
    torch.manual_seed(0)
    width = K if (conditional and takes_c) else 0
    t = perturbed(make(width))
    g = torch.Generator().manual_seed(1)
    B = 3
    x = torch.randn(B, *shape, generator=g, dtype=torch.float64)
    if name == "logit":
        x = torch.rand(B, *shape, generator=g, dtype=torch.float64)
    c = torch.randn(B, width, generator=g, dtype=torch.float64) if width else None
    return t, x, c


PARAMS = [(n, False) for n in CASES] + [(n, True) for n, v in CASES.items() if v[2]]
IDS = [f"{n}{'-conditional' if cond else ''}" for n, cond in PARAMS]


@pytest.mark.parametrize(("name", "conditional"), PARAMS, ids=IDS)
def test_inverse_undoes_forward_both_ways(name, conditional):
    t, x, c = build(name, conditional)
    z, log_det = t(x, c)
    assert z.shape == (x.shape if name != "squeeze" else (3, 8, 2, 1))
    assert log_det.shape == (len(x),)
    torch.testing.assert_close(t.inverse(z, c), x)
    if name == "logit":
        return  # z ranges over all reals, so any z is a valid noise value: checked below
    noise = torch.randn_like(z)
    torch.testing.assert_close(t(t.inverse(noise, c), c)[0], noise)


def test_logit_forward_of_inverse():
    t = LogitTransform(0.1).double()
    z = torch.randn(4, 3, dtype=torch.float64) * 3
    torch.testing.assert_close(t(t.inverse(z))[0], z)


@pytest.mark.parametrize(("name", "conditional"), PARAMS, ids=IDS)
def test_log_det_equals_slogdet_of_the_jacobian(name, conditional):
    t, x, c = build(name, conditional)
    _, log_det = t(x, c)
    for i in range(len(x)):
        ci = None if c is None else c[i : i + 1]
        J = jacobian(lambda xi, ci=ci: t(xi[None], ci)[0].flatten(), x[i])  # (D, *event)
        J = J.reshape(x[i].numel(), x[i].numel())  # (D, D)
        sign, logabs = torch.linalg.slogdet(J)
        assert sign != 0
        torch.testing.assert_close(log_det[i], logabs)


def test_couplings_change_only_their_free_part_and_the_condition_matters():
    t, x, c = build("affine_coupling_vector", True)
    z, _ = t(x, c)
    kept = t.mask.bool()
    assert torch.equal(z[:, kept], x[:, kept]) and not torch.allclose(z[:, ~kept], x[:, ~kept])
    assert not torch.allclose(t(x, c + 1)[0], z)  # the condition reaches the conditioner


@pytest.mark.parametrize("parity", [0, 1])
def test_channel_coupling_is_the_masked_coupling_with_the_dead_weights_dropped(parity):
    """ChannelCoupling computes exactly what AffineCoupling with a channel mask computes
    once it loads that coupling's weights (the former layout: a network over all C
    channels, the free ones zero, writing 2C), with fewer parameters."""
    torch.manual_seed(0)
    C, K_ = 6, 2
    masked = AffineCoupling(channel_mask((C, 3, 3), parity), ConvConditioner(C, 5, 2, K_))
    masked = perturbed(masked)
    half = ChannelCoupling(C, parity, ConvConditioner(C // 2, 5, 2, K_)).double()
    half.load_state_dict(masked.state_dict())
    x = torch.randn(4, C, 3, 3, dtype=torch.float64)
    c = torch.randn(4, K_, dtype=torch.float64)
    z, log_det = half(x, c)
    z_ref, log_det_ref = masked(x, c)
    torch.testing.assert_close(z, z_ref)
    torch.testing.assert_close(log_det, log_det_ref)
    kept = (torch.arange(C) < C // 2) == (parity == 0)  # (C,)
    assert torch.equal(z[:, kept], x[:, kept]) and not torch.allclose(z[:, ~kept], x[:, ~kept])
    assert sum(p.numel() for p in half.parameters()) < sum(p.numel() for p in masked.parameters())


def test_channel_coupling_refuses_odd_channels():
    with pytest.raises(ValueError, match="even channel count"):
        ChannelCoupling(3, 0, ConvConditioner(1, 4, 2))


@pytest.mark.parametrize("conditional", [False, True])
def test_conv_conditioner_in_channels_last_computes_the_plain_networks_function(conditional):
    # the conditioner runs its convolutions on channels-last activations for speed; it must
    # give what its own layers give on the ordinary (NCHW) tensor, values and gradients,
    # so the weights of a run saved before the change give the same log_prob
    g = torch.Generator().manual_seed(0)
    net = ConvConditioner(2, 8, 2, K if conditional else 0)
    with torch.no_grad():
        net.net[-1].weight.normal_(generator=g)  # not the near-zero start
    h = torch.randn(5, 2, 6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(5, K, generator=g, dtype=torch.float64) if conditional else None
    net = net.double()
    out = net(h, c)
    assert out.shape == (5, 2, 2, 6, 4) and out.is_contiguous()
    plain = h if c is None else torch.cat([h, c[:, :, None, None].expand(5, K, 6, 4)], 1)
    want = net.net(plain.contiguous()).view(5, 2, 2, 6, 4)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    weights = [net.net[0].weight, net.net[-1].weight]
    got_grads = torch.autograd.grad(out.square().sum(), [h, *weights])
    want_grads = torch.autograd.grad(want.square().sum(), [h, *weights])
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_coupling_scale_is_bounded():
    t = AffineCoupling(checkerboard_mask((4,), 0), MLPConditioner(4, (8,), 2), bound=2.0)
    with torch.no_grad():
        t.conditioner.net[-1].weight.fill_(100.0)
    _, log_det = t(torch.randn(5, 4) * 10)
    assert (log_det.abs() <= 2.0 * 2 + 1e-5).all()  # 2 free dimensions, |s| ≤ 2 each


def test_actnorm_first_training_batch_comes_out_standardised():
    an = ActNorm(3).double()
    x = (
        torch.randn(64, 3, 4, 4, dtype=torch.float64)
        * torch.tensor([2.0, 0.5, 3.0])[:, None, None].double()
        + torch.tensor([1.0, -2.0, 0.0])[:, None, None].double()
    )
    z, _ = an.train()(x)
    dims = [0, 2, 3]
    torch.testing.assert_close(z.mean(dims), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(z.var(dims, correction=0), torch.ones(3, dtype=torch.float64))
    z2, _ = an(x * 5)  # initialised once: a second batch is not standardised again
    torch.testing.assert_close(z2.var(dims, correction=0), 25 * torch.ones(3).double())


def test_actnorm_stays_uninitialised_in_eval():
    an = ActNorm(2).double().eval()
    x = torch.randn(8, 2, dtype=torch.float64) + 3
    assert torch.equal(an(x)[0], x) and not bool(an.initialized)


def test_lu_conv1x1_log_det_is_the_dense_slogdet():
    torch.manual_seed(3)
    t = perturbed(InvertibleConv1x1(5))
    W = t.weight()
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    _, log_det = t(x)
    dense = torch.linalg.slogdet(W).logabsdet * 12  # H·W positions
    torch.testing.assert_close(log_det, dense.expand(2))
    z = torch.nn.functional.conv2d(x, W[:, :, None, None])  # the same map as a 1x1 conv
    torch.testing.assert_close(t(x)[0], z)


@pytest.mark.parametrize("inverse", [False, True], ids=["maf", "iaf"])
@pytest.mark.parametrize("direction", ["density", "sampling"])
def test_made_affine_jacobian_is_lower_triangular_in_its_order(inverse, direction):
    torch.manual_seed(0)
    t = perturbed(MaskedAffineAutoregressive(5, (16, 16)))
    t = Inverse(t) if inverse else t
    f = (
        (lambda v: t(v[None])[0][0])
        if direction == "density"
        else (lambda v: t.inverse(v[None])[0])
    )
    J = jacobian(f, torch.randn(5, dtype=torch.float64))  # (D, D): ∂out_i / ∂in_j
    assert (J.triu(1) == 0).all()  # out_i never depends on in_j for j after i
    assert (J.diagonal() != 0).all() and (J.tril(-1) != 0).any()


def test_uniform_dequantization_rounds_back_and_scales():
    dq = UniformDequantization(16)
    x = torch.randint(16, (6, 1, 2, 3))
    y, log_det = dq(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(dq.inverse(y), x)
    assert ((y >= x / 16) & (y < (x + 1) / 16)).all()
    # a density uniform on [0, 1)^D gives log p(y) = 0: the bound is exactly -D ln 16
    torch.testing.assert_close(log_det, torch.full((6,), -6 * math.log(16)))
    with pytest.raises(ValueError, match="integer levels"):
        dq(x.float())


@pytest.mark.parametrize("level", [0, 5])
def test_variational_dequantization_q_is_a_density_on_the_unit_interval(level):
    torch.manual_seed(0)
    dq = perturbed(VariationalDequantization(1, num_levels=8, hidden_sizes=(8,), cond_features=K))
    x, c = torch.tensor([[level]]), torch.randn(1, K, dtype=torch.float64)
    eps = torch.linspace(-12, 12, 20001, dtype=torch.float64)[:, None]  # (N, 1)
    u, log_q = dq.noise(x.expand(len(eps), 1), eps, c.expand(len(eps), K))
    assert (u > 0).all() and (u < 1).all() and (u[1:] > u[:-1]).all()
    torch.testing.assert_close(torch.trapezoid(log_q.exp(), u[:, 0]), torch.tensor(1.0).double())
    y, log_det = dq(x, c, generator=torch.Generator().manual_seed(0))
    assert torch.equal(dq.inverse(y), x) and log_det.shape == (1,)
    assert log_det.item() != -math.log(8)  # −ln K − log q(u | x), not the uniform bound
    eps = torch.randn(1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u, log_q = dq.noise(x, eps, c)  # the same draw
    torch.testing.assert_close(y, (x + u) / 8)
    torch.testing.assert_close(log_det, -math.log(8) - log_q)


def test_variational_dequantization_q_is_a_density_on_the_unit_square():
    """D = 2 (one dimension hides a mean taken for the sum): for a fixed x, u_d depends on
    ε_d alone, so an ε grid is a rectilinear u grid and q(u | x) must integrate to 1 over
    the unit square."""
    torch.manual_seed(0)
    dq = perturbed(VariationalDequantization(2, num_levels=8, hidden_sizes=(8,)))
    x = torch.tensor([[3, 6]])
    axis = torch.linspace(-10, 10, 801, dtype=torch.float64)
    eps = torch.cartesian_prod(axis, axis)  # (N², 2), the second coordinate fastest
    u, log_q = dq.noise(x.expand(len(eps), 2), eps)
    u0, u1 = u[:: len(axis), 0], u[: len(axis), 1]  # each axis of the u grid
    density = log_q.exp().view(len(axis), len(axis))
    mass = torch.trapezoid(torch.trapezoid(density, u1, dim=1), u0)
    torch.testing.assert_close(mass, torch.tensor(1.0).double(), atol=1e-3, rtol=0)


def test_batch_norm_uses_batch_statistics_only_inside_a_training_loss():
    bn = BatchNormFlow(3).double().train()
    x = torch.randn(32, 3, dtype=torch.float64) * 3 + 2
    z, log_det = bn(x)  # outside batch_statistics: the running statistics (0, 1), no update
    torch.testing.assert_close(z, x / (1 + 1e-5) ** 0.5)
    assert torch.equal(bn.running_mean, torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(bn.inverse(z), x)
    with batch_statistics(bn):
        z, log_det = bn(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(3, dtype=torch.float64))
    var = x.var(0, correction=0)
    torch.testing.assert_close(log_det, (-0.5 * (var + 1e-5).log()).sum().expand(32))
    torch.testing.assert_close(bn.running_mean, 0.1 * x.mean(0))
    assert not bn.use_batch_statistics  # switched off again on leaving
    with batch_statistics(bn.eval()):  # eval mode: running statistics even inside
        torch.testing.assert_close(bn(x)[0], (x - bn.running_mean) / (bn.running_var + 1e-5).sqrt())


@pytest.mark.parametrize(
    "build",
    [
        lambda scale: MLPConditioner(3, (8,), 2, cond_features=2, init_scale=scale),
        lambda scale: ConvConditioner(2, 4, 2, init_scale=scale),
    ],
    ids=["mlp", "conv"],
)
def test_a_new_conditioner_starts_with_its_last_layer_scaled_down(build):
    """The last layer's weights are ``init_scale`` times the default initialisation (the
    rest untouched), so a new coupling starts near the identity."""
    torch.manual_seed(0)
    small = build(0.1)
    torch.manual_seed(0)
    plain = build(1.0)
    last = len(plain.net) - 1
    plain_params = dict(plain.net.named_parameters())
    for name, a in small.net.named_parameters():
        b = plain_params[name]
        torch.testing.assert_close(a, 0.1 * b if name == f"{last}.weight" else b, msg=name)
