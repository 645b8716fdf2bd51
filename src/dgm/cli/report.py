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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dgm.cli import common


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", type=int, default=64, help="samples drawn per run (default: 64)")
    p.add_argument(
        "--eval-n",
        type=int,
        default=1000,
        metavar="N",
        help="test examples the likelihood is evaluated on (default: the first 1000)",
    )
    p.add_argument("--seed", type=int, default=0, help="for the samples and masks")
    common.run_flags(p)


def add_parsers(sub: Any) -> dict[str, argparse.ArgumentParser]:
    """Add report and compare to the subparsers ``sub``; returns their parsers."""
    r = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run (DIR/report.html)",
        allow_abbrev=False,
    )
    common.run_dir_arg(r)
    r.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="the HTML file to write (default: DIR/report.html)",
    )
    _common(r)
    r.add_argument(
        "--sample-quality",
        action="store_true",
        help="also measure FD, KID, precision and recall of samples (image runs train dgm's "
        "feature network once per dataset); without it a saved DIR/eval.json "
        "(dgm eval DIR --sample-quality --json > DIR/eval.json) is shown when present",
    )
    r.add_argument(
        "--num-samples",
        type=int,
        default=1000,
        metavar="N",
        help="samples for --sample-quality (default: 1000)",
    )

    c = sub.add_parser(
        "compare",
        help="write one HTML page comparing runs: curves overlaid, one metrics table",
        allow_abbrev=False,
    )
    c.add_argument("run_dirs", type=Path, nargs="+", metavar="DIR", help="two or more runs")
    c.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="the HTML file to write (default: compare.html in the current folder)",
    )
    _common(c)
    return {"report": r, "compare": c}


def _options(ns: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``write_report``/``write_compare``: the run flags and the
    ``ReportOptions`` fields the verb has."""
    from dataclasses import fields

    from dgm import run_dir as rd
    from dgm.report.gather import ReportOptions

    options = {f.name: getattr(ns, f.name) for f in fields(ReportOptions) if hasattr(ns, f.name)}
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

    _check_out(ns.out)
    open_run(ns.run_dir)  # a missing or wrong folder is refused before any work
    out = write_report(ns.run_dir, ns.out, **_options(ns))
    print(f"wrote {out}")
    return 0


def cmd_compare(ns: argparse.Namespace) -> int:
    from dgm.report.render import write_compare

    _check_out(ns.out)
    out = write_compare(ns.run_dirs, ns.out, **_options(ns))
    print(f"wrote {out} ({len(ns.run_dirs)} runs)")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "report": cmd_report,
    "compare": cmd_compare,
}

__all__ = ["COMMANDS", "add_parsers"]
