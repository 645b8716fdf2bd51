"""dgm's GPT against a nanoGPT-style single-file reference, trained side by side on ``words``.

The reference (``RefGPT`` below, our own code in the style of karpathy/nanoGPT's
model.py) has the same configuration as dgm's ``gpt`` (4 blocks, 4 heads, 128 wide, T =
16): causal self-attention with one fused qkv ``Linear`` and torch's
``scaled_dot_product_attention``, a GELU MLP of 4x width, pre-LayerNorm blocks, GPT-2's
initialisation (residual projections scaled by 1/sqrt(2 n_layer)), the output layer tied
to the token embedding, and nanoGPT's optimiser: AdamW with weight decay only on
parameters of >= 2 dimensions, fused only on CUDA (``configure_optimizers``). Both read a
begin-of-sequence id V (input only: the logits cover the V tokens) and have the same
parameters, the same count. Both minimise the same objective, nats per sequence averaged
over the batch (nanoGPT averages per token: the same gradient up to the factor T, which
Adam ignores but gradient clipping does not). The one difference in training: dgm's
optimiser (the one its trainer builds, fused AdamW) leaves the embedding tables
undecayed, nanoGPT's decays them.

Per seed, one process builds both (``torch.manual_seed(seed)`` before each), feeds them
the same batches (one seeded order of the training words), the same learning-rate
schedule (dgm's ``TrainConfig.lr_factor``: linear warm-up, cosine decay to 0.1x), the same
gradient clipping (norm 1), one torch thread, the two steps alternating (which goes first
alternates too). Reported: validation nats per *real* character (each word's letters and
its end token, the padding after it excluded: ``dgm.model.real_token_counts``; the
padding's predictions stay in the NLL, as in dgm's ``nats_per_token``), CPU ms/step
(median after a warm-up), the fraction of steps whose gradient was clipped, and sampling
speed in tokens/s: dgm's KV-cache sampler
(``sample``) against the reference's nanoGPT-style ``generate``, which recomputes the
whole prefix for every new token. Over the seeds: the paired difference dgm − reference
of nats/char and the ratios dgm / reference of ms/step and of sampling time, each a mean
with a 95 % t-interval.

    python -m benchmarks.side_by_side_gpt [--quick] [--jobs N] [--threads 2]

``--threads 2`` trains nothing: it rebuilds every saved row's two models from each seed as
the training run does and times their steps alternating at 2 threads, by the wall clock,
into the saved rows (``benchmarks/alternate.py``; about a minute on an idle 2-core machine;
with ``--quick``, 2 seeds and 4 steps into results/quick/).

``--quick`` (about a minute): 2 seeds, 30 steps, 512 validation words.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import dgm
from benchmarks.alternate import threads_line
from benchmarks.common import (
    add_threads_argument,
    busy_warning,
    interval,
    log,
    plus_minus,
    write_result,
)
from benchmarks.peers import verdict
from dgm.data import DataConfig
from dgm.model import real_token_counts
from dgm.train import TrainConfig
from dgm.train.optim import build_optimizer

NAME = "side_by_side_gpt"
REFERENCE = "nanoGPT-style reference"
CONFIG = {
    "n_layer": 4,
    "n_head": 4,
    "n_embd": 128,
}  # dgm's gpt defaults (benchmarks.autoregressive)
BATCH, LR, WEIGHT_DECAY, GRAD_CLIP, THREADS = 64, 1e-3, 0.1, 1.0, 1
STEPS, QUICK_STEPS = 150, 30
SEEDS, QUICK_SEEDS = (0, 1, 2), (0, 1)
VALID, QUICK_VALID = 4096, 512  # validation words scored (the first; None: all)
SAMPLES, SAMPLE_REPEATS = 64, 3  # sequences per timed sampling call, calls per model
WARMUP = 3  # steps left out of the ms/step medians


# -- the reference: one file's worth of nanoGPT-style model ------------------------------------


class RefAttention(nn.Module):
    """Causal self-attention, one fused query/key/value projection (nanoGPT's c_attn)."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, h: Tensor) -> Tensor:
        B, T, C = h.shape
        q, k, v = self.c_attn(h).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))  # (B, T, C)


class RefBlock(nn.Module):
    """Pre-LayerNorm block: h + attn(ln_1(h)), then h + mlp(ln_2(h)), GELU MLP of 4x."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = RefAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, h: Tensor) -> Tensor:
        h = h + self.attn(self.ln_1(h))
        return h + self.c_proj(F.gelu(self.c_fc(self.ln_2(h))))


class RefGPT(nn.Module):
    """The reference language model over V tokens, T positions; input id V is the
    begin-of-sequence token (the tied output layer's logits keep the first V)."""

    def __init__(
        self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int
    ) -> None:
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, block_size
        self.wte = nn.Embedding(vocab_size + 1, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(RefBlock(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size + 1, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, 0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx: Tensor) -> Tensor:
        """Logits (B, t, V) of the next token after each of ``idx`` (B, t)."""
        pos = torch.arange(idx.shape[1], device=idx.device)  # (t,)
        h = self.wte(idx) + self.wpe(pos)  # (B, t, C)
        for block in self.blocks:
            h = block(h)
        return self.lm_head(self.ln_f(h))[..., : self.vocab_size]  # (B, t, V)

    def nll(self, x: Tensor) -> Tensor:
        """−log p(x) in nats per sequence (B,) of tokens x (B, T), the BOS id first in."""
        bos = torch.full_like(x[:, :1], self.vocab_size)  # (B, 1)
        logits = self(torch.cat([bos, x[:, :-1]], dim=1))  # (B, T, V)
        return F.cross_entropy(logits.transpose(1, 2), x, reduction="none").sum(1)

    def configure_optimizers(self, lr: float, weight_decay: float) -> torch.optim.AdamW:
        """AdamW, weight decay on the parameters of >= 2 dims only; fused only on CUDA."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        fused = params[0].device.type == "cuda"
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), fused=fused or None)

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n sequences (n, T) drawn token by token, the whole prefix recomputed each time."""
        idx = torch.full((n, 1), self.vocab_size, dtype=torch.long)  # (n, 1): BOS
        for _ in range(self.block_size):
            probs = self(idx)[:, -1].softmax(-1)  # (n, V)
            idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)
        return idx[:, 1:]  # (n, T)


# -- the run -----------------------------------------------------------------------------------


@torch.no_grad()
def nats_per_char(nll: Any, x: Tensor, end_token: int, batch: int = 1024) -> float:
    """Σ NLL / Σ real tokens over ``x`` (N, T): nats per character, the end token counted
    and the padding after it not."""
    total = sum(float(nll(x[i : i + batch]).sum()) for i in range(0, len(x), batch))
    return total / float(real_token_counts(x, end_token).sum())


def _median_ms(times: list[float]) -> float:
    return statistics.median(times[WARMUP:] or times)


def build_pair(
    seed: int, T: int, vocab_size: int, end_token: int, steps: int
) -> tuple[nn.Module, RefGPT, dict[str, Callable[[Tensor, int], None]], dict[str, int]]:
    """dgm's GPT and the reference, each seeded by ``seed``, with their optimisers and lr
    schedule over ``steps``: (dgm's model, the reference, steppers by side taking a batch and
    the step number, the count of clipped steps by side). The training run and the
    ``--threads`` pass both build them here."""
    torch.manual_seed(seed)
    ours = dgm.create("gpt", (T,), vocab_size=vocab_size, end_token=end_token, **CONFIG)
    torch.manual_seed(seed)
    ref = RefGPT(vocab_size, T, **CONFIG)
    schedule = TrainConfig(lr=LR, steps=steps, warmup_steps=min(100, steps // 10))
    config = dataclasses.replace(schedule, weight_decay=WEIGHT_DECAY)
    ours_opt = build_optimizer("main", list(ours.parameters()), config, ours)
    ref_opt = ref.configure_optimizers(LR, WEIGHT_DECAY)
    for group in ref_opt.param_groups:
        group["initial_lr"] = group["lr"]

    clipped: dict[str, int] = {"dgm": 0, "reference": 0}  # steps whose gradient was clipped

    def stepper(name: str, model: nn.Module, opt: torch.optim.Optimizer, loss: Any) -> Any:
        def step(x: Tensor, i: int) -> None:
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * schedule.lr_factor(i)
            opt.zero_grad(set_to_none=True)
            loss(x).backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            clipped[name] += int(norm > GRAD_CLIP)
            opt.step()

        return step

    steppers = {
        "dgm": stepper("dgm", ours, ours_opt, lambda x: ours.loss(x).value),
        "reference": stepper("reference", ref, ref_opt, lambda x: ref.nll(x).mean()),
    }
    return ours, ref, steppers, clipped


def run_seed(
    seed: int, train: Tensor, valid: Tensor, vocab_size: int, end_token: int, steps: int
) -> dict[str, Any]:
    """Train both on the same ``steps`` batches; their figures for one seed."""
    torch.set_num_threads(THREADS)
    T = train.shape[1]
    ours, ref, steppers, clipped = build_pair(seed, T, vocab_size, end_token, steps)
    order = torch.randint(len(train), (steps, BATCH), generator=torch.Generator().manual_seed(seed))
    times: dict[str, list[float]] = {k: [] for k in steppers}
    for i in range(steps):
        x = train[order[i]]  # (B, T), the same batch for both
        for name in list(steppers) if i % 2 == 0 else list(reversed(steppers)):
            t0 = time.process_time()
            steppers[name](x, i)
            times[name].append(1e3 * (time.process_time() - t0))
    ours.eval()
    ref.eval()
    samplers = {
        "dgm": lambda g: ours.sample(SAMPLES, generator=g),
        "reference": lambda g: ref.generate(SAMPLES, generator=g),
    }
    sample_s: dict[str, list[float]] = {k: [] for k in samplers}
    for r in range(SAMPLE_REPEATS):
        for name in list(samplers) if r % 2 == 0 else list(reversed(samplers)):
            t0 = time.process_time()
            samplers[name](torch.Generator().manual_seed(r))
            sample_s[name].append(time.process_time() - t0)
    nlls = {"dgm": lambda x: -ours.log_prob(x), "reference": ref.nll}
    result = {
        name: {
            "nats_per_char": nats_per_char(nlls[name], valid, end_token),
            "ms_per_step": _median_ms(times[name]),
            "params": sum(p.numel() for p in model.parameters()),
            "sample_tokens_per_s": SAMPLES * T / statistics.median(sample_s[name]),
            "clipped_fraction": clipped[name] / steps,
        }
        for name, model in (("dgm", ours), ("reference", ref))
    }
    log(f"gpt seed {seed}: {result}")
    return result


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired differences and ratios dgm vs reference over the seeds."""
    return {
        "nats_per_char_difference": interval(
            [r["dgm"]["nats_per_char"] - r["reference"]["nats_per_char"] for r in per_seed]
        ),
        "ms_ratio": interval(
            [r["dgm"]["ms_per_step"] / r["reference"]["ms_per_step"] for r in per_seed]
        ),
        "sampling_speedup": interval(
            [
                r["dgm"]["sample_tokens_per_s"] / r["reference"]["sample_tokens_per_s"]
                for r in per_seed
            ]
        ),
    }


def run(quick: bool, jobs: int = 1) -> dict[str, Any]:
    """Both models over the seeds, ``jobs`` seeds at a time in separate processes (each one
    thread: ms/step is each process's own CPU time, so it does not depend on ``jobs``)."""
    torch.set_num_threads(THREADS)
    warning = busy_warning()
    if warning:
        log(warning)
    t0 = time.perf_counter()
    data = DataConfig("words")
    train, valid = data.load("train"), data.load("valid")
    limit = QUICK_VALID if quick else VALID
    x_valid = valid.x if limit is None else valid.x[:limit]
    vocab_size, end_token = len(train.info.vocab), train.info.end_token
    seeds, steps = (QUICK_SEEDS, QUICK_STEPS) if quick else (SEEDS, STEPS)
    args = [list(seeds)] + [[a] * len(seeds) for a in (train.x, x_valid, vocab_size)]
    args += [[end_token] * len(seeds), [steps] * len(seeds)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(run_seed, *args))
    else:
        results = list(map(run_seed, *args))
    per_seed = [{"seed": seed, **r} for seed, r in zip(seeds, results, strict=True)]
    wall = time.perf_counter() - t0
    payload = {
        "reference": REFERENCE,
        "data": "words",
        "block_size": train.x.shape[1],
        "vocab_size": vocab_size,
        "valid_words": len(x_valid),
        "model_config": CONFIG,
        "steps": steps,
        "batch_size": BATCH,
        "lr": LR,
        "weight_decay": WEIGHT_DECAY,
        "grad_clip": GRAD_CLIP,
        "threads": THREADS,
        "samples_per_call": SAMPLES,
        "seeds": list(seeds),
        "warning": warning,
        "per_seed": per_seed,
        **summarise(per_seed),
    }
    path = write_result(NAME, payload, quick=quick, seed=seeds[0], steps=steps, wall_time_s=wall)
    log("\n".join(table(payload)))
    log(f"wrote {path} ({wall:.0f} s)")
    return payload


def run_threads(quick: bool, threads: int) -> dict[str, Any]:
    """The ``--threads N`` pass (``benchmarks/alternate.py``): both models rebuilt from each
    seed as ``run_seed`` builds them (the same lr schedule), their steps timed alternating
    at ``threads`` threads on the same batches, written into the record's "speed" entry
    under "threads" (the training figures kept as they are)."""
    from benchmarks.alternate import record_speed, speed_pass

    train = DataConfig("words").load("train")
    x, vocab_size, end_token = train.x, len(train.info.vocab), train.info.end_token
    steps = QUICK_STEPS if quick else STEPS

    def steppers(_: dict[str, Any], __: dict, seed: int, n: int) -> dict[str, Any]:
        built = build_pair(seed, x.shape[1], vocab_size, end_token, steps)[2]
        order = torch.randint(len(x), (n, BATCH), generator=torch.Generator().manual_seed(seed))
        return {
            side: (lambda i, step=built[side]: step(x[order[i]], i))
            for side in ("dgm", "reference")
        }

    return speed_pass(
        sys.modules[__name__],
        steppers,
        quick=quick,
        threads=threads,
        rows=record_speed,
    )


def reading(record: dict[str, Any]) -> str:
    """One sentence on what the figures show: quality (the interval against 0), step time
    and sampling speed."""
    diff, ratio = record["nats_per_char_difference"], record["ms_ratio"]
    speedup = record["sampling_speedup"]
    quality = f"validation nats/char {verdict(diff, than='')} the reference's"
    return (
        f"Reading: after {record['steps']} steps dgm's GPT has {quality} "
        f"({diff['mean']:+.3f} nats/char), a training step at {ratio['mean']:.2f}x the "
        f"reference's CPU time, and samples {speedup['mean']:.1f}x as fast with its KV cache "
        f"as the full-recompute loop (T = {record['block_size']}: short words, so the cache "
        "saves little)."
    )


def table(record: dict[str, Any]) -> list[str]:
    """The markdown table of a results record: means over the seeds, the paired difference
    and the ratios with their 95 % intervals."""
    seeds = record["per_seed"]

    def mean(who: str, key: str, fmt: str) -> str:
        return f"{statistics.fmean(s[who][key] for s in seeds):{fmt}}"

    def clipped(who: str) -> str:
        return f"{statistics.fmean(s[who].get('clipped_fraction', math.nan) for s in seeds):.0%}"

    c = record["model_config"]
    return [
        f"**dgm's GPT against a {record['reference']}** on `{record['data']}` (T = "
        f"{record['block_size']}, V = {record['vocab_size']}; {c['n_layer']} layers, "
        f"{c['n_head']} heads, {c['n_embd']} wide): same batches (batch "
        f"{record['batch_size']}), {record['steps']} steps, AdamW lr {record['lr']} with "
        f"dgm's warm-up + cosine schedule, weight decay {record['weight_decay']}, gradient "
        f"clip {record['grad_clip']}, {record['threads']} thread, seeds {record['seeds']}; "
        f"validation nats per real character on {record['valid_words']} words; ± is a 95 % "
        "t-interval over the seeds (paired).",
        "",
        "| model | params dgm / ref | nats/char dgm | nats/char ref | dgm − ref "
        "| CPU ms/step dgm | CPU ms/step ref | ms/step dgm ÷ ref "
        "| sampling tokens/s dgm (KV cache) | ref (recompute) | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| gpt | {seeds[0]['dgm']['params']:,} / {seeds[0]['reference']['params']:,} "
        f"| {mean('dgm', 'nats_per_char', '.3f')} | {mean('reference', 'nats_per_char', '.3f')} "
        f"| {plus_minus(record['nats_per_char_difference'], '+.3f')} "
        f"| {mean('dgm', 'ms_per_step', '.2f')} | {mean('reference', 'ms_per_step', '.2f')} "
        f"| {plus_minus(record['ms_ratio'], '.3f')} "
        f"| {mean('dgm', 'sample_tokens_per_s', ',.0f')} "
        f"| {mean('reference', 'sample_tokens_per_s', ',.0f')} "
        f"| {plus_minus(record['sampling_speedup'], '.2f')} |",
        "",
        "Differences: dgm's optimiser leaves the embedding tables undecayed and is fused on "
        "the CPU; nanoGPT decays every weight of >= 2 dims and fuses only on CUDA. The "
        f"sampling times are for {record['samples_per_call']} sequences per call. Gradient "
        f"clipped at {clipped('dgm')} of dgm's steps and {clipped('reference')} of the "
        "reference's (both minimise nats per sequence: norms above 1).",
        *threads_line([("gpt", record.get("speed", {}).get("threads"))]),
        "",
        reading(record),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="2 seeds, 30 steps (~1 min)")
    p.add_argument("--jobs", type=int, default=1, help="seeds run at once, one process each")
    add_threads_argument(p)
    ns = p.parse_args(argv)
    if ns.threads != 1:
        run_threads(ns.quick, ns.threads)
    else:
        run(ns.quick, ns.jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def peer_rows(record: dict[str, Any]) -> list[Any]:
    """docs/peers.md row: dgm's GPT against the nanoGPT-style reference."""
    from benchmarks.peers import PeerRow, budget, interval_cell, speed_cell, speed_reading

    seeds, c = record["per_seed"], record["model_config"]
    ratio = record["ms_ratio"]
    return [
        PeerRow(
            family="autoregressive",
            model=f"gpt ({c['n_layer']} layers, {c['n_head']} heads, {c['n_embd']} wide)",
            peer=record["reference"],
            data=f"{record['data']} (T = {record['block_size']}), {record['valid_words']} "
            "validation words",
            budget=budget(record["steps"], record["batch_size"], "AdamW", record["lr"], len(seeds)),
            dgm=f"{statistics.fmean(s['dgm']['nats_per_char'] for s in seeds):.3f} nats/char",
            peer_value=f"{statistics.fmean(s['reference']['nats_per_char'] for s in seeds):.3f}",
            difference=interval_cell(record["nats_per_char_difference"], 3),
            speed=speed_cell(
                interval_cell(ratio, 2, sign=""), record.get("speed", {}).get("threads")
            ),
            reading=f"nats/char {verdict(record['nats_per_char_difference'])}; "
            f"{speed_reading(ratio['mean'])}; sampling "
            f"{record['sampling_speedup']['mean']:.1f}× faster (KV cache)",
            orientation="tiny Shakespeare: 1.47 nats/char (nanoGPT README, 6×384, GPU, 5000 steps)",
        )
    ]
