"""The energy-based model's mechanics: SGLD under no_grad, the replay buffer as model
state, completion on the missing dimensions only, score matching in validation, and the
errors that name their fix."""

import pytest
import torch

import dgm
from dgm.model import Completable, Likelihood
from dgm.models.energy.sgld import SGLD


def small(**config):
    config = {"hidden_sizes": (8,), "replay_size": 32, "sgld_steps": 3, **config}
    return dgm.create("ebm", (2,), **config).double()


def test_sampling_under_no_grad_uses_input_gradients_and_leaves_no_parameter_gradients():
    model = small()
    start = model._uniform((6, 2), torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = model.sample(6, generator=torch.Generator().manual_seed(0), steps=5)
        out = model.complete(torch.zeros(6, 2, dtype=torch.float64), torch.tensor([True, False]))
    assert not torch.equal(x, start)  # the chains moved
    assert not x.requires_grad and not out.requires_grad
    assert all(p.grad is None for p in model.parameters())
    model.loss(torch.randn(4, 2, dtype=torch.float64)).value.backward()
    before = [p.grad.clone() for p in model.parameters()]
    model.sample(3, steps=4)  # grad enabled: still only x's gradient is taken
    assert all(torch.equal(a, p.grad) for a, p in zip(before, model.parameters(), strict=True))


def test_zero_noise_sgld_descends_the_energy_and_a_step_keeps_frozen_entries():
    model = small()
    with torch.no_grad():
        start = model.sample(64, generator=torch.Generator().manual_seed(1), steps=0)
        end = model.sample(64, generator=torch.Generator().manual_seed(1), steps=50, noise=0.0)
        assert model.energy(end).mean() < model.energy(start).mean()
    sgld = SGLD(step_size=0.1, clamp=(-1.0, 1.0))
    x = torch.zeros(5, 3)
    frozen = torch.tensor([True, False, True])
    moved = sgld.step(x, torch.full_like(x, -100.0), movable=~frozen)
    assert (moved[:, frozen] == 0).all() and (moved[:, ~frozen] == 1).all()  # clamped at 1


def test_an_sgld_step_adds_noise_of_std_tau_times_root_two_epsilon():
    """x' = x − ε ∇E + τ √(2ε) ξ: with ∇E = 0 the increments' std is τ √(2ε), at τ = 0.5
    (τ = 0 and τ = 1, the other tests' values, hide τ read as √τ)."""
    sgld = SGLD(step_size=0.02, noise=0.5)
    x = torch.zeros(20000, dtype=torch.float64)
    out = sgld.step(x, torch.zeros_like(x), torch.Generator().manual_seed(0))
    assert abs(out.std().item() - 0.5 * (2 * 0.02) ** 0.5) < 0.004


def test_the_replay_buffer_is_updated_in_training_read_only_in_validation_and_saved():
    model = small()
    x = torch.randn(8, 2, dtype=torch.float64)
    before = model.replay.clone()
    model.eval()
    with torch.no_grad():
        model.loss(x)
    assert torch.equal(model.replay, before)  # validation leaves the chains alone
    model.train()
    model.loss(x)
    changed = (model.replay != before).any(-1)
    assert changed.sum() == 8  # one distinct chain per example went back
    assert "replay" in model.state_dict()
    with torch.no_grad():
        again = model.sample(5, generator=torch.Generator().manual_seed(0), init="replay", steps=0)
    assert (again[:, None] == model.replay[None]).all(-1).any(-1).all()  # drawn from the buffer


def test_score_matching_has_no_buffer_and_validates_under_no_grad():
    model = small(objective="dsm")
    assert "replay" not in model.state_dict()
    x = torch.randn(8, 2, dtype=torch.float64)
    with torch.no_grad():
        out = model.loss(x)
    assert torch.isfinite(out.value) and not out.value.requires_grad
    with pytest.raises(ValueError, match="objective='cd'"):
        model.sample(2, init="replay")


def test_completion_moves_only_the_missing_dimensions():
    model = dgm.create("ebm", (1, 2, 3), hidden_sizes=(8,)).double()
    assert isinstance(model, Completable) and model.likelihood is Likelihood.NONE
    x = torch.randn(4, 1, 2, 3, dtype=torch.float64)
    mask = torch.rand(4, 1, 2, 3) < 0.5
    x_nan = torch.where(mask, x, torch.nan)  # NaN in the missing part is allowed
    out = model.complete(x_nan, mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[mask], x[mask]) and torch.isfinite(out).all()
    again = model.complete(x_nan, mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_likelihood_is_exact_up_to_two_dimensions_and_none_above():
    assert small().likelihood is Likelihood.EXACT
    one = dgm.create("ebm", (1,), hidden_sizes=(4,))
    assert one.likelihood is Likelihood.EXACT and one.log_normalizer().shape == (1,)
    three = dgm.create("ebm", (3,), hidden_sizes=(4,))
    assert three.likelihood is Likelihood.NONE
    with pytest.raises(NotImplementedError, match=r"no likelihood.*energy"):
        three.log_prob(torch.zeros(2, 3))
    assert three.energy(torch.zeros(2, 3)).shape == (2,)


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"images \(C, H, W\).*mlp"):
        dgm.create("ebm", (4,), architecture="conv")
    with pytest.raises(ValueError, match="replay_size >= 8"):
        small(replay_size=4).loss(torch.randn(8, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="step_size must be positive"):
        small(sgld_step_size=0.0)
    with pytest.raises(ValueError, match="init_range"):
        small(init_range=(1.0, -1.0))
    with pytest.raises(ValueError, match="noise must be >= 0"):
        small().sample(2, noise=-1.0)


def test_a_class_conditional_completion_runs_sgld_on_the_energy_of_the_given_class():
    """complete(x, mask, c): every energy the chains descend is E(x, c), and completing
    with another class gives another completion (unconditional tests hide a dropped c)."""
    model = small(num_classes=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)).double())
    seen = []
    energy = model._energy
    model._energy = lambda z, c, f=energy: (seen.append(c), f(z, c))[1]
    x, mask = torch.zeros(4, 2, dtype=torch.float64), torch.tensor([True, False])
    c = torch.tensor([0, 1, 2, 1])
    out = model.complete(x, mask, c, generator=torch.Generator().manual_seed(1))
    assert seen and all(got is not None and torch.equal(got, c) for got in seen)
    other = model.complete(x, mask, (c + 1) % 3, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(out, other)


def test_the_conv_energy_reads_every_pixel_of_a_non_square_image():
    """The conv energy pools its last feature map over every position: each pixel of an
    8 x 12 image moves the energy (reading one position would leave most pixels out)."""
    torch.manual_seed(0)
    model = dgm.create("ebm", (1, 8, 12), architecture="conv", conv_channels=4).double()
    x = torch.rand(3, 1, 8, 12, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(model.energy(x).sum(), x)
    assert (grad.abs().amax(0) > 0).all()
