"""``make bench``: every benchmark in order, then the tables of docs/benchmarks.md.

    python -m benchmarks.run [--quick] [--only NAME ...]

NAME is one of hot_path, trainer_overhead (or overhead), threads, streaming, iw_eval, cs236,
autoregressive, side_by_side_autoregressive, side_by_side_gpt, pixelcnn, flows_toys,
flows_compare, flows_directions, flows_images (or flows for all four), side_by_side_flows,
pythae_compare, side_by_side_latent (or pythae for both), gan, side_by_side_gan,
sample_quality, cas, naive_bayes_vs_lr, density_models, side_by_side_classical, sweep,
density_tasks, hmm, control, ebm, ddpm, side_by_side_diffusion, latent_tasks, compression,
cross_modal, reference (hours: it trains in slices of --hours 2 and resumes). Full results
go to benchmarks/results/, quick ones to benchmarks/results/quick/;
the tables of docs/benchmarks.md are made from the full results only.
pythae_compare and side_by_side_latent need the bench extra (pythae), flows_compare too (zuko
and normflows), side_by_side_flows (normflows) and side_by_side_diffusion (diffusers); each is
skipped, with a message, without it; side_by_side_classical runs its pgmpy rows only with it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import time

from benchmarks import tables
from benchmarks.common import bench_extra_missing, busy_warning, log, machine_info

BENCHMARKS = (
    "hot_path",
    "trainer_overhead",
    "threads",
    "streaming",
    "iw_eval",
    "cs236",
    "autoregressive",
    "side_by_side_autoregressive",
    "side_by_side_gpt",
    "pixelcnn",
    "flows_toys",
    "flows_compare",
    "flows_directions",
    "flows_images",
    "side_by_side_flows",
    "pythae_compare",
    "side_by_side_latent",
    "gan",
    "side_by_side_gan",
    "sample_quality",
    "cas",
    "naive_bayes_vs_lr",
    "density_models",
    "side_by_side_classical",
    "sweep",
    "hmm",
    "control",
    "density_tasks",
    "ebm",
    "ddpm",
    "side_by_side_diffusion",
    "latent_tasks",
    "compression",
    "cross_modal",
    "reference",
)
ALIASES = {  # name -> the benchmarks it stands for
    "overhead": ("trainer_overhead",),
    "pythae": ("pythae_compare", "side_by_side_latent"),
    "flows": ("flows_toys", "flows_compare", "flows_directions", "flows_images"),
}
# benchmark -> the modules of the bench extra it needs beyond dgm's own dependencies
OPTIONAL = {
    "pythae_compare": ("pythae",),
    "side_by_side_latent": ("pythae",),
    "flows_compare": ("zuko", "normflows"),
    "side_by_side_flows": ("normflows",),
    "side_by_side_diffusion": ("diffusers",),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="a smoke run in a few minutes; results/quick/"
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=[*BENCHMARKS, *ALIASES],
        help="run only these benchmarks (still in the standard order)",
    )
    args = p.parse_args(argv)
    chosen = {b for n in args.only for b in ALIASES.get(n, (n,))} if args.only else set(BENCHMARKS)
    info = machine_info()
    gpu = f", {info['cuda_device']}" if info["cuda_device"] else ""
    log(
        f"{info['cpu_model']}, {info['usable_cores']} cores, torch {info['torch']} "
        f"({info['torch_threads']} threads){gpu}{'  [quick]' if args.quick else ''}"
    )
    warning = busy_warning()
    if warning:
        log(warning)
    t0 = time.perf_counter()
    for name in BENCHMARKS:
        if name not in chosen:
            continue
        log(f"== {name}")
        if bench_extra_missing(*OPTIONAL.get(name, ())):
            continue
        t = time.perf_counter()
        importlib.import_module(f"benchmarks.{name}").run(quick=args.quick)
        log(f"== {name} done in {time.perf_counter() - t:.1f} s")
    log(f"all done in {time.perf_counter() - t0:.1f} s")
    tables.main([])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
