"""RealNVP's checkerboard coupling computed on the 2×2 polyphase grid
(``ConvConditioner.checkerboard``, ``CheckerboardCoupling``) is the function of the plain
masked network at full resolution (Dinh et al. 2016) from the same weights: values and
gradients in float64 for both parities, even and odd sizes, with and without a condition;
and a RealNVP saved with the former ``AffineCoupling`` layers loads unchanged and gives the
same log_prob and samples."""

import pytest
import torch

import dgm
from dgm.models.flows.conditioners import ConvConditioner, checkerboard_mask
from dgm.models.flows.transforms import AffineCoupling, CheckerboardCoupling
from helpers import masked_checkerboards, perturbed

SHAPES = [(1, 6, 8), (2, 4, 4), (3, 2, 6), (1, 5, 7), (2, 3, 4), (1, 4, 1)]  # even and odd


def _masked(net, x, parity, c):
    """The plain network on the masked image at full resolution, kept pixels zeroed out."""
    mask = checkerboard_mask(x.shape[1:], parity).double()
    return net(x * mask, c) * (1 - mask)  # (B, 2, C, H, W)


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("parity", [0, 1])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_polyphase_network_is_the_masked_network_values_and_gradients(shape, parity, conditional):
    torch.manual_seed(0)
    K = 3 if conditional else 0
    net = perturbed(ConvConditioner(shape[0], 5, 2, K), scale=1.0)  # every weight far from 0
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, *shape, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(4, K, generator=g, dtype=torch.float64) if K else None
    want, got = _masked(net, x, parity, c), net.checkerboard(x, parity, c)
    assert got.shape == (4, 2, *shape)
    assert want.abs().amax() > 0.1  # a real output, not zeros on both sides
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    inputs = [x, *net.parameters()]
    upstream = torch.randn(want.shape, generator=g, dtype=torch.float64)
    want_grads = torch.autograd.grad((want * upstream).sum(), inputs)
    got_grads = torch.autograd.grad((got * upstream).sum(), inputs)
    for name, a, b in zip(["x", *dict(net.named_parameters())], got_grads, want_grads, strict=True):
        assert b.abs().amax() > 0, name  # every parameter takes part
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("parity", [0, 1])
@pytest.mark.parametrize("shape", [(2, 4, 6), (1, 5, 4)], ids=["even", "odd"])
def test_checkerboard_coupling_is_the_masked_affine_coupling(shape, parity, conditional):
    torch.manual_seed(0)
    K = 2 if conditional else 0
    masked = AffineCoupling(checkerboard_mask(shape, parity), ConvConditioner(shape[0], 6, 2, K))
    masked = perturbed(masked, scale=0.5)
    fast = CheckerboardCoupling(shape, parity, ConvConditioner(shape[0], 6, 2, K)).double()
    fast.load_state_dict(masked.state_dict())  # the same keys: mask, conditioner.net.*
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, *shape, generator=g, dtype=torch.float64)
    c = torch.randn(5, K, generator=g, dtype=torch.float64) if K else None
    z, log_det = fast(x, c)
    z_ref, log_det_ref = masked(x, c)
    torch.testing.assert_close(z, z_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_det, log_det_ref, rtol=1e-12, atol=1e-12)
    assert log_det.abs().amin() > 1e-3  # the scales are not the identity's
    kept = fast.mask.bool()
    assert torch.equal(z[:, kept], x[:, kept]) and not torch.allclose(z[:, ~kept], x[:, ~kept])
    torch.testing.assert_close(fast.inverse(z, c), x, rtol=1e-12, atol=1e-12)  # exact inverse
    torch.testing.assert_close(fast.inverse(z, c), masked.inverse(z, c), rtol=1e-12, atol=1e-12)


def test_checkerboard_coupling_refuses_a_vector_shape():
    with pytest.raises(ValueError, match="image shape"):
        CheckerboardCoupling((4,), 0, ConvConditioner(1, 4, 2))


@pytest.mark.parametrize(
    ("shape", "config"),
    [((1, 8, 8), {}), ((3, 4, 4), {"num_classes": 3, "num_scales": 1})],
    ids=["two_scales", "one_scale_classes"],
)
def test_a_realnvp_saved_with_masked_couplings_loads_and_gives_the_same_log_prob(shape, config):
    torch.manual_seed(0)
    old = dgm.create("realnvp", shape, architecture="conv", hidden_channels=6, **config)
    old = perturbed(masked_checkerboards(old), scale=0.2)
    assert not any(isinstance(m, CheckerboardCoupling) for m in old.modules())
    state = old.state_dict()
    new = dgm.create("realnvp", shape, architecture="conv", hidden_channels=6, **config)
    assert sum(isinstance(m, CheckerboardCoupling) for m in new.modules()) >= 4
    new = new.double().eval()
    new.load_state_dict(state)  # strict: the same keys and shapes
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, *shape, generator=g, dtype=torch.float64)
    c = torch.arange(6) % 3 if "num_classes" in config else None
    with torch.no_grad():
        lp_old, lp_new = old.log_prob(x, c), new.log_prob(x, c)
        torch.testing.assert_close(lp_new, lp_old, rtol=1e-12, atol=1e-10)
        draws = [
            m.sample(6, c, generator=torch.Generator().manual_seed(4)).double() for m in (old, new)
        ]
    torch.testing.assert_close(draws[1], draws[0], rtol=1e-10, atol=1e-10)
