"""What every benchmark shares: the machine it ran on, result files, timing helpers.

Full results go to ``benchmarks/results/<name>.json``; quick-mode results (``--quick``) to
``benchmarks/results/quick/<name>.json``, so a smoke run never overwrites a full one.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from dgm.train import TrainConfig

RESULTS = Path(__file__).resolve().parent / "results"
QUICK_RESULTS = RESULTS / "quick"

# The CS236 (Stanford, Ermon) homework 2 setup on binary 28x28 images: a VAE with a
# 10-dimensional latent, 300-300 MLP encoder and decoder, Bernoulli decoder, batch 97.
CS236_MODEL: dict[str, Any] = {
    "latent_dim": 10,
    "hidden_sizes": (300, 300),
    "decoder": "bernoulli",
}
CS236_BATCH = 97
CS236_LR = 1e-3
CS236_GMVAE_COMPONENTS = 500


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """Where a result came from: OS, CPU, cores, Python, torch and its threads, GPU."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cuda_device": cuda,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy over the next ``seconds`` (Linux /proc/stat), in [0, 1]."""

    def read() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields[:8]), fields[3] + fields[4]  # total, idle + iowait

    try:
        total0, idle0 = read()
        time.sleep(seconds)
        total1, idle1 = read()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def busy_warning() -> str | None:
    """A warning when other processes keep the CPUs busy (timings then mean little)."""
    busy = cpu_busy()
    if busy is not None and busy > 0.1:
        return (
            f"warning: the CPUs are {100 * busy:.0f}% busy before starting: timings will be "
            "slow and noisy; rerun on an idle machine for figures worth publishing"
        )
    return None


def result_path(name: str, *, quick: bool) -> Path:
    return (QUICK_RESULTS if quick else RESULTS) / f"{name}.json"


# the keys write_result adds to every record around its payload
PROVENANCE = (
    "benchmark",
    "date",
    "quick",
    "seed",
    "steps",
    "wall_time_s",
    "torch_version",
    "machine",
)


def write_result(
    name: str,
    payload: dict[str, Any],
    *,
    quick: bool,
    seed: int,
    steps: int | None,
    wall_time_s: float,
    measured: dict[str, Any] | None = None,
) -> Path:
    """Write ``payload`` with its provenance to ``results[/quick]/<name>.json``, atomically
    (a temporary file in the same folder, then a rename). Returns the path. ``measured``:
    the ``date``, ``torch_version`` and ``machine`` of the run the figures come from, when
    they are not this process's (a pass that adds to a saved record keeps its run's)."""
    now = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "machine": machine_info(),
    }
    measured = {**now, **(measured or {})}
    record = {
        "benchmark": name,
        "date": measured["date"],
        "quick": quick,
        "seed": seed,
        "steps": steps,
        "wall_time_s": round(wall_time_s, 3),
        "torch_version": measured["torch_version"],
        "machine": measured["machine"],
        **payload,
    }
    path = result_path(name, quick=quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def existing_payload(name: str, *, quick: bool) -> tuple[dict[str, Any], float]:
    """The payload of benchmark ``name``'s results file (without the provenance that
    ``write_result`` adds) and its wall time, for rerunning one part of it into the file."""
    path = result_path(name, quick=quick)
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: run the whole benchmark first")
    record = json.loads(path.read_text())
    return {k: v for k, v in record.items() if k not in PROVENANCE}, record["wall_time_s"]


def read_results(folder: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """Benchmark name -> its result record, for every ``*.json`` directly in ``folder``."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"skipping {path}: {e}")
            continue
        out[record.get("benchmark", path.stem)] = record
    return out


def timed(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call of ``fn``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def summary(values: list[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def paired_ratio(a: list[float], b: list[float]) -> float:
    """The median over rounds of a's time / b's time in the same round: robust to drift
    in the machine's speed across rounds."""
    return statistics.median([p / q for p, q in zip(a, b, strict=True)])


def timed_rounds(
    sides: dict[str, Callable[[], float]],
    *,
    rounds: int,
    steps: int,
    warmup: int,
    rotate: bool = False,
) -> dict[str, list[float]]:
    """ms per step of every side in every round. A side runs ``steps`` steps per call and
    returns their seconds; each is first called ``max(1, warmup // steps)`` times untimed,
    then once per round, in the order of ``sides`` (``rotate``: shifted by one each
    round). Each round is logged."""
    for fn in sides.values():  # warm-up
        for _ in range(max(1, warmup // steps)):
            fn()
    names = list(sides)
    ms: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for k in range(len(names)):
            name = names[(r + k) % len(names)] if rotate else names[k]
            ms[name].append(1000 * sides[name]() / steps)
        log(
            f"  round {r + 1}/{rounds}: "
            + ", ".join(f"{name} {v[-1]:.3f}" for name, v in ms.items())
            + " ms/step"
        )
    return ms


def fashion_mnist_root() -> str | None:
    """``$DGM_FASHION_MNIST_ROOT`` when set, else None (the loader's own search path)."""
    return os.environ.get("DGM_FASHION_MNIST_ROOT") or None


def mnist_root() -> str | None:
    """``$DGM_MNIST_ROOT``: the folder with the MNIST IDX files; None skips MNIST."""
    return os.environ.get("DGM_MNIST_ROOT") or None


def binarized_image_data() -> list[Any]:
    """The statically binarized 28x28 datasets the image tables use: Fashion-MNIST, and
    MNIST too when ``$DGM_MNIST_ROOT`` names its IDX files."""
    from dgm.data import DataConfig

    out = [DataConfig(name="fashion_mnist", root=fashion_mnist_root(), binarize="static")]
    if mnist_root() is not None:
        out.append(DataConfig(name="mnist", root=mnist_root(), binarize="static"))
    return out


RUNS = Path(__file__).resolve().parent.parent / "runs" / "bench"  # the benchmarks' run dirs


def runs_dir(benchmark: str, quick: bool) -> Path:
    """Where a benchmark keeps its runs: runs/bench[/quick]/<benchmark>."""
    return RUNS / ("quick" if quick else "") / benchmark


def fresh_run_dir(path: Path) -> Path:
    """``path`` emptied for a new run; refuses to delete a folder that is not a dgm run."""
    from dgm import run_dir as run_files  # not `run_dir`: the runs' own paths use that name

    if path.exists():
        if not (path / run_files.CONFIG).exists() and any(path.iterdir()):
            raise SystemExit(f"{path} exists and is not a dgm run: move it away first")
        shutil.rmtree(path)
    return path


def train_config(
    steps: int, *, batch_size: int, lr: float, seed: int, **overrides: Any
) -> TrainConfig:
    """The ``TrainConfig`` of the benchmarks' short runs: ``steps`` steps on the CPU, no
    validation, no sample pictures, logging ten times and one checkpoint at the end;
    ``overrides`` set any other field (``grad_clip``, ``warmup_steps``, ``device`` ...)."""
    from dgm.train import TrainConfig

    quiet = {
        "device": "cpu",
        "eval_every": 0,
        "sample_every": 0,
        "log_every": max(1, steps // 10),
        "checkpoint_every": steps,
    }
    return TrainConfig(
        steps=steps, batch_size=batch_size, lr=lr, seed=seed, **{**quiet, **overrides}
    )


def schedule_record(config: TrainConfig) -> dict[str, Any]:
    """What a results file records of a ``train_config``: batch size, learning rate and its
    schedule, and the optimizer (dgm's trainer: AdamW, weight decay 0)."""
    return {
        "batch_size": config.batch_size,
        "lr": config.lr,
        "optimizer": "AdamW, weight decay 0 (dgm's trainer)",
        "warmup_steps": config.warmup_steps,
        "min_lr_ratio": config.min_lr_ratio,
    }


def trainer_optimizer(model: Any, lr: float) -> torch.optim.Optimizer:
    """The optimizer dgm's trainer builds for ``model``'s first (for a one-phase model, only)
    phase at learning rate ``lr``: ``dgm.train.optim.build_optimizer``, AdamW with weight
    decay 0, fused where torch has the kernel."""
    from dgm.train import TrainConfig
    from dgm.train.optim import build_optimizer

    phase, entries = next(iter(model.param_groups().items()))
    return build_optimizer(phase, entries, TrainConfig(lr=lr))


def train_briefly(
    name: str,
    data: Any,
    run_dir: Path,
    steps: int,
    *,
    batch_size: int,
    lr: float,
    seed: int,
    config: dict[str, Any] | None = None,
    **model_config: Any,
) -> tuple[Any, dict[str, Any], float]:
    """Train model ``name`` on ``data`` (a ``DataConfig``) into the emptied ``run_dir`` with
    ``train_config`` (``config``: its overrides): the benchmarks' short runs. Returns the
    model in eval mode, the last metrics and the wall time in seconds; an interrupted run
    (Ctrl-C) ends the benchmark."""
    from dgm.train import train

    cfg = train_config(steps, batch_size=batch_size, lr=lr, seed=seed, **(config or {}))
    t0 = time.perf_counter()
    model, last = train(name, data, fresh_run_dir(run_dir), cfg, progress=False, **model_config)
    if last.get("interrupted"):
        raise SystemExit(f"training of {name} was interrupted at step {last.get('step')}")
    return model.eval(), last, time.perf_counter() - t0


def slug(label: str) -> str:
    """A row label as a folder name: "made (8 masks)" -> "made_8_masks"."""
    return label.replace(" ", "_").replace("(", "").replace(")", "")


def first_examples(data: Any, n: int | None) -> Any:
    """The first n examples of a ``TensorData`` (all of them for None)."""
    return data if n is None or n >= len(data) else data.subset(torch.arange(n))


# -- statistics ----------------------------------------------------------------------------


@torch.no_grad()
def log_probs(log_prob: Callable[[Tensor], Tensor], x: Tensor, batch: int = 4096) -> Tensor:
    """log p of every example of x, in nats, float64, in chunks of ``batch``: (N,)."""
    return torch.cat([log_prob(chunk).double() for chunk in x.split(batch)])


def mean_se(values: Tensor) -> tuple[float, float]:
    """The mean of ``values`` (N,) and its standard error, sample SD / sqrt(N)."""
    return values.mean().item(), values.std().item() / math.sqrt(len(values))


def nll(log_prob: Tensor) -> dict[str, float]:
    """Mean negative log-likelihood in nats of per-example ``log_prob`` (N,) and its
    standard error: ``{"nll", "se"}``."""
    mean, se = mean_se(-log_prob)
    return {"nll": mean, "se": se}


def sd(values: list[float]) -> float:
    """Sample standard deviation, 0 for a single value."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def t95(df: int) -> float:
    """The two-sided 95 % quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def ci95(values: list[float]) -> list[float] | None:
    """Student-t 95 % confidence interval of the mean (None for a single value)."""
    if len(values) < 2:
        return None
    half = t95(len(values) - 1) * sd(values) / math.sqrt(len(values))
    mean = statistics.mean(values)
    return [float(mean - half), float(mean + half)]


def interval(values: list[float]) -> dict[str, float]:
    """Mean and 95 % Student-t half-width of ``values`` (nan for one value): the paired
    difference or ratio over seeds of a side-by-side row."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return {"mean": mean, "half_width": math.nan, "n": n}
    return {"mean": mean, "half_width": t95(n - 1) * sd(values) / math.sqrt(n), "n": n}


def plus_minus(summary: dict[str, float] | None, fmt: str) -> str:
    """``mean ± half-width`` of an ``interval`` in format ``fmt``, or a dash."""
    if not summary:
        return "–"
    half = summary["half_width"]
    spread = "" if math.isnan(half) else f" ± {half:{fmt.lstrip('+')}}"
    return f"{summary['mean']:{fmt}}{spread}"


# -- markdown --------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 2) -> str:
    """A number for a table cell with ``digits`` decimals; "–" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def threads_label(n: Any) -> str:
    """ "1 thread", "2 threads"."""
    return f"{n} thread" if n == 1 else f"{n} threads"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a markdown table, the first column left-aligned, the others right."""
    right = ["---:" if i else "---" for i in range(len(header))]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(right) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One torch thread inside the block, the thread count restored after it: steady timings
    on a shared machine, where one thread is also the faster (benchmarks/threads.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def save_figure(fig: Any, path: Path, *, dpi: int | None = None) -> Path:
    """Lay out a matplotlib figure, write it to ``path`` (its folder made) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def bench_extra_missing(*modules: str) -> bool:
    """Whether any of ``modules`` (of the ``bench`` extra: pythae, zuko, normflows, never
    dgm dependencies) is not installed; then says which, and the fix."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        log(
            f"  {' and '.join(missing)} not installed: skipped "
            "(pip install -c constraints.txt -e '.[bench]')"
        )
    return bool(missing)


def log(message: str) -> None:
    print(message, flush=True)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` of a side-by-side module: its speed pass at N ≥ 2 threads
    (``benchmarks/alternate.py``) instead of the training run (N = 1, the default)."""
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="N ≥ 2: time every saved row's two steps at N threads (wall ms) into the saved "
        "results, instead of the training run",
    )


def main(
    run: Callable[..., Any],
    doc: str | None,
    quick_help: str,
    argv: list[str] | None,
    parts: dict[str, str] | None = None,
    jobs: str | None = None,
    threads: Callable[[bool, int], Any] | None = None,
) -> int:
    """The command line of one benchmark module: ``python -m benchmarks.NAME [--quick]``,
    ``[--part P]`` when ``parts`` names the parts that can be rerun alone (part -> help),
    passed to ``run`` as ``part``, ``[--jobs J]`` when ``jobs`` says what runs at once
    (its help), passed to ``run`` as ``jobs``, and ``[--threads N]`` when the module has a
    speed pass at N ≥ 2 threads (``benchmarks/alternate.py``): ``threads(quick, N)`` then
    runs instead of ``run``."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help=quick_help)
    if parts:
        help_ = "; ".join(f"{k}: {v}" for k, v in parts.items())
        p.add_argument("--part", choices=sorted(parts), default=None, help=help_)
    if jobs:
        p.add_argument("--jobs", type=int, default=1, help=jobs)
    if threads:
        add_threads_argument(p)
    ns = p.parse_args(argv)
    if jobs and ns.jobs < 1:
        p.error(f"--jobs must be at least 1, got {ns.jobs}")
    if threads and ns.threads != 1:
        threads(ns.quick, ns.threads)
        return 0
    extra = ({"part": ns.part} if parts else {}) | ({"jobs": ns.jobs} if jobs else {})
    run(quick=ns.quick, **extra)
    return 0
