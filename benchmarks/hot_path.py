"""The training step's hot path: ``model.loss`` against a hand-written PyTorch loop.

The CS236 VAE (x = 784 binary pixels, z = 10, MLP 300-300, Bernoulli decoder), batch 97,
AdamW(lr 1e-3, fused=True) on every side, one torch thread. Four steps on the same batches
of statically binarized Fashion-MNIST, timed in one process:

- hand: the ELBO written out in torch ops on copies of the same networks, as one would
  write it without dgm (encoder, clamped log σ, reparameterised draw, Bernoulli
  log-likelihood by ``binary_cross_entropy_with_logits``, closed-form KL), then backward,
  ``opt.step()``, ``opt.zero_grad()``;
- dgm, checks on: ``model.loss(x).value.backward(); opt.step(); opt.zero_grad()`` with
  ``model.check_values = True`` (every call scans x for NaN and values off the support);
- dgm, checks off: the same with ``model.check_values = False``, as the trainer runs it
  after validating the whole dataset once up front;
- matrix products: the step's matrix products alone, on tensors of the same shapes: per
  linear layer the forward ``addmm``, the weight gradient and (except for the first layer,
  whose input x needs none) the input gradient.

Both losses are checked equal on the same weights and the same draw of z before timing.
After a warm-up, rounds of the four alternate (drift in the machine's speed hits all of
them); we report the median ms/step of each and the median of the per-round ratios.

    python -m benchmarks.hot_path [--quick]
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import dgm
from benchmarks import common
from benchmarks.common import (
    CS236_BATCH,
    CS236_LR,
    CS236_MODEL,
    busy_warning,
    fashion_mnist_root,
    fmt,
    log,
    markdown_table,
    one_thread,
    paired_ratio,
    summary,
    threads_label,
    timed_rounds,
    write_result,
)
from dgm.data import DataConfig

NAME = "hot_path"
SEED = 0
NUM_BATCHES = 16  # distinct batches cycled through by every side
LOG_STD_MIN, LOG_STD_MAX = -10.0, 3.0  # the VAE's clamp on log σ, written out by hand


class HandVAE(nn.Module):
    """The CS236 VAE step as one writes it by hand, on copies of a dgm VAE's networks."""

    def __init__(self, model: dgm.GenerativeModel) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(model.encoder)
        self.decoder = copy.deepcopy(model.decoder)

    def loss(self, x: Tensor) -> Tensor:
        x = x.flatten(1)  # (B, 784)
        mu, log_std = self.encoder(x).chunk(2, dim=-1)  # (B, z) each
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        std = log_std.exp()
        z = mu + std * torch.randn_like(mu)  # (B, z)
        logits = self.decoder(z)  # (B, 784)
        rec = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)  # (B,)
        kl = 0.5 * (mu.pow(2) + std.pow(2) - 1).sum(-1) - log_std.sum(-1)  # (B,)
        return (kl - rec).mean()


def matmul_step(layers: list[nn.Linear], batch: int) -> Callable[[], None]:
    """The matrix products of one training step of an MLP stack, alone: forward ``addmm``,
    weight gradient and (past the first layer) input gradient of every linear layer."""
    shapes = []
    for i, layer in enumerate(layers):
        a = torch.randn(batch, layer.in_features)  # (B, in): the layer's input
        g = torch.randn(batch, layer.out_features)  # (B, out): the gradient of its output
        shapes.append((i, layer.weight.detach(), layer.bias.detach(), a, g))

    def step() -> None:
        for i, w, b, a, g in shapes:
            torch.addmm(b, a, w.T)  # forward (B, out)
            torch.mm(g.T, a)  # weight gradient (out, in)
            if i > 0:
                torch.mm(g, w)  # input gradient (B, in)

    return step


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def _adamw(params: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=CS236_LR, fused=True)


def run(quick: bool = False) -> dict[str, Any]:
    steps, rounds, warmup = (50, 11, 100) if quick else (100, 31, 300)
    with one_thread():
        return _run(quick, steps, rounds, warmup)


def _run(quick: bool, steps: int, rounds: int, warmup: int) -> dict[str, Any]:
    data = DataConfig(name="fashion_mnist", root=fashion_mnist_root(), binarize="static")
    train = data.load("train")
    batches = [train.x[i * CS236_BATCH : (i + 1) * CS236_BATCH].clone() for i in range(NUM_BATCHES)]
    torch.manual_seed(SEED)
    model = dgm.create("vae", train.event_shape, **CS236_MODEL).train()
    hand = HandVAE(model).train()

    # the same loss on the same weights and the same draw of z
    torch.manual_seed(SEED)
    dgm_value = model.loss(batches[0]).value.item()
    torch.manual_seed(SEED)
    hand_value = hand.loss(batches[0]).item()
    if abs(dgm_value - hand_value) > 1e-3 * abs(hand_value):
        raise SystemExit(f"the hand loop computes {hand_value}, dgm {dgm_value}: not the same")

    dgm_opt, hand_opt = _adamw(model.parameters()), _adamw(hand.parameters())
    matmuls = matmul_step(_linears(model.encoder) + _linears(model.decoder), CS236_BATCH)

    def dgm_round(check_values: bool) -> float:
        model.check_values = check_values
        t0 = time.perf_counter()
        for i in range(steps):
            model.loss(batches[i % NUM_BATCHES]).value.backward()
            dgm_opt.step()
            dgm_opt.zero_grad()
        return time.perf_counter() - t0

    def hand_round() -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            hand.loss(batches[i % NUM_BATCHES]).backward()
            hand_opt.step()
            hand_opt.zero_grad()
        return time.perf_counter() - t0

    def matmul_round() -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            matmuls()
        return time.perf_counter() - t0

    sides: dict[str, Callable[[], float]] = {
        "hand": hand_round,
        "dgm_checks_on": lambda: dgm_round(True),
        "dgm_checks_off": lambda: dgm_round(False),
        "matmuls": matmul_round,
    }
    warning = busy_warning()
    if warning:
        log(warning)
    t_start = time.perf_counter()
    ms = timed_rounds(sides, rounds=rounds, steps=steps, warmup=warmup)
    wall = time.perf_counter() - t_start
    model.check_values = True

    def paired(a: str, b: str) -> float:
        return paired_ratio(ms[a], ms[b])

    med = {name: statistics.median(v) for name, v in ms.items()}
    payload = {
        "description": "ms/step of model.loss vs a hand-written ELBO loop vs the matrix "
        "products alone, CS236 VAE, fused AdamW, one thread",
        "model": "vae",
        "model_config": {**CS236_MODEL, "hidden_sizes": list(CS236_MODEL["hidden_sizes"])},
        "data": dataclasses.asdict(data),
        "batch_size": CS236_BATCH,
        "batches_cycled": NUM_BATCHES,
        "optimizer": f"AdamW(lr={CS236_LR}, fused=True), one per side",
        "threads": 1,
        "steps_per_round": steps,
        "rounds": rounds,
        "warmup_steps": warmup,
        "order": "hand, dgm checks on, dgm checks off, matmuls in each round, after a warm-up",
        "loss_check": {"dgm": dgm_value, "hand": hand_value},
        "ms_per_step": med,
        "ms_per_step_rounds": ms,
        "ms_per_step_summary": {name: summary(v) for name, v in ms.items()},
        # each round's ratio: robust to drift in the machine's speed across rounds
        "ratio_dgm_checks_on_over_hand": paired("dgm_checks_on", "hand"),
        "ratio_dgm_checks_off_over_hand": paired("dgm_checks_off", "hand"),
        "ratio_hand_over_matmuls": paired("hand", "matmuls"),
        "ratio_dgm_checks_on_over_matmuls": paired("dgm_checks_on", "matmuls"),
        "ratio_dgm_checks_off_over_matmuls": paired("dgm_checks_off", "matmuls"),
        "busy_warning": warning,
    }
    path = write_result(
        NAME, payload, quick=quick, seed=SEED, steps=steps * rounds, wall_time_s=wall
    )
    log(
        f"hot path: hand {med['hand']:.3f} ms/step, dgm {med['dgm_checks_on']:.3f} (checks on, "
        f"x{payload['ratio_dgm_checks_on_over_hand']:.3f}) / {med['dgm_checks_off']:.3f} "
        f"(checks off, x{payload['ratio_dgm_checks_off_over_hand']:.3f}), matrix products "
        f"{med['matmuls']:.3f}  -> {path}"
    )
    return payload


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: the four steps' ms/step and ratios."""
    ms = record["ms_per_step"]
    on, off = record["ratio_dgm_checks_on_over_hand"], record["ratio_dgm_checks_off_over_hand"]
    hand_mm = record["ratio_hand_over_matmuls"]
    rows = [
        ["hand-written PyTorch loop", fmt(ms["hand"], 3), "1", fmt(hand_mm, 2)],
        [
            "dgm `model.loss`, value checks on",
            fmt(ms["dgm_checks_on"], 3),
            fmt(on, 3),
            fmt(record.get("ratio_dgm_checks_on_over_matmuls"), 2),
        ],
        [
            "dgm `model.loss`, value checks off (as `fit` runs it)",
            fmt(ms["dgm_checks_off"], 3),
            fmt(off, 3),
            fmt(record["ratio_dgm_checks_off_over_matmuls"], 2),
        ],
        ["matrix products alone", fmt(ms["matmuls"], 3), fmt(1 / hand_mm, 3), "1"],
    ]
    return [
        f"**Training-step hot path** (CS236 VAE, batch {record['batch_size']}, "
        f"AdamW fused, {threads_label(record['threads'])}; median of {record['rounds']} "
        f"alternating rounds of {record['steps_per_round']} steps; ratios are per-round "
        "medians; a step is forward, backward and optimizer step):",
        "",
        *markdown_table(["step", "ms/step", "÷ hand loop", "÷ matrix products"], rows),
    ]


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "fewer, shorter rounds; results/quick/", argv)


if __name__ == "__main__":
    raise SystemExit(main())
