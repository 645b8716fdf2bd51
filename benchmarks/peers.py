"""docs/peers.md: one row per dgm model and peer, from the side-by-side benchmark results.

Every benchmark that trains or fits dgm's model beside a peer's on the same data, batches
and budget in one process renders its own rows (``peer_rows(record) -> list[PeerRow]``);
this module puts them on one page, family by family. A row says what was compared (data,
budget), both figures, dgm − peer with its 95 % interval over seeds where there are
several, the speed ratio dgm ÷ peer, and one line of reading. A published figure only
appears in the "for orientation" column, marked with its data and budget, because none of
them was measured on the same data at the same budget.

    python -m benchmarks.tables     (writes docs/benchmarks.md and this page)
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import markdown_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "peers.md"
# the modules with ``peer_rows``, in page order (a module whose results are missing is left out)
MODULES = (
    "side_by_side_classical",
    "hmm",
    "side_by_side_autoregressive",
    "side_by_side_gpt",
    "pythae_compare",
    "side_by_side_latent",
    "flows_compare",
    "side_by_side_flows",
    "side_by_side_gan",
    "side_by_side_diffusion",
)


@dataclasses.dataclass
class PeerRow:
    """One comparison: cells of the page's table, already formatted."""

    family: str  # classical, autoregressive, latent variable, flow, GAN, diffusion
    model: str  # dgm's model and its size
    peer: str  # library (version or commit) and its model
    data: str
    budget: str  # steps, batch, seeds; or the fit's iterations
    dgm: str  # dgm's figure with its unit
    peer_value: str  # the peer's figure, same unit
    difference: str  # dgm − peer (95 % interval over seeds), or "equal to 1e-6"
    speed: str  # dgm ÷ peer of ms/step (or of fit time), with its spread
    reading: str  # one line: what the row shows
    orientation: str = ""  # a published figure on other data or budget, marked as such


def bounds(summary: dict[str, Any] | None) -> tuple[float, float, float] | None:
    """(mean, low, high) of a summary stored either as {mean, half_width} or {mean, ci95}."""
    if not summary:
        return None
    mean = summary["mean"]
    if summary.get("ci95"):
        low, high = summary["ci95"]
        return mean, low, high
    half = summary.get("half_width", math.nan)
    return mean, mean - half, mean + half


def interval_cell(summary: dict[str, Any] | None, digits: int, sign: str = "+") -> str:
    """``mean [low, high]``, the mean alone for one seed, a dash for none."""
    b = bounds(summary)
    if b is None:
        return "–"
    mean, low, high = b
    if math.isnan(low):
        return f"{mean:{sign}.{digits}f}"
    return f"{mean:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def verdict(
    summary: dict[str, Any] | None, lower_is_better: bool = True, than: str = "the peer"
) -> str:
    """How dgm − peer (a paired difference) reads against 0 at 95 %: "better than",
    "worse than" or "not distinguishable from", followed by ``than`` ("": the phrase
    alone, for a sentence that names whom)."""
    b = bounds(summary)
    if b is None:
        return "not measured"
    _, low, high = b
    if math.isnan(low) or low <= 0 <= high:
        said = "not distinguishable from"
    else:
        better = high < 0 if lower_is_better else low > 0
        said = "better than" if better else "worse than"
    return f"{said} {than}" if than else said


def budget(steps: int, batch_size: int, optimizer: str, lr: float, seeds: int) -> str:
    """The budget cell of a trained pair: steps, batch, optimizer and seeds."""
    return f"{steps} steps of {batch_size}, {optimizer} {lr}, {seeds} seeds"


def speed_reading(ratio: float) -> str:
    """A ratio dgm ÷ peer of step time, in words."""
    if ratio <= 1.0:
        return f"step at {ratio:.2f}× the peer's"
    return f"step at {ratio:.2f}× the peer's (slower)"


def speed_cell(one_thread: str, threads: dict[str, Any] | None, digits: int = 2) -> str:
    """The "time dgm ÷ peer" cell: the 1-thread figure as the module formats it, then the
    wall ratio at each thread count its ``--threads`` pass measured (``benchmarks.alternate``),
    e.g. ``0.74 [0.73, 0.75]; 2 threads: 0.80 [0.78, 0.82]``: mean and 95 % interval over
    seeds, or, for fits timed in rounds, the median and range of the rounds (as the
    1-thread figures of those rows), which one slow round cannot move."""
    parts = [one_thread]
    for n in sorted(threads or {}, key=int):
        entry = threads[n]
        if entry.get("over") == "rounds":  # one fit repeated: the median and range of rounds
            r = sorted(s["ratio"] for s in entry["per_seed"])
            cell = (
                f"{statistics.median(r):.{digits}f} (rounds {r[0]:.{digits}f}–{r[-1]:.{digits}f})"
            )
        else:
            cell = interval_cell(entry["ratio"], digits, sign="")
        parts.append(f"{n} threads: {cell}")
    return "; ".join(parts)


def rows(results: dict[str, dict[str, Any]]) -> list[PeerRow]:
    """Every module's rows whose results exist, in page order."""
    out: list[PeerRow] = []
    for name in MODULES:
        module = importlib.import_module(f"benchmarks.{name}")
        if module.NAME in results:
            out += module.peer_rows(results[module.NAME])
    return out


def render(results: dict[str, dict[str, Any]]) -> str:
    """The markdown between the markers of docs/peers.md."""
    found = rows(results)
    if not found:
        return "(no side-by-side results yet)"
    header = [
        "family",
        "dgm model",
        "peer",
        "data",
        "budget",
        "dgm",
        "peer",
        "dgm − peer [95 % CI]",
        "time dgm ÷ peer",
        "reading",
        "for orientation (other data or budget)",
    ]
    table = [
        [
            r.family,
            r.model,
            r.peer,
            r.data,
            r.budget,
            r.dgm,
            r.peer_value,
            r.difference,
            r.speed,
            r.reading,
            r.orientation or "–",
        ]
        for r in found
    ]
    table_lines = markdown_table(header, table)
    table_lines[1] = "| " + " | ".join("---" for _ in header) + " |"  # text columns: left
    return "\n".join(table_lines)
