"""DDIM's x_T as the DDPM's latent space: ``encode`` inverts the deterministic, unclipped
DDIM of ``decode`` exactly (each step's implicit equation solved per example), in float64;
the naive explicit inversion does not; a non-invertible step raises a clear error."""

import pytest
import torch
from torch.distributions import Independent, Normal

import dgm
from dgm.model import Encodable
from dgm.models.diffusion.inversion import inverse_step, naive_inverse_step
from dgm.models.diffusion.schedulers import DDIMScheduler

MODELS = {
    "mlp": ((3,), {"num_timesteps": 10, "hidden_size": 16}),
    "mlp-classes": ((3,), {"num_timesteps": 10, "hidden_size": 16, "num_classes": 3}),
    "mlp-context": (
        (3,),
        {"num_timesteps": 10, "hidden_size": 16, "context_shape": (2,), "condition_dropout": 0.2},
    ),
    "mlp-levels": ((4,), {"num_timesteps": 10, "hidden_size": 16, "num_levels": 16}),
    "unet-classes": ((1, 4, 3), {"num_timesteps": 4, "unet_channels": 4, "num_classes": 3}),
    "unet-levels": ((1, 4, 4), {"num_timesteps": 8, "unet_channels": 4, "num_levels": 256}),
}


def build(name: str) -> tuple[dgm.GenerativeModel, torch.Tensor, torch.Tensor | None]:
    shape, overrides = MODELS[name]
    torch.manual_seed(0)
    model = dgm.create("ddpm", shape, **overrides).double()
    g = torch.Generator().manual_seed(1)
    L = model.config.num_levels
    if L:
        x = torch.randint(L, (5, *shape), generator=g)
    else:
        x = torch.randn(5, *shape, generator=g, dtype=torch.float64)
    cond = model.conditioning
    c = None
    if cond.kind == "classes":
        c = torch.arange(5) % cond.num_classes
    elif cond.kind == "context":
        c = torch.rand(5, *cond.context_shape, generator=g, dtype=torch.float64)
    return model, x, c


def naive_encode(model, x, c):
    """Encode with the library's explicit (approximate) inversion of every step."""
    sched = model.latent_scheduler()
    y = model.to_model_scale(x)
    for t in reversed(sched.timesteps):
        y = naive_inverse_step(sched, model._eps_at(t, c)(y), t, y)
    return y


@pytest.mark.parametrize("name", list(MODELS))
def test_decode_inverts_encode_and_encode_inverts_decode(name):
    model, x, c = build(name)
    assert isinstance(model, Encodable)
    z = model.encode(x, c)
    assert z.shape == x.shape and z.dtype == torch.float64
    back = model.decode(z, c)
    if model.config.num_levels:
        assert back.dtype == torch.long and torch.equal(back, x)  # the integers, exactly
    else:
        torch.testing.assert_close(back, x, rtol=0, atol=1e-9)
    g = torch.Generator().manual_seed(2)
    z0 = torch.randn(z.shape, generator=g, dtype=torch.float64)  # x_T from the prior
    if not model.config.num_levels:  # levels round: decode is many-to-one there
        torch.testing.assert_close(model.encode(model.decode(z0, c), c), z0, rtol=0, atol=1e-9)


def test_naive_inversion_is_measurably_not_exact():
    model, x, c = build("mlp-context")
    exact = model.decode(model.encode(x, c), c)
    naive = model.decode(naive_encode(model, x, c), c)
    assert (exact - x).abs().max() < 1e-9
    assert (naive - x).abs().max() > 1e-4


def test_encode_follows_a_clipped_free_map_and_the_clipped_scheduler_is_refused():
    model, x, _ = build("mlp-levels")
    sched = model.latent_scheduler()
    assert sched.clip is None and sched.eta == 0
    assert model.scheduler("ddim").clip == 1.0  # sampling keeps its clipping
    clipped = DDIMScheduler(model.schedule, 5, clip=1.0)
    with pytest.raises(ValueError, match="clip=None"):
        inverse_step(clipped, lambda y: y, clipped.timesteps[0], x.double())


def test_a_step_that_cannot_be_inverted_names_the_step_and_the_fix():
    model, x, _ = build("mlp")
    with torch.no_grad():
        model.net.out.weight.mul_(100)  # ‖∂ε/∂x‖ ≫ 1: the step map folds over
    with pytest.raises(
        ValueError, match=r"did not converge at step t=\d+ -> s=-?\d+.*latent_steps"
    ):
        model.encode(x)
    sched = model.latent_scheduler()  # a step inside the chain names the next visited index
    t, s = sched.timesteps[0], sched.timesteps[1]
    with pytest.raises(ValueError, match=rf"at step t={t} -> s={s}:"):
        inverse_step(sched, model._eps_at(t, None), t, model.to_model_scale(x))


def test_prior_latent_steps_and_config_checks():
    model, x, _ = build("mlp")
    prior = model.prior()
    assert isinstance(prior, Independent) and isinstance(prior.base_dist, Normal)
    assert prior.event_shape == (3,) and prior.mean.dtype == torch.float64
    assert len(model.latent_scheduler().timesteps) == 10  # min(50, T)
    few = dgm.create("ddpm", (3,), num_timesteps=30, hidden_size=8, latent_steps=3).double()
    assert few.latent_scheduler().timesteps == [29, 14, 0]
    torch.testing.assert_close(few.decode(few.encode(x)), x, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match=r"latent_steps must lie in 0\.\.num_timesteps"):
        dgm.create("ddpm", (3,), num_timesteps=5, latent_steps=6)


def test_bits_back_refuses_the_deterministic_encoder():
    from dgm.tasks.compression.bits_back import check_bits_back

    model, _, _ = build("mlp-levels")
    with pytest.raises(ValueError, match=r"deterministically.*stochastic encoder"):
        check_bits_back(model)


def test_anderson_solves_each_rows_linear_map_in_d_plus_one_iterations():
    """On an affine map G(x) = A_b x + c_b with memory ≥ D, Anderson acceleration (any
    nonzero damping) is GMRES on (I − A_b) x = c_b (Walker & Ni 2011): each row is exact
    after D + 1 residuals. The rows' maps differ, so a least-squares problem shared by the batch
    (one Gram matrix for all rows) would not finish in that many iterations."""
    from dgm.models.diffusion.inversion import anderson

    gen = torch.Generator().manual_seed(0)
    b, d = 3, 4
    a = 0.45 * torch.randn(b, d, d, generator=gen, dtype=torch.float64) / d**0.5
    a[1] = a[1] * -1.5 + 0.2 * torch.eye(d, dtype=torch.float64)  # far from row 0's
    c = torch.randn(b, d, generator=gen, dtype=torch.float64)
    exact = torch.linalg.solve(torch.eye(d, dtype=torch.float64) - a, c)  # (B, D)

    def fixed_map(x):
        return (a @ x[..., None])[..., 0] + c

    x0 = torch.zeros(b, d, dtype=torch.float64)
    inf = torch.full((b,), float("inf"), dtype=torch.float64)
    for damping in (1.0, 0.5):  # any nonzero mixing (Potra & Engler 2013)
        best, err = anderson(fixed_map, x0, inf, 1e-12, d + 2, memory=d, damping=damping)
        assert (err <= 1e-12).all() and torch.allclose(best, exact, atol=1e-10, rtol=0)
    plain = x0
    for _ in range(d + 2):
        plain = fixed_map(plain)
    assert (plain - exact).abs().max() > 1e-4  # the plain iteration is far from done
