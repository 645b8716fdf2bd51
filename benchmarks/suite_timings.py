"""What `make test` and `make bench-quick` cost, per model family.

1. **tests**: the suite as `make test` runs it (``pytest -n 2 --dist loadgroup``), with a
   JUnit XML report; each test's time (setup + call + teardown, as pytest-xdist's workers
   measure it, in wall seconds) is summed by the family its file belongs to (FAMILIES: the
   first pattern the path contains). The suite's own wall time and the CPU time of the
   whole process tree come beside it. ``--junit PATH`` tabulates an existing report
   instead of running the suite (then no wall or CPU time).
2. **bench**: each benchmark of ``benchmarks.run`` in quick mode, one process each
   (``python -m benchmarks.run --quick --only NAME``), its wall and CPU seconds, by family.

    python -m benchmarks.suite_timings [--part tests|bench] [--junit PATH] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from benchmarks.common import existing_payload, log, markdown_table, result_path, write_result

NAME = "suite_timings"
ROOT = Path(__file__).resolve().parent.parent
# family -> substrings of a test file's path or a benchmark's name, first match wins
FAMILIES = (
    ("classical", ("classical", "gmm", "kde", "naive_bayes", "bayes_net", "hmm", "density_models")),
    ("autoregressive", ("autoregressive", "pixelcnn", "pixelrnn", "sequence", "gpt", "nade")),
    ("latent variable", ("vae", "latent", "iw_eval", "cs236", "pythae", "interpolate")),
    ("flow", ("flow", "dequantiz")),
    ("GAN", ("gan",)),
    ("energy-based", ("ebm",)),
    ("diffusion", ("ddpm", "diffusion", "ddim")),
    ("tasks", ("tasks/", "cas", "sweep", "control", "compress", "design", "anomaly", "impute")),
    ("data", ("data/", "shards", "streaming")),
    ("training", ("train/", "trainer", "hot_path", "threads", "overhead")),
    ("CLI and docs", ("test_cli", "readme", "demo", "report", "cross_modal")),
)
OTHER = "contract, evaluation and the rest"


def family(path: str) -> str:
    """The family of a test file path or a benchmark name (OTHER when none matches)."""
    low = path.lower()
    return next((f for f, keys in FAMILIES if any(k in low for k in keys)), OTHER)


def junit_times(path: Path) -> dict[str, dict[str, float]]:
    """Per family: the number of tests and their summed seconds, from a JUnit XML report."""
    out: dict[str, dict[str, float]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        where = case.get("file") or case.get("classname", "").replace(".", "/")
        row = out.setdefault(family(where), {"tests": 0, "seconds": 0.0})
        row["tests"] += 1
        row["seconds"] += float(case.get("time") or 0.0)
    return out


def timed_process(cmd: list[str]) -> tuple[int, float, float]:
    """(exit code, wall s, CPU s of the process and its children) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    code = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return code, wall, cpu


def run_tests(junit: Path | None) -> dict[str, Any]:
    if junit is not None:
        return {"families": junit_times(junit), "wall_s": None, "cpu_s": None, "exit": None}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q"]
        code, wall, cpu = timed_process([*cmd, "-p", "no:cacheprovider", f"--junitxml={report}"])
        return {"families": junit_times(report), "wall_s": wall, "cpu_s": cpu, "exit": code}


def run_bench(only: list[str] | None = None) -> list[dict[str, Any]]:
    from benchmarks.run import BENCHMARKS

    rows = []
    for name in BENCHMARKS:
        if only and name not in only:
            continue
        cmd = [sys.executable, "-m", "benchmarks.run", "--quick", "--only", name]
        code, wall, cpu = timed_process(cmd)
        rows.append({"benchmark": name, "family": family(name), "wall_s": wall, "cpu_s": cpu})
        rows[-1]["exit"] = code
        log(f"{name}: {wall:.0f} s wall, {cpu:.0f} CPU s (exit {code})")
    return rows


def run(
    quick: bool = False,
    part: str | None = None,
    junit: Path | None = None,
    only: list[str] | None = None,
) -> None:
    """Both parts (or one); the results file keeps the part not rerun. ``only`` reruns
    those benchmarks of the bench part and replaces their rows."""
    payload: dict[str, Any] = {}
    if part is not None and result_path(NAME, quick=quick).is_file():
        payload, _ = existing_payload(NAME, quick=quick)
    t0 = time.perf_counter()
    if part in (None, "tests"):
        payload["tests"] = run_tests(junit)
    if part in (None, "bench"):
        rows = {r["benchmark"]: r for r in payload.get("bench", [])} if only else {}
        rows |= {r["benchmark"]: r for r in run_bench(only)}
        payload["bench"] = list(rows.values())
    wall = time.perf_counter() - t0
    write_result(NAME, payload, quick=quick, seed=0, steps=None, wall_time_s=wall)


def table(record: dict[str, Any]) -> list[str]:
    """Markdown: the suite's time by family, then each quick benchmark's."""
    lines: list[str] = []
    tests = record.get("tests")
    if tests:
        fams = sorted(tests["families"].items(), key=lambda kv: -kv[1]["seconds"])
        total = sum(f["seconds"] for _, f in fams)
        whole = (
            f" The run took {tests['wall_s']:.0f} s wall and {tests['cpu_s']:.0f} CPU s (both "
            "cores, every process it started)."
            if tests.get("wall_s")
            else ""
        )
        lines += [
            "**`make test` by family** (pytest -n 2 --dist loadgroup; each test's setup + "
            f"call + teardown in wall seconds as its worker measured it, summed).{whole}",
            "",
            *markdown_table(
                ["family", "tests", "seconds", "share"],
                [
                    [name, str(f["tests"]), f"{f['seconds']:.1f}", f"{f['seconds'] / total:.0%}"]
                    for name, f in fams
                ],
            ),
        ]
    bench = record.get("bench")
    if bench:
        by: dict[str, list[dict[str, Any]]] = {}
        for r in bench:
            by.setdefault(r["family"], []).append(r)
        rows = [
            [
                fam,
                ", ".join(r["benchmark"] for r in rs),
                f"{sum(r['wall_s'] for r in rs):.0f}",
                f"{sum(r['cpu_s'] for r in rs):.0f}",
            ]
            for fam, rs in sorted(by.items(), key=lambda kv: -sum(r["wall_s"] for r in kv[1]))
        ]
        failed = [r["benchmark"] for r in bench if r.get("exit")]
        lines += [
            "",
            "**`make bench-quick` by family** (each benchmark in its own process, "
            "`python -m benchmarks.run --quick --only NAME`; wall and CPU seconds)."
            + (f" Failed: {', '.join(failed)}." if failed else "")
            + (f" Run: {record['bench_note']}." if record.get("bench_note") else ""),
            "",
            *markdown_table(["family", "benchmarks", "wall s", "CPU s"], rows),
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--part", choices=["tests", "bench"], help="run only this part")
    p.add_argument("--junit", type=Path, help="tabulate this JUnit report instead of a run")
    from benchmarks.run import BENCHMARKS

    p.add_argument(
        "--only", nargs="+", metavar="NAME", choices=BENCHMARKS, help="bench part: rerun these"
    )
    args = p.parse_args(argv)
    if args.only and args.part != "bench":
        p.error("--only reruns benchmarks of the bench part: add --part bench")
    run(part=args.part, junit=args.junit, only=args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
