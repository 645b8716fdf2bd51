"""Normalizing flows: what the four flow benchmarks share, and all four in order.

Each flow benchmark is a module of its own, with its table; all four write one results
file, ``results[/quick]/flows.json``, one part (a key of its payload) each, so any one of
them reruns alone into it and keeps the others:

- ``toys`` (``benchmarks.flows_toys``): every vector flow on five 2-D toys, its test NLL
  beside the true density's;
- ``compare`` (``benchmarks.flows_compare``): dgm against zuko and normflows, MAF and
  RealNVP, test NLL and ms/step;
- ``directions`` (``benchmarks.flows_directions``): which direction of MAF and IAF is fast;
- ``images`` (``benchmarks.flows_images``): dequantized Fashion-MNIST in bits/dim.

Everything runs on one torch thread: on the shared 2-core machine these were measured on,
one thread trained the image flows 4 to 10 times faster than two.

    python -m benchmarks.flows [--quick] [--part toys|compare|directions|images]
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import one_thread
from dgm.data import DataConfig, TensorData

NAME = "flows"  # the results file of every part
PARTS = ("toys", "compare", "directions", "images")  # its payload's keys, in page order
SEED = 0
BATCH = 256
LR = 1e-3
TOY_STEPS = 2000  # the record's ``steps``: the toys' budget (quick mode: QUICK_TOY_STEPS)
QUICK_TOY_STEPS = 200
# 5 transforms of (64, 64) MLPs in every vector flow (the zuko/normflows comparison's size)
TOY_MODELS: dict[str, dict[str, Any]] = {
    "maf": {"num_transforms": 5, "hidden_sizes": (64, 64)},
    "iaf": {"num_transforms": 5, "hidden_sizes": (64, 64)},
    "nice": {"num_couplings": 5, "hidden_sizes": (64, 64)},
    "realnvp": {"architecture": "mlp", "num_couplings": 5, "hidden_sizes": (64, 64)},
    "glow": {"architecture": "mlp", "steps_per_level": 5, "hidden_sizes": (64, 64)},
}
DESCRIPTION = (
    "normalizing flows: toys, dgm vs zuko/normflows, MAF/IAF directions, dequantized Fashion-MNIST"
)


def load_toy(name: str, split: str) -> TensorData:
    """The ``split`` of 2-D toy ``name`` (10 000 points)."""
    return DataConfig(name=name).load(split)


def toy_nlls(toy: str) -> dict[str, float]:
    """Each flow's test NLL in nats on 2-D toy ``toy``, from the full results/flows.json
    (the toys part; empty without it)."""
    path = common.result_path(NAME, quick=False)
    if not path.is_file():
        return {}
    runs = (json.loads(path.read_text()).get("toys") or {}).get("runs", [])
    return {r["model"]: r["test_nll"] for r in runs if r.get("toy") == toy}


def save_part(part: str, value: Any, *, quick: bool, wall_time_s: float) -> Path:
    """Write ``value`` as ``part`` of results[/quick]/flows.json, keeping the other parts
    (a new file starts with none); ``complete`` once all four are there. Each part's wall
    time in seconds goes to ``part_wall_time_s``, the record's ``wall_time_s`` is their sum
    (the parts timed so far)."""
    if common.result_path(NAME, quick=quick).is_file():
        payload, _ = common.existing_payload(NAME, quick=quick)
    else:
        payload = {"description": DESCRIPTION, "complete": False, "threads": 1}
    payload[part] = value
    walls = payload.setdefault("part_wall_time_s", {})
    walls[part] = round(wall_time_s, 1)
    payload["complete"] = all(p in payload for p in PARTS)
    steps = QUICK_TOY_STEPS if quick else TOY_STEPS
    return common.write_result(
        NAME, payload, quick=quick, seed=SEED, steps=steps, wall_time_s=sum(walls.values())
    )


def run_part(part: str, measure: Callable[[], Any], *, quick: bool) -> Any:
    """``measure()`` on one torch thread, its result saved as ``part`` (``save_part``)."""
    t0 = time.perf_counter()
    with one_thread():
        value = measure()
    path = save_part(part, value, quick=quick, wall_time_s=time.perf_counter() - t0)
    common.log(f"flows {part}: {time.perf_counter() - t0:.0f} s  -> {path}")
    return value


def run(quick: bool = False, part: str | None = None) -> None:
    """Every part in order (or ``part`` alone), each into results[/quick]/flows.json."""
    for p in PARTS if part is None else (part,):
        importlib.import_module(f"benchmarks.flows_{p}").run(quick=quick)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="short budgets, test subsets; results/quick/"
    )
    p.add_argument("--part", choices=PARTS, default=None, help="run this part alone")
    ns = p.parse_args(argv)
    run(ns.quick, ns.part)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
