"""benchmarks/side_by_side_diffusion.py compares like with like: both sides' networks see the
same noisy batches at the same timesteps during training, both losses regress the same ε,
and the diffusers schedulers as configured there are dgm's samplers' math (the same x_T and
step noise give the same images). Synthetic 8×8 images: no dataset needed."""

import types

import pytest
import torch
from torch import Tensor, nn

from helpers import BENCH_EXTRA

pytest.importorskip("diffusers", reason=BENCH_EXTRA)
from benchmarks import side_by_side_diffusion as bench

from dgm.models.diffusion.schedules import NoiseSchedule, betas_for

SHAPE, LEVELS = (1, 8, 8), 256


class OursStub(nn.Module):
    """dgm's ε network replaced by a fixed map of x_t: ε̂ = a x_t + b."""

    def forward(
        self, x: Tensor, t: Tensor, label: Tensor | None = None, extra: Tensor | None = None
    ):
        return 0.5 * x + 0.05


class PeerStub(nn.Module):
    """The same map with diffusers' call and output: ``unet(x_t, t).sample``."""

    def forward(self, sample: Tensor, timestep: Tensor) -> types.SimpleNamespace:
        return types.SimpleNamespace(sample=0.5 * sample + 0.05)


def stub_pair() -> bench.Pair:
    pair = bench.Pair.build(SHAPE, LEVELS, 8, seed=0)
    pair.ours.net, pair.unet = OursStub(), PeerStub()
    return pair


def test_both_networks_see_the_same_noisy_batches_and_timesteps_in_training():
    pair = bench.Pair.build(SHAPE, LEVELS, 8, seed=0)
    seen: dict[str, list[tuple[Tensor, Tensor]]] = {"dgm": [], bench.PEER: []}
    for name, net in (("dgm", pair.ours.net), (bench.PEER, pair.unet)):
        net.register_forward_pre_hook(
            lambda m, args, name=name: seen[name].append((args[0].detach(), args[1]))
        )
    train = torch.randint(LEVELS, (40, *SHAPE), generator=torch.Generator().manual_seed(1))
    times, last = bench.train_pair(pair, train, seed=3, steps=3)
    assert len(seen["dgm"]) == len(seen[bench.PEER]) == 3
    for (x_ours, t_ours), (x_peer, t_peer) in zip(seen["dgm"], seen[bench.PEER], strict=True):
        assert torch.equal(t_ours, t_peer)  # the order of the steps alternates: still equal
        torch.testing.assert_close(x_peer, x_ours, rtol=0, atol=1e-5)
    assert not torch.equal(seen["dgm"][0][1], seen["dgm"][1][1])  # fresh t's every step
    assert all(len(v) == 3 for v in times.values()) and set(last) == {"dgm", bench.PEER}


def test_both_losses_regress_the_same_eps():
    pair = stub_pair()
    x = torch.randint(LEVELS, (6, *SHAPE), generator=torch.Generator().manual_seed(2))
    losses = pair.losses()
    values = {}
    for name, loss in losses.items():
        torch.manual_seed(7)
        values[name] = loss(x).item()
    torch.manual_seed(7)  # by hand: t, then ε, from the global generator
    t = torch.randint(1000, (6,))
    eps = torch.randn(6, *SHAPE)
    ab = NoiseSchedule(betas_for("linear", 1000)).alphas_cumprod[t].float().reshape(-1, 1, 1, 1)
    x_t = ab.sqrt() * (x.float() / 127.5 - 1) + (1 - ab).sqrt() * eps
    expected = (0.5 * x_t + 0.05 - eps).pow(2).mean().item()
    assert values["dgm"] == pytest.approx(expected, rel=1e-5)
    assert values[bench.PEER] == pytest.approx(expected, rel=1e-5)
    torch.manual_seed(8)  # other noise: a different loss, so the check can fail
    assert losses[bench.PEER](x).item() != pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_the_diffusers_samplers_are_dgms_math_from_the_same_noise(sampler):
    pair = stub_pair()
    drawn = bench.sample_pair(pair, 3, sampler, 1000, seed=4)  # every step: the same indices
    ours, peer = drawn["dgm"]["x"], drawn[bench.PEER]["x"]
    assert ours.shape == peer.shape == (3, *SHAPE) and ours.dtype == peer.dtype == torch.long
    assert (ours - peer).abs().max() <= 1  # float32 coefficients may move a rounding
    assert (ours == peer).float().mean() > 0.95
    assert ours.float().std() > 0  # not a constant image that any sampler would match
    other = bench.sample_pair(pair, 3, sampler, 1000, seed=5)["dgm"]["x"]
    assert (other != ours).float().mean() > 0.2


def test_reading_names_the_side_whose_interval_excludes_zero():
    def side(bits: float, fd: float) -> dict:
        quality = {"fd": fd, "kid": 0.0, "precision": 0.5, "recall": 0.5}
        return {
            "bits_per_dim": bits,
            "ddim": quality,
            "ms_per_step": 1.0,
            "ddim_ms_per_sample": 1.0,
            "ancestral_ms_per_sample": 1.0,
            "multiply_adds_per_image": 1.0,
        }

    per_seed = [
        {"dgm": side(3.0 + e, 50 + e), bench.PEER: side(3.5, 50 - e)} for e in (0.0, 0.1, -0.1)
    ]
    record = bench.summarise(per_seed) | {"per_seed": per_seed, "budget": {"steps": 10}}
    text = bench.reading(record)
    assert "bits/dim better for dgm (-0.500)" in text
    assert "FD not distinguishable" in text


def test_both_ddim_samplers_start_at_the_last_timestep_and_visit_50_steps():
    from dgm.models.diffusion.schedulers import spaced_timesteps

    pair = bench.Pair.build(SHAPE, LEVELS, 8, seed=0)
    pair.ddim.set_timesteps(50)
    peer = pair.ddim.timesteps.tolist()
    ours = spaced_timesteps(1000, 50)
    # the docstring's schedules: diffusers' "trailing" 999, 979, ..., 19 (its default
    # "leading" would start at 980), dgm's round(linspace(999, 0, 50))
    assert peer == list(range(999, 0, -20))
    assert ours[0] == peer[0] == 999 and ours[-1] == 0 and len(ours) == len(peer) == 50
