"""dgm's ``gan`` against a hand-written DCGAN training loop in the style of PyTorch's
examples/dcgan, for the non-saturating and the hinge games.

The reference (``benchmarks/dcgan_loop.py``) is two plain ``nn.Module`` networks of the same
architecture as dgm's DCGAN networks with the configuration of ``benchmarks/gan.py``
(``conv_channels`` 32, z of 64 dimensions, a sigmoid into [0, 1]) and the example's loop: a
discriminator step, then a generator step, each with its own Adam. Both sides: Adam lr
2e-4, β = (0.5, 0.999) for both players, batch 64, one discriminator step per generator
step.

Like for like, per objective and seed, in one process at one torch thread: the same
seeded batch order of Fashion-MNIST in [0, 1] (dgm's MNIST subset where its files are
absent), the same z (the global generator is seeded identically before each side's
iteration, and both draw z for D's step then for G's step), the same initial weights (dgm's
model is built, then its weights are copied into the reference's modules, so the first
losses agree to float32 rounding: ``first_step_gap`` in the results), the same number of
steps, and dgm's iteration and the reference's alternating (which goes first alternates
too). ms/step is the process's CPU time for one iteration (one D step and one G step), as
a median after a warm-up.

dgm's side is its step as ``Trainer.fit`` runs it, like ``benchmarks/pythae_compare.py``:
``model.loss(x, phase=p)`` for each phase of ``model.phases`` with ``check_values`` off,
``zero_grad``, ``backward`` and the trainer's own optimizer for that phase
(``dgm.train.optim.build_optimizer``: AdamW with weight decay 0, fused where torch has the
kernel, the betas of ``param_groups()``), at a constant learning rate. What the trainer adds
and this leaves out: the learning-rate schedule (``benchmarks/gan.py`` warms up for 20
steps and decays to 0.1 lr; here none on either side), the gradient norm and finite check
with one host sync per phase, the metric sums, and a fresh batch for each phase (the
generator phase reads only the batch's size, so the same batch is given to both phases
here); ``benchmarks/trainer_overhead.py`` measures what the trainer's loop costs.

Where the reference differs from examples/dcgan: examples/dcgan reuses the discriminator
step's fakes for the generator step (one generator pass per iteration, built with autograd
in the discriminator step); dgm's generator phase draws fresh z, so the reference does too
(the discriminator step's G(z) then runs under ``no_grad``, as dgm's), so that the two
sides run the same algorithm step for step. ``--part reuse`` times the other pairing into
the same results file: dgm's ``reuse_fakes`` against the example's own reuse loop (timing
and loss agreement only, ``REUSE_STEPS`` iterations per seed, no sample quality). The
example's in-place activations are kept (``inplace=True``), as is its optimizer
(``torch.optim.Adam``, torch's default implementation, not fused). The example's tanh
output on [−1, 1] is a sigmoid on [0, 1] here, the data scale of ``benchmarks/gan.py``.

Quality, per side and seed, from ``dgm.evaluate.sample_quality`` against the test split
with the same sampling generator: FD and precision/recall (k = 3) in the features of dgm's
own Fashion-MNIST classifier (not FID), and modes captured: the classes that the classifier
assigns to at least a quarter of the n/10 samples a perfect model would give each (the
``min_share`` of ``dgm.evaluate.sample_quality.mode_coverage``, which ``benchmarks/gan.py``
applies to its 2-D toys). Over the seeds: paired
differences dgm − reference with 95 % t-intervals, and the ms/step ratio dgm / reference.

    python -m benchmarks.side_by_side_gan [--quick] [--jobs J] [--part reuse] [--threads 2]

``--threads 2`` trains nothing: it rebuilds every saved row's two models from each seed as
the training run does (the ``--reuse-fakes`` rows as ``--part reuse`` does) and times their
steps alternating at 2 threads, by the wall clock, into the saved rows
(``benchmarks/alternate.py``; about 3 minutes on an idle 2-core machine for the four rows;
with ``--quick``, 2 seeds and 4 steps into results/quick/).

``--quick`` (about a minute): 2 seeds, 30 steps, 200 samples, a quickly trained classifier:
it checks that the benchmark runs, its numbers mean nothing.

References:
    Radford, Metz & Chintala 2015, DCGAN, arXiv:1511.06434; PyTorch examples, dcgan/main.py.
    Goodfellow et al. 2014, arXiv:1406.2661; Lim & Ye 2017, Geometric GAN, arXiv:1705.02894.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import dgm
from benchmarks import common
from benchmarks.alternate import threads_line
from benchmarks.common import (
    busy_warning,
    fashion_mnist_root,
    fmt,
    interval,
    log,
    markdown_table,
    one_thread,
    plus_minus,
    write_result,
)
from benchmarks.dcgan_loop import BETAS, LR, Reference
from benchmarks.gan import IMAGE
from benchmarks.peers import verdict
from dgm.data import DataConfig
from dgm.evaluate.features import ClassifierSettings, FeatureClassifier, feature_classifier
from dgm.evaluate.sample_quality import draw, sample_quality
from dgm.train import TrainConfig
from dgm.train.optim import build_optimizer

NAME = "side_by_side_gan"
REFERENCE = "examples/dcgan-style loop"
OBJECTIVES = ("nonsaturating", "hinge")
BATCH, THREADS = 64, 1
SEEDS, QUICK_SEEDS = (0, 1, 2), (0, 1)
STEPS, QUICK_STEPS = 400, 30
SAMPLES, QUICK_SAMPLES = 2000, 200
QUICK_TEST = 1000  # test images kept in quick mode
WARMUP = 20  # iterations left out of the ms/step medians (quick: a quarter of the steps)
EVAL_SEED = 12345  # the sampling generator of the evaluation, the same for both sides
MIN_SHARE = 0.25  # a class is captured with at least this share of n / K samples
REUSE_STEPS, QUICK_REUSE_STEPS = 80, 8  # --part reuse: timed iterations per seed


class DgmSide:
    """dgm's step as ``Trainer.fit`` runs it (constant lr, no norm/finite check, no metric
    sums): every phase's ``model.loss``, ``zero_grad``, ``backward``, and the trainer's
    optimizer of that phase. ``step(real)`` returns (D's loss, G's loss), detached."""

    def __init__(self, model: Any) -> None:
        self.model = model.train()
        model.check_values = False  # as fit runs it: the data were checked once up front
        config = TrainConfig(lr=LR)
        self.opts = {
            phase: build_optimizer(phase, entries, config, model)
            for phase, entries in model.param_groups().items()
        }

    def step(self, real: Tensor) -> tuple[Tensor, Tensor]:
        losses = {}
        for phase in self.model.phases:
            out = self.model.loss(real, phase=phase)
            opt = self.opts[phase]
            opt.zero_grad(set_to_none=True)
            out.value.backward()
            opt.step()
            losses[phase] = out.value.detach()
        return losses["discriminator"], losses["generator"]


def make_pair(objective: str, shape: tuple[int, ...], seed: int, **config: Any) -> Any:
    """dgm's GAN (``benchmarks/gan.py``'s image config unless ``config`` overrides it),
    seeded, and the reference loop on a copy of its weights: ``(DgmSide, Reference)``;
    with ``reuse_fakes=True`` the reference reuses its fakes too, as examples/dcgan does."""
    torch.manual_seed(seed)
    model = dgm.create("gan", shape, objective=objective, **{**IMAGE, **config})
    return DgmSide(model), Reference(model, objective, model.config.reuse_fakes)


# -- data and measures -------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def load_data(quick: bool) -> tuple[Any, Any, str]:
    """Train and test splits in [0, 1] and the name of the data: Fashion-MNIST, or dgm's
    MNIST subset where its files are absent."""
    try:
        data = DataConfig(name="fashion_mnist", root=fashion_mnist_root())
        train, test = data.load("train"), data.load("test")
    except (FileNotFoundError, OSError, ValueError) as e:
        log(f"Fashion-MNIST unavailable ({e}): using dgm's MNIST subset")
        data = DataConfig(name="mnist_subset")
        train, test = data.load("train"), data.load("test")
    if quick:
        test = test.subset(torch.arange(min(QUICK_TEST, len(test))))
    return train, test, data.name


def batch_order(n: int, steps: int, seed: int) -> Tensor:
    """Indices (steps, BATCH) of ``steps`` batches: seeded epochs of a permutation of n."""
    gen = torch.Generator().manual_seed(seed)
    epochs = math.ceil(steps * BATCH / n)
    return torch.cat([torch.randperm(n, generator=gen) for _ in range(epochs)])[
        : steps * BATCH
    ].view(steps, BATCH)  # (steps, BATCH)


@torch.no_grad()
def modes_captured(model: Any, classifier: FeatureClassifier, n: int) -> dict[str, Any]:
    """Classes the feature classifier assigns to at least ``MIN_SHARE`` · n/K of ``n``
    samples (drawn with the evaluation's generator), and the samples per class."""
    x = draw(model, n, None, batch_size=500, generator=torch.Generator().manual_seed(EVAL_SEED))
    logits = torch.cat([classifier.net(xb.float()) for xb in x.split(500)])  # (n, K)
    k = logits.shape[1]
    counts = torch.bincount(logits.argmax(-1), minlength=k)  # (K,)
    need = max(1.0, MIN_SHARE * n / k)
    return {
        "modes": k,
        "modes_captured": int((counts >= need).sum()),
        "class_counts": counts.tolist(),
    }


def quality(model: Any, test: Any, classifier: FeatureClassifier, n: int) -> dict[str, Any]:
    """FD, KID, precision and recall (dgm's classifier features) and modes captured."""
    q = sample_quality(model, test, num_samples=n, seed=EVAL_SEED, classifier=classifier)
    keep = {k: q[k] for k in ("fd", "kid", "precision", "recall")}
    return keep | modes_captured(model, classifier, n)


def run_seed(
    objective: str,
    seed: int,
    steps: int,
    samples: int,
    classifier: FeatureClassifier,
    quick: bool,
) -> dict[str, Any]:
    """Train both sides on the same batches and z for ``steps`` iterations; their figures."""
    train, test, _ = load_data(quick)
    order = batch_order(len(train), steps, seed)
    ours, ref = make_pair(objective, tuple(train.x.shape[1:]), seed)
    sides: dict[str, Any] = {"dgm": ours, "reference": ref}
    times: dict[str, list[float]] = {name: [] for name in sides}
    first: dict[str, tuple[Tensor, Tensor]] = {}
    last: dict[str, tuple[Tensor, Tensor]] = {}
    for k in range(steps):
        real = train.x[order[k]]  # (BATCH, 1, 28, 28), the same batch for both
        for name in ("dgm", "reference") if k % 2 == 0 else ("reference", "dgm"):
            torch.manual_seed(seed * 1_000_003 + k)  # the same z for both
            t0 = time.process_time()
            last[name] = sides[name].step(real)
            times[name].append(1e3 * (time.process_time() - t0))
            if k == 0:
                first[name] = last[name]
    warmup = min(WARMUP, steps // 4)
    out: dict[str, Any] = {
        "seed": seed,
        "first_step_gap": max(
            abs(float(a) - float(b)) for a, b in zip(first["dgm"], first["reference"], strict=True)
        ),
    }
    for name, model in (("dgm", ours.model), ("reference", ref.as_dgm(ours.model))):
        t0 = time.process_time()
        figures = quality(model, test, classifier, samples)
        out[name] = {
            "ms_per_step": statistics.median(times[name][warmup:]),
            "train_cpu_s": sum(times[name]) / 1e3,
            "last_d_loss": float(last[name][0]),
            "last_g_loss": float(last[name][1]),
            "eval_cpu_s": time.process_time() - t0,
            **figures,
        }
    out["params"] = sum(p.numel() for p in ours.model.parameters())
    return out


def reuse_timing(objective: str, seed: int, steps: int, quick: bool) -> dict[str, Any]:
    """``--reuse-fakes`` against examples/dcgan as it is (both generator steps score the
    discriminator step's fakes): the same batches, z and weights, alternating; ms/step of
    each (median after a warm-up) and the largest gap of their losses over the run."""
    train, _, _ = load_data(quick)
    order = batch_order(len(train), steps, seed)
    ours, ref = make_pair(objective, tuple(train.x.shape[1:]), seed, reuse_fakes=True)
    sides: dict[str, Any] = {"dgm": ours, "reference": ref}
    times: dict[str, list[float]] = {name: [] for name in sides}
    gap = 0.0
    with one_thread():
        for k in range(steps):
            real = train.x[order[k]]  # (BATCH, 1, 28, 28), the same batch for both
            losses = {}
            for name in ("dgm", "reference") if k % 2 == 0 else ("reference", "dgm"):
                torch.manual_seed(seed * 1_000_003 + k)  # the same z for both
                t0 = time.process_time()
                losses[name] = sides[name].step(real)
                times[name].append(1e3 * (time.process_time() - t0))
            pairs = zip(losses["dgm"], losses["reference"], strict=True)
            gap = max(gap, *(abs(float(a) - float(b)) for a, b in pairs))
    warmup = min(WARMUP, steps // 4)
    out = {name: {"ms_per_step": statistics.median(t[warmup:])} for name, t in times.items()}
    return {"seed": seed, "largest_loss_gap": gap, **out}


def _rerun_reuse(quick: bool) -> dict[str, Any]:
    """The ``reuse`` part: every objective and seed timed with ``--reuse-fakes`` against
    the reusing reference, written into the existing results file (its rows kept)."""
    t0 = time.perf_counter()
    steps = QUICK_REUSE_STEPS if quick else REUSE_STEPS
    seeds = QUICK_SEEDS if quick else SEEDS
    rows = []
    for objective in OBJECTIVES:
        per_seed = [reuse_timing(objective, seed, steps, quick) for seed in seeds]
        ratios = [s["dgm"]["ms_per_step"] / s["reference"]["ms_per_step"] for s in per_seed]
        rows.append({"objective": objective, "per_seed": per_seed, "ms_ratio": interval(ratios)})
        log(f"  reuse_fakes, {objective}: ms/step dgm / examples/dcgan {rows[-1]['ms_ratio']}")
    payload, wall = common.existing_payload(NAME, quick=quick)
    payload["reuse_variant"] = {
        "steps": steps,
        "seeds": list(seeds),
        "cpu_wall_s": round(time.perf_counter() - t0, 1),
        "load_average": list(os.getloadavg()),
        "rows": rows,
    }
    write_result(
        NAME, payload, quick=quick, seed=seeds[0], steps=payload["train_steps"], wall_time_s=wall
    )
    return payload


def reuse_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the ``--reuse-fakes`` variant (``--part reuse``), none if not measured."""
    return (payload.get("reuse_variant") or {}).get("rows", [])


def run_threads(quick: bool, threads: int) -> dict[str, Any]:
    """The ``--threads N`` pass (``benchmarks/alternate.py``): each objective's pair rebuilt
    from each seed (``make_pair``, as ``run_seed`` builds it, and as ``reuse_timing`` does
    for the ``--reuse-fakes`` rows), both iterations timed alternating at ``threads``
    threads on the same batches and z, written into the row under "threads" (the training
    figures kept as they are)."""
    from benchmarks.alternate import speed_pass

    train, _, _ = load_data(quick)
    shape = tuple(train.x.shape[1:])

    def steppers(payload: dict[str, Any], row: dict[str, Any], seed: int, n: int) -> dict:
        order = batch_order(len(train), n, seed)
        reuse = any(row is r for r in reuse_rows(payload))
        ours, ref = make_pair(row["objective"], shape, seed, reuse_fakes=reuse)

        def stepper(side: Any) -> Callable[[int], Any]:
            def step(i: int) -> Any:
                torch.manual_seed(seed * 1_000_003 + i)  # the same z for both
                return side.step(train.x[order[i]])

            return step

        return {"dgm": stepper(ours), "reference": stepper(ref)}

    return speed_pass(
        sys.modules[__name__],
        steppers,
        quick=quick,
        threads=threads,
        rows=lambda payload: payload["rows"] + reuse_rows(payload),
    )


PAIRED = ("fd", "kid", "precision", "recall", "modes_captured")


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired differences dgm − reference of every quality figure and the ms/step ratio
    dgm / reference, each a mean with its 95 % t-interval over the seeds."""
    out = {
        f"{key}_difference": interval([s["dgm"][key] - s["reference"][key] for s in per_seed])
        for key in PAIRED
    }
    out["ms_ratio"] = interval(
        [s["dgm"]["ms_per_step"] / s["reference"]["ms_per_step"] for s in per_seed]
    )
    return out


def classifier_for(data_name: str, quick: bool) -> FeatureClassifier:
    """The feature classifier of the data (quick: a briefly trained one), cached."""
    settings = ClassifierSettings(steps=100) if quick else ClassifierSettings()
    return feature_classifier(data_name, fashion_mnist_root(), settings=settings)


def _task(objective: str, seed: int, steps: int, samples: int, quick: bool) -> dict[str, Any]:
    """One (objective, seed) run at one torch thread, in this process or a worker's."""
    _, _, data_name = load_data(quick)
    classifier = classifier_for(data_name, quick)
    with one_thread():
        result = run_seed(objective, seed, steps, samples, classifier, quick)
    log(f"  {objective} seed {seed}: {result}")
    return result


def run(quick: bool = False, jobs: int = 1, part: str | None = None) -> dict[str, Any]:
    """Both objectives over the seeds (``jobs`` runs at once, each in its own process at one
    torch thread: ms/step is each process's own CPU time), then the results file. The file
    is written after every finished run too, marked incomplete until the last. ``part``
    "reuse" times only the ``--reuse-fakes`` variant into the existing file."""
    if part == "reuse":
        return _rerun_reuse(quick)
    warning = busy_warning()
    if warning:
        log(warning)
    t_start = time.perf_counter()
    steps, seeds = (QUICK_STEPS, QUICK_SEEDS) if quick else (STEPS, SEEDS)
    samples = QUICK_SAMPLES if quick else SAMPLES
    _, test, data_name = load_data(quick)
    classifier = classifier_for(data_name, quick)  # trained here once, before any worker
    tasks = [(objective, seed) for objective in OBJECTIVES for seed in seeds]
    done: dict[tuple[str, int], dict[str, Any]] = {}
    payload = {
        "reference": REFERENCE,
        "data": data_name,
        "test_n": len(test),
        "model_config": IMAGE,
        "batch_size": BATCH,
        "lr": LR,
        "betas": list(BETAS),
        "train_steps": steps,
        "threads": THREADS,
        "processes_at_once": jobs,
        "seeds": list(seeds),
        "num_samples": samples,
        "feature_space": classifier.feature_space,
        "classifier_test_accuracy": classifier.test_accuracy,
        "min_share": MIN_SHARE,
        "optimizers": {
            "dgm": "dgm's trainer optimizer per phase (fused AdamW, weight decay 0)",
            "reference": f"torch.optim.Adam(lr={LR}, betas={BETAS}) per network (default)",
        },
        "warning": warning,
        "complete": False,
        "rows": [],
    }

    def save() -> Any:
        rows = []
        for objective in OBJECTIVES:
            per_seed = [done[(objective, s)] for s in seeds if (objective, s) in done]
            if per_seed:
                rows.append({"objective": objective, "per_seed": per_seed, **summarise(per_seed)})
        payload["rows"] = rows
        payload["complete"] = len(done) == len(tasks)
        wall = time.perf_counter() - t_start
        return write_result(
            NAME, payload, quick=quick, seed=seeds[0], steps=steps, wall_time_s=wall
        )

    if jobs > 1:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {pool.submit(_task, o, s, steps, samples, quick): (o, s) for o, s in tasks}
            for future in concurrent.futures.as_completed(futures):
                done[futures[future]] = future.result()
                save()  # partial results survive a crash
    else:
        for o, s in tasks:
            done[(o, s)] = _task(o, s, steps, samples, quick)
            save()
    path = save()
    log("\n".join(table(payload)))
    log(f"wrote {path} ({time.perf_counter() - t_start:.0f} s)")
    return payload


# -- the table ---------------------------------------------------------------------------------


def reading(record: dict[str, Any]) -> str:
    """One line from the figures: per objective, FD, precision and recall against the
    reference (the paired interval against 0), and the ms/step ratio."""
    parts = []
    for row in record["rows"]:
        fd = verdict(row["fd_difference"], than="")
        pr = []
        for key in ("precision", "recall"):  # higher is better
            said = verdict(row[f"{key}_difference"], lower_is_better=False, than="")
            pr.append(f"{key} {said} it")
        ratio = row["ms_ratio"]["mean"]
        parts.append(
            f"{row['objective']}: FD {fd} the reference's, {', '.join(pr)}, a step at "
            f"{ratio:.2f}x its CPU time"
        )
    return (
        "Reading: "
        + "; ".join(parts)
        + f". Short runs ({record['train_steps']} generator steps): early training, not "
        "converged GANs."
    )


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: one row per objective, means over the seeds,
    the paired differences and the ms/step ratio with their 95 % intervals."""
    rows = []
    for row in record["rows"]:
        seeds = row["per_seed"]

        def mean(who: str, key: str, seeds: list[dict[str, Any]] = seeds) -> float:
            return statistics.fmean(s[who][key] for s in seeds)

        modes = seeds[0]["dgm"]["modes"]
        rows.append(
            [
                row["objective"],
                f"{fmt(mean('dgm', 'fd'))} / {fmt(mean('reference', 'fd'))}",
                plus_minus(row["fd_difference"], "+.2f"),
                f"{fmt(mean('dgm', 'precision'), 3)} / {fmt(mean('reference', 'precision'), 3)}",
                plus_minus(row["precision_difference"], "+.3f"),
                f"{fmt(mean('dgm', 'recall'), 3)} / {fmt(mean('reference', 'recall'), 3)}",
                plus_minus(row["recall_difference"], "+.3f"),
                f"{mean('dgm', 'modes_captured'):.1f} / {mean('reference', 'modes_captured'):.1f}"
                f" of {modes}",
                f"{mean('dgm', 'ms_per_step'):.1f} / {mean('reference', 'ms_per_step'):.1f}",
                plus_minus(row["ms_ratio"], ".3f"),
            ]
        )
    c = record["model_config"]
    return [
        f"**dgm's `gan` against an {record['reference']}** (same DCGAN networks: "
        f"`conv_channels` {c['conv_channels']}, z of {c['latent_dim']} dimensions, sigmoid "
        f"output) on {record['data']} in [0, 1]: the same batches, z draws and initial "
        f"weights, {record['train_steps']} generator steps of batch {record['batch_size']} "
        f"(one D step each), Adam lr {record['lr']}, β = {tuple(record['betas'])}, constant, "
        f"{record['threads']} thread, the two sides alternating in one process, seeds "
        f"{record['seeds']}. FD and precision/recall (k = 3) of {record['num_samples']} "
        f"samples against the test split in {record['feature_space']} (not FID); modes: "
        f"classes the classifier gives ≥ {record['min_share']:.2f} · n/K of the samples. "
        "dgm / reference means over the seeds; ± is a 95 % t-interval of the paired "
        "difference or ratio.",
        "",
        *markdown_table(
            [
                "objective",
                "FD dgm / ref",
                "FD dgm − ref",
                "precision dgm / ref",
                "dgm − ref",
                "recall dgm / ref",
                "dgm − ref",
                "modes dgm / ref",
                "CPU ms/step dgm / ref",
                "ms/step dgm ÷ ref",
            ],
            rows,
        ),
        "",
        "Differences: dgm's optimiser is its trainer's fused AdamW (weight decay 0), the "
        "reference's torch's default Adam; the reference's activations are in place "
        "(examples/dcgan's); examples/dcgan's generator step reuses the discriminator "
        "step's fakes (one generator pass fewer per iteration), here both sides draw "
        "fresh z for it (dgm's algorithm). dgm's step "
        "is timed without its trainer's schedule, gradient-norm check and metric sums.",
        *threads_line([(r["objective"], r.get("threads")) for r in record["rows"]]),
        *reuse_lines(record),
        "",
        reading(record),
    ]


def reuse_lines(record: dict[str, Any]) -> list[str]:
    """The ``--reuse-fakes`` variant's timing against examples/dcgan as it is, if measured."""
    variant = record.get("reuse_variant")
    if not variant:
        return []
    cells = [
        f"{row['objective']} {plus_minus(row['ms_ratio'], '.3f')} (float32 losses apart by "
        f"at most {max(s['largest_loss_gap'] for s in row['per_seed']):.0e})"
        for row in variant["rows"]
    ]
    labelled = [(row["objective"], row.get("threads")) for row in variant["rows"]]
    return [
        "",
        "With `--reuse-fakes` (the generator step scores the discriminator step's fakes) "
        "against examples/dcgan's loop as it is, on the same batches, z and weights, "
        f"{variant['steps']} iterations × seeds {variant['seeds']}, timing only: CPU "
        f"ms/step dgm ÷ examples/dcgan {'; '.join(cells)}.",
        *threads_line(labelled),
    ]


def peer_rows(record: dict[str, Any]) -> list[Any]:
    """docs/peers.md rows: dgm's GAN against the examples/dcgan-style loop, one per game."""
    from benchmarks.peers import PeerRow, budget, interval_cell, speed_cell, speed_reading

    c = record["model_config"]
    out = []
    for row in record["rows"]:
        seeds = row["per_seed"]

        def mean(who: str, key: str, seeds: list[dict[str, Any]] = seeds) -> float:
            return statistics.fmean(s[who][key] for s in seeds)

        precision = verdict(row["precision_difference"], lower_is_better=False)
        recall = verdict(row["recall_difference"], lower_is_better=False)
        out.append(
            PeerRow(
                family="GAN",
                model=f"gan, {row['objective']} (DCGAN, conv_channels {c['conv_channels']})",
                peer=f"{record['reference']} (same networks, weights copied)",
                data=f"{record['data']} in [0, 1], {record['num_samples']} samples vs test",
                budget=budget(
                    record["train_steps"], record["batch_size"], "Adam", record["lr"], len(seeds)
                ),
                dgm=f"FD {mean('dgm', 'fd'):.2f} (dgm features), precision "
                f"{mean('dgm', 'precision'):.3f}",
                peer_value=f"FD {mean('reference', 'fd'):.2f}, precision "
                f"{mean('reference', 'precision'):.3f}",
                difference=f"FD {interval_cell(row['fd_difference'], 2)}",
                speed=speed_cell(
                    interval_cell(row["ms_ratio"], 3, sign=""), row.get("threads"), digits=3
                ),
                reading=f"FD {verdict(row['fd_difference'])}, precision {precision}, "
                f"recall {recall}; {speed_reading(row['ms_ratio']['mean'])}; both start from "
                "the same weights, batches and z, so this shows the same computation at the "
                "same cost, not two independent trainings",
            )
        )
    variant = record.get("reuse_variant") or {"rows": []}
    for row in variant["rows"]:
        gap = max(s["largest_loss_gap"] for s in row["per_seed"])
        out.append(
            PeerRow(
                family="GAN",
                model=f"gan --reuse-fakes, {row['objective']} (DCGAN, conv_channels "
                f"{c['conv_channels']})",
                peer="examples/dcgan's loop as it is, reusing its fakes (same networks, "
                "weights copied)",
                data=f"{record['data']} in [0, 1]",
                budget=f"{variant['steps']} steps of {record['batch_size']}, timing only, "
                f"{len(row['per_seed'])} seeds",
                dgm="–",
                peer_value="–",
                difference=f"losses within {gap:.0e}",
                speed=speed_cell(
                    interval_cell(row["ms_ratio"], 3, sign=""), row.get("threads"), digits=3
                ),
                reading="the same algorithm (equal losses in float64, tested); in float32 "
                f"the losses drift apart by at most {gap:.0e} in {variant['steps']} steps "
                f"(fused AdamW vs Adam rounding); {speed_reading(row['ms_ratio']['mean'])}",
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    return common.main(
        run,
        __doc__,
        "2 seeds, 30 steps, 200 samples",
        argv,
        {"reuse": "time --reuse-fakes against examples/dcgan's own reuse loop alone"},
        jobs="(objective, seed) runs at once, one process each",
        threads=run_threads,
    )


if __name__ == "__main__":
    raise SystemExit(main())
