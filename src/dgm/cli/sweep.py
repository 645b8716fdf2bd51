"""``dgm sweep``: bias–variance curves, one run per grid point (``dgm.tasks.sweep``).

dgm sweep MODEL --data D --vary hidden_sizes=16,64,256 --vary train_fraction=0.05,0.2,1.0
          --steps N [--early-stopping] --out DIR

Writes DIR/point-*/ (one run each; a second call skips finished points and resumes an
interrupted one), DIR/sweep.json, DIR/sweep.md, the plots DIR/nll-FIELD.png and
DIR/report.html.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dgm import config as cfg
from dgm.data import DataConfig, available_datasets
from dgm.tasks.sweep import SweepOptions


def add_parsers(sub: Any) -> dict[str, argparse.ArgumentParser]:
    p = sub.add_parser(
        "sweep",
        help="train a model over a grid of sizes and data fractions: train/test NLL curves",
        allow_abbrev=False,
    )
    p.add_argument("model", metavar="MODEL", help="a registered model (dgm list)")
    p.add_argument("--data", required=True, help=f"one of: {', '.join(available_datasets())}")
    p.add_argument(
        "--vary",
        action="append",
        required=True,
        metavar="FIELD=V1,V2,...",
        help="a model option or data option and its values (repeat for a grid); a tuple "
        "option's entries are separated by '/': hidden_sizes=64/64,256/256; the data's "
        "train_fraction keeps a seeded share of the train split",
    )
    p.add_argument("--out", required=True, type=Path, help="folder of the sweep (created)")
    cfg.add_arguments(p.add_argument_group("sweep options"), SweepOptions)
    data_flags = p.add_argument_group("data options (fixed for every point)")
    cfg.add_arguments(data_flags, DataConfig, skip=("name", "root"), unset="the dataset's own")
    data_flags.add_argument(
        "--data-root", dest="root", default=argparse.SUPPRESS, help="folder with the data files"
    )
    return {"sweep": p}


def cmd_sweep(ns: argparse.Namespace) -> int:
    from dgm.cli import common
    from dgm.data.dataset import dataset_spec
    from dgm.report.sweep import write_sweep_report
    from dgm.tasks.sweep import parse_vary, sweep, table

    vary = parse_vary(ns.model, ns.vary)  # before any work: a bad field or value is refused
    data = DataConfig(name=ns.data, **common.fields_of(ns, DataConfig))
    dataset_spec(data.name)
    options = SweepOptions(**common.fields_of(ns, SweepOptions))
    result = sweep(ns.model, data, vary, ns.out, options, log=print)
    page = write_sweep_report(result, ns.out)
    print(table(result))
    print(f"wrote {ns.out / 'sweep.json'}, {ns.out / 'sweep.md'}, plots and {page}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"sweep": cmd_sweep}

__all__ = ["COMMANDS", "add_parsers"]
