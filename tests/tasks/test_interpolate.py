"""Interpolation and latent arithmetic, through ``Encodable`` only: for every registered
Encodable variant of the contract test (VAEs, GMVAE, the flows, later families too) the
path's ends decode to the model's reconstructions and a zero attribute vector is the
identity; slerp keeps the norm of equal-norm codes exactly and of Gaussian codes
approximately; the attribute vector is the difference of class means."""

import math

import pytest
import torch
from torch.distributions import Distribution

import dgm
from dgm.model import Encodable
from dgm.registry import spec
from dgm.tasks.interpolate import arithmetic, attribute_vector, interpolate, lerp, path, slerp
from dgm.tasks.represent import codes, reconstruct
from test_contract import IDS, VARIANTS, build, conditions

ENCODABLE = [
    pytest.param(v, id=i)
    for v, i in zip(VARIANTS, IDS, strict=True)
    if v[0] in dgm.available_models() and issubclass(spec(v[0]).cls, Encodable)
]


def test_some_encodable_variants_are_covered():
    names = {p.values[0][0] for p in ENCODABLE}
    assert {"vae", "gmvae", "realnvp", "ddpm"} <= names  # ddpm: DDIM's x_T


def encode_once(model) -> None:
    """Make a deterministic encoder (a flow's f, DDPM's DDIM inversion, which solves a
    fixed point per step) run once per input: the tasks below encode the same two inputs
    five times. The first call is the model's own; an encoder returning a distribution is
    left as it is."""
    original, seen = model.encode, []

    def same(a, b):
        return (a is None and b is None) or (
            a is not None and b is not None and a.shape == b.shape and torch.equal(a, b)
        )

    def encode(x, c=None):
        for x0, c0, z in seen:
            if same(x0, x) and same(c0, c):
                return z.clone()
        z = original(x, c)
        if not isinstance(z, Distribution):
            seen.append((x.clone(), None if c is None else c.clone(), z.clone()))
        return z

    model.encode = encode


@pytest.mark.parametrize("variant", ENCODABLE)
def test_ends_decode_to_reconstructions_and_zero_vector_is_identity(variant):
    model, x, g = build(variant)
    c = conditions(model, 2, g)
    x = x[:2]
    encode_once(model)
    rec = reconstruct(model, x, c)
    for method in ("lerp", "slerp"):
        strip = interpolate(model, x, 5, method, c)
        assert strip.shape == (5, *model.event_shape)
        torch.testing.assert_close(strip[0], rec[0])
        torch.testing.assert_close(strip[-1], rec[1])
    if not isinstance(model.encode(x, c), Distribution):  # a bijection: rec is x itself
        torch.testing.assert_close(rec, x.to(rec.dtype))
    zero = torch.zeros(codes(model, x, c).shape[1:], dtype=torch.float64)
    grid = arithmetic(model, x, zero, (0.0, 1.0, 2.5), c)
    assert grid.shape == (2, 3, *model.event_shape)
    for s in range(3):
        torch.testing.assert_close(grid[:, s], rec)


def test_slerp_keeps_equal_norms_exactly_and_ends_are_the_codes():
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(20, 3, 4, generator=g, dtype=torch.float64)
    z1 = torch.randn(20, 3, 4, generator=g, dtype=torch.float64)
    z1 = z1 / z1.flatten(1).norm(dim=1).view(-1, 1, 1) * z0.flatten(1).norm(dim=1).view(-1, 1, 1)
    t = torch.rand(50, generator=g, dtype=torch.float64)
    arc = slerp(z0, z1, t)  # (50, 20, 3, 4)
    norms = arc.flatten(2).norm(dim=2)  # (50, 20)
    torch.testing.assert_close(norms, z0.flatten(1).norm(dim=1).expand(50, 20))
    ends = path(z0, z1, 7, "slerp")
    torch.testing.assert_close(ends[0], z0)
    torch.testing.assert_close(ends[-1], z1)
    assert (lerp(z0, z1, t).flatten(2).norm(dim=2) <= norms + 1e-12).all()  # chords cut in


def test_slerp_keeps_gaussian_code_norms_where_lerp_shrinks_them():
    d, n = 400, 300
    g = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(2, n, d, generator=g, dtype=torch.float64)
    half = torch.tensor([0.5], dtype=torch.float64)
    ratio_s = slerp(z0, z1, half)[0].norm(dim=1) / math.sqrt(d)  # (n,)
    ratio_l = lerp(z0, z1, half)[0].norm(dim=1) / math.sqrt(d)
    # |z|/√d ≈ 1 ± 1/√(2d) = ± 0.035 per draw; the means over n draws sit within 0.01
    assert abs(float(ratio_s.mean()) - 1) < 0.01 and float(ratio_s.std()) < 0.06
    assert abs(float(ratio_l.mean()) - math.sqrt(0.5)) < 0.01


def test_slerp_of_parallel_codes_is_the_line():
    z0 = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    t = torch.linspace(0, 1, 4, dtype=torch.float64)
    torch.testing.assert_close(slerp(z0, 3 * z0, t), lerp(z0, 3 * z0, t))


def test_attribute_vector_is_the_difference_of_class_mean_codes():
    model = dgm.create("realnvp", (3,), num_couplings=2, hidden_sizes=(8,)).double()
    x = torch.randn(12, 3, dtype=torch.float64)
    y = torch.arange(12) % 3
    z = model.encode(x).detach()
    v = attribute_vector(model, x, y, 2, 0)
    torch.testing.assert_close(v, z[y == 2].mean(0) - z[y == 0].mean(0))
    shifted = arithmetic(model, x[:2], v, (1.0,))[:, 0]  # decode(z + v), exact for a flow
    torch.testing.assert_close(model.encode(shifted).detach(), z[:2] + v)
    with pytest.raises(ValueError, match="no example of class 5"):
        attribute_vector(model, x, y, 5, 0)


def test_errors_name_the_fix():
    fvsbn = dgm.create("fvsbn", (1, 2, 2))
    x = torch.zeros(2, 1, 2, 2)
    with pytest.raises(ValueError, match=r"not Encodable.*vae"):
        interpolate(fvsbn, x)
    vae = dgm.create("vae", (1, 2, 2), latent_dim=2, hidden_sizes=(4,))
    with pytest.raises(ValueError, match="expected the 2 ends"):
        interpolate(vae, torch.zeros(3, 1, 2, 2))
    with pytest.raises(ValueError, match="at least 2 steps"):
        interpolate(vae, x, steps=1)
    with pytest.raises(ValueError, match="choose one of lerp, slerp"):
        interpolate(vae, x, method="cubic")
    with pytest.raises(ValueError, match=r"expected one code's shape \(2,\)"):
        arithmetic(vae, x, torch.zeros(3))
