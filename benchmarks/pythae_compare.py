"""The CS236 VAE training step in dgm against the same VAE in pythae (a peer library).

x = 784 binary pixels, z = 10, MLP 300-300 with ReLU encoder and decoder, Bernoulli
decoder, batch 97, lr 1e-3, one torch thread, the same statically binarized Fashion-MNIST
batches for every side. Three steps, each on its own copy of the same initial weights:

- dgm: ``model.loss(x).value.backward(); opt.step(); opt.zero_grad()`` with
  ``model.check_values = False`` (as ``fit`` runs it) and the trainer's own optimizer,
  ``dgm.train.optim.build_optimizer`` (AdamW, weight decay 0, fused where torch has the
  kernel);
- pythae, default Adam: ``model({"data": x}).loss.backward(); opt.step(); opt.zero_grad()``
  on ``pythae.models.VAE(VAEConfig(reconstruction_loss="bce"), encoder, decoder)`` with
  ``torch.optim.Adam(lr=1e-3)``, what pythae's trainer builds by default
  (``optimizer_cls="Adam"``; torch's single-tensor loop on the CPU);
- pythae, fused Adam: the same with ``torch.optim.Adam(lr=1e-3, fused=True)``.

pythae's encoder and decoder are ``BaseEncoder``/``BaseDecoder`` modules with dgm's layers
(one final 300 -> 20 layer split into the mean and log-variance, a final sigmoid for the
Bernoulli means); their weights are copied from the dgm model, with the log-σ half of the
encoder's last layer doubled so that pythae's log-variance is 2 log σ.

Both objectives are the negative ELBO per example, summed over the pixels, averaged over
the batch, with the closed-form KL to N(0, I): checked equal on the same weights and the
same draw of z before timing. The differences are numerical only: pythae takes the
binary cross-entropy of sigmoid probabilities (log clamped at -100), dgm of logits
(``binary_cross_entropy_with_logits``); dgm clamps log σ to [-10, 3], pythae does not
clamp its log-variance.

After a warm-up, rounds of the three alternate, the order rotating each round; we report
the median ms/step of each and the median of the per-round ratios dgm / pythae.

pythae is a bench-only extra (``pip install -c constraints.txt -e '.[bench]'``), never a
dependency of dgm.

    python -m benchmarks.pythae_compare [--quick] [--threads 2]

``--threads 2`` trains nothing for the table above: for each pythae side it rebuilds the
three models from the same seed as the run does and times dgm's step and that side's in
40 rounds of 100 steps after 5 warm-up rounds, alternating at 2 threads, by the wall clock
(``benchmarks/alternate.py``), into ``speed`` of the saved record, the 1-thread figures as
they were (about 2 minutes on an idle 2-core machine; with ``--quick``, 4 rounds of 50
steps into results/quick/).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

import dgm
from benchmarks import common
from benchmarks.alternate import threads_line
from benchmarks.common import (
    CS236_BATCH,
    CS236_LR,
    CS236_MODEL,
    bench_extra_missing,
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
    trainer_optimizer,
    write_result,
)
from dgm.data import DataConfig

NAME = "pythae_compare"
SEED = 0
NUM_BATCHES = 16  # distinct batches cycled through by every side
SIDES = ("dgm", "pythae_adam", "pythae_adam_fused")
STEPS, QUICK_STEPS = 100, 50  # steps per round
ROUNDS, QUICK_ROUNDS = 51, 31
WARMUP, QUICK_WARMUP = 300, 100  # steps of every side before the first round


def pythae_model(model: dgm.GenerativeModel, kind: str = "VAE", **options: Any) -> nn.Module:
    """dgm's MLP VAE ``model`` as pythae's model ``kind`` ("VAE", "IWAE", "BetaVAE"), with
    ``model``'s architecture and a copy of its weights; ``options`` set fields of the
    pythae config beyond the shapes and the BCE reconstruction loss (``number_samples``,
    ``beta``)."""
    import pythae.models
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    latent, hidden = model.config.latent_dim, list(model.config.hidden_sizes)

    def mlp(sizes: list[int]) -> list[nn.Module]:
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        return layers

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            BaseEncoder.__init__(self)
            self.net = nn.Sequential(*mlp([model.num_dims, *hidden, 2 * latent]))

        def forward(self, x: Tensor) -> Any:
            mu, log_var = self.net(x.flatten(1)).chunk(2, dim=-1)
            return ModelOutput(embedding=mu, log_covariance=log_var)

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            BaseDecoder.__init__(self)
            self.net = nn.Sequential(*mlp([latent, *hidden[::-1], model.num_dims]), nn.Sigmoid())

        def forward(self, z: Tensor) -> Any:
            return ModelOutput(reconstruction=self.net(z))

    encoder, decoder = Encoder(), Decoder()
    encoder.net.load_state_dict(model.encoder.state_dict())
    decoder.net.load_state_dict(model.decoder.state_dict())
    with torch.no_grad():  # dgm's last encoder layer gives (μ, log σ); pythae's log σ² = 2 log σ
        last = encoder.net[-1]
        last.weight[latent:] *= 2
        last.bias[latent:] *= 2
    config = getattr(pythae.models, f"{kind}Config")(
        input_dim=tuple(model.event_shape),
        latent_dim=latent,
        reconstruction_loss="bce",
        **options,
    )
    return getattr(pythae.models, kind)(config, encoder=encoder, decoder=decoder)


def load_into_dgm(peer: nn.Module, model: dgm.GenerativeModel) -> dgm.GenerativeModel:
    """``model`` (of the shape ``peer`` was built from by ``pythae_model``) with ``peer``'s
    weights, pythae's log σ² rows halved back into dgm's log σ; returns ``model``."""
    latent = model.config.latent_dim
    encoder = {k: v.detach().clone() for k, v in peer.encoder.net.state_dict().items()}
    last = len(peer.encoder.net) - 1
    encoder[f"{last}.weight"][latent:] /= 2
    encoder[f"{last}.bias"][latent:] /= 2
    model.encoder.load_state_dict(encoder)
    model.decoder.load_state_dict(peer.decoder.net.state_dict())
    return model


def run(quick: bool = False) -> dict[str, Any] | None:
    if bench_extra_missing("pythae"):
        return None
    steps, rounds, warmup = (
        (QUICK_STEPS, QUICK_ROUNDS, QUICK_WARMUP) if quick else (STEPS, ROUNDS, WARMUP)
    )
    with one_thread():
        return _run(quick, steps, rounds, warmup)


def load_batches() -> tuple[DataConfig, list[Tensor]]:
    """The data and its ``NUM_BATCHES`` first training batches (statically binarized)."""
    data = DataConfig(name="fashion_mnist", root=fashion_mnist_root(), binarize="static")
    train = data.load("train")
    return data, [
        train.x[i * CS236_BATCH : (i + 1) * CS236_BATCH].clone() for i in range(NUM_BATCHES)
    ]


def build(
    batches: list[Tensor],
) -> tuple[dgm.GenerativeModel, dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
    """dgm's CS236 VAE from ``SEED`` (value checks off, as ``fit`` runs it), pythae's model
    on a copy of its weights for each pythae side, and every side's optimizer."""
    torch.manual_seed(SEED)
    model = dgm.create("vae", tuple(batches[0].shape[1:]), **CS236_MODEL).train()
    model.check_values = False
    pythae = {side: pythae_model(model).train() for side in SIDES[1:]}
    opts = {
        "dgm": trainer_optimizer(model, CS236_LR),
        "pythae_adam": torch.optim.Adam(pythae["pythae_adam"].parameters(), lr=CS236_LR),
        "pythae_adam_fused": torch.optim.Adam(
            pythae["pythae_adam_fused"].parameters(), lr=CS236_LR, fused=True
        ),
    }
    return model, pythae, opts


def steppers(
    model: dgm.GenerativeModel,
    pythae: dict[str, nn.Module],
    opts: dict[str, torch.optim.Optimizer],
    batches: list[Tensor],
) -> dict[str, Callable[[int], None]]:
    """Every side's training step on batch ``i`` (the batches cycled): forward, backward,
    optimizer step and ``zero_grad``."""

    def dgm_step(i: int) -> None:
        model.loss(batches[i % len(batches)]).value.backward()
        opts["dgm"].step()
        opts["dgm"].zero_grad()

    def pythae_step(side: str) -> Callable[[int], None]:
        def step(i: int) -> None:
            pythae[side]({"data": batches[i % len(batches)]}).loss.backward()
            opts[side].step()
            opts[side].zero_grad()

        return step

    return {"dgm": dgm_step, **{side: pythae_step(side) for side in SIDES[1:]}}


def _run(quick: bool, steps: int, rounds: int, warmup: int) -> dict[str, Any]:
    data, batches = load_batches()
    model, pythae, opts = build(batches)

    # the same objective on the same weights and the same draw of z
    torch.manual_seed(SEED)
    out = model.loss(batches[0])
    dgm_terms = {k: out.metrics[k].item() for k in ("nelbo", "kl", "reconstruction")}
    torch.manual_seed(SEED)
    p_out = pythae["pythae_adam"]({"data": batches[0]})
    pythae_terms = {
        "nelbo": p_out.loss.item(),
        "kl": p_out.reg_loss.item(),
        "reconstruction": p_out.recon_loss.item(),
    }
    if abs(out.value.item() - dgm_terms["nelbo"]) > 1e-4 * abs(dgm_terms["nelbo"]):
        raise SystemExit(f"dgm's loss {out.value.item()} is not its NELBO {dgm_terms['nelbo']}")
    for k, v in dgm_terms.items():
        if abs(v - pythae_terms[k]) > 1e-3 * max(1.0, abs(v)):
            raise SystemExit(f"{k}: pythae computes {pythae_terms[k]}, dgm {v}: not the same")
    del out, p_out

    dgm_defaults = opts["dgm"].defaults

    def timed_round(step: Callable[[int], None]) -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        return time.perf_counter() - t0

    fns: dict[str, Callable[[], float]] = {
        side: (lambda step=step: timed_round(step))
        for side, step in steppers(model, pythae, opts, batches).items()
    }
    warning = busy_warning()
    if warning:
        log(warning)
    t_start = time.perf_counter()
    ms = timed_rounds(fns, rounds=rounds, steps=steps, warmup=warmup, rotate=True)
    wall = time.perf_counter() - t_start
    model.check_values = True

    def paired(a: str, b: str) -> float:
        return paired_ratio(ms[a], ms[b])

    med = {side: statistics.median(v) for side, v in ms.items()}
    payload = {
        "description": "ms/step of the CS236 VAE training step, dgm vs pythae, one thread",
        "model": "vae",
        "model_config": {**CS236_MODEL, "hidden_sizes": list(CS236_MODEL["hidden_sizes"])},
        "data": dataclasses.asdict(data),
        "batch_size": CS236_BATCH,
        "batches_cycled": NUM_BATCHES,
        "pythae_version": importlib.metadata.version("pythae"),
        "optimizers": {
            "dgm": f"AdamW(lr={CS236_LR}, weight_decay={dgm_defaults['weight_decay']}, "
            f"fused={dgm_defaults['fused']})",
            "pythae_adam": f"Adam(lr={CS236_LR})",
            "pythae_adam_fused": f"Adam(lr={CS236_LR}, fused=True)",
        },
        "optimizer_sources": {
            "dgm": "dgm.train.optim.build_optimizer(TrainConfig(lr=1e-3)), as the trainer",
            "pythae_adam": "pythae's trainer default (optimizer_cls='Adam')",
            "pythae_adam_fused": "the same with fused=True",
        },
        "dgm_check_values": False,
        "objective": "negative ELBO per example: sum over pixels of the Bernoulli "
        "cross-entropy plus the closed-form KL to N(0, I), mean over the batch, on both sides; "
        "pythae takes BCE of sigmoid probabilities, dgm of logits; dgm clamps log σ",
        "loss_check": {"dgm": dgm_terms, "pythae": pythae_terms},
        "threads": 1,
        "steps_per_round": steps,
        "rounds": rounds,
        "warmup_steps": warmup,
        "order": "dgm, pythae Adam, pythae fused Adam, rotating by one each round, after a warm-up",
        "ms_per_step": med,
        "ms_per_step_rounds": ms,
        "ms_per_step_summary": {side: summary(v) for side, v in ms.items()},
        # each round's ratio: robust to drift in the machine's speed across rounds
        "ratio_dgm_over_pythae_adam": paired("dgm", "pythae_adam"),
        "ratio_dgm_over_pythae_adam_fused": paired("dgm", "pythae_adam_fused"),
        "busy_warning": warning,
    }
    path = write_result(
        NAME, payload, quick=quick, seed=SEED, steps=steps * rounds, wall_time_s=wall
    )
    log(
        f"pythae comparison: dgm {med['dgm']:.3f} ms/step, pythae {med['pythae_adam']:.3f} "
        f"(Adam, dgm x{payload['ratio_dgm_over_pythae_adam']:.3f}) / "
        f"{med['pythae_adam_fused']:.3f} (fused Adam, dgm "
        f"x{payload['ratio_dgm_over_pythae_adam_fused']:.3f})  -> {path}"
    )
    return payload


def speed_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Where the ``--threads`` figures of dgm against each pythae side go:
    ``payload["speed"][side]`` (made when absent), in the order of ``SIDES``."""
    speed = payload.setdefault("speed", {})
    return [speed.setdefault(side, {}) for side in SIDES[1:]]


def run_threads(quick: bool, threads: int) -> dict[str, Any] | None:
    """The ``--threads N`` pass (``benchmarks/alternate.py``): for each pythae side, dgm's
    model and pythae's rebuilt from ``SEED`` (``build``, as the training run builds them)
    and timed in rounds of ``STEPS`` steps (``QUICK_STEPS`` quick) on the same batches,
    alternating at ``threads`` threads, by the wall clock; written under
    ``record["speed"][side]["threads"]`` (the 1-thread figures kept as they are)."""
    if bench_extra_missing("pythae"):
        return None
    from benchmarks.alternate import speed_pass, speed_steps

    _, batches = load_batches()

    def timed(payload: dict[str, Any], row: dict[str, Any], _: int, __: int) -> dict:
        side = next(s for s, r in zip(SIDES[1:], speed_rows(payload), strict=True) if r is row)
        steps = steppers(*build(batches), batches)
        return {"dgm": steps["dgm"], side: steps[side]}

    return speed_pass(
        sys.modules[__name__],
        timed,
        quick=quick,
        threads=threads,
        rows=speed_rows,
        rounds=speed_steps(quick),
        repeat=QUICK_STEPS if quick else STEPS,
    )


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: dgm's and pythae's ms/step."""
    ms, opts = record["ms_per_step"], record["optimizers"]
    adam, fused = record["ratio_dgm_over_pythae_adam"], record["ratio_dgm_over_pythae_adam_fused"]
    labels = {
        "dgm": ("dgm `model.loss`, value checks off (as `fit` runs it)", "1"),
        "pythae_adam": ("pythae `VAE`, its trainer's default Adam", fmt(adam, 3)),
        "pythae_adam_fused": ("pythae `VAE`, fused Adam", fmt(fused, 3)),
    }
    gap = ms["pythae_adam"] - ms["dgm"]  # and the fused kernel's part of it, in median ms/step
    kernel = ms["pythae_adam"] - ms["pythae_adam_fused"]
    share = (
        f": the fused kernel is {fmt(100 * kernel / gap, 0)} % of the difference in median "
        f"ms/step ({fmt(kernel)} of {fmt(gap)} ms), the rest is in the forward and backward pass"
        if gap > 0 and 0 < kernel <= gap
        else ""
    )
    rows = [[label, f"`{opts[side]}`", fmt(ms[side], 3), r] for side, (label, r) in labels.items()]
    return [
        f"**dgm against pythae {record['pythae_version']}** (the CS236 VAE above in both, "
        f"same initial weights, same statically binarized batches of {record['batch_size']}, "
        f"{threads_label(record['threads'])}; median of {record['rounds']} rounds of "
        f"{record['steps_per_round']} steps in rotating order; a step is forward, backward, "
        "optimizer step and `zero_grad`; both losses are the negative ELBO per example, "
        "summed over pixels and averaged over the batch, checked equal before timing):",
        "",
        *markdown_table(["step", "optimizer", "ms/step", "dgm ÷ this (per-round median)"], rows),
        "",
        f"A dgm training step costs {fmt(adam, 2)}× pythae's with pythae's default (unfused) "
        f"Adam and {fmt(fused, 2)}× with pythae on the fused Adam kernel too{share}.",
        *threads_line(
            [
                (labels[side][0], record.get("speed", {}).get(side, {}).get("threads"))
                for side in SIDES[1:]
            ]
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    return common.main(
        run, __doc__, "fewer, shorter rounds; results/quick/", argv, threads=run_threads
    )


if __name__ == "__main__":
    raise SystemExit(main())


def peer_rows(record: dict[str, Any]) -> list[Any]:
    """docs/peers.md row: the CS236 VAE step against pythae's (speed; the objective is the
    same number on the same weights, checked before timing)."""
    from benchmarks.peers import PeerRow, speed_cell

    check = record["loss_check"]
    rounds = record["ms_per_step_rounds"]
    per_round = [a / b for a, b in zip(rounds["dgm"], rounds["pythae_adam"], strict=True)]
    return [
        PeerRow(
            family="latent variable",
            model="vae (CS236: z 10, MLP 300-300)",
            peer=f"pythae {record['pythae_version']} VAE",
            data="binarized Fashion-MNIST",
            budget=f"{record['rounds']} rounds of {record['steps_per_round']} steps, batch "
            f"{record['batch_size']}",
            dgm=f"{check['dgm']['nelbo']:.4f} nats (−ELBO at step 0)",
            peer_value=f"{check['pythae']['nelbo']:.4f}",
            difference=f"{check['dgm']['nelbo'] - check['pythae']['nelbo']:+.1e}",
            speed=speed_cell(
                f"{record['ratio_dgm_over_pythae_adam']:.2f} (rounds "
                f"{min(per_round):.2f}–{max(per_round):.2f})",
                record.get("speed", {}).get("pythae_adam", {}).get("threads"),
            ),
            reading="the same objective on the same weights; training speed only, no trained "
            "quality compared in this row",
        )
    ]
