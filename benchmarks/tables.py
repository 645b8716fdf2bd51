"""The tables of docs/benchmarks.md from the full benchmark results.

Reads benchmarks/results/*.json and rewrites the part of docs/benchmarks.md between the
lines ``<!-- bench:start -->`` and ``<!-- bench:end -->``; a page without both markers is
left alone. Quick-mode results (results/quick/) are never tabulated unless asked for
with ``--results``.

    python -m benchmarks.tables [--results DIR] [--doc PATH] [--print]
"""

from __future__ import annotations

import argparse
import importlib
import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, read_results

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
# benchmarks whose own module has ``table(record) -> list[str]``, in page order
MODULE_TABLES = (
    "sample_quality",
    "gan",
    "naive_bayes_vs_lr",
    "density_models",
    "density_tasks",
    "ebm",
    "ddpm",
    "latent_tasks",
    "compression",
    "cross_modal",
    "devices",
)
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _threads(n: Any) -> str:
    return f"{n} thread" if n == 1 else f"{n} threads"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    right = ["---:" if i else "---" for i in range(len(header))]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(right) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def cs236_table(record: dict[str, Any]) -> list[str]:
    header = [
        "model",
        "dataset",
        "steps",
        "NELBO",
        "KL",
        "reconstruction",
        "−IWAE-1",
        "−IWAE-10",
        "−IWAE-100",
        "−IWAE-1000",
        "ms/step",
    ]
    rows = []
    for r in record.get("runs", []):
        iw = r.get("iwae", {})
        total = r.get("test_size", 10_000)
        n = min([r.get("elbo_n", total), *r.get("iwae_n", {}).values()])
        name = r["model"] + (f" (first {n} test examples)" if n < total else "")
        rows.append(
            [
                name,
                r["dataset"],
                str(r["steps"]),
                _f(r["nelbo"]),
                _f(r["kl"]),
                _f(r["reconstruction"]),
                *(_f(iw.get(k)) for k in ("1", "10", "100", "1000")),
                _f(r["ms_per_step"]),
            ]
        )
    steps = {r["steps"] for r in record.get("runs", [])}
    return [
        "**CS236 VAE and GMVAE** (z=10, MLP 300-300, Bernoulli decoder, batch 97, lr 1e-3, "
        f"{'/'.join(map(str, sorted(steps)))} steps; GMVAE K=500): test bounds in nats per "
        "example, statically binarized data. No published figure stands beside them: the "
        "MNIST NELBO and −IWAE-1000 values once quoted here as CS236's have no source we "
        "could verify, so they were removed.",
        "",
        *_table(header, rows),
    ]


def overhead_table(record: dict[str, Any]) -> list[str]:
    return [
        f"**Trainer overhead** (CS236 VAE, batch {record['batch_size']}, median of "
        f"{record['rounds']} rounds of {record['steps_per_round']} steps; progress bar on, "
        "logging every 100 steps; bare loop: forward, backward, AdamW on one fixed batch):",
        "",
        *_table(
            [
                "bare ms/step",
                "trainer ms/step",
                "trainer / bare",
                "per-round ratio (median)",
                "per-round CPU-time ratio (median, min–max)",
            ],
            [
                [
                    _f(record["bare_ms_per_step"], 3),
                    _f(record["trainer_ms_per_step"], 3),
                    _f(record["ratio_trainer_over_bare"], 3),
                    _f(record.get("ratio_paired_median"), 3),
                    _cpu_ratio(record.get("cpu_ratio_paired")),
                ]
            ],
        ),
    ]


def _cpu_ratio(paired: dict[str, float] | None) -> str:
    """'median (min–max)' of the per-round CPU-time ratios, '–' for older records."""
    if not paired:
        return "–"
    return f"{_f(paired['median'], 3)} ({_f(paired['min'], 3)}–{_f(paired['max'], 3)})"


def hot_path_table(record: dict[str, Any]) -> list[str]:
    ms = record["ms_per_step"]
    on, off = record["ratio_dgm_checks_on_over_hand"], record["ratio_dgm_checks_off_over_hand"]
    hand_mm = record["ratio_hand_over_matmuls"]
    rows = [
        ["hand-written PyTorch loop", _f(ms["hand"], 3), "1", _f(hand_mm, 2)],
        [
            "dgm `model.loss`, value checks on",
            _f(ms["dgm_checks_on"], 3),
            _f(on, 3),
            _f(record.get("ratio_dgm_checks_on_over_matmuls"), 2),
        ],
        [
            "dgm `model.loss`, value checks off (as `fit` runs it)",
            _f(ms["dgm_checks_off"], 3),
            _f(off, 3),
            _f(record["ratio_dgm_checks_off_over_matmuls"], 2),
        ],
        ["matrix products alone", _f(ms["matmuls"], 3), _f(1 / hand_mm, 3), "1"],
    ]
    return [
        f"**Training-step hot path** (CS236 VAE, batch {record['batch_size']}, "
        f"AdamW fused, {_threads(record['threads'])}; median of {record['rounds']} alternating "
        f"rounds of {record['steps_per_round']} steps; ratios are per-round medians; a step "
        "is forward, backward and optimizer step):",
        "",
        *_table(["step", "ms/step", "÷ hand loop", "÷ matrix products"], rows),
    ]


def pythae_table(record: dict[str, Any]) -> list[str]:
    ms, opts = record["ms_per_step"], record["optimizers"]
    adam, fused = record["ratio_dgm_over_pythae_adam"], record["ratio_dgm_over_pythae_adam_fused"]
    labels = {
        "dgm": ("dgm `model.loss`, value checks off (as `fit` runs it)", "1"),
        "pythae_adam": ("pythae `VAE`, its trainer's default Adam", _f(adam, 3)),
        "pythae_adam_fused": ("pythae `VAE`, fused Adam", _f(fused, 3)),
    }
    gap = ms["pythae_adam"] - ms["dgm"]  # and the fused kernel's part of it, in median ms/step
    kernel = ms["pythae_adam"] - ms["pythae_adam_fused"]
    share = (
        f": the fused kernel is {_f(100 * kernel / gap, 0)} % of the difference in median "
        f"ms/step ({_f(kernel)} of {_f(gap)} ms), the rest is in the forward and backward pass"
        if gap > 0 and 0 < kernel <= gap
        else ""
    )
    rows = [[label, f"`{opts[side]}`", _f(ms[side], 3), r] for side, (label, r) in labels.items()]
    return [
        f"**dgm against pythae {record['pythae_version']}** (the CS236 VAE above in both, "
        f"same initial weights, same statically binarized batches of {record['batch_size']}, "
        f"{_threads(record['threads'])}; median of {record['rounds']} rounds of "
        f"{record['steps_per_round']} steps in rotating order; a step is forward, backward, "
        "optimizer step and `zero_grad`; both losses are the negative ELBO per example, "
        "summed over pixels and averaged over the batch, checked equal before timing):",
        "",
        *_table(["step", "optimizer", "ms/step", "dgm ÷ this (per-round median)"], rows),
        "",
        f"A dgm training step costs {_f(adam, 2)}× pythae's with pythae's default (unfused) "
        f"Adam and {_f(fused, 2)}× with pythae on the fused Adam kernel too{share}.",
    ]


THREAD_SETUPS = {  # result key -> the row label
    "demo": "demo VAE (8x8 digits, z=8, MLP 256-256, batch 64)",
    "cs236": "CS236 VAE (784 pixels, z=10, MLP 300-300, batch 97)",
}
THREAD_LOADS = {"idle": "idle", "loaded": "busy"}  # result key -> the column label


def _threads_advice(record: dict[str, Any]) -> str:
    """One sentence: when one thread beat two, judged by the mean ms per step (what a run's
    wall time follows), with the 90th percentiles beside it."""
    res = {s: record["ms_per_step"][s] for s in THREAD_SETUPS if s in record["ms_per_step"]}
    cores = record.get("machine", {}).get("usable_cores", "?")
    flag = "`--threads 1` (`dgm train --threads 1`)"

    def wins(threads: str, load: str) -> bool:  # lower mean for every model
        other = "2" if threads == "1" else "1"
        return all(r[load][threads]["mean"] < r[load][other]["mean"] for r in res.values())

    def compare(load: str, q: str = "mean") -> str:  # "demo VAE 1.35 vs 1.12 ms, ..."
        return ", ".join(
            f"{THREAD_SETUPS[s].split(' (')[0]} {_f(r[load]['1'][q])} vs {_f(r[load]['2'][q])} ms"
            for s, r in res.items()
        )

    idle, busy, busy_p90 = compare("idle"), compare("loaded"), compare("loaded", "p90")
    if wins("1", "loaded") and wins("1", "idle"):
        return (
            f"One thread beat two for every model, on the idle machine ({idle}; mean ms per "
            f"step, one thread first) and beside one busy process ({busy}; at p90 {busy_p90}): "
            f"on a {cores}-core machine, pass {flag} for models this small."
        )
    if wins("1", "loaded") and wins("2", "idle"):
        return (
            f"Two threads were faster on the idle machine ({idle}; mean ms per step, one "
            f"thread first), one thread beside one busy process ({busy}; at p90 {busy_p90}): "
            f"on a {cores}-core machine, pass {flag} whenever anything else keeps a core busy, "
            "and keep the default when the machine is yours alone."
        )
    if wins("1", "loaded"):
        return (
            f"Beside one busy process one thread beat two for every model ({busy}; mean ms "
            f"per step, one thread first; at p90 {busy_p90}); on the idle machine, {idle}: on "
            f"a {cores}-core machine, pass {flag} whenever anything else keeps a core busy."
        )
    return (
        f"Mean ms per step, one thread against two: idle, {idle}; beside one busy process, "
        f"{busy}. Pass {flag} where one thread is the faster."
    )


def threads_table(record: dict[str, Any]) -> list[str]:
    quantities = ("median", "p90", "mean")
    rows = []
    for s, label in THREAD_SETUPS.items():
        r = record["ms_per_step"].get(s)
        if r is None:
            continue
        for t in record["threads"]:
            rows.append(
                [
                    label if t == record["threads"][0] else "",
                    str(t),
                    *(_f(r[load][str(t)][q]) for load in THREAD_LOADS for q in quantities),
                ]
            )
    full = record["rounds"] * record["steps_per_round"]  # a segment past its time cap has fewer
    capped = any(
        r[load][str(t)]["steps"] < full
        for r in record["ms_per_step"].values()
        for load in THREAD_LOADS
        for t in record["threads"]
    )
    share = record.get("spinner_core_share")
    share = f", which got {share:.2f} of a core" if share is not None else ""
    return [
        "**Torch threads** (a training step as `fit` runs it: forward, backward, fused AdamW, "
        f"value checks off; ms per step, every step timed, over {record['rounds']} alternating "
        f"rounds of {'up to ' if capped else ''}{record['steps_per_round']} steps; p90 is the "
        "90th percentile; idle: "
        "nothing else running; busy: beside one other process spinning a pure-Python loop"
        f"{share}):",
        "",
        *_table(
            [
                "model",
                "threads",
                *(f"{name}: {q}" for name in THREAD_LOADS.values() for q in quantities),
            ],
            rows,
        ),
        "",
        _threads_advice(record),
    ]


def iw_table(record: dict[str, Any]) -> list[str]:
    b, pe, nv = record["batched"], record["per_example"], record["naive"]
    rows = [
        [
            f"batched (`evaluate`, batch {b['batch_size']})",
            str(b["examples"]),
            _f(b["examples_per_s"], 1),
            "1",
        ],
        [
            "one example per call (`per_example_iw`)",
            str(pe["examples"]),
            _f(pe["examples_per_s"], 2),
            _f(record["speedup_batched_over_per_example"], 1),
        ],
        [
            "one example and one sample per call",
            str(nv["examples"]),
            _f(nv["examples_per_s"], 3),
            _f(record["speedup_batched_over_naive"], 0),
        ],
    ]
    threads = f", {_threads(record['threads'])}" if record.get("threads") else ""
    out = [
        f"**IWAE evaluation speed** (k = {record['k']}, CS236 VAE, Fashion-MNIST test set"
        f"{threads}; the cost does not depend on the weights):",
        "",
        *_table(["method", "examples timed", "examples/s", "batched speed-up"], rows),
    ]
    floor = record.get("matmul_floor")
    if floor:
        out += [
            "",
            f"The batched estimate against its matrix products alone (encoder and decoder "
            f"`addmm` at the same batch and chunk shapes, {len(floor['rounds_s'])} alternating "
            f"rounds, chunks of {record['iw_max_elements']:,} decoder outputs):",
            "",
            *_table(
                ["examples", "estimate s", "matrix products s", "ratio", "per-round ratio"],
                [
                    [
                        str(b["examples"]),
                        _f(b["seconds"], 1),
                        _f(floor["seconds"], 1),
                        _f(record["ratio_batched_over_floor"], 3),
                        _f(record["ratio_batched_over_floor_paired_median"], 3),
                    ]
                ],
            ),
        ]
    return out


def _cell(text: str, width: int = 60) -> str:
    """A sample as a markdown table cell: cut to ``width`` characters, pipes escaped."""
    text = text if len(text) <= width else text[: width - 1] + "…"
    text = text.replace("`", "'").replace("|", "¦").replace("\t", "\\t")
    return f"`{text}`" if text else "(empty)"


def _text_sample(run: dict[str, Any]) -> str:
    """The sample cell of a text run: the first sample at temperature 0.8; for ``words``
    the first five words, each cut at its end token."""
    samples = run["samples"].get("0.8") or [""]
    if run["dataset"] == "words":
        return _cell(", ".join(s.split("\\n")[0] for s in samples[:5]))
    return _cell(samples[0])


def _published(label: str, references: list[dict[str, Any]]) -> str:
    """The published binarized-MNIST NLLs to print beside our row ``label``."""

    def row_of(ref: dict[str, Any]) -> str:  # which of our rows a reference stands beside
        model = ref["model"]
        if model.startswith("made"):
            return "made (1 mask)" if "masks" not in model else "made (M masks)"
        return model

    ours = "made (M masks)" if label.startswith("made") and "1 mask" not in label else label
    cells = []
    for ref in references:
        if row_of(ref) == ours:
            masks = f", {ref['model'].split('(')[1][:-1]}" if "masks" in ref["model"] else ""
            cells.append(f"{_f(ref['nll'])} ({ref['source'].split(',')[0].split(' (')[0]}{masks})")
    return "; ".join(cells) or "–"


def autoregressive_tables(record: dict[str, Any]) -> list[str]:
    """Speed pairs, text and binarized-image tables of benchmarks/autoregressive.py."""
    out: list[str] = []
    speed = record.get("speed", {})
    rows = []
    nade, gpt = speed.get("nade"), speed.get("gpt_kv_cache")
    pairs = [  # (result, label, dgm side, reference side, ratio key, goal)
        (
            nade,
            "NADE conditionals: O(HD) recursion (`log_prob`) vs naive per dimension",
            "one_pass",
            "naive",
            "ratio_naive_over_one_pass",
            "≥ 20",
        ),
        (
            nade,
            "NADE conditionals: O(HD) recursion vs the same sum as one (B, D, H) tensor",
            "one_pass",
            "one_tensor",
            "ratio_one_tensor_over_one_pass",
            "–",
        ),
        (
            gpt,
            f"GPT, {gpt['tokens'] if gpt else '?'} tokens: `sample(use_cache=True)` vs `False`",
            "cached",
            "uncached",
            "ratio_uncached_over_cached",
            "≥ 3",
        ),
    ]
    for result, label, ours, ref, ratio, goal in pairs:
        for t, r in (result or {}).get("threads", {}).items():
            rows.append(
                [
                    label,
                    t,
                    _f(r["ms"][ours], 1),
                    _f(r["ms"][ref], 1),
                    _f(r[ratio]),
                    goal,
                ]
            )
    if rows:
        g = gpt["model_config"] if gpt else {}
        out += [
            "**Autoregressive speed pairs** (each pair timed side by side in one process, "
            f"up to {nade['repeats'] if nade else gpt['repeats']} interleaved repeats after "
            "a warm-up; ms is the median, the ratio the median of the per-repeat ratios; both "
            "sides of each pair are checked to give the same logits first). NADE: H = "
            f"{nade['hidden_size'] if nade else '?'}, D = {nade['dims'] if nade else '?'}, "
            f"batch {nade['batch_size'] if nade else '?'}; naive: every h_d recomputed from "
            f"x_<d, O(HD²). GPT: {g.get('n_layer')} layers, {g.get('n_head')} heads, "
            f"{g.get('n_embd')} wide, vocabulary {g.get('vocab_size')}, batch "
            f"{gpt['batch_size'] if gpt else '?'}, same seed on both sides:",
            "",
            *_table(
                ["computation", "threads", "dgm ms", "reference ms", "reference ÷ dgm", "goal"],
                rows,
            ),
        ]
        if record.get("busy_warning"):
            out += [
                "",
                "Other processes kept the CPUs busy during this run, so the times are slow and "
                "noisy (two threads suffer most when they must share the cores); each ratio "
                "still compares the two sides of a pair under the same conditions.",
            ]
    text = record.get("text", {})
    if text.get("runs"):
        rows = [
            [
                r["model"],
                r["dataset"],
                f"{r['parameters']:,}",
                str(r["steps"]),
                _f(r["ms_per_step"], 1),
                _f(r["nats_per_char"], 3),
                _f(r["bits_per_char"], 3),
                _text_sample(r),
            ]
            for r in text["runs"]
        ]
        threads = _threads(record.get("train_threads", "?"))
        out += [
            *([""] if out else []),
            f"**Character-level text** (dgm's trainer, batch {text['batch_size']}, AdamW with "
            f"the default warm-up and cosine decay, gradient norm clipped at "
            f"{text.get('grad_clip')}, {threads}; validation split; `words`: one word of "
            "Debian's wamerican per 16-token sequence (this run predates the switch of `words` "
            "to english-words' web2), nats per letter counting its end "
            "token but not the padding; `fortunes`: 64-character windows of Debian's "
            "fortunes, each read without earlier context; samples drawn at temperature 0.8, "
            "`\\n` a newline):",
            "",
            *_table(
                [
                    "model",
                    "corpus",
                    "parameters",
                    "steps",
                    "ms/step",
                    "nats/char",
                    "bits/char",
                    "sample (T = 0.8)",
                ],
                rows,
            ),
            "",
            text.get("nanogpt_note", ""),
        ]
    images = record.get("images", {})
    if images.get("runs"):
        refs = images.get("references", [])
        rows = []
        for r in images["runs"]:
            total = r.get("test_size", r["test_n"])
            name = r["model"] + (
                f" (first {r['test_n']} test examples)" if r["test_n"] < total else ""
            )
            alone = r.get("nll_mask_0_alone")
            rows.append(
                [
                    name,
                    r["dataset"],
                    str(r["steps"]),
                    _f(r["ms_per_step"], 1),
                    _f(r["train_wall_s"] + r.get("eval_wall_s", 0.0), 0),
                    _f(r["nll"]) + (f" (mask 0 alone: {_f(alone)})" if alone is not None else ""),
                    _published(r["model"], refs),
                ]
            )
        sources: dict[str, list[str]] = {}  # binarization -> the sources that used it
        for ref in refs:
            src = ref["source"].split(",")[0].split(" (")[0]
            if src not in sources.setdefault(ref["binarization"], []):
                sources[ref["binarization"]].append(src)
        out += [
            *([""] if out else []),
            f"**Fully visible models on binarized images** (dgm's trainer, batch "
            f"{images['batch_size']}, AdamW lr {images['lr']} with the default warm-up and "
            f"cosine decay, {_threads(record.get('train_threads', '?'))}; "
            f"{images['binarization']}; test NLL in nats per example, exact; MADE: one "
            f"hidden layer of 500; the M-mask MADE: {images['made_masks']}; wall s: training "
            "and test evaluation). The last column is for orientation only, other data and "
            "budget: published binarized-MNIST figures of larger networks trained for "
            "hundreds of epochs; not comparable with Fashion-MNIST rows, nor reachable at "
            "this budget on MNIST ones.",
            "",
            *_table(
                [
                    "model",
                    "dataset",
                    "steps",
                    "ms/step",
                    "wall s",
                    "test NLL",
                    "for orientation: published, binarized MNIST (other data/budget)",
                ],
                rows,
            ),
            "",
            "Binarization of each published source: "
            + "; ".join(f"{' and '.join(src)}: {how}" for how, src in sources.items())
            + ".",
        ]
    return out


def pixelcnn_tables(record: dict[str, Any]) -> list[str]:
    """Fast vs naive sampling and binarized-image NLLs of benchmarks/pixelcnn.py."""
    out: list[str] = []
    speed = record.get("speed", {})
    rows = [
        [
            r["variant"],
            "x".join(map(str, r["image"][1:])),
            str(r["batch_size"]),
            _f(r["ms"]["fast"], 0),
            _f(r["ms"]["naive"], 0),
            _f(r["ratio_naive_over_fast"], 1)
            + (f" ({_f(r['ratio_min'], 1)}–{_f(r['ratio_max'], 1)})" if "ratio_min" in r else ""),
            "yes" if r["same_pixels"] else "NO",
        ]
        for r in speed.values()
    ]
    if rows:
        cfg = next(iter(speed.values()))["model_config"]
        out += [
            "**PixelCNN sampling, fast vs naive** (one torch thread; "
            f"{cfg.get('hidden_channels')} hidden channels, {cfg.get('num_layers')} layers, "
            "untrained weights; fast: cached activations, one position per layer per "
            "sub-pixel, naive: one full pass per pixel; median ms per batch, sides "
            "alternating, same seed; ratio: median of the paired ratios (min–max); goal ≥ 5x):",
            "",
            *_table(
                ["variant", "image", "batch", "fast ms", "naive ms", "ratio", "same pixels"],
                rows,
            ),
            "",
        ]
    images = record.get("images", {})
    runs = images.get("runs", [])
    if runs:
        refs = images.get("references", [])
        published = "; ".join(
            f"{_f(r['nll'])} ({r['source'].split(' (')[0]}, {r['binarization'].split(':')[0]} "
            "binarization)"
            for r in refs
        )
        out += [
            "**PixelCNN on statically binarized images** (test NLL, nats per example, exact; "
            f"batch {images.get('batch_size')}, lr {images.get('lr')}; for orientation only, "
            f"other data/budget: published binarized-MNIST PixelCNN {published or '–'}, far "
            "larger networks and budgets; Fashion-MNIST rows are not comparable with them):",
            "",
            *_table(
                ["model", "dataset", "test NLL", "steps", "train wall s", "parameters"],
                [
                    [
                        r["model"],
                        r["dataset"],
                        _f(r["nll"]),
                        str(r["steps"]),
                        _f(r["train_wall_s"], 0),
                        str(r["parameters"]),
                    ]
                    for r in runs
                ],
            ),
        ]
    return out


def _flows_toys(toys: dict[str, Any]) -> list[str]:
    """Part 1: test NLL of every vector flow on every toy, the true density's beside it."""
    runs = toys.get("runs", [])
    models = list(dict.fromkeys(r["model"] for r in runs))
    rows = []
    for toy in dict.fromkeys(r["toy"] for r in runs):
        by = {r["model"]: r for r in runs if r["toy"] == toy}
        floor = toys.get("true_nll", {}).get(toy)
        cells = [f"{_f(by[m]['test_nll'], 3)} ± {_f(by[m]['test_nll_se'], 3)}" for m in models]
        rows.append([toy, *cells, _f(floor, 3) if floor is not None else "– (no closed form)"])
    cfg = toys.get("train_config", {})
    figures = ", ".join(f"`{p}`" for p in toys.get("figures", {}).values())
    return [
        f"**Flows on 2-D toys** (5 transforms of (64, 64) MLPs each; dgm's trainer, "
        f"{toys['steps']} steps, batch {cfg.get('batch_size')}, AdamW lr {cfg.get('lr')}, "
        f"weight decay 0, {cfg.get('warmup_steps')}-step warm-up and cosine decay; one "
        f"thread): test NLL in nats per example ± its standard error, on "
        f"{toys.get('test_size', '?')} test points; the last column is the true density's own "
        "NLL on the same points, the floor no model beats on average. "
        f"{toys.get('glow', '–')}. For orientation only (other data/budget): CS236's MAF "
        f"reaches about {toys.get('cs236_maf_moons_nll')} nats on its own moons data. Heat "
        "maps: "
        f"{figures}.",
        "",
        *_table(["toy", *models, "true density"], rows),
    ]


def _flows_compare(compare: dict[str, Any]) -> list[str]:
    """Part 2: dgm against zuko and normflows, NLL and ms/step side by side."""
    libs = ["dgm", *compare.get("versions", {})]
    versions = ", ".join(f"{lib} {v}" for lib, v in compare.get("versions", {}).items())
    if compare.get("by_case"):
        return _flows_compare_seeds(compare, libs, versions) + _flows_profile(compare)
    rows = []
    for r in compare.get("runs", []):
        nll, ms, ratio = r["test_nll"], r["ms_per_step"], r["ratio_dgm_over"]
        paired = r.get("nll_dgm_minus", {})
        rows.append(
            [
                r["model"],
                r["toy"],
                *(_f(nll[lib], 3) for lib in libs),
                _f(r["true_nll"], 3),
                *(
                    f"{paired[lib]['diff']:+.3f} ± {paired[lib]['se']:.3f}"
                    if lib in paired
                    else "–"
                    for lib in libs[1:]
                ),
                *(_f(ms[lib], 2) for lib in libs),
                *(_f(ratio[lib], 2) for lib in libs[1:]),
            ]
        )
    out = [
        f"**dgm against {versions}** (MAF and RealNVP, 5 transforms of (64, 64) MLPs in each "
        f"library, the same {compare['steps']} batches of {compare['batch_size']}, Adam lr "
        f"{compare['lr']} constant on the fused kernel, {_threads(compare['threads'])}; "
        f"training interleaved in {compare['rounds']} rounds of {compare['steps_per_round']} "
        "steps, order rotating; ms/step is the median over rounds, the ratios the median of "
        "per-round ratios; test NLL in nats on 10 000 test points, one seed; dgm − other: "
        "the mean per-point difference on the same points ± its paired standard error, "
        "negative where dgm is better):",
        "",
        *_table(
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
    return out + _flows_profile(compare)


def _flows_profile(compare: dict[str, Any]) -> list[str]:
    prof = compare.get("dgm_profile_top_ops", {})
    if not prof:
        return []
    out = ["", "Where a dgm step's time goes (torch.profiler, self CPU time, top five):"]
    for model, ops in prof.items():
        top = ", ".join(f"`{o['op']}` {_f(100 * o['share'], 0)} %" for o in ops[:5])
        out.append(f"- {model}: {top}")
    return out


def _diff_cell(mean: float, spread: float, ci: list[float] | None) -> str:
    """dgm − other: mean ± SE, and the 95 % interval when there is one (not for one seed)."""
    cell = f"{mean:+.3f} ± {spread:.3f}"
    return cell if ci is None else f"{cell} [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _flows_compare_seeds(compare: dict[str, Any], libs: list[str], versions: str) -> list[str]:
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
                _f(case["true_nll"], 3),
                *(_diff_cell(dmean[lib], dse[lib], ci.get(lib)) for lib in libs[1:]),
                *(_f(ms[lib], 2) for lib in libs),
                *(_f(case["ratio_dgm_over_median"][lib], 2) for lib in libs[1:]),
            ]
        )
    return [
        f"**dgm against {versions}** (MAF and RealNVP, 5 transforms of (64, 64) MLPs in each "
        f"library, the same {compare['steps']} batches of {compare['batch_size']}, Adam lr "
        f"{compare['lr']} constant on the fused kernel, {_threads(compare['threads'])}; "
        f"training interleaved in {compare['rounds']} rounds of {compare['steps_per_round']} "
        f"steps, order rotating; {len(seeds)} training seeds ({', '.join(map(str, seeds))}: "
        "initial weights and batch order), the same for every library. Test NLL in nats on "
        "10 000 test points: mean ± standard deviation over the seeds; dgm − other: dgm's NLL "
        "minus the other's per seed, mean ± standard error [Student-t 95 % interval] over "
        "seeds, negative where dgm is better; "
        "ms/step: the median over seeds of each run's median over rounds; dgm ÷ other: the "
        "median of per-round ratios):",
        "",
        *_table(
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


def _flows_directions(d: dict[str, Any]) -> list[str]:
    """Part 3: which direction of MAF and IAF is fast, measured."""
    ms = d["ms"]
    rows = [
        ["MAF", _f(ms["maf_density"], 2), _f(ms["maf_sampling"], 1), "density"],
        ["IAF", _f(ms["iaf_density"], 1), _f(ms["iaf_sampling"], 2), "sampling"],
    ]
    return [
        f"**Which direction is fast** (D = {d['dims']}, batch {d['batch_size']}, 5 MADE steps "
        f"of (64, 64), no gradients, {_threads(d['threads'])}; median ms per call over "
        f"{d['repeats']} repeat(s)): MAF's density is one MADE pass per step and its sampling D; "
        "IAF the other way round. MAF sampling ÷ density: "
        f"{_f(d['ratio_maf_sampling_over_density'], 0)}×; IAF density ÷ sampling: "
        f"{_f(d['ratio_iaf_density_over_sampling'], 0)}×.",
        "",
        *_table(["flow", "density ms", "sampling ms", "fast direction"], rows),
    ]


def _flows_images(images: dict[str, Any]) -> list[str]:
    """Part 4: dequantized Fashion-MNIST bits/dim beside the published MNIST figures."""
    if images.get("skipped"):
        return [f"**Dequantized Fashion-MNIST**: not run ({images['skipped']})."]
    refs = {r["model"]: r["bits_per_dim"] for r in images.get("references", [])}
    rows = []
    for r in images.get("runs", []):
        n = r["test_n"]
        name = r["model"] + (f" (first {n} test images)" if n < r.get("test_size", n) else "")
        rows.append(
            [
                name,
                r["dataset"],
                f"{r['parameters']:,}",
                str(r["steps"]),
                _f(r["ms_per_step"], 0),
                _f(r["train_wall_s"] + r["eval_wall_s"], 0),
                _f(r["bits_per_dim"], 3),
                _f(r.get("bits_per_dim_median"), 3),
                _f(r.get("bits_per_dim_max"), 1),
                _f(refs.get(r["model"])),
            ]
        )
    return [
        "**Dequantized Fashion-MNIST** (uniform dequantization y = (x + u)/256 and the logit "
        "transform inside the model; bits/dim is the discrete-data bound on the 0..255 "
        f"scale, −log_prob / (784 ln 2); dgm's trainer, batch {images['batch_size']}, AdamW "
        f"lr {images['lr']}, one thread; wall s: training and test evaluation). A budget of "
        "minutes on a CPU, far from convergence; median and worst image: of the per-image "
        "bits/dim, a mean that one outlier can dominate; the last column is for orientation "
        "only, other data and budget: published MNIST figures of runs of hundreds of "
        "epochs.",
        "",
        *_table(
            [
                "flow",
                "dataset",
                "parameters",
                "steps",
                "ms/step",
                "wall s",
                "test bits/dim",
                "median",
                "worst image",
                "for orientation: published MNIST (other data/budget)",
            ],
            rows,
        ),
    ]


def flows_tables(record: dict[str, Any]) -> list[str]:
    """The tables of benchmarks/flows.py: toys, the zuko/normflows comparison, the MAF/IAF
    directions and dequantized Fashion-MNIST."""
    parts: list[list[str]] = []
    if record.get("toys"):
        parts.append(_flows_toys(record["toys"]))
    if record.get("compare"):
        parts.append(_flows_compare(record["compare"]))
    if record.get("directions"):
        parts.append(_flows_directions(record["directions"]))
    if record.get("images"):
        parts.append(_flows_images(record["images"]))
    return [line for i, p in enumerate(parts) for line in ([""] if i else []) + p]


def render(results: dict[str, dict[str, Any]]) -> str:
    """The markdown between the markers for these results."""
    if not results:
        return "(no full benchmark results yet)"
    parts: list[list[str]] = []
    if "cs236" in results:
        parts.append(cs236_table(results["cs236"]))
    if "hot_path" in results:
        parts.append(hot_path_table(results["hot_path"]))
    if "pythae_compare" in results:
        parts.append(pythae_table(results["pythae_compare"]))
    if "trainer_overhead" in results:
        parts.append(overhead_table(results["trainer_overhead"]))
    if "threads" in results:
        parts.append(threads_table(results["threads"]))
    if "iw_eval" in results:
        parts.append(iw_table(results["iw_eval"]))
    if "autoregressive" in results:
        parts.append(autoregressive_tables(results["autoregressive"]))
    if "pixelcnn" in results:
        parts.append(pixelcnn_tables(results["pixelcnn"]))
    if "flows" in results:
        parts.append(flows_tables(results["flows"]))
    for name in MODULE_TABLES:  # benchmarks whose module renders its own tables
        if name in results:
            parts.append(importlib.import_module(f"benchmarks.{name}").table(results[name]))
    machines: dict[str, list[str]] = {}  # machine description -> benchmarks run on it
    for name, rec in results.items():
        m = rec.get("machine", {})
        gpu = f", {m['cuda_device']}" if m.get("cuda_device") else ""
        threads = rec.get("threads")  # a list: the benchmark set the count itself
        threads = (
            " and ".join(map(str, threads)) + (" thread" if threads == [1] else " threads")
            if isinstance(threads, list)
            else _threads(m.get("torch_threads", "?"))
        )
        where = (
            f"{m.get('cpu_model', '?')}, {m.get('usable_cores', '?')} cores{gpu}, "
            f"torch {rec.get('torch_version', '?')} ({threads})"
        )
        quick = " quick mode" if rec.get("quick") else ""
        machines.setdefault(where, []).append(f"{name} {rec.get('date', '?')[:10]}{quick}")
    lines = [f"{where} ({'; '.join(runs)})" for where, runs in machines.items()]
    parts.append(["Measured on " + "; and on ".join(lines) + "."])
    return "\n\n".join("\n".join(p) for p in parts)


def generated_part(text: str) -> str | None:
    """The text between the markers of a page (what ``render`` wrote), None without them."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start + len(START) : end].strip("\n")


def update_doc(doc: Path, body: str) -> bool:
    """Replace the text between the markers; False (page untouched) when they are absent."""
    if not doc.is_file():
        print(f"{doc} does not exist: no tables written")
        return False
    text = doc.read_text()
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        print(f"{doc} lacks the markers {START} ... {END}: left alone")
        return False
    new = text[: start + len(START)] + "\n" + body + "\n" + text[end:]
    if new != text:
        tmp = doc.with_name(f".{doc.name}.tmp")
        tmp.write_text(new)
        tmp.replace(doc)
    print(f"benchmark tables written to {doc}")
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of result JSON files")
    p.add_argument("--doc", type=Path, default=DOC, help="the page whose marked part is rewritten")
    p.add_argument("--print", action="store_true", help="print the markdown instead of writing it")
    args = p.parse_args(argv)
    results = read_results(args.results)
    if not results and not args.print:
        print(f"no results in {args.results}: {args.doc} left alone (run `make bench`)")
        return 0
    body = render(results)
    if args.print:
        print(body)
    else:
        update_doc(args.doc, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
