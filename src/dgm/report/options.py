"""The options of ``dgm report`` and ``dgm compare``: dataclasses whose field comments are
the commands' help, and whose values ``write_report`` / ``write_compare`` take."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dgm.config import option


@dataclasses.dataclass
class PageOptions:
    """What a report or a comparison draws and evaluates for each run."""

    n: int = option(64, flag="-n")  # samples drawn per run
    # test examples the likelihood is evaluated on (the first N)
    eval_n: int = option(1000, metavar="N")
    seed: int = 0  # for the samples and masks


@dataclasses.dataclass
class ReportOptions(PageOptions):
    """``dgm report``'s options: the page's file and whether it measures sample quality."""

    out: Path | None = option(None, metavar="FILE")  # the HTML file (default: DIR/report.html)
    # also measure FD, KID, precision and recall of samples (image runs train dgm's feature
    # network once per dataset); without it a saved DIR/eval.json (dgm eval DIR
    # --sample-quality --json > DIR/eval.json) is shown when present
    sample_quality: bool = option(False, action="store_true")
    num_samples: int = option(1000, metavar="N")  # samples for --sample-quality


@dataclasses.dataclass
class CompareOptions(PageOptions):
    """``dgm compare``'s options: the page's file."""

    # the HTML file to write (default: compare.html in the current folder)
    out: Path | None = option(None, metavar="FILE")
