"""dgm against normflows: multi-scale Glow and RealNVP on dequantized Fashion-MNIST.

For each model pair and each seed, one process trains dgm's flow and normflows' on the same
batches (one seeded batch order of 8-bit Fashion-MNIST, fed to both) with the same
dequantization noise (the global generator is seeded identically before each side's step,
so both draw the same u), Adam at lr 1e-3, batch 64, one torch thread, the two steps
alternating (which goes first alternates too). Both see y = (x + u)/256, u ~ U[0, 1)^D,
then logit(0.05 + 0.9 y). dgm's flow does this inside ``log_prob`` (``dequantize=
"uniform"``); normflows' ``MultiscaleFlow`` gets y from the same ``UniformDequantization``
and its ``Logit`` transform, and its log-likelihood is put on the 0..255 scale by the
same formula, log P(x) ≥ log p(y) − D ln 256. Test bits/dim = −mean log P / (D ln 2) on
a fixed subset of the test split, with the same u for both. ms/step is CPU time of the
process (one thread: the step's own compute) as a median after a warm-up; sampling time
is the CPU time of 64 draws. Over the seeds: the paired difference dgm − normflows of the
bits/dim and the ratio dgm / normflows of ms/step, each a mean with a 95 % t-interval.

The pairs (normflows built as in its Glow example: ``MultiscaleFlow`` of ``GlowBlock`` or
``AffineCouplingBlock`` levels with ``Squeeze`` and ``Merge``), and where they differ:

- Glow, 2 levels of K = 4 steps, 32 hidden channels: both squeeze to (4, 14, 14), run K
  steps (ActNorm with data-dependent init, LU 1×1 convolution, affine coupling whose
  3×3/1×1/3×3 ReLU network reads the kept half of the channels and writes the free
  half's scale and shift), factor out half and run K steps at (8, 7, 7): the same
  parameter count. Base N(0, I) for both (normflows' example learns a per-level diagonal
  Gaussian: fixed here). Scale: dgm exp of a soft-clamped s, normflows sigmoid(s + 2);
  the coupling's last layer starts at dgm's weights × 0.1, at normflows' zeros.
- RealNVP, 2 scales, 16 hidden channels: 3 checkerboard couplings on (1, 28, 28), a
  squeeze, 3 channel couplings, half factored out, 4 checkerboard couplings on
  (2, 14, 14), exp scales (dgm's soft-clamped): the same parameter count. A checkerboard
  coupling of dgm computes the paper's function, 3×3 convolutions of the masked image
  over the full grid (Dinh et al. 2016), on the 2×2 phase grid (its first layer reads
  only the kept pixels, its last writes only the free ones, the hidden layer is at every
  pixel); normflows' gathers the kept half into (C, H, W/2) and runs the whole network
  on that, half the positions (its 3×3 kernel then sees a sheared neighbourhood: another
  function).

Beside the timings, the multiply-adds per image of every 2-D convolution in one
``log_prob`` pass (``conv_macs_per_image``, modules and functional calls alike) say where a
difference in ms/step comes from.

normflows is a bench-only extra (``pip install -c constraints.txt -e '.[bench]'``), never a
dgm dependency; without it the benchmark says so and stops.

    python -m benchmarks.side_by_side_flows [--quick] [--jobs J] [--only glow|realnvp]
        [--seeds N] [--threads 2]

``--threads 2`` trains nothing: it rebuilds every saved row's two models from each seed as
the training run does and times their steps alternating at 2 threads, by the wall clock,
into the saved rows (``benchmarks/alternate.py``; about 1.5 minutes on an idle 2-core
machine; with ``--quick``, 2 seeds and 4 steps into results/quick/).

``--quick`` (a few CPU seconds per run): 2 seeds, 6 steps, 100 test images. ``--only``
reruns one row (its dgm model) into the existing results file, the other rows kept as
they were; ``--seeds N`` runs seeds 0..N-1 (each row records its own seeds and run).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import functools
import math
import multiprocessing
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

import dgm
from benchmarks.alternate import threads_line
from benchmarks.common import (
    add_threads_argument,
    bench_extra_missing,
    busy_warning,
    ci95,
    existing_payload,
    fashion_mnist_root,
    fmt,
    log,
    markdown_table,
    one_thread,
    trainer_optimizer,
    write_result,
)
from dgm.models.flows.dequantization import UniformDequantization

NAME = "side_by_side_flows"
PEER = "normflows"
BATCH, LR, THREADS, LEVELS, ALPHA = 64, 1e-3, 1, 256, 0.05
SEEDS, QUICK_SEEDS = (0, 1, 2), (0, 1)
STEPS, QUICK_STEPS = 150, 6
TEST_IMAGES, QUICK_TEST_IMAGES = 500, 100
SAMPLES = 64  # images drawn for the sampling time
WARMUP = 5  # steps left out of the ms/step medians
EVAL_SEED = 12345  # the dequantization noise of the test evaluation, the same for both


@dataclasses.dataclass(frozen=True)
class Pair:
    """One row: dgm's model (name, config) against a normflows model built by ``peer``."""

    label: str
    dgm_name: str
    dgm_config: dict[str, Any]
    peer: Callable[[], nn.Module]
    difference: str


def _normflows_glow(steps_per_level: int = 4, hidden: int = 32) -> nn.Module:
    """normflows' multi-scale Glow on (1, 28, 28), two levels, as in its Glow example with
    a fixed N(0, I) base: level 0 is (8, 7, 7), level 1 (4, 14, 14) after the merge."""
    import normflows as nf

    flows, q0, merges = [], [], []
    for level, (channels, latent) in enumerate([(8, (8, 7, 7)), (4, (2, 14, 14))]):
        blocks: list[nn.Module] = [
            nf.flows.GlowBlock(channels, hidden, split_mode="channel", scale=True)
            for _ in range(steps_per_level)
        ]
        flows.append([*blocks, nf.flows.Squeeze()])  # (C, H, W) -> (C/4, 2H, 2W)
        q0.append(nf.distributions.DiagGaussian(latent, trainable=False))
        if level > 0:
            merges.append(nf.flows.Merge())
    return nf.MultiscaleFlow(
        q0, flows, merges, transform=nf.transforms.Logit(ALPHA), class_cond=False
    )


def _coupling(channels: int, hidden: int, mode: str) -> nn.Module:
    """normflows' affine coupling with RealNVP's exp scale and a 3×3/1×1/3×3 ReLU network;
    ``mode`` is its split: checkerboard[_inv] or channel[_inv]."""
    import normflows as nf

    kept = channels if "checkerboard" in mode else channels // 2
    net = nf.nets.ConvNet2d([kept, hidden, hidden, 2 * kept], (3, 1, 3), init_zeros=True)
    return nf.flows.AffineCouplingBlock(net, scale=True, scale_map="exp", split_mode=mode)


def _normflows_realnvp(hidden: int = 16) -> nn.Module:
    """normflows' multi-scale RealNVP on (1, 28, 28), laid out as dgm's ``conv`` RealNVP
    with 2 scales (normflows' flows run noise -> data, so each list reads backwards)."""
    import normflows as nf

    parity = ("checkerboard", "checkerboard_inv")
    inner = [_coupling(2, hidden, parity[k % 2]) for k in range(4)]  # on (2, 14, 14)
    outer = [_coupling(4, hidden, ("channel", "channel_inv")[k % 2]) for k in range(3)]
    outer.append(nf.flows.Squeeze())  # (4, 14, 14) -> (1, 28, 28)
    outer += [_coupling(1, hidden, parity[k % 2]) for k in range(3)]
    q0 = [nf.distributions.DiagGaussian((2, 14, 14), trainable=False) for _ in range(2)]
    return nf.MultiscaleFlow(
        q0,
        [inner, outer],
        [nf.flows.Merge()],
        transform=nf.transforms.Logit(ALPHA),
        class_cond=False,
    )


MACS_NOTE = {  # dgm model -> why its convolutions may do more multiply-adds than the peer's
    "realnvp": "dgm's checkerboard couplings compute the paper's full-grid 3×3 network "
    "(Dinh et al. 2016), its hidden layer at every pixel; normflows' gathers the kept half "
    "and runs the whole network on half the pixels, a different function",
    "glow": "the same networks",
}
PAIRS = (
    Pair(
        "Glow, 2 levels × 4 steps, 32 hidden channels",
        "glow",
        {"num_scales": 2, "steps_per_level": 4, "hidden_channels": 32},
        _normflows_glow,
        "scale exp(soft-clamp) vs sigmoid(s + 2), last layer × 0.1 vs zeros",
    ),
    Pair(
        "RealNVP, 2 scales, 16 hidden channels",
        "realnvp",
        {"architecture": "conv", "num_scales": 2, "hidden_channels": 16},
        _normflows_realnvp,
        "checkerboard couplings: dgm computes the paper's 3×3 network over the masked (C, H, "
        "W) (on its 2×2 phase grid), normflows convolves the gathered (C, H, W/2) half; dgm's "
        "log-scale soft-clamped",
    ),
)


@functools.lru_cache(maxsize=1)
def load_data(test_images: int) -> tuple[Tensor, Tensor, str]:
    """8-bit training images and the first ``test_images`` test images, (N, 1, 28, 28)
    integers 0..255, and the name of the data used (dgm's MNIST subset without the
    Fashion-MNIST files)."""
    from dgm.data import DataConfig

    try:
        data = DataConfig(name="fashion_mnist", root=fashion_mnist_root(), scale="byte")
        train, test = data.load("train").x, data.load("test").x
        name = "fashion_mnist (8-bit, uniform dequantization)"
    except (FileNotFoundError, OSError, ValueError) as e:
        log(f"Fashion-MNIST unavailable ({e}): using dgm's MNIST subset")
        data = DataConfig(name="mnist_subset", scale="byte")
        train, test = data.load("train").x, data.load("test").x
        name = "mnist_subset (8-bit, uniform dequantization; Fashion-MNIST files absent)"
    return train.long(), test[:test_images].long(), name


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def peer_log_prob(model: nn.Module, x: Tensor) -> Tensor:
    """log P(x) (B,) in nats on the 0..255 scale of normflows' flow for integer x: y = (x +
    u)/256 from the global generator, log p(y) − D ln 256 (the dequantization bound)."""
    y, pre = UniformDequantization(LEVELS)(x)  # (B, 1, 28, 28), (B,) = −D ln 256
    return model.log_prob(y, None) + pre


def test_bits(log_prob: Callable[[Tensor], Tensor], test: Tensor) -> float:
    """Test bits/dim on the 0..255 scale, −mean log P / (D ln 2), with the dequantization
    noise drawn after seeding the global generator with ``EVAL_SEED`` (same u for both)."""
    torch.manual_seed(EVAL_SEED)
    with torch.no_grad():
        lp = torch.cat([log_prob(chunk).double() for chunk in test.split(250)])
    return -lp.mean().item() / (math.prod(test.shape[1:]) * math.log(2))


class _CountConvs(TorchFunctionMode):
    """Adds up the multiply-adds of the first example of every ``F.conv2d`` call (an
    ``nn.Conv2d`` module's and a functional one alike) while active."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        if func is F.conv2d:
            weight = args[1] if len(args) > 1 else kwargs["weight"]  # (out, in / groups, kh, kw)
            self.total += out[0].numel() * math.prod(weight.shape[1:])
        return out


def conv_macs(model: nn.Module, log_prob: Callable[[Tensor], Tensor], x: Tensor) -> int:
    """Multiply-adds per image of every 2-D convolution of ``model`` in one ``log_prob`` pass
    over the first image of ``x`` (B, 1, 28, 28): where a flow's compute goes."""
    counter = _CountConvs()
    with torch.no_grad(), counter:
        log_prob(x[:1])
    return counter.total


def cpu_ms(fn: Callable[[], Any]) -> float:
    """CPU milliseconds of the process while ``fn`` runs (one thread: its own compute)."""
    t0 = time.process_time()
    fn()
    return 1e3 * (time.process_time() - t0)


def build_pair(
    pair: Pair, first: Tensor, seed: int
) -> tuple[nn.Module, nn.Module, Callable[[str, Tensor, int], float]]:
    """dgm's flow (ActNorm initialised on the first batch ``first``) and normflows', each
    seeded by ``seed``, and their training step ``step(side, x, noise_seed) -> loss``: the
    training run and the ``--threads`` pass both build them here."""
    torch.manual_seed(seed)
    ours = dgm.create(
        pair.dgm_name, (1, 28, 28), dequantize="uniform", logit_alpha=ALPHA, **pair.dgm_config
    )
    ours.initialize(first)  # ActNorm's data-dependent init, as dgm's trainer does
    torch.manual_seed(seed)
    peer = pair.peer()
    opts = {
        "dgm": trainer_optimizer(ours, LR),
        PEER: torch.optim.Adam(peer.parameters(), lr=LR, fused=True),
    }
    losses: dict[str, Callable[[Tensor], Tensor]] = {
        "dgm": lambda x: ours.loss(x).value,
        PEER: lambda x: -peer_log_prob(peer, x).mean(),
    }

    def step(name: str, x: Tensor, noise_seed: int) -> float:
        torch.manual_seed(noise_seed)  # the same dequantization u for both sides
        opts[name].zero_grad(set_to_none=True)
        loss = losses[name](x)
        loss.backward()
        opts[name].step()
        return loss.item()

    return ours, peer, step


def run_pair(pair: Pair, train: Tensor, test: Tensor, seed: int, steps: int) -> dict[str, Any]:
    """Train dgm's flow and normflows' on the same ``steps`` batches and noise; their figures."""
    order = torch.randint(len(train), (steps, BATCH), generator=torch.Generator().manual_seed(seed))
    ours, peer, step = build_pair(pair, train[order[0]], seed)
    times: dict[str, list[float]] = {"dgm": [], PEER: []}
    faults: dict[str, list[int]] = {"dgm": [], PEER: []}  # minor page faults per step
    last: dict[str, float] = {}
    for k in range(steps):
        x = train[order[k]]  # (B, 1, 28, 28), the same batch for both
        for name in ("dgm", PEER) if k % 2 == 0 else (PEER, "dgm"):
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.process_time()
            last[name] = step(name, x, seed * 1_000_003 + k)
            times[name].append(1e3 * (time.process_time() - t0))
            faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    ours.eval()
    peer.eval()
    out: dict[str, Any] = {}
    for name, model, lp, draw in (
        ("dgm", ours, ours.log_prob, lambda: ours.sample(SAMPLES)),
        (PEER, peer, lambda x: peer_log_prob(peer, x), lambda: peer.sample(SAMPLES)),
    ):
        with torch.no_grad():
            sample_ms = cpu_ms(draw)
        bits = test_bits(lp, test)
        out[name] = {
            "bits_per_dim": bits if math.isfinite(bits) else None,  # None: training diverged
            "last_train_nll": last[name] if math.isfinite(last[name]) else None,
            "ms_per_step": statistics.median(times[name][WARMUP:] or times[name]),
            "page_faults_per_step": statistics.median(faults[name][WARMUP:] or faults[name]),
            "sample_ms": sample_ms,
            "params": num_params(model),
            "conv_macs_per_image": conv_macs(model, lp, test),
        }
    return out


def interval(values: list[float]) -> dict[str, Any]:
    """Mean and 95 % t-interval (None for one value) of ``values``."""
    return {"mean": statistics.fmean(values), "ci95": ci95(values), "n": len(values)}


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired bits/dim difference dgm − peer over the seeds where neither diverged (their
    bits/dim None), ms/step and sampling-time ratios dgm / peer over all seeds."""
    both = [r for r in per_seed if None not in (r["dgm"]["bits_per_dim"], r[PEER]["bits_per_dim"])]
    diverged = [
        {"seed": r["seed"], "side": side}
        for r in per_seed
        for side in ("dgm", PEER)
        if r[side]["bits_per_dim"] is None
    ]
    return {
        "diverged": diverged,
        "bpd_difference": interval(
            [r["dgm"]["bits_per_dim"] - r[PEER]["bits_per_dim"] for r in both]
        )
        if both
        else None,
        "ms_ratio": interval([r["dgm"]["ms_per_step"] / r[PEER]["ms_per_step"] for r in per_seed]),
        "sample_ratio": interval([r["dgm"]["sample_ms"] / r[PEER]["sample_ms"] for r in per_seed]),
    }


def _task(index: int, seed: int, steps: int, test_images: int) -> dict[str, Any]:
    """One (pair, seed) run at one torch thread, in this process or a worker's."""
    train, test, _ = load_data(test_images)
    with one_thread():
        result = run_pair(PAIRS[index], train, test, seed, steps)
    log(f"  {PAIRS[index].label} seed {seed}: {result}")
    return {"seed": seed, **result}


def run(
    quick: bool = False, jobs: int = 1, only: str | None = None, num_seeds: int | None = None
) -> dict[str, Any] | None:
    """Every pair and seed (``jobs`` of them at once, each in its own process at one thread:
    ms/step is each process's own CPU time), then the results file and its table. ``only``
    (a dgm model name) reruns that row into the existing file; ``num_seeds`` seeds 0..N-1."""
    if bench_extra_missing(PEER):
        return None
    import normflows

    warning = busy_warning()
    if warning:
        log(warning)
    t0 = time.perf_counter()
    test_images = QUICK_TEST_IMAGES if quick else TEST_IMAGES
    _, test, data_name = load_data(test_images)
    seeds, steps = (QUICK_SEEDS, QUICK_STEPS) if quick else (SEEDS, STEPS)
    if num_seeds is not None:
        seeds = tuple(range(num_seeds))
    chosen = [i for i, pair in enumerate(PAIRS) if only in (None, pair.dgm_name)]
    tasks = [(i, seed, steps, test_images) for i in chosen for seed in seeds]
    if jobs > 1:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            results = list(pool.map(_task, *zip(*tasks, strict=True)))
    else:
        results = [_task(*t) for t in tasks]
    wall = time.perf_counter() - t0
    rows = []
    for i in chosen:
        pair = PAIRS[i]
        per_seed = [r for t, r in zip(tasks, results, strict=True) if t[0] == i]
        rows.append(
            {
                "model": pair.label,
                "dgm_model": pair.dgm_name,
                "dgm_config": pair.dgm_config,
                "difference": pair.difference,
                "seeds": list(seeds),
                "run": {  # this row's own run: rows rerun with --only keep theirs
                    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                    "wall_time_s": round(wall, 1),
                    "warning": warning,
                    "load_average": list(os.getloadavg()),
                },
                "per_seed": per_seed,
                **summarise(per_seed),
            }
        )
    wall0 = 0.0
    if only is not None:  # the other rows as the existing file holds them
        old, wall0 = existing_payload(NAME, quick=quick)
        fresh = {r["dgm_model"]: r for r in rows}
        rows = [fresh.pop(r["dgm_model"], r) for r in old["rows"]] + list(fresh.values())
    payload = {
        "peer": PEER,
        "peer_version": normflows.__version__,
        "data": data_name,
        "test_images": len(test),
        "batch_size": BATCH,
        "lr": LR,
        "train_steps": steps,
        "threads": THREADS,
        "processes_at_once": jobs,
        "seeds": sorted({seed for row in rows for seed in row.get("seeds", seeds)}),
        "samples": SAMPLES,
        "optimizers": {
            "dgm": "dgm's trainer optimizer (fused AdamW, weight decay 0)",
            PEER: f"torch.optim.Adam(lr={LR}, fused=True)",
        },
        "warning": warning,
        "rows": rows,
    }
    path = write_result(
        NAME, payload, quick=quick, seed=seeds[0], steps=steps, wall_time_s=wall0 + wall
    )
    log("\n".join(table(payload)))
    log(f"wrote {path} ({wall:.0f} s)")
    return payload


def run_threads(quick: bool, threads: int, only: str | None = None) -> dict[str, Any] | None:
    """The ``--threads N`` pass (``benchmarks/alternate.py``): every saved row (or the one
    of ``only``) rebuilt from each seed as ``run`` builds it, both training steps timed
    alternating at ``threads`` threads on the same batches and noise, written into the row
    under "threads" (the training figures kept as they are)."""
    if bench_extra_missing(PEER):
        return None
    from benchmarks.alternate import noise_seeded, seeded_batches, speed_pass

    train, _, _ = load_data(QUICK_TEST_IMAGES)
    by_name = {pair.dgm_name: pair for pair in PAIRS}

    def steppers(_: dict[str, Any], row: dict[str, Any], seed: int, n: int) -> dict[str, Any]:
        batch = seeded_batches(train, n, BATCH, seed)
        step = build_pair(by_name[row["dgm_model"]], batch(0), seed)[2]
        return noise_seeded(step, batch, seed, ("dgm", PEER))

    return speed_pass(
        sys.modules[__name__],
        steppers,
        quick=quick,
        threads=threads,
        rows=lambda p: [r for r in p["rows"] if only in (None, r["dgm_model"])],
    )


def _pm(summary: dict[str, Any] | None, digits: int, sign: str = "") -> str:
    """``mean [lo, hi]`` of an ``interval``, or a dash."""
    if not summary:
        return "–"
    ci = summary.get("ci95")
    spread = "" if ci is None else f" [{ci[0]:{sign}.{digits}f}, {ci[1]:{sign}.{digits}f}]"
    return f"{summary['mean']:{sign}.{digits}f}{spread}"


def _seeds(record: dict[str, Any]) -> str:
    """The seeds of the table: one list, or each row's where rows were run apart."""
    lists = {r["model"].split(",")[0]: [s["seed"] for s in r["per_seed"]] for r in record["rows"]}
    if len({tuple(v) for v in lists.values()}) == 1:
        return f"seeds {next(iter(lists.values()))}"
    return "seeds " + "; ".join(f"{name} {v}" for name, v in lists.items())


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: one row per flow, bits/dim means over the seeds,
    the paired difference and the ms/step and sampling ratios with their 95 % intervals."""
    rows = []
    for row in record["rows"]:
        seeds = row["per_seed"]

        def mean(who: str, key: str, seeds: list[dict[str, Any]] = seeds) -> float | None:
            values = [s[who][key] for s in seeds if s[who][key] is not None]
            return statistics.fmean(values) if values else None

        def bits(who: str, row: dict[str, Any] = row) -> str:
            lost = sum(d["side"] == who for d in row.get("diverged", []))
            return fmt(mean(who, "bits_per_dim"), 3) + (f" ({lost} diverged)" if lost else "")

        rows.append(
            [
                row["model"],
                f"{seeds[0]['dgm']['params']:,} / {seeds[0][PEER]['params']:,}",
                bits("dgm"),
                bits(PEER),
                _pm(row.get("bpd_difference"), 3, "+"),
                f"{mean('dgm', 'ms_per_step'):.0f} / {mean(PEER, 'ms_per_step'):.0f}",
                _pm(row.get("ms_ratio"), 2),
                f"{mean('dgm', 'sample_ms'):.0f} / {mean(PEER, 'sample_ms'):.0f}",
                _pm(row.get("sample_ratio"), 2),
            ]
        )
    notes = "; ".join(f"{r['model']}: {r['difference']}" for r in record["rows"])
    return [
        f"**Flows on images, side by side with {record['peer']}** {record.get('peer_version', '')} "
        f"on {record['data']}: the same batches and dequantization noise, "
        f"{record['train_steps']} steps of batch {record['batch_size']}, Adam lr {record['lr']}, "
        f"{record['threads']} thread, alternating in one process, {_seeds(record)}; test "
        f"bits/dim on the first {record['test_images']} test images, the dequantization bound "
        "on the 0..255 scale for both (−(log p(y) − D ln 256) / (D ln 2)); CPU ms per training "
        f"step and per {record['samples']} samples; [ ] is a 95 % t-interval over the seeds "
        "(paired).",
        "",
        *markdown_table(
            [
                "flow",
                "params dgm / peer",
                "bits/dim dgm",
                "bits/dim peer",
                "dgm − peer",
                "ms/step dgm / peer",
                "ms/step dgm ÷ peer",
                "sample ms dgm / peer",
                "sampling dgm ÷ peer",
            ],
            rows,
        ),
        *threads_line([(r["model"], r.get("threads")) for r in record["rows"]]),
        "",
        f"Differences: {notes}.",
        "",
        "Reading: " + reading(record),
    ]


def slower_because(row: dict[str, Any]) -> str:
    """Why dgm's step is slower than the peer's (empty when it is not): the convolution
    multiply-adds of both, and page faults per step when dgm's are many more."""
    ratio = row["ms_ratio"]["mean"]
    if ratio <= 1.05:
        return ""
    seed = row["per_seed"][0]
    ours, peer = seed["dgm"]["conv_macs_per_image"], seed[PEER]["conv_macs_per_image"]
    if ours > 1.05 * peer:
        out = (
            f", from {ours / peer:.2f}× its convolution multiply-adds ({ours / 1e6:.1f} M "
            f"vs {peer / 1e6:.1f} M per image: {MACS_NOTE.get(row['dgm_model'], '?')}), "
            f"so per multiply-add dgm takes {ratio * peer / ours:.2f}× the peer's time"
        )
    else:
        out = " with the same convolution multiply-adds: the time goes elsewhere"
    ours_pf = seed["dgm"].get("page_faults_per_step")
    peer_pf = seed[PEER].get("page_faults_per_step")
    if ours_pf is not None and ours_pf > max(1000, 10 * peer_pf):
        out += (
            f"; dgm's step also takes {ours_pf:.0f} page faults (the peer's {peer_pf:.0f}): "
            "glibc hands its larger freed activations back to the system after each step"
        )
    return out


def reading(record: dict[str, Any]) -> str:
    """One line from the numbers: per flow, whether dgm's bits/dim differ from the peer's
    (the paired interval against 0), its ms/step ratio, and for a slower step the ratio of
    convolution multiply-adds that explains it."""
    parts = []
    for row in record["rows"]:
        name = row["model"].split(",")[0]
        diff, ratio = row["bpd_difference"] or {"mean": math.nan}, row["ms_ratio"]
        ci = diff.get("ci95")
        lost = ", ".join(f"{d['side']} seed {d['seed']}" for d in row.get("diverged", []))
        if lost:
            name += f" ({lost} diverged to NaN, left out of the bits/dim)"
        if ci is None or ci[0] <= 0 <= ci[1]:
            quality = f"bits/dim not distinguishable ({diff['mean']:+.3f})"
        else:
            better = "better" if diff["mean"] < 0 else "worse"
            quality = f"dgm {abs(diff['mean']):.3f} bits/dim {better} (interval excludes 0)"
        speed = f"step {ratio['mean']:.2f}× the peer's" + slower_because(row)
        parts.append(f"{name}: {quality}, {speed}")
    return (
        "; ".join(parts)
        + ". Short runs of the same batches (early training), not converged figures."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="2 seeds, 6 steps, 100 test images")
    p.add_argument(
        "--jobs", type=int, default=1, help="(pair, seed) runs at once, one process each"
    )
    p.add_argument(
        "--only",
        choices=[pair.dgm_name for pair in PAIRS],
        help="rerun this row into the existing results file, the other rows as they are",
    )
    p.add_argument("--seeds", type=int, help="seeds 0..N-1 (default: 3, --quick 2)")
    add_threads_argument(p)
    ns = p.parse_args(argv)
    if ns.jobs < 1:
        p.error(f"--jobs must be at least 1, got {ns.jobs}")
    if ns.seeds is not None and ns.seeds < 2:
        p.error(f"--seeds must be at least 2 (an interval needs two), got {ns.seeds}")
    if ns.threads != 1:
        run_threads(ns.quick, ns.threads, ns.only)
    else:
        run(quick=ns.quick, jobs=ns.jobs, only=ns.only, num_seeds=ns.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def peer_rows(record: dict[str, Any]) -> list[Any]:
    """docs/peers.md rows: Glow and RealNVP on dequantized images against normflows (the
    means over the seeds where neither side diverged, as the paired difference)."""
    from benchmarks.peers import (
        PeerRow,
        budget,
        interval_cell,
        speed_cell,
        speed_reading,
        verdict,
    )

    out = []
    for row in record["rows"]:
        seeds = row["per_seed"]
        paired = [s for s in seeds if s["dgm"]["bits_per_dim"] and s[PEER]["bits_per_dim"]]
        diff, ratio = row.get("bpd_difference"), row.get("ms_ratio")
        lost = [f"{d['side']}, seed {d['seed']}" for d in row.get("diverged", [])]
        reading = f"bits/dim {verdict(diff)}"
        if ratio:
            reading += f"; {speed_reading(ratio['mean'])}{slower_because(row)}"
        reading += f"; {record['train_steps']} steps: far from a plateau"
        out.append(
            PeerRow(
                family="flow",
                model=row["model"],
                peer=f"{record['peer']} {record.get('peer_version', '')}".strip(),
                data=f"{record['data']}, {record['test_images']} test images",
                budget=budget(
                    record["train_steps"], record["batch_size"], "Adam", record["lr"], len(seeds)
                )
                + (f" (diverged: {'; '.join(lost)}; means over the other seeds)" if lost else ""),
                dgm=f"{statistics.fmean(s['dgm']['bits_per_dim'] for s in paired):.3f} bits/dim",
                peer_value=f"{statistics.fmean(s[PEER]['bits_per_dim'] for s in paired):.3f}",
                difference=interval_cell(diff, 3),
                speed=speed_cell(interval_cell(ratio, 2, sign=""), row.get("threads")),
                reading=reading,
            )
        )
    return out
