"""dgm's samplers against pytorch-generative's own ``sample``: MADE, NADE and PixelCNN.

The sampling part of ``benchmarks/side_by_side_autoregressive.py`` (its ``--sampling``
flag), whose rows it fills: for each model pair and seed, both models are built as that
benchmark builds them (seeded, untrained: a sampler's cost does not depend on the weights),
then ``SAMPLE_BATCH`` images are drawn by dgm's ``sample`` and by the peer's ``sample``,
alternating which goes first, timed in CPU seconds of the process at one torch thread.
Per seed: the median over the repeats of each side and the speed-up peer ÷ dgm of those
medians; over the seeds the speed-up's mean with a 95 % t-interval.

What is sampled, and what is checked:

- NADE: dgm's O(H D) recursion (one hidden update per dimension) against the peer's
  ``_forward`` loop, also O(H D). The peer's four tensors are copied into dgm's NADE (the
  same function: checked by log p of test images agreeing to ``COPY_TOLERANCE``), so both
  sides draw from one distribution.
- MADE: both samplers run the network once per dimension (D passes). The peer's weights,
  biases, masks and order are copied into dgm's MADE, checked the same way.
- PixelCNN: dgm's incremental sampler (cached activations, ``sample(fast=True)``) against
  the peer's base-class loop, one full network pass per pixel. The networks differ (see
  the benchmark's differences), so no weights are copied: the check is that both give
  binary images of the right shape.

Where the weights are copied, both sides draw with the same seed (dgm through its
``generator``, the peer through torch's global one) and the check is that they draw the
same pixels: both compare one uniform per image and dimension, in the same order, with
the same probability, so one distribution gives one image. That is stronger than a test on
samples, and it fails when either sampler's order, conditionals or use of the random
stream differs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import dgm

SAMPLE_BATCH = 16  # images per sampling call, both sides
REPEATS = {"made": 3, "nade": 5, "pixelcnn": 1}  # calls per side and seed (PixelCNN's peer: ~30 s)
QUICK_REPEATS = 1
COPY_TOLERANCE = 1e-2  # nats: max |log p dgm − log p peer| on test images after a copy


def copy_nade(ours: nn.Module, peer: nn.Module) -> None:
    """The peer NADE's input weights, hidden bias, output weights and output bias into
    dgm's (the same parametrisation: W (H, D), c (H,), V (D, H), b (D,))."""
    state = peer.state_dict()
    ours.load_state_dict(
        {"W": state["_in_W"], "c": state["_in_b"], "V": state["_h_W"], "b": state["_h_b"]}
    )


def copy_made(ours: nn.Module, peer: nn.Module) -> None:
    """The peer MADE's weights, biases and masks (its one mask set) into dgm's, and its
    order: the peer gives every input a degree, drawing inputs by increasing degree, so
    dgm's ordering (the dimensions in drawing order) is the argsort of those degrees."""
    masks, degrees = peer._sample_masks()  # the peer's (seeded) mask set, as forward uses it
    linears = [m for m in peer.modules() if isinstance(m, nn.Linear)]
    state: dict[str, Tensor] = {"net.orderings": torch.from_numpy(np.argsort(degrees))[None]}
    for k, (layer, mask) in enumerate(zip(linears, masks, strict=True)):
        state[f"net.layers.{k}.weight"] = layer.weight.detach()
        state[f"net.layers.{k}.bias"] = layer.bias.detach()
        state[f"net.layers.{k}.mask"] = mask[None].float()  # (1, out, in): one mask set
    ours.load_state_dict(state)


COPIERS: dict[str, Callable[[nn.Module, nn.Module], None]] = {
    "nade": copy_nade,
    "made": copy_made,
}


def is_binary_image_batch(x: Tensor, n: int, shape: tuple[int, ...]) -> bool:
    """True when ``x`` is ``n`` images of ``shape`` with every value 0 or 1."""
    return tuple(x.shape) == (n, *shape) and bool(((x == 0) | (x == 1)).all())


def alternate(
    samplers: dict[str, Callable[[int], Tensor]], repeats: int, seed: int
) -> tuple[dict[str, list[float]], dict[str, list[Tensor]]]:
    """``repeats`` calls of each sampler (argument: a seed for its draws), which goes first
    alternating by call; CPU seconds and draws per side."""
    seconds: dict[str, list[float]] = {k: [] for k in samplers}
    draws: dict[str, list[Tensor]] = {k: [] for k in samplers}
    for r in range(repeats):
        names = list(samplers) if (r + seed) % 2 == 0 else list(reversed(samplers))
        for name in names:
            t0 = time.process_time()
            draws[name].append(samplers[name](1000 * seed + r))
            seconds[name].append(time.process_time() - t0)
    return seconds, draws


def sample_seed(
    pair: Any,
    peer_classes: dict[str, type],
    test: Tensor,
    seed: int,
    repeats: int,
) -> dict[str, Any]:
    """One seed of one pair: both models built at ``seed``, the peer's weights copied into
    dgm's where ``COPIERS`` can, both samplers timed alternating, the draws checked."""
    shape = tuple(test.shape[1:])
    torch.manual_seed(seed)
    ours = dgm.create(pair.dgm_name, shape, **pair.dgm_config).eval()
    torch.manual_seed(seed)
    peer = pair.peer(peer_classes).eval()
    with torch.no_grad():
        peer(test[:1])  # the peer learns its image shape from a first 4-D forward
    out: dict[str, Any] = {"seed": seed, "copied": pair.dgm_name in COPIERS}
    if out["copied"]:
        COPIERS[pair.dgm_name](ours, peer)
        with torch.no_grad():
            x = test[:64]
            gap = (ours.log_prob(x) + pair.peer_nll(peer, x)).abs().max().item()
        out["copy_max_abs_diff"] = gap
        if not gap < COPY_TOLERANCE:
            raise SystemExit(f"{pair.label}: dgm with the peer's weights differs by {gap} nats")

    def peer_sample(s: int) -> Tensor:
        torch.manual_seed(s)  # the peer draws from torch's global generator
        return peer.sample(SAMPLE_BATCH)

    samplers = {
        "dgm": lambda s: ours.sample(SAMPLE_BATCH, generator=torch.Generator().manual_seed(s)),
        "peer": peer_sample,
    }
    seconds, draws = alternate(samplers, repeats, seed)
    out["seconds"] = seconds
    out["median_s"] = {k: statistics.median(v) for k, v in seconds.items()}
    out["speedup"] = out["median_s"]["peer"] / out["median_s"]["dgm"]
    out["valid"] = all(
        is_binary_image_batch(d, SAMPLE_BATCH, shape) for v in draws.values() for d in v
    )
    if out["copied"]:  # the same seed per call on both sides: the same pixels
        pairs = list(zip(draws["dgm"], draws["peer"], strict=True))
        out["same_pixels"] = all(torch.equal(a, b) for a, b in pairs)
        out["equal_pixel_fraction"] = statistics.fmean(
            (a == b).float().mean().item() for a, b in pairs
        )
    return out


def summarise(per_seed: list[dict[str, Any]], interval: Callable[[list[float]], Any]) -> dict:
    """Over the seeds: the speed-up's interval, whether every draw was a valid image, and
    (weights copied) whether both sides drew the same pixels in every call."""
    out: dict[str, Any] = {
        "speedup": interval([s["speedup"] for s in per_seed]),
        "valid": all(s["valid"] for s in per_seed),
        "copied": all(s["copied"] for s in per_seed),
    }
    if out["copied"]:
        out["same_pixels"] = all(s["same_pixels"] for s in per_seed)
        out["equal_pixel_fraction"] = min(s["equal_pixel_fraction"] for s in per_seed)
    return out


def check_cell(sampling: dict[str, Any]) -> str:
    """The table's check cell: the same pixels where the weights were copied, else the
    validity of the images."""
    if not sampling["valid"]:
        return "NOT binary images of the right shape"
    if not sampling["copied"]:
        return "binary images of the right shape (networks differ: no weights copied)"
    if sampling["same_pixels"]:
        return "same pixels from the same seed (weights copied)"
    return f"pixels DIFFER from the same seed: {100 * sampling['equal_pixel_fraction']:.1f} % equal"


def seconds_cell(per_seed: list[dict[str, Any]], side: str) -> str:
    """Mean over the seeds of a side's median seconds per call."""
    mean = statistics.fmean(s["median_s"][side] for s in per_seed)
    return f"{mean:.3g}"
