"""dgm's IWAE and β-VAE against pythae's, trained side by side.

For each row and each seed, one process builds dgm's CS236 VAE (x = 784 binary pixels,
z = 10, MLP 300-300 with ReLU, Bernoulli decoder) with the row's objective, and pythae's
model of the same kind (``pythae.models.IWAE`` with ``number_samples`` = k,
``pythae.models.BetaVAE`` with the same β) on ``BaseEncoder``/``BaseDecoder`` modules of
the same layers holding a copy of dgm's initial weights (``pythae_compare.pythae_model``).
Both train on the same batches of statically binarized Fashion-MNIST (one seeded draw of
batch indices, fed to both), batch 97, lr 1e-3, one torch thread, the two steps
alternating (which goes first alternates too). dgm's step is ``model.loss`` (value checks
off, as ``fit`` runs it) + the optimizer dgm's trainer builds (fused AdamW, weight decay
0); pythae's is its ``forward(...).loss`` + ``torch.optim.Adam(lr=1e-3)``, what its
trainer builds by default. ms/step is the process's CPU time per step (one thread: the
step's own compute, steady on a shared machine), the median over the steps after a
warm-up; the wall-clock medians are saved beside it.

Quality: both trained models are scored by the same estimator, dgm's IWAE-k bound
(``log_prob_iw``) on the same test images with the same draws; pythae's trained weights
are loaded into a dgm model of the same shape (``pythae_compare.load_into_dgm``: its
log σ² rows halved into log σ). dgm clamps log σ to [−10, 3]; the share of pythae's test
posteriors outside that range is recorded (the clamp would change its score). Over the
seeds: the paired NLL difference dgm − pythae and the ms/step ratio dgm / pythae, each as
a mean with a 95 % t-interval.

Before training, each row checks that both objectives agree on the same weights and the
same draws of z (``objective_check``): the KL and reconstruction terms, the β-VAE's loss,
and every parameter's gradient. pythae's IWAE loss is a surrogate, −Σ_i w̃_i log w_i with
the normalised weights w̃ detached, whose value is not −IWAE_k but whose gradient is the
IWAE gradient (Burda et al. 2015, arXiv:1509.00519, eq. 14); dgm's is −IWAE_k itself.

pythae is a bench-only extra (``pip install -c constraints.txt -e '.[bench]'``), never a
dependency of dgm.

    python -m benchmarks.side_by_side_latent [--quick] [--threads 2]

``--threads 2`` trains nothing: it rebuilds every saved row's two models from each seed as
the training run does and times their steps alternating at 2 threads, by the wall clock,
into the saved rows (``benchmarks/alternate.py``; under a minute on an idle 2-core machine;
with ``--quick``, 2 seeds and 4 steps into results/quick/).

``--quick``: 2 seeds, a few steps, 200 test images, IWAE-20.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
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
    interval,
    log,
    log_probs,
    markdown_table,
    one_thread,
    plus_minus,
    trainer_optimizer,
    write_result,
)
from benchmarks.peers import verdict
from benchmarks.pythae_compare import load_into_dgm, pythae_model
from benchmarks.side_by_side_autoregressive import load_images
from dgm.models.latent.vae import LOG_STD_MAX, LOG_STD_MIN

NAME = "side_by_side_latent"
PEER = "pythae"
SEEDS, QUICK_SEEDS = (0, 1, 2), (0, 1)
STEPS, QUICK_STEPS = 2000, 30
TEST_IMAGES, QUICK_TEST_IMAGES = 2000, 200
EVAL_K, QUICK_EVAL_K = 200, 20  # importance samples of the test NLL
WARMUP = 10  # steps left out of the ms/step medians
TOLERANCE = 1e-3  # relative: float32 rounding, BCE of probabilities against logits


@dataclasses.dataclass(frozen=True)
class Row:
    """One row: dgm's VAE with ``dgm_config`` against pythae's ``kind`` with ``options``."""

    label: str
    dgm_config: dict[str, Any]  # overrides of CS236_MODEL
    kind: str  # the pythae model class
    options: dict[str, Any]  # its config fields


ROWS = (
    Row("IWAE, k = 5", {"iw_samples": 5}, "IWAE", {"number_samples": 5}),
    Row("β-VAE, β = 4", {"beta": 4.0}, "BetaVAE", {"beta": 4.0}),
)


def draws_in_dgm_order(mu: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
    """pythae's ``_sample_gauss`` drawing ε in dgm's order: (k, B, L) for IWAE's (B, k, L)
    (dgm's ``rsample((k,))``), (B, L) as it is for one draw."""
    if mu.dim() == 3:
        eps = torch.randn(mu.shape[1], mu.shape[0], mu.shape[2], dtype=mu.dtype).transpose(0, 1)
    else:
        eps = torch.randn(mu.shape, dtype=mu.dtype)
    return mu + eps * std, eps


def objective_check(
    model: dgm.GenerativeModel, peer: nn.Module, x: Tensor, seed: int, peer_seed: int | None = None
) -> dict[str, Any]:
    """dgm's and pythae's objectives on batch x, the draws seeded by ``seed``
    (``peer_seed`` for pythae's, to show the check sees other draws): the KL and
    reconstruction terms (means over the batch and the draws) and the loss of each, and
    the relative 2-norm difference of their gradients over all parameters, pythae's
    log σ² rows doubled into dgm's log σ rows. The gradients are left zeroed."""
    peer._sample_gauss = draws_in_dgm_order  # the same ε for both
    torch.manual_seed(seed)
    out = model.loss(x)
    out.value.backward()
    torch.manual_seed(seed if peer_seed is None else peer_seed)
    p_out = peer({"data": x})
    p_out.loss.backward()
    del peer._sample_gauss
    latent = model.config.latent_dim
    last = len(peer.encoder.net) - 1
    diff, norm = 0.0, 0.0
    for ours, theirs in ((model.encoder, peer.encoder.net), (model.decoder, peer.decoder.net)):
        mine = dict(ours.named_parameters())
        for name, p in theirs.named_parameters():
            g = p.grad.clone()
            if theirs is peer.encoder.net and name.startswith(f"{last}."):
                g[latent:] *= 2  # d/d log σ = 2 d/d log σ²
            diff += (mine[name].grad - g).pow(2).sum().item()
            norm += mine[name].grad.pow(2).sum().item()
    model.zero_grad(set_to_none=True)
    peer.zero_grad(set_to_none=True)
    return {
        "dgm": {
            "loss": out.value.item(),
            "kl": out.metrics["kl"].item(),
            "reconstruction": out.metrics["reconstruction"].item(),
        },
        "pythae": {
            "loss": p_out.loss.item(),
            "kl": p_out.reg_loss.item(),
            "reconstruction": p_out.recon_loss.item(),
        },
        "gradient_relative_difference": (diff / norm) ** 0.5,
    }


def check_agrees(row: Row, check: dict[str, Any]) -> None:
    """Stop when ``objective_check`` found the objectives different: a term, the β-VAE's
    loss (pythae's IWAE loss is a surrogate of another value) or the gradient."""
    keys = ["kl", "reconstruction"] + (["loss"] if row.kind != "IWAE" else [])
    for k in keys:
        ours, theirs = check["dgm"][k], check["pythae"][k]
        if abs(ours - theirs) > TOLERANCE * max(1.0, abs(ours)):
            raise SystemExit(f"{row.label}: {k} is {ours} in dgm, {theirs} in pythae")
    if check["gradient_relative_difference"] > TOLERANCE:
        raise SystemExit(
            f"{row.label}: the gradients differ by {check['gradient_relative_difference']:.2e} "
            "(relative): not the same objective"
        )


def build(row: Row, seed: int) -> tuple[dgm.GenerativeModel, nn.Module]:
    """dgm's model of ``row`` initialised from ``seed`` and pythae's with a copy of its
    weights, both in training mode."""
    torch.manual_seed(seed)
    model = dgm.create("vae", (1, 28, 28), **{**CS236_MODEL, **row.dgm_config}).train()
    model.check_values = False  # as fit runs it, after checking the data once
    return model, pythae_model(model, row.kind, **row.options).train()


def steppers(model: dgm.GenerativeModel, peer: nn.Module) -> dict[str, Callable[[Tensor], None]]:
    """Both sides' optimisers and training steps on a batch, by side: dgm's ``loss`` with its
    trainer's optimiser, pythae's forward with the Adam its trainer runs. The training run
    and the ``--threads`` pass both step through them."""
    dgm_opt = trainer_optimizer(model, CS236_LR)
    peer_opt = torch.optim.Adam(peer.parameters(), lr=CS236_LR)

    def dgm_step(x: Tensor) -> None:
        model.loss(x).value.backward()
        dgm_opt.step()
        dgm_opt.zero_grad()

    def peer_step(x: Tensor) -> None:
        peer({"data": x}).loss.backward()
        peer_opt.step()
        peer_opt.zero_grad()

    return {"dgm": dgm_step, PEER: peer_step}


def run_threads(quick: bool, threads: int) -> dict[str, Any] | None:
    """The ``--threads N`` pass (``benchmarks/alternate.py``): each row's pair rebuilt from
    each seed (``build``), both steps timed alternating at ``threads`` threads on the same
    batches, written into the row under "threads" (the training figures kept as they are)."""
    if bench_extra_missing("pythae"):
        return None
    from benchmarks.alternate import speed_pass

    train, _, _ = load_images(QUICK_TEST_IMAGES)
    by_label = {row.label: row for row in ROWS}

    def timed(_: dict[str, Any], row: dict[str, Any], seed: int, n: int) -> dict[str, Any]:
        sides = steppers(*build(by_label[row["model"]], seed))
        order = torch.randint(
            len(train), (n, CS236_BATCH), generator=torch.Generator().manual_seed(seed)
        )
        torch.manual_seed(seed)
        return {side: (lambda i, step=step: step(train[order[i]])) for side, step in sides.items()}

    return speed_pass(sys.modules[__name__], timed, quick=quick, threads=threads)


def iwae_nll(model: dgm.GenerativeModel, test: Tensor, k: int, seed: int) -> float:
    """Mean −IWAE_k of ``model`` on ``test`` in nats per image, draws seeded by ``seed``."""
    model.eval()
    torch.manual_seed(seed)
    return -log_probs(lambda x: model.log_prob_iw(x, k), test, batch=500).mean().item()


def run_row(row: Row, train: Tensor, test: Tensor, seed: int, steps: int, k: int) -> dict:
    """Train dgm's and pythae's model of ``row`` side by side; their figures for one seed."""
    model, peer = build(row, seed)
    check = objective_check(model, peer, train[:CS236_BATCH], seed)
    check_agrees(row, check)
    order = torch.randint(
        len(train), (steps, CS236_BATCH), generator=torch.Generator().manual_seed(seed)
    )
    sides = steppers(model, peer)
    cpu: dict[str, list[float]] = {s: [] for s in sides}
    wall: dict[str, list[float]] = {s: [] for s in sides}
    torch.manual_seed(seed)
    for step in range(steps):
        x = train[order[step]]  # (B, 1, 28, 28), the same batch for both
        for side in sides if step % 2 == 0 else reversed(sides):
            c0, w0 = time.process_time(), time.perf_counter()
            sides[side](x)
            cpu[side].append(1e3 * (time.process_time() - c0))
            wall[side].append(1e3 * (time.perf_counter() - w0))
    peer.eval()
    with torch.no_grad():  # pythae's log σ = log σ² / 2 on the test images, against dgm's clamp
        log_std = peer.encoder(test).log_covariance / 2
        outside = ((log_std < LOG_STD_MIN) | (log_std > LOG_STD_MAX)).float().mean().item()
    scored = load_into_dgm(
        peer, dgm.create("vae", (1, 28, 28), **{**CS236_MODEL, **row.dgm_config})
    )
    eval_seed = 10_000 + seed  # the same draws for both models
    return {
        "seed": seed,
        "check": check,
        "dgm": {
            "nll": iwae_nll(model, test, k, eval_seed),
            "ms_per_step": statistics.median(cpu["dgm"][WARMUP:] or cpu["dgm"]),
            "wall_ms_per_step": statistics.median(wall["dgm"][WARMUP:] or wall["dgm"]),
        },
        PEER: {
            "nll": iwae_nll(scored, test, k, eval_seed),
            "ms_per_step": statistics.median(cpu[PEER][WARMUP:] or cpu[PEER]),
            "wall_ms_per_step": statistics.median(wall[PEER][WARMUP:] or wall[PEER]),
            "log_std_outside_clamp": outside,
        },
        "params": sum(p.numel() for p in model.parameters()),
        "peer_params": sum(p.numel() for p in peer.parameters()),
    }


def run(quick: bool = False) -> dict[str, Any] | None:
    if bench_extra_missing("pythae"):
        return None
    with one_thread():
        return _run(quick)


def _run(quick: bool) -> dict[str, Any]:
    warning = busy_warning()
    if warning:
        log(warning)
    t0 = time.perf_counter()
    train, test, data_name = load_images(QUICK_TEST_IMAGES if quick else TEST_IMAGES)
    seeds = QUICK_SEEDS if quick else SEEDS
    steps, k = (QUICK_STEPS, QUICK_EVAL_K) if quick else (STEPS, EVAL_K)
    rows = []
    for row in ROWS:
        per_seed = []
        for seed in seeds:
            result = run_row(row, train, test, seed, steps, k)
            log(
                f"{row.label} seed {seed}: NLL dgm {result['dgm']['nll']:.2f}, pythae "
                f"{result[PEER]['nll']:.2f}; CPU ms/step dgm {result['dgm']['ms_per_step']:.2f}, "
                f"pythae {result[PEER]['ms_per_step']:.2f}"
            )
            per_seed.append(result)
        rows.append(
            {
                "model": row.label,
                "dgm_config": {
                    **CS236_MODEL,
                    **row.dgm_config,
                    "hidden_sizes": list(CS236_MODEL["hidden_sizes"]),
                },
                "pythae_model": row.kind,
                "pythae_options": row.options,
                "per_seed": per_seed,
                "nll_difference": interval([r["dgm"]["nll"] - r[PEER]["nll"] for r in per_seed]),
                "ms_ratio": interval(
                    [r["dgm"]["ms_per_step"] / r[PEER]["ms_per_step"] for r in per_seed]
                ),
            }
        )
    wall = time.perf_counter() - t0
    payload = {
        "peer": PEER,
        "pythae_version": importlib.metadata.version("pythae"),
        "data": data_name,
        "test_images": len(test),
        "eval": f"-IWAE-{k} (dgm's log_prob_iw) for both, the same draws",
        "eval_k": k,
        "steps": steps,
        "batch_size": CS236_BATCH,
        "lr": CS236_LR,
        "optimizers": {
            "dgm": "dgm.train.optim.build_optimizer: AdamW, weight decay 0, fused",
            PEER: "torch.optim.Adam(lr=1e-3), pythae's trainer default (unfused)",
        },
        "threads": 1,
        "seeds": list(seeds),
        "warning": warning,
        "rows": rows,
    }
    path = write_result(NAME, payload, quick=quick, seed=seeds[0], steps=steps, wall_time_s=wall)
    log("\n".join(table(payload)))
    log(f"wrote {path} ({wall:.0f} s)")
    return payload


def reading(record: dict[str, Any]) -> str:
    """The table's reading line: each row's NLL against pythae's and its ms/step ratio."""
    parts = []
    for row in record["rows"]:
        diff, ratio = row["nll_difference"], row["ms_ratio"]
        parts.append(
            f"{row['model']}: dgm's test NLL {verdict(diff, than='')} pythae's "
            f"({plus_minus(diff, '+.2f')} nats), its step {plus_minus(ratio, '.2f')}× pythae's"
        )
    return "Reading: " + "; ".join(parts) + "."


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: one row per objective, NLL means over the
    seeds, the paired difference and the ms/step ratio with their 95 % intervals."""
    rows = []
    for row in record["rows"]:
        seeds = row["per_seed"]

        def mean(who: str, key: str, seeds: list[dict[str, Any]] = seeds) -> str:
            return f"{statistics.fmean(s[who][key] for s in seeds):.2f}"

        rows.append(
            [
                f"{row['model']} (pythae `{row['pythae_model']}`)",
                f"{seeds[0]['params']:,} / {seeds[0]['peer_params']:,}",
                mean("dgm", "nll"),
                mean(PEER, "nll"),
                plus_minus(row["nll_difference"], "+.2f"),
                mean("dgm", "ms_per_step"),
                mean(PEER, "ms_per_step"),
                plus_minus(row["ms_ratio"], ".3f"),
            ]
        )
    header = [
        "objective",
        "params dgm / pythae",
        "NLL dgm",
        "NLL pythae",
        "NLL dgm − pythae",
        "CPU ms/step dgm",
        "CPU ms/step pythae",
        "ms/step dgm ÷ pythae",
    ]
    load = record.get("machine", {}).get("load_average")
    busy = (
        f" The CPUs were busy (load average {load[0]:.1f} at the end): ms/step is the "
        "process's CPU time, the wall medians are in the results file."
        if record.get("warning") and load
        else ""
    )
    return [
        f"**IWAE and β-VAE side by side with pythae {record['pythae_version']}** (the CS236 "
        f"VAE above, same initial weights, the same {record['steps']} batches of "
        f"{record['batch_size']} from {record['data']}, lr {record['lr']}, 1 thread, steps "
        f"alternating; seeds {record['seeds']}; test NLL is {record['eval']}, on "
        f"{record['test_images']} test images, pythae's weights loaded into dgm's model; "
        "± is a 95 % t-interval over the seeds, paired; both objectives were checked equal "
        "on the same weights and draws, gradients included, before training):",
        "",
        *markdown_table(header, rows),
        *threads_line([(r["model"], r.get("threads")) for r in record["rows"]]),
        "",
        f"Optimizers: dgm {record['optimizers']['dgm']}; pythae "
        f"{record['optimizers'][PEER]}: the ms/step ratio includes the fused kernel (the "
        "pythae VAE table above measures its share). pythae's IWAE loss is a surrogate whose "
        "gradient is IWAE's; the NLL of both is dgm's estimator." + busy,
        "",
        reading(record),
    ]


def peer_rows(record: dict[str, Any]) -> list[Any]:
    """docs/peers.md rows: dgm's IWAE and β-VAE against pythae's, trained side by side."""
    from benchmarks.peers import PeerRow, budget, interval_cell, speed_cell, speed_reading

    out = []
    for row in record["rows"]:
        seeds = row["per_seed"]

        def mean(who: str, seeds: list[dict[str, Any]] = seeds) -> float:
            return statistics.fmean(s[who]["nll"] for s in seeds)

        out.append(
            PeerRow(
                family="latent variable",
                model=f"vae, {row['model']} (CS236: z 10, MLP 300-300)",
                peer=f"pythae {record['pythae_version']} {row['pythae_model']} (weights copied)",
                data=record["data"],
                budget=budget(
                    record["steps"], record["batch_size"], "lr", record["lr"], len(seeds)
                ),
                dgm=f"{mean('dgm'):.2f} nats (−IWAE-{record['eval_k']}, test)",
                peer_value=f"{mean(PEER):.2f} (dgm's estimator on its weights)",
                difference=interval_cell(row["nll_difference"], 2),
                speed=speed_cell(
                    interval_cell(row["ms_ratio"], 3, sign=""), row.get("threads"), digits=3
                ),
                reading=f"NLL {verdict(row['nll_difference'])}; "
                f"{speed_reading(row['ms_ratio']['mean'])} (CPU time; pythae on unfused Adam)",
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    return common.main(
        run, __doc__, "2 seeds, a few steps; results/quick/", argv, threads=run_threads
    )


if __name__ == "__main__":
    raise SystemExit(main())
