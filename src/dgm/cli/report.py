"""The report verbs of the ``dgm`` command: parsers and command functions, no logic of their
own.

dgm report DIR [--out FILE] [-n 64] [--eval-n 1000] [--sample-quality [--num-samples N]]
dgm compare DIR1 DIR2 ... [--out FILE] [-n 64] [--eval-n 1000]

``report`` writes DIR/report.html, ``compare`` compare.html in the current folder
(``dgm.report.render``, from what ``dgm.report.gather`` and ``dgm.report.compare``
gather; the options are ``dgm.report.gather.ReportOptions``): self-contained pages that
open in any browser without a server. ``add_parsers(sub)`` adds them to the ``dgm``
parser; ``COMMANDS`` maps each name to its function of the parsed arguments. Wrong input
raises ``ValueError`` with the fix, which ``dgm.cli.parser`` prints as one line and
exits 2.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dgm import config as cfg
from dgm.cli import common
from dgm.report.options import CompareOptions, ReportOptions


def add_parsers(sub: Any) -> dict[str, argparse.ArgumentParser]:
    """Add report and compare to the subparsers ``sub``; returns their parsers."""
    r = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run (DIR/report.html)",
        allow_abbrev=False,
    )
    common.run_dir_arg(r)
    cfg.add_arguments(r, ReportOptions)
    common.run_flags(r)

    c = sub.add_parser(
        "compare",
        help="write one HTML page comparing runs: curves overlaid, one metrics table",
        allow_abbrev=False,
    )
    c.add_argument("run_dirs", type=Path, nargs="+", metavar="DIR", help="two or more runs")
    cfg.add_arguments(c, CompareOptions)
    common.run_flags(c)
    return {"report": r, "compare": c}


def _options(ns: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The page's options (``cls``, without its --out) and how the runs are loaded."""
    from dgm import run_dir as rd

    options = dataclasses.asdict(cfg.options_from(ns, cls))
    del options["out"]
    return options | {
        "device": rd.resolve_device(ns.device),
        "best": ns.best,
        "ema": not ns.no_ema,
    }


def _check_out(out: Path | None) -> None:
    """Refuse an --out that cannot be written, naming it and the OS's reason, before the
    report's work (a probe file in the nearest existing folder, removed at once)."""
    import tempfile

    if out is None:
        return
    common.not_a_folder(out, "an HTML file", "report.html")
    folder = next((p for p in out.absolute().parents if p.exists()), Path("/"))
    if not folder.is_dir():
        raise ValueError(f"cannot write {out}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        reason = e.strerror or str(e)
        raise ValueError(
            f"cannot write {out}: the folder {folder} does not take new files ({reason}); "
            "choose another --out"
        ) from None


def cmd_report(ns: argparse.Namespace) -> int:
    from dgm.report.gather import open_run
    from dgm.report.render import write_report

    out = cfg.options_from(ns, ReportOptions).out
    _check_out(out)
    open_run(ns.run_dir)  # a missing or wrong folder is refused before any work
    out = write_report(ns.run_dir, out, **_options(ns, ReportOptions))
    print(f"wrote {out}")
    return 0


def cmd_compare(ns: argparse.Namespace) -> int:
    from dgm.report.render import write_compare

    out = cfg.options_from(ns, CompareOptions).out
    _check_out(out)
    out = write_compare(ns.run_dirs, out, **_options(ns, CompareOptions))
    print(f"wrote {out} ({len(ns.run_dirs)} runs)")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "report": cmd_report,
    "compare": cmd_compare,
}

__all__ = ["COMMANDS", "add_parsers"]
