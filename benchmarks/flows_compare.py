"""Normalizing flows: dgm against zuko and normflows, test NLL and training speed.

MAF and RealNVP on moons and eight_gaussians, the same
architecture size in all three (5 transforms of (64, 64) MLPs; reversals between MAF
steps, alternating halves between couplings), the same 10 000 training points in the
same batches of 256, the same optimiser (Adam at lr 1e-3, constant, on the fused
kernel: dgm's own ``build_optimizer``, which is AdamW with weight decay 0, and
``torch.optim.Adam(fused=True)`` for the others) and the same number of steps, one
torch thread. Training runs in rounds: every library trains one chunk of steps per
round, the order rotating; ms/step is the median over rounds (the first round, the
warm-up, left out) and the dgm ÷ other ratio the median of the per-round ratios. A step
is forward, backward, optimizer step and ``zero_grad``; dgm's loss is ``model.loss``
with value checks off, as the trainer runs it; before training, each side's loss is
checked equal to its mean NLL on a batch. Then the test NLL of each, and dgm's minus
each other's per test point with its paired standard error. 20 dgm steps on moons are
profiled (``torch.profiler``), the top operators saved with the results.
3. **Which direction is fast**, D = 784 (a flattened 28x28 image), one thread, no
Every case is trained once per training seed (initial weights and batch order); the
table gives the mean and spread over the seeds.

zuko and normflows are bench-only extras (``pip install -c constraints.txt -e '.[bench]'``),
never dependencies of dgm; without them this benchmark is skipped with a message. The
compare part of ``results[/quick]/flows.json`` (``benchmarks.flows``).

    python -m benchmarks.flows_compare [--quick] [--threads 2]

``--threads 2`` trains nothing for quality: for every saved case and peer library it
rebuilds dgm's flow and the peer's from 3 of the training seeds (0, 1, 2; the 1-thread
figures use all 16) as the training run does and times their steps alternating at 2
threads, 40 steps after 5 of warm-up per seed, by the wall clock (``benchmarks/alternate.py``),
into the saved compare part, its other figures as they were (under a minute on an idle
2-core machine; with ``--quick``, one seed and 4 steps into results/quick/).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import itertools
import math
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

import dgm
from benchmarks import common, flows
from benchmarks.alternate import threads_line
from benchmarks.common import (
    bench_extra_missing,
    busy_warning,
    ci95,
    fmt,
    log,
    log_probs,
    markdown_table,
    mean_se,
    nll,
    paired_ratio,
    sd,
    summary,
    threads_label,
    trainer_optimizer,
)
from benchmarks.flows import BATCH, LR, SEED, TOY_MODELS, load_toy, run_part

NAME = flows.NAME  # the results file this part writes into: results/flows.json

COMPARE_TOYS = ("moons", "eight_gaussians")
COMPARE_MODELS = ("maf", "realnvp")
# training seeds: the per-seed spread of dgm − zuko (SD 0.02-0.07 nats) is as large as the
# gaps being judged, so 16 seeds give a standard error near 0.005-0.017 nats
COMPARE_SEEDS = tuple(range(16))
SPEED_SEEDS, QUICK_SPEED_SEEDS = COMPARE_SEEDS[:3], COMPARE_SEEDS[:1]  # of the --threads pass
LIBRARIES = ("dgm", "zuko", "normflows")


class _Side:
    """One library's flow: its loss on a batch, its log-density, its parameters."""

    def __init__(
        self,
        module: nn.Module,
        loss: Callable[[Tensor], Tensor],
        log_prob: Callable[[Tensor], Tensor],
    ) -> None:
        self.module, self.loss, self.log_prob = module, loss, log_prob


def _dgm_side(model_name: str) -> tuple[_Side, torch.optim.Optimizer]:
    model = dgm.create(model_name, (2,), **TOY_MODELS[model_name])
    model.check_values = False  # as the trainer's fit runs it
    opt = trainer_optimizer(model, LR)
    return _Side(model, lambda x: model.loss(x).value, model.log_prob), opt


def _zuko_side(model_name: str) -> _Side:
    import zuko

    if model_name == "maf":
        flow = zuko.flows.MAF(2, transforms=5, hidden_features=(64, 64))
    else:
        flow = zuko.flows.RealNVP(2, transforms=5, hidden_features=(64, 64))
    return _Side(flow, lambda x: -flow().log_prob(x).mean(), lambda x: flow().log_prob(x))


def _normflows_side(model_name: str) -> _Side:
    import normflows as nf

    flows: list[nn.Module] = []
    for k in range(5):
        if model_name == "maf":  # MADE 2 -> 64 -> 64 -> 4: one feed-forward hidden block
            flows.append(
                nf.flows.MaskedAffineAutoregressive(2, 64, num_blocks=1, use_residual_blocks=False)
            )
        else:  # coupling MLP 1 -> 64 -> 64 -> 2 on the kept half
            flows.append(nf.flows.AffineCouplingBlock(nf.nets.MLP([1, 64, 64, 2], init_zeros=True)))
        if k < 4:
            flows.append(nf.flows.Permute(2, mode="swap"))
    flow = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), flows)
    return _Side(flow, flow.forward_kld, flow.log_prob)


def _batches(n: int, steps: int, seed: int = SEED) -> Tensor:
    """Indices of every step's batch, (steps, BATCH): seeded epochs of a permutation."""
    g = torch.Generator().manual_seed(seed)
    per_epoch = n // BATCH
    epochs = -(-steps // per_epoch)
    perms = [torch.randperm(n, generator=g)[: per_epoch * BATCH] for _ in range(epochs)]
    return torch.cat(perms).view(-1, BATCH)[:steps]


def build_sides(
    model_name: str, seed: int, libs: tuple[str, ...] = LIBRARIES
) -> tuple[dict[str, _Side], dict[str, torch.optim.Optimizer]]:
    """Each library's flow ``model_name`` (of ``libs``) in training mode and its optimizer,
    torch's global seed set to ``seed`` before each (so its initial weights do not depend
    on which other libraries are built)."""
    sides: dict[str, _Side] = {}
    opts: dict[str, torch.optim.Optimizer] = {}
    for lib in libs:
        torch.manual_seed(seed)
        if lib == "dgm":
            sides[lib], opts[lib] = _dgm_side(model_name)
        else:
            sides[lib] = _zuko_side(model_name) if lib == "zuko" else _normflows_side(model_name)
            opts[lib] = torch.optim.Adam(sides[lib].module.parameters(), lr=LR, fused=True)
        sides[lib].module.train()
    return sides, opts


def _train_step(side: _Side, opt: torch.optim.Optimizer, x: Tensor) -> None:
    """One training step: forward, backward, optimizer step and ``zero_grad``."""
    side.loss(x).backward()
    opt.step()
    opt.zero_grad()


def _profile_dgm_step(side: _Side, opt: torch.optim.Optimizer, x: Tensor) -> list[dict[str, Any]]:
    """The ten operators with the most self CPU time in 20 dgm training steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(20):
            _train_step(side, opt, x)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        {
            "op": e.key,
            "calls_per_step": e.count / 20,
            "self_us_per_step": e.self_cpu_time_total / 20,
            "share": e.self_cpu_time_total / total,
        }
        for e in events[:10]
    ]


def _check_losses(sides: dict[str, _Side], x: Tensor) -> None:
    """Every side's training loss is its mean NLL in nats on the batch (the same objective)."""
    with torch.no_grad():
        for lib, side in sides.items():
            loss, mean_nll = side.loss(x).item(), -side.log_prob(x).mean().item()
            if abs(loss - mean_nll) > 1e-4 * max(1.0, abs(mean_nll)):
                raise SystemExit(f"{lib}: loss {loss} is not the mean NLL {mean_nll}")


def _train_interleaved(
    sides: dict[str, _Side], opts: dict[str, torch.optim.Optimizer], batches: Tensor
) -> dict[str, list[float]]:
    """Train every side on ``batches`` (rounds, chunk, B, 2): each round every side trains
    its chunk, the order rotating by one each round. ms/step of each side's chunk per
    round, round 0 (the warm-up) left out."""
    ms: dict[str, list[float]] = {lib: [] for lib in sides}
    libs = list(sides)
    for r, chunk in enumerate(batches):
        for k in range(len(libs)):
            lib = libs[(r + k) % len(libs)]
            side, opt = sides[lib], opts[lib]
            t0 = time.perf_counter()
            for x in chunk:
                _train_step(side, opt, x)
            if r > 0:
                ms[lib].append(1000 * (time.perf_counter() - t0) / len(chunk))
    return ms


def _trained(run: dict[str, Any], lib: str) -> bool:
    """Whether ``lib``'s run did not diverge (``DIVERGED_NATS``)."""
    value = run["test_nll"][lib]
    return math.isfinite(value) and value <= run["true_nll"] + DIVERGED_NATS


DIVERGED_NATS = 10.0  # a run whose test NLL is not finite or this far above the true NLL


def by_cases(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per toy and flow, over the seeds: each library's NLL mean and SD, dgm's minus each
    other's (mean, SD, SE, Student-t 95 % interval), the median ms/step ratio. A diverged
    run (test NLL not finite, or more than ``DIVERGED_NATS`` above the true density's NLL)
    is counted in ``diverged``, and its seed left out of that library's figures."""
    by_case = []
    for toy, model_name in itertools.product(COMPARE_TOYS, COMPARE_MODELS):
        case = [r for r in runs if r["toy"] == toy and r["model"] == model_name]
        ok = {lib: [r for r in case if _trained(r, lib)] for lib in LIBRARIES}
        nlls = {lib: [r["test_nll"][lib] for r in kept] or [math.nan] for lib, kept in ok.items()}
        diffs = {
            lib: [r["nll_dgm_minus"][lib]["diff"] for r in ok[lib] if _trained(r, "dgm")]
            or [math.nan]
            for lib in LIBRARIES[1:]
        }
        by_case.append(
            {
                "toy": toy,
                "model": model_name,
                "seeds": [r["seed"] for r in case],
                "diverged": {lib: len(case) - len(kept) for lib, kept in ok.items()},
                "diverged_rule": f"test NLL not finite or > true NLL + {DIVERGED_NATS} nats",
                "nll_mean": {lib: statistics.mean(v) for lib, v in nlls.items()},
                "nll_sd": {lib: sd(v) for lib, v in nlls.items()},
                # NLL dgm - NLL other per seed (negative: dgm better), mean and SD over seeds
                "nll_dgm_minus_mean": {lib: statistics.mean(v) for lib, v in diffs.items()},
                "nll_dgm_minus_sd": {lib: sd(v) for lib, v in diffs.items()},
                # its standard error and Student-t 95 % interval over the seeds
                "nll_dgm_minus_se": {lib: sd(v) / math.sqrt(len(v)) for lib, v in diffs.items()},
                "nll_dgm_minus_ci95": {lib: ci95(v) for lib, v in diffs.items()},
                "ratio_dgm_over_median": {
                    lib: statistics.median([r["ratio_dgm_over"][lib] for r in case])
                    for lib in LIBRARIES[1:]
                },
                "true_nll": case[0]["true_nll"],
            }
        )
    return by_case


def measure(
    steps: int, chunk: int, quick: bool, seeds: tuple[int, ...] = COMPARE_SEEDS
) -> dict[str, Any]:
    """dgm, zuko and normflows trained side by side, interleaved, once per training
    seed (initial weights and batch order); NLL and ms/step per run, and per case the mean
    and standard deviation over the seeds (``by_case``)."""
    rounds = steps // chunk
    runs: list[dict[str, Any]] = []
    profiles: dict[str, list[dict[str, Any]]] = {}
    warning = busy_warning()
    if warning:
        log(warning)
    for seed, toy in itertools.product(seeds, COMPARE_TOYS):
        train, test = load_toy(toy, "train"), load_toy(toy, "test")
        floor = nll(log_probs(test.density.log_prob, test.x))["nll"]
        order = _batches(len(train), rounds * chunk, seed)
        for model_name in COMPARE_MODELS:
            sides, opts = build_sides(model_name, seed)
            _check_losses(sides, train.x[order[0]])
            ms = _train_interleaved(sides, opts, train.x[order].view(rounds, chunk, BATCH, 2))
            lps = {}
            for lib, side in sides.items():
                side.module.eval()
                with torch.no_grad():
                    lps[lib] = log_probs(side.log_prob, test.x)
            test_nll = {lib: -lp.mean().item() for lib, lp in lps.items()}
            # dgm's NLL minus each other's on the same test points, with the paired SE
            diffs = {lib: lps[lib] - lps["dgm"] for lib in LIBRARIES[1:]}
            paired = {
                lib: dict(zip(("diff", "se"), mean_se(d), strict=True)) for lib, d in diffs.items()
            }
            if toy == COMPARE_TOYS[0] and seed == seeds[0]:
                sides["dgm"].module.train()
                profiles[model_name] = _profile_dgm_step(
                    sides["dgm"], opts["dgm"], train.x[order[0]]
                )
            ratios = {lib: paired_ratio(ms["dgm"], ms[lib]) for lib in LIBRARIES[1:]}
            med = {lib: statistics.median(v) for lib, v in ms.items()}
            runs.append(
                {
                    "toy": toy,
                    "model": model_name,
                    "seed": seed,
                    "steps": rounds * chunk,
                    "parameters": {
                        lib: sum(p.numel() for p in s.module.parameters())
                        for lib, s in sides.items()
                    },
                    "test_nll": test_nll,
                    "test_nll_se": {lib: mean_se(lp)[1] for lib, lp in lps.items()},
                    "nll_dgm_minus": paired,
                    "true_nll": floor,
                    "ms_per_step": med,
                    "ms_per_step_summary": {lib: summary(v) for lib, v in ms.items()},
                    "ratio_dgm_over": ratios,
                }
            )
            log(
                f"  {model_name} on {toy}, seed {seed}: test NLL "
                + ", ".join(f"{lib} {v:.3f}" for lib, v in test_nll.items())
                + f" (true {floor:.3f}); ms/step "
                + ", ".join(f"{lib} {v:.2f}" for lib, v in med.items())
            )
    by_case = by_cases(runs)
    return {
        "seeds": list(seeds),
        "by_case": by_case,
        "description": "dgm vs zuko vs normflows: MAF and RealNVP, 5 transforms of (64, 64) "
        "MLPs, batch 256, Adam lr 1e-3 (fused), same batches and steps, one thread",
        "versions": {lib: importlib.metadata.version(lib) for lib in LIBRARIES[1:]},
        "optimizers": {
            "dgm": f"dgm.train.optim.build_optimizer: AdamW(lr={LR}, weight_decay=0, fused=True)",
            "zuko": f"torch.optim.Adam(lr={LR}, fused=True)",
            "normflows": f"torch.optim.Adam(lr={LR}, fused=True)",
        },
        "architectures": {
            "maf": {
                "dgm": "maf: 5 MADE-affine steps, MADE 2-64-64-4, reversal between steps, "
                "log-scale soft-clamped at 3",
                "zuko": "zuko.flows.MAF(2, transforms=5, hidden_features=(64, 64))",
                "normflows": "5 x MaskedAffineAutoregressive(2, 64, num_blocks=1, "
                "use_residual_blocks=False), Permute(swap) between",
            },
            "realnvp": {
                "dgm": "realnvp mlp: 5 affine couplings, MLP 2-64-64-4 on the masked input, "
                "alternating halves, log-scale soft-clamped at 3",
                "zuko": "zuko.flows.RealNVP(2, transforms=5, hidden_features=(64, 64))",
                "normflows": "5 x AffineCouplingBlock(MLP([1, 64, 64, 2], init_zeros=True)), "
                "Permute(swap) between",
            },
        },
        "batch_size": BATCH,
        "lr": LR,
        "lr_schedule": "constant",
        "threads": 1,
        "steps": rounds * chunk,
        "rounds": rounds,
        "steps_per_round": chunk,
        "order": "dgm, zuko, normflows, rotating by one each round; round 0 (warm-up) not timed",
        "runs": runs,
        "dgm_profile_top_ops": profiles,
        "profile_note": "torch.profiler, 20 dgm training steps on moons (self CPU time)",
        "busy_warning": warning,
    }


def run(quick: bool = False) -> dict[str, Any] | None:
    if bench_extra_missing("zuko", "normflows"):
        return None
    steps, chunk = (100, 10) if quick else (2000, 50)
    seeds = (SEED,) if quick else COMPARE_SEEDS
    return run_part("compare", lambda: measure(steps, chunk, quick, seeds), quick=quick)


def speed_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Where the ``--threads`` figures of each case against each peer library go:
    ``by_case[i]["speed"][lib]`` of the compare part (made when absent)."""
    compare = payload.get("compare") or {}
    return [
        case.setdefault("speed", {}).setdefault(lib, {})
        for case in compare.get("by_case", [])
        for lib in compare.get("versions", {})
    ]


def run_threads(quick: bool, threads: int) -> dict[str, Any] | None:
    """The ``--threads N`` pass (``benchmarks/alternate.py``): for each saved case and peer
    library, dgm's flow and the peer's rebuilt from each of ``SPEED_SEEDS`` (``build_sides``,
    as ``measure`` builds them) and their training steps timed alternating at ``threads``
    threads on the same batches, by the wall clock, written under
    ``by_case[i]["speed"][lib]["threads"]`` (the training figures kept as they are)."""
    if bench_extra_missing("zuko", "normflows"):
        return None
    from benchmarks.alternate import speed_pass

    def steppers(payload: dict[str, Any], row: dict[str, Any], seed: int, n: int) -> dict:
        case, lib = next(
            (case, lib)
            for case in payload["compare"]["by_case"]
            for lib, r in case.get("speed", {}).items()
            if r is row
        )
        train = load_toy(case["toy"], "train")
        order = _batches(len(train), n, seed)
        sides, opts = build_sides(case["model"], seed, ("dgm", lib))
        return {
            name: (lambda i, name=name: _train_step(sides[name], opts[name], train.x[order[i]]))
            for name in sides
        }

    return speed_pass(
        sys.modules[__name__],
        steppers,
        quick=quick,
        threads=threads,
        seeds=QUICK_SPEED_SEEDS if quick else SPEED_SEEDS,
        rows=speed_rows,
    )


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: dgm against zuko and normflows, NLL and
    ms/step side by side, then where dgm's step time goes (none without the part)."""
    compare = record.get("compare")
    if not compare:
        return []
    libs = ["dgm", *compare.get("versions", {})]
    versions = ", ".join(f"{lib} {v}" for lib, v in compare.get("versions", {}).items())
    if compare.get("by_case"):
        return _seeds_table(compare, libs, versions) + _profile_lines(compare)
    rows = []
    for r in compare.get("runs", []):
        test_nll, ms, ratio = r["test_nll"], r["ms_per_step"], r["ratio_dgm_over"]
        paired = r.get("nll_dgm_minus", {})
        rows.append(
            [
                r["model"],
                r["toy"],
                *(fmt(test_nll[lib], 3) for lib in libs),
                fmt(r["true_nll"], 3),
                *(
                    f"{paired[lib]['diff']:+.3f} ± {paired[lib]['se']:.3f}"
                    if lib in paired
                    else "–"
                    for lib in libs[1:]
                ),
                *(fmt(ms[lib], 2) for lib in libs),
                *(fmt(ratio[lib], 2) for lib in libs[1:]),
            ]
        )
    out = [
        f"**dgm against {versions}** (MAF and RealNVP, 5 transforms of (64, 64) MLPs in each "
        f"library, the same {compare['steps']} batches of {compare['batch_size']}, Adam lr "
        f"{compare['lr']} constant on the fused kernel, {threads_label(compare['threads'])}; "
        f"training interleaved in {compare['rounds']} rounds of {compare['steps_per_round']} "
        "steps, order rotating; ms/step is the median over rounds, the ratios the median of "
        "per-round ratios; test NLL in nats on 10 000 test points, one seed; dgm − other: "
        "the mean per-point difference on the same points ± its paired standard error, "
        "negative where dgm is better):",
        "",
        *markdown_table(
            [
                "flow",
                "toy",
                *(f"NLL {lib}" for lib in libs),
                "NLL true",
                *(f"NLL dgm − {lib}" for lib in libs[1:]),
                *(f"ms/step {lib}" for lib in libs),
                *(f"dgm ÷ {lib}" for lib in libs[1:]),
            ],
            rows,
        ),
    ]
    return out + _profile_lines(compare)


def _profile_lines(compare: dict[str, Any]) -> list[str]:
    prof = compare.get("dgm_profile_top_ops", {})
    if not prof:
        return []
    out = ["", "Where a dgm step's time goes (torch.profiler, self CPU time, top five):"]
    for model, ops in prof.items():
        top = ", ".join(f"`{o['op']}` {fmt(100 * o['share'], 0)} %" for o in ops[:5])
        out.append(f"- {model}: {top}")
    return out


def _diff_cell(mean: float, spread: float, ci: list[float] | None) -> str:
    """dgm − other: mean ± SE, and the 95 % interval when there is one (not for one seed)."""
    cell = f"{mean:+.3f} ± {spread:.3f}"
    return cell if ci is None else f"{cell} [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _seeds_table(compare: dict[str, Any], libs: list[str], versions: str) -> list[str]:
    """Part 2 over several training seeds: mean ± SD of each library's NLL, dgm's NLL minus
    each other's (mean ± SE and 95 % interval over the seeds), and the median ms/step
    ratio."""
    seeds = compare["seeds"]
    rows = []
    for case in compare["by_case"]:
        mean, sd = case["nll_mean"], case["nll_sd"]
        dmean = case["nll_dgm_minus_mean"]
        dse, ci = case["nll_dgm_minus_se"], case["nll_dgm_minus_ci95"]
        ms = {
            lib: statistics.median(
                r["ms_per_step"][lib]
                for r in compare["runs"]
                if r["toy"] == case["toy"] and r["model"] == case["model"]
            )
            for lib in libs
        }
        rows.append(
            [
                case["model"],
                case["toy"],
                *(f"{mean[lib]:.3f} ± {sd[lib]:.3f}" for lib in libs),
                fmt(case["true_nll"], 3),
                *(_diff_cell(dmean[lib], dse[lib], ci.get(lib)) for lib in libs[1:]),
                *(fmt(ms[lib], 2) for lib in libs),
                *(fmt(case["ratio_dgm_over_median"][lib], 2) for lib in libs[1:]),
            ]
        )
    return [
        f"**dgm against {versions}** (MAF and RealNVP, 5 transforms of (64, 64) MLPs in each "
        f"library, the same {compare['steps']} batches of {compare['batch_size']}, Adam lr "
        f"{compare['lr']} constant on the fused kernel, {threads_label(compare['threads'])}; "
        f"training interleaved in {compare['rounds']} rounds of {compare['steps_per_round']} "
        f"steps, order rotating; {len(seeds)} training seeds ({', '.join(map(str, seeds))}: "
        "initial weights and batch order), the same for every library. Test NLL in nats on "
        "10 000 test points: mean ± standard deviation over the seeds; dgm − other: dgm's NLL "
        "minus the other's per seed, mean ± standard error [Student-t 95 % interval] over "
        "seeds, negative where dgm is better; "
        "ms/step: the median over seeds of each run's median over rounds; dgm ÷ other: the "
        "median of per-round ratios):",
        "",
        *markdown_table(
            [
                "flow",
                "toy",
                *(f"NLL {lib}" for lib in libs),
                "NLL true",
                *(f"NLL dgm − {lib}" for lib in libs[1:]),
                *(f"ms/step {lib}" for lib in libs),
                *(f"dgm ÷ {lib}" for lib in libs[1:]),
            ],
            rows,
        ),
        *_diverged(compare["by_case"], len(seeds)),
        *threads_line(
            [
                (f"{case['model']} on {case['toy']} vs {lib}", speed.get("threads"))
                for case in compare["by_case"]
                for lib, speed in case.get("speed", {}).items()
            ]
        ),
    ]


def _diverged(cases: list[dict[str, Any]], num_seeds: int) -> list[str]:
    """A line per library and case with runs whose test NLL was not finite."""
    lines = [
        f"{lib} diverged ({case.get('diverged_rule', 'test NLL not finite')}) on "
        f"{case['model']}/{case['toy']} in {n} of "
        f"{num_seeds} seeds; those seeds are left out of its columns."
        for case in cases
        for lib, n in case.get("diverged", {}).items()
        if n
    ]
    return ["", *lines] if lines else []


def main(argv: list[str] | None = None) -> int:
    return common.main(
        run, __doc__, "100 steps and one seed; results/quick/", argv, threads=run_threads
    )


if __name__ == "__main__":
    raise SystemExit(main())


def peer_rows(record: dict[str, Any]) -> list[Any]:
    """docs/peers.md rows: each 2-D toy and flow against each peer library."""
    from benchmarks.peers import (
        PeerRow,
        budget,
        interval_cell,
        speed_cell,
        speed_reading,
        verdict,
    )

    compare = record.get("compare") or {}
    out = []
    for case in compare.get("by_case", []):
        for lib, version in compare.get("versions", {}).items():
            diff = {
                "mean": case["nll_dgm_minus_mean"][lib],
                "ci95": case["nll_dgm_minus_ci95"].get(lib),
            }
            ratio = case["ratio_dgm_over_median"][lib]
            lost = case["diverged"].get(lib, 0)
            out.append(
                PeerRow(
                    family="flow",
                    model=f"{case['model']} (5 transforms, (64, 64) MLPs)",
                    peer=f"{lib} {version}",
                    data=f"{case['toy']} (2-D), 10 000 test points; true NLL "
                    f"{case['true_nll']:.3f}",
                    budget=budget(
                        compare["steps"],
                        compare["batch_size"],
                        "Adam",
                        compare["lr"],
                        len(compare["seeds"]),
                    ),
                    dgm=f"{case['nll_mean']['dgm']:.3f} nats",
                    peer_value=f"{case['nll_mean'][lib]:.3f}"
                    + (f" ({lost} diverged)" if lost else ""),
                    difference=interval_cell(diff, 3),
                    speed=speed_cell(
                        f"{ratio:.2f}", case.get("speed", {}).get(lib, {}).get("threads")
                    ),
                    reading=f"NLL {verdict(diff)}; {speed_reading(ratio)}",
                )
            )
    return out
