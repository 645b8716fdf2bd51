"""The tables of docs/benchmarks.md from the full benchmark results.

Reads benchmarks/results/*.json and rewrites the part of docs/benchmarks.md between the
lines ``<!-- bench:start -->`` and ``<!-- bench:end -->``; a page without both markers is
left alone. Every benchmark module renders its own tables (``table(record) -> lines`` of
the record in ``results/<NAME>.json``); this module puts them in page order, then where
they were measured. With the default page it also rewrites docs/peers.md, the
side-by-side rows of every benchmark that has them (``benchmarks.peers``). Quick-mode
results (results/quick/) are never tabulated unless asked for with ``--results``.

    python -m benchmarks.tables [--results DIR] [--doc PATH] [--print]
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from benchmarks import peers
from benchmarks.common import RESULTS, read_results, threads_label

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
# the modules whose ``table`` renders a part of the page, in page order; each reads the
# record of its ``NAME`` (the four flow benchmarks share results/flows.json)
PAGE = (
    "cs236",
    "hot_path",
    "pythae_compare",
    "side_by_side_latent",
    "trainer_overhead",
    "threads",
    "streaming",
    "iw_eval",
    "autoregressive",
    "side_by_side_autoregressive",
    "side_by_side_gpt",
    "pixelcnn",
    "flows_toys",
    "flows_compare",
    "flows_directions",
    "flows_images",
    "side_by_side_flows",
    "sample_quality",
    "cas",
    "gan",
    "side_by_side_gan",
    "naive_bayes_vs_lr",
    "density_models",
    "side_by_side_classical",
    "density_tasks",
    "sweep",
    "hmm",
    "control",
    "ebm",
    "ddpm",
    "side_by_side_diffusion",
    "latent_tasks",
    "compression",
    "cross_modal",
    "reference",
    "suite_timings",
    "devices",
    "devices_reference",
)
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def measured_on(results: dict[str, dict[str, Any]]) -> str:
    """One sentence: each machine (CPU, cores, GPU, torch and its threads) and the
    benchmarks run on it, with their dates."""
    machines: dict[str, list[str]] = {}  # machine description -> benchmarks run on it
    for name, rec in results.items():
        m = rec.get("machine", {})
        gpu = f", {m['cuda_device']}" if m.get("cuda_device") else ""
        threads = rec.get("threads")  # a list: the benchmark set the count itself
        threads = (
            " and ".join(map(str, threads)) + (" thread" if threads == [1] else " threads")
            if isinstance(threads, list)
            else threads_label(m.get("torch_threads", "?"))
        )
        where = (
            f"{m.get('cpu_model', '?')}, {m.get('usable_cores', '?')} cores{gpu}, "
            f"torch {rec.get('torch_version', '?')} ({threads})"
        )
        quick = " quick mode" if rec.get("quick") else ""
        machines.setdefault(where, []).append(f"{name} {rec.get('date', '?')[:10]}{quick}")
    lines = [f"{where} ({'; '.join(runs)})" for where, runs in machines.items()]
    return "Measured on " + "; and on ".join(lines) + "."


def render(results: dict[str, dict[str, Any]]) -> str:
    """The markdown between the markers for these results."""
    if not results:
        return "(no full benchmark results yet)"
    parts: list[list[str]] = []
    for name in PAGE:
        module = importlib.import_module(f"benchmarks.{name}")
        lines = module.table(results[module.NAME]) if module.NAME in results else []
        if lines:
            parts.append(lines)
    parts.append([measured_on(results)])
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
        if args.doc == DOC:  # the default page: its companion of side-by-side rows too
            update_doc(peers.DOC, peers.render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
