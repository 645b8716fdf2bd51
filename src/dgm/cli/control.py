"""The control verb of the ``dgm`` command: parser and command function, no logic of its own.

dgm control DIR [--env Pendulum-v1] [--episodes 10] [--horizon 30] [--method cem|random]
            [--candidates N] [--elites N] [--iterations N] [--particles P]
            [--device cpu|cuda|auto] [--out returns.png] [--json FILE]

The run's model must be a dynamics model p(Δs | s, a), trained on ``--data transitions``;
its flags come from ``dgm.tasks.control.ControlOptions`` (field comments are the help).
``--device`` puts the model and the planner's rollouts there; the environment steps on the
CPU.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dgm import config as cfg
from dgm.cli import common


def add_parsers(sub: Any) -> dict[str, argparse.ArgumentParser]:
    """Add control to the subparsers ``sub``; returns its parser."""
    from dgm.tasks.control import ControlOptions

    p = sub.add_parser(
        "control",
        help="model-based control: MPC (CEM) with the run's learned dynamics, mean ± SE return",
        allow_abbrev=False,
    )
    common.run_dir_arg(p)
    cfg.add_arguments(p, ControlOptions, unset="the run's")
    p.add_argument(
        "--out", type=Path, default=None, metavar="FILE", help="plot of return per episode (PNG)"
    )
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results")
    common.run_flags(p)
    return {"control": p}


def cmd_control(ns: argparse.Namespace) -> int:
    from dgm.tasks import control

    options = control.ControlOptions(**common.fields_of(ns, control.ControlOptions))
    if ns.out is not None:
        common.not_a_folder(ns.out, "a picture", "returns.png")
    run, model = common.open_run(ns)
    if options.env is None:
        data = run.data_config
        options.env = data.typed().env if data.name == "transitions" else "Pendulum-v1"
    returns = control.control(model, options)
    mean, se = control.mean_se(returns)
    print(
        f"{options.env}: return {mean:.1f} ± {se:.1f} (mean ± SE over {len(returns)} episodes; "
        f"{options.method} MPC, horizon {options.horizon}, model {run.name})"
    )
    if ns.out is not None:
        with common.writing(ns.out):
            control.plot_returns(returns, ns.out, f"{run.name} on {options.env}")
        print(f"wrote {ns.out}")
    common.write_json(
        ns.json,
        {
            "run_dir": str(ns.run_dir),
            "env": options.env,
            "returns": returns,
            "mean": mean,
            "se": se,
            "options": cfg.to_dict(options),
        },
    )
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"control": cmd_control}

__all__ = ["COMMANDS", "add_parsers"]
