"""The autoregressive family's speed pairs, each timed side by side in one process
(interleaved repeats after a warm-up, median ms and the median of the per-repeat ratios),
at one torch thread and at two:

- NADE's one-pass conditionals (``model._outputs``, what ``log_prob`` runs) against the
  naive per-dimension computation (``nade_naive_logits``: for each d, h_d from scratch,
  O(H D²)) and the same O(H D) sum formed as one (B, D, H) tensor
  (``nade_one_tensor_logits``, an exclusive cumulative sum: memory-bound), at H = 500,
  D = 784;
- GPT generation with and without the key-value cache (``sample(..., use_cache=True/False)``,
  same seed).

Both pairs are checked to compute the same logits before timing. ``benchmarks.autoregressive``
runs them and owns the table.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import dgm
from benchmarks import common
from benchmarks.common import log, paired_ratio, summary

SEED = 0
THREADS = (1, 2)
NADE_HIDDEN, NADE_DIMS = 500, 784
GPT_SPEED = {"n_layer": 4, "n_head": 4, "n_embd": 128, "vocab_size": 60}
GPT_TOKENS, QUICK_GPT_TOKENS = 256, 64


# -- helpers -----------------------------------------------------------------------------------


def _side_by_side(
    sides: dict[str, Callable[[], Any]], repeats: int, warmup: int, max_s: float
) -> dict[str, list[float]]:
    """Milliseconds of each side over ``repeats`` interleaved rounds (the order rotates
    every round), after ``warmup`` untimed rounds; past ``max_s`` seconds no new round
    starts once 3 are done (on a busy machine a round can take minutes)."""
    names = list(sides)
    for _ in range(warmup):
        for fn in sides.values():
            fn()
    ms: dict[str, list[float]] = {name: [] for name in names}
    start = time.perf_counter()
    for r in range(repeats):
        if r >= 3 and time.perf_counter() - start > max_s:
            break
        for name in names[r % len(names) :] + names[: r % len(names)]:
            ms[name].append(1000 * common.timed(sides[name]))
    return ms


def _timings(ms: dict[str, list[float]]) -> dict[str, Any]:
    """What every speed pair records of its per-round milliseconds: rounds done, the
    median per side, the rounds themselves and their summary."""
    return {
        "repeats_done": len(next(iter(ms.values()))),
        "ms": {k: statistics.median(v) for k, v in ms.items()},
        "ms_rounds": ms,
        "ms_summary": {k: summary(v) for k, v in ms.items()},
    }


def _per_threads(measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``measure()`` at each thread count of THREADS; the default count is restored."""
    default = torch.get_num_threads()
    out: dict[str, Any] = {}
    try:
        for t in THREADS:
            torch.set_num_threads(t)
            out[str(t)] = measure()
    finally:
        torch.set_num_threads(default)
    return out


# -- speed: NADE -------------------------------------------------------------------------------


def nade_naive_logits(model: Any, x: Tensor) -> Tensor:
    """NADE's D logits computed the naive way, each from scratch: for every d,
    h_d = act(c + W[:, :d] x[:, :d]) and logit_d = b_d + V_d · h_d, with the model's
    activation (ReLU by default, the paper's σ for ``activation="sigmoid"``); O(H D²)."""
    flat = x.flatten(1)  # (B, D)
    out = torch.empty_like(flat)
    for d in range(flat.shape[1]):
        h = model.act(model.c + flat[:, :d] @ model.W[:, :d].T)  # (B, H)
        out[:, d] = h @ model.V[d] + model.b[d]  # (B,)
    return out


def nade_one_tensor_logits(model: Any, x: Tensor) -> Tensor:
    """NADE's O(H D) sum formed as one (B, D, H) tensor: a_d = c + Σ_{j<d} W_{:, j} x_j as an
    exclusive cumulative sum over d, then h_d = act(a_d); the same arithmetic as the model's
    recursion, but every (B, D, H) intermediate goes through memory."""
    flat = x.flatten(1)  # (B, D)
    contrib = flat[:, :, None] * model.W.T  # (B, D, H)
    a = F.pad(contrib.cumsum(1)[:, :-1], (0, 0, 1, 0)) + model.c  # (B, D, H), j < d
    return (model.act(a) * model.V).sum(-1) + model.b  # (B, D)


@torch.no_grad()
def nade_speed(batch: int, repeats: int, warmup: int, max_s: float) -> dict[str, Any]:
    torch.manual_seed(SEED)
    model = dgm.create("nade", (NADE_DIMS,), hidden_size=NADE_HIDDEN).eval()
    with torch.no_grad():  # a trained-looking model: biases and weights off zero
        model.b.normal_(0.0, 1.0)
        model.c.normal_(0.0, 1.0)
    x = (torch.rand(batch, NADE_DIMS, generator=torch.Generator().manual_seed(SEED)) < 0.3).float()
    one_pass = model._outputs(x)  # (B, D)
    errors = {}
    for name, other in (("naive", nade_naive_logits), ("one_tensor", nade_one_tensor_logits)):
        errors[name] = (one_pass - other(model, x)).abs().max().item()
        if errors[name] > 1e-4:
            raise SystemExit(f"NADE's one pass and the {name} logits differ by {errors[name]}")
    lp = model.log_prob(x)
    ref = -F.binary_cross_entropy_with_logits(nade_naive_logits(model, x), x, reduction="none")
    torch.testing.assert_close(lp, ref.sum(-1), rtol=1e-4, atol=1e-3)
    sides = {
        "one_pass": lambda: model._outputs(x),
        "naive": lambda: nade_naive_logits(model, x),
        "one_tensor": lambda: nade_one_tensor_logits(model, x),
    }

    def measure() -> dict[str, Any]:
        ms = _side_by_side(sides, repeats, warmup, max_s)
        r = {
            **_timings(ms),
            "ratio_naive_over_one_pass": paired_ratio(ms["naive"], ms["one_pass"]),
            "ratio_one_tensor_over_one_pass": paired_ratio(ms["one_tensor"], ms["one_pass"]),
        }
        log(
            f"  nade, {torch.get_num_threads()} thread(s): one pass {r['ms']['one_pass']:.1f} "
            f"ms, naive {r['ms']['naive']:.1f} ms (naive / one pass "
            f"{r['ratio_naive_over_one_pass']:.2f}), one tensor {r['ms']['one_tensor']:.1f} ms "
            f"(one tensor / one pass {r['ratio_one_tensor_over_one_pass']:.2f})"
        )
        return r

    return {
        "hidden_size": NADE_HIDDEN,
        "dims": NADE_DIMS,
        "batch_size": batch,
        "repeats": repeats,
        "warmup": warmup,
        "max_s": max_s,  # no new repeat past this many seconds once 3 are done
        "sides": {
            "one_pass": "model._outputs(x): the O(H D) recursion, one (B, H) update per "
            "dimension, what log_prob and training run",
            "naive": "nade_naive_logits: each h_d from scratch, O(H D^2)",
            "one_tensor": "nade_one_tensor_logits: the same sum as one (B, D, H) cumsum",
        },
        "max_abs_logit_difference_from_one_pass": errors,
        "threads": _per_threads(measure),
    }


# -- speed: GPT --------------------------------------------------------------------------------


@torch.no_grad()
def _cached_logits(model: Any, x: Tensor) -> Tensor:
    """Logits (B, T, V) of ``x`` fed one token at a time through the key-value cache."""
    tokens = torch.cat([torch.full_like(x[:, :1], model.config.vocab_size), x[:, :-1]], 1)
    cache: list = []
    steps = [model._forward(tokens[:, t : t + 1], start=t, cache=cache) for t in range(x.shape[1])]
    return torch.cat(steps, dim=1)


@torch.no_grad()
def gpt_speed(batch: int, tokens: int, repeats: int, warmup: int, max_s: float) -> dict[str, Any]:
    torch.manual_seed(SEED)
    model = dgm.create("gpt", (tokens,), **GPT_SPEED).eval()
    gen = torch.Generator()

    def sample(use_cache: bool) -> Tensor:
        return model.sample(batch, generator=gen.manual_seed(SEED), use_cache=use_cache)

    cached, uncached = sample(True), sample(False)
    same_tokens = bool((cached == uncached).all())
    err = (_cached_logits(model, cached) - model.conditional_logits(cached)).abs().max().item()
    if err > 1e-4:
        raise SystemExit(f"GPT's cached and uncached logits differ by {err}")
    sides = {"cached": lambda: sample(True), "uncached": lambda: sample(False)}

    def measure() -> dict[str, Any]:
        ms = _side_by_side(sides, repeats, warmup, max_s)
        r = {
            **_timings(ms),
            "ratio_uncached_over_cached": paired_ratio(ms["uncached"], ms["cached"]),
        }
        log(
            f"  gpt, {torch.get_num_threads()} thread(s): cached {r['ms']['cached']:.0f} ms, "
            f"uncached {r['ms']['uncached']:.0f} ms "
            f"(x{r['ratio_uncached_over_cached']:.2f})"
        )
        return r

    return {
        "model_config": GPT_SPEED,
        "tokens": tokens,
        "batch_size": batch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "repeats": repeats,
        "warmup": warmup,
        "max_s": max_s,  # no new repeat past this many seconds once 3 are done
        "sides": {
            "cached": "model.sample(n, use_cache=True): one new token per forward pass",
            "uncached": "model.sample(n, use_cache=False): the whole prefix every step",
        },
        "same_tokens_for_same_seed": same_tokens,
        "max_abs_logit_difference": err,
        "threads": _per_threads(measure),
    }
