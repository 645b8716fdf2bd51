"""README tables from the full benchmark results.

Reads benchmarks/results/*.json and rewrites the part of README.md between the lines
``<!-- bench:start -->`` and ``<!-- bench:end -->``; a README without both markers is
left alone. Quick-mode results (results/quick/) are never tabulated unless asked for
with ``--results``.

    python -m benchmarks.tables [--results DIR] [--readme PATH] [--print]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, read_results

README = Path(__file__).resolve().parent.parent / "README.md"
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
    for ref in record.get("references", []):
        iw = ref.get("iwae", {})
        rows.append(
            [
                f"{ref['model']} ({ref['source']})",  # e.g. "vae (published, CS236)"
                ref["dataset"],
                "–",
                _f(ref.get("nelbo")),
                "–",
                "–",
                *(_f(iw.get(k)) for k in ("1", "10", "100", "1000")),
                "–",
            ]
        )
    steps = {r["steps"] for r in record.get("runs", [])}
    return [
        "**CS236 VAE and GMVAE** (z=10, MLP 300-300, Bernoulli decoder, batch 97, lr 1e-3, "
        f"{'/'.join(map(str, sorted(steps)))} steps; GMVAE K=500): test bounds in nats per "
        "example, statically binarized data. The last rows are published MNIST numbers, "
        "for scale only.",
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
            ["bare ms/step", "trainer ms/step", "trainer / bare", "per-round ratio (median)"],
            [
                [
                    _f(record["bare_ms_per_step"], 3),
                    _f(record["trainer_ms_per_step"], 3),
                    _f(record["ratio_trainer_over_bare"], 3),
                    _f(record.get("ratio_paired_median"), 3),
                ]
            ],
        ),
    ]


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
    machines: dict[str, list[str]] = {}  # machine description -> benchmarks run on it
    for name, rec in results.items():
        m = rec.get("machine", {})
        gpu = f", {m['cuda_device']}" if m.get("cuda_device") else ""
        threads = rec.get("threads")  # a list: the benchmark set the count itself
        threads = (
            " and ".join(map(str, threads)) + " threads"
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


def update_readme(readme: Path, body: str) -> bool:
    """Replace the text between the markers; False (README untouched) when they are absent."""
    if not readme.is_file():
        print(f"{readme} does not exist: no tables written")
        return False
    text = readme.read_text()
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        print(f"{readme} lacks the markers {START} ... {END}: left alone")
        return False
    new = text[: start + len(START)] + "\n" + body + "\n" + text[end:]
    if new != text:
        tmp = readme.with_name(f".{readme.name}.tmp")
        tmp.write_text(new)
        tmp.replace(readme)
    print(f"benchmark tables written to {readme}")
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of result JSON files")
    p.add_argument("--readme", type=Path, default=README)
    p.add_argument("--print", action="store_true", help="print the markdown instead of writing it")
    args = p.parse_args(argv)
    results = read_results(args.results)
    if not results and not args.print:
        print(f"no results in {args.results}: README left alone (run `make bench`)")
        return 0
    body = render(results)
    if args.print:
        print(body)
    else:
        update_readme(args.readme, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
