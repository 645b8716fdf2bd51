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
    if "trainer_overhead" in results:
        parts.append(overhead_table(results["trainer_overhead"]))
    if "iw_eval" in results:
        parts.append(iw_table(results["iw_eval"]))
    machines: dict[str, list[str]] = {}  # machine description -> benchmarks run on it
    for name, rec in results.items():
        m = rec.get("machine", {})
        gpu = f", {m['cuda_device']}" if m.get("cuda_device") else ""
        where = (
            f"{m.get('cpu_model', '?')}, {m.get('usable_cores', '?')} cores{gpu}, "
            f"torch {rec.get('torch_version', '?')} ({_threads(m.get('torch_threads', '?'))})"
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
