"""Reference runs: the headline model of each family trained until its validation curve
flattens, with the curve saved and the final test figure reported (issue 21 §2).

Each run is an ordinary dgm run directory under runs/bench/reference/<name>, trained by
``dgm.train.train`` with one evaluation on the valid split per epoch and early stopping
(``TrainConfig.patience``): it ends at its plateau, when ``patience`` epochs in a row
found no lower valid NLL, or at its budget of ``epochs`` epochs, whichever comes first.
The learning rate warms up for 100 steps and decays by a cosine to 10 % over that
budget (dgm's schedule), so a run that stops early stops at a higher learning rate.

Runs that take longer than one sitting are trained in slices: ``--hours H`` bounds this
invocation's wall time; when it is spent the run in progress gets SIGTERM, which dgm's
trainer turns into a checkpoint, and the next invocation resumes it exactly where it
stopped (``dgm.train.resume``). The results file records every slice (wall and CPU
seconds, the steps it covered), the validation curve so far and, once a run has
finished, its test figure with the weights of its best validation score
(``best.safetensors``): NLL in nats per example (exact for the autoregressive models,
−IWAE-100 for the VAEs), bits/dim for flows on dequantized images and for the DDPM's
bound, nats per real character for text (``benchmarks.reference_figures``). Runs are
taken in order, cheapest first; the CPU runs one torch thread per run.

    python -m benchmarks.reference [--hours H] [--only NAME ...] [--quick]

``--hours 0`` trains nothing: it recomputes every record from the run directories (the test
figures of runs whose best epoch moved) and rewrites the results file.

A slice that ends before its run does leaves the run's resume state (its committed
checkpoint, metrics and slices) in benchmarks/results/reference_state/<name>, tracked by git
beside the record: runs/ is not, and a fresh machine with its own runs/ resumes from that
state exactly, as it would from its own folder. The state is deleted when the run finishes.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import resource
import shutil
import signal
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import (
    CS236_BATCH,
    CS236_GMVAE_COMPONENTS,
    CS236_LR,
    CS236_MODEL,
    fmt,
    log,
    markdown_table,
    result_path,
    runs_dir,
    save_figure,
    write_result,
)
from benchmarks.reference_figures import FILE_CODERS, figure_on_test

NAME = "reference"
SEED = 0
SLICE_FLOOR_S = 60.0  # a slice shorter than this is not started (loading costs as much)
SESSIONS = "reference_slices.json"  # in each run directory: the slices that trained it
CARRIED = "reference_state"  # beside the results file: the resume state of unfinished runs
UNCARRIED = ("run.lock", "*.png")  # in a run folder, not needed to resume: a crash's lock, pictures


@dataclasses.dataclass(frozen=True)
class Reference:
    """One reference run: a model, its data and its budget."""

    name: str  # run folder and table row
    label: str  # what the row says the model is
    model: str  # registry name
    data: dict[str, Any]  # DataConfig: name and options
    config: dict[str, Any]  # model config
    batch_size: int
    lr: float
    epochs: int  # the budget: at most this many epochs
    patience: int = 5  # epochs without a lower valid NLL, then stop
    grad_clip: float | None = None
    test: str = "nll"  # the test figure: "nll", "iwae", "bits_per_dim", "per_char", "ddpm"

    def data_config(self) -> Any:
        from dgm.data import DataConfig

        options = {k: v for k, v in self.data.items() if k != "name"}
        return DataConfig(self.data["name"], **options)


BINARY = {"name": "fashion_mnist", "binarize": "static"}
BYTES = {"name": "fashion_mnist", "scale": "byte"}
RUNS: tuple[Reference, ...] = (
    Reference("vae", "CS236 VAE (z 10, MLP 300-300)", "vae", BINARY, dict(CS236_MODEL),
              CS236_BATCH, CS236_LR, epochs=50, patience=5, test="iwae"),
    Reference("gmvae", f"CS236 GMVAE (K = {CS236_GMVAE_COMPONENTS})", "gmvae", BINARY,
              {**CS236_MODEL, "num_components": CS236_GMVAE_COMPONENTS},
              CS236_BATCH, CS236_LR, epochs=50, patience=5, test="iwae"),
    Reference("made", "MADE, 500 hidden, 8 masks", "made", BINARY,
              {"hidden_sizes": (500,), "num_masks": 8}, 100, 1e-3, epochs=50, patience=5),
    Reference("nade", "NADE, 500 hidden", "nade", BINARY, {"hidden_size": 500}, 100, 1e-3,
              epochs=50, patience=5),
    Reference("gpt_words", "GPT (4 layers, 4 heads, 128 wide)", "gpt", {"name": "words"}, {},
              64, 1e-3, epochs=30, patience=3, grad_clip=1.0, test="per_char"),
    Reference("pixelcnn_binary", "gated PixelCNN (32 channels, 5 layers)", "pixelcnn", BINARY,
              {"variant": "gated", "hidden_channels": 32, "num_layers": 5}, 64, 2e-3,
              epochs=30, patience=3),
    # dropout 0.2 (nanoGPT's Shakespeare-char setting): without it the 157k characters
    # overfit after epoch 12 (valid 2.340 nats/char, train 1.78); with it 2.289 at epoch 30,
    # still falling, so a budget of 100 epochs of 39 steps (a few CPU minutes) to its plateau
    Reference("gpt_fortunes", "GPT (4 layers, 4 heads, 128 wide, dropout 0.2)", "gpt",
              {"name": "fortunes"}, {"dropout": 0.2}, 64, 1e-3, epochs=100, patience=3,
              grad_clip=1.0, test="per_char"),
    Reference("realnvp", "RealNVP (conv, multi-scale)", "realnvp", BYTES,
              {"architecture": "conv", "dequantize": "uniform"}, 64, 1e-3, epochs=30,
              patience=3, grad_clip=100.0, test="bits_per_dim"),
    Reference("glow", "Glow (multi-scale)", "glow", BYTES, {"dequantize": "uniform"}, 64, 1e-3,
              epochs=30, patience=3, grad_clip=100.0, test="bits_per_dim"),
    Reference("pixelcnn_bytes", "gated PixelCNN, 8-bit (16 channels, 5 layers, logistic mixture)",
              "pixelcnn", BYTES,
              {"variant": "gated", "hidden_channels": 16, "num_layers": 5,
               "head": "logistic_mixture"},
              32, 2e-3, epochs=30, patience=3, test="bits_per_dim"),
    Reference("ddpm", "DDPM (U-Net 32 channels, 1-2-2)", "ddpm", BYTES,
              {"num_levels": 256, "num_timesteps": 1000, "unet_channels": 32,
               "channel_mult": (1, 2, 2), "num_res_blocks": 1},
              64, 2e-4, epochs=30, patience=3, grad_clip=1.0, test="ddpm"),
)  # fmt: skip
QUICK = {"epochs": 2, "patience": 1}  # --quick: two epochs of 2 % of the train split
QUICK_FRACTION, QUICK_VALID = 0.02, 0.01  # of the train split; valid


class _OutOfTime(Exception):
    """This invocation's wall budget ended outside the trainer's own signal handling."""


def _out_of_time(signum: int, frame: Any) -> None:
    raise _OutOfTime


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def train_config(ref: Reference, n_train: int, *, quick: bool, device: str = "cpu") -> Any:
    """One evaluation and one checkpoint per epoch; early stopping after ``patience``; on
    ``device`` (CUDA: the trainer's bf16 autocast, ``benchmarks.devices_reference``)."""
    from dgm.train import TrainConfig

    epochs, patience = (QUICK["epochs"], QUICK["patience"]) if quick else (ref.epochs, ref.patience)
    per_epoch = math.ceil(n_train / ref.batch_size)
    return TrainConfig(
        steps=epochs * per_epoch,
        batch_size=ref.batch_size,
        lr=ref.lr,
        grad_clip=ref.grad_clip,
        eval_every=per_epoch,
        patience=patience,
        checkpoint_every=per_epoch,
        log_every=max(1, per_epoch // 4),
        sample_every=0,
        seed=SEED,
        device=device,
    )


def _setup(ref: Reference) -> dict[str, Any]:
    """What a record says a run was trained as, besides its budget and patience."""
    return {
        "model": ref.model,
        "model_config": ref.config,
        "data": ref.data,
        "batch_size": ref.batch_size,
        "lr": ref.lr,
        "grad_clip": ref.grad_clip,
    }


def same_setup(record: dict[str, Any], ref: Reference, *, quick: bool) -> bool:
    """Whether a saved record was trained as ``ref`` says now (model and its config, data,
    batch, learning rate, clip, epoch budget and patience); a record of an older setup is
    not this run's: its run is trained again (after its folder is moved away)."""
    epochs, patience = (QUICK["epochs"], QUICK["patience"]) if quick else (ref.epochs, ref.patience)
    now = {**_setup(ref), "budget_epochs": epochs, "patience_epochs": patience}
    saved = {k: record.get(k) for k in now}
    return json.dumps(saved, sort_keys=True) == json.dumps(now, sort_keys=True)  # tuples: lists


def run_slices(run: Path) -> list[dict[str, Any]]:
    """The slices that trained a run directory (``SESSIONS``), oldest first."""
    return _read_json(run / SESSIONS, [])


def train_ms_per_step(run: Path, lines: list[dict[str, Any]]) -> float | None:
    """The median over consecutive log lines of a run's training time per step (the
    trainer's own clock: evaluation, checkpoints and start-up left out), no interval across
    the first step of a resumed slice (its clock starts again at 0); None without two lines."""
    timed = [r for r in lines if "train_time_s" in r]
    starts = [s["from_step"] for s in run_slices(run) if s["from_step"] > 0]
    ms = [
        1000 * (b["train_time_s"] - a["train_time_s"]) / (b["step"] - a["step"])
        for a, b in itertools.pairwise(timed)
        if b["step"] > a["step"] and not any(a["step"] <= s < b["step"] for s in starts)
    ]
    return statistics.median(ms) if ms else None


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.is_file() else default


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(tmp, path)


def advance(
    ref: Reference, root: Path, deadline: float, *, quick: bool, device: str = "cpu"
) -> bool:
    """Train ``ref`` (from scratch on ``device``, or resumed from its checkpoint) until it
    finishes or the wall clock reaches ``deadline``; record the slice in the run directory.
    False when it was stopped (the deadline's SIGTERM, or anyone's SIGTERM or Ctrl-C): no
    run may follow."""
    from dgm import run_dir as rd
    from dgm.train import resume, train

    run = root / ref.name
    left = deadline - time.monotonic()
    if left < SLICE_FLOOR_S:
        return False
    data = ref.data_config()
    if quick:
        n = len(data.load("train"))  # at least 4 batches of a small corpus
        fraction = min(1.0, max(QUICK_FRACTION, 4 * ref.batch_size / n))
        options = {**data.options, "valid_fraction": QUICK_VALID}
        data = dataclasses.replace(data, train_fraction=fraction, options=options)
    started = rd.checkpoint_step(run) if (run / rd.CONFIG).is_file() else None
    done = run_slices(run)[-1:]
    if started is not None and done and done[0]["stopped"] in ("plateau", "budget"):
        return True  # finished in an earlier slice
    timer = threading.Timer(left, os.kill, (os.getpid(), signal.SIGTERM))
    t0, cpu0 = time.monotonic(), _cpu_s()
    previous = signal.signal(signal.SIGTERM, _out_of_time)  # the trainer's own inside fit
    timer.start()
    try:
        if started is None:
            n_train = len(data.load("train"))
            cfg = train_config(ref, n_train, quick=quick, device=device)
            log(f"{ref.name}: {cfg.steps} steps at most ({cfg.eval_every} per epoch)")
            _, last = train(ref.model, data, run, cfg, progress=False, overwrite=True, **ref.config)
        else:
            log(f"{ref.name}: resuming at step {started}")
            _, last = resume(run, progress=False)
    except _OutOfTime:
        last = {"interrupted": True}
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    step = rd.checkpoint_step(run) if (run / rd.CONFIG).is_file() else None
    if step is None:
        return not last.get("interrupted")
    slices = run_slices(run)
    slices.append(
        {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "from_step": started or 0,
            "to_step": step,
            "wall_s": round(time.monotonic() - t0, 1),
            "cpu_s": round(_cpu_s() - cpu0, 1),
            "stopped": "plateau" if last.get("stopped_early") else
            "out of time" if last.get("interrupted") else "budget",
        }
    )  # fmt: skip
    _write_json(run / SESSIONS, slices)
    log(f"{ref.name}: step {step} ({slices[-1]['stopped']})")
    return not last.get("interrupted")


def carry(run: Path, state: Path) -> None:
    """Keep ``run``'s resume state in ``state`` (replaced whole, never half-written) while
    the run is unfinished; delete ``state`` once it has finished."""
    from dgm import run_dir as rd

    slices = run_slices(run)
    if not slices or slices[-1]["stopped"] in ("plateau", "budget"):
        shutil.rmtree(state, ignore_errors=True)
        return
    folder = rd.committed(run).folder.relative_to(run)  # the checkpoint a resume reads

    def skipped(where: str, names: list[str]) -> set[str]:
        inside = Path(where).relative_to(run)
        if inside == Path(rd.CHECKPOINTS):  # older ones: a crash between commit and pruning
            return {n for n in names if inside / n != folder}
        return shutil.ignore_patterns(*UNCARRIED)(where, names) if inside == Path(".") else set()

    tmp = state.with_name(f".{state.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(run, tmp, ignore=skipped)
    old = state.with_name(f".{state.name}.old")
    if state.exists():
        os.replace(state, old)
    os.replace(tmp, state)
    shutil.rmtree(old, ignore_errors=True)


def restore(run: Path, state: Path) -> bool:
    """Copy a carried resume state into ``run`` when ``run`` has none of its own (a fresh
    machine); True when it did."""
    from dgm import run_dir as rd

    if (run / rd.CONFIG).is_file() or not (state / rd.CONFIG).is_file():
        return False
    shutil.rmtree(run, ignore_errors=True)  # a run folder without its config holds nothing
    shutil.copytree(state, run)
    return True


def status(ref: Reference, root: Path, known: dict[str, Any], *, quick: bool) -> dict[str, Any]:
    """What the results file says of ``ref``: its slices, curve and, once finished, the
    test figure (computed once; kept from ``known`` when the run folder is gone)."""
    from dgm import run_dir as rd
    from dgm.train.config import saved_config

    run = root / ref.name
    if not (run / rd.CONFIG).is_file():
        return known if same_setup(known, ref, quick=quick) else {"state": "not started"}
    cfg = saved_config(rd.read_json(run / rd.CONFIG)["train"])
    lines = [json.loads(s) for s in (run / rd.METRICS).read_text().splitlines()]
    curve = [[r["step"] / cfg.eval_every, r["valid/nll"]] for r in lines if "valid/nll" in r]
    slices = run_slices(run)
    step = rd.checkpoint_step(run) or 0
    best = min(curve, key=lambda p: p[1]) if curve else None
    # the training NLL over the best epoch (models that log one: exact likelihoods), beside
    # the valid NLL: how far the run had begun to overfit where it was chosen
    at_best = [
        r["nll"]
        for r in lines
        if best and "nll" in r and best[0] - 1 < r["step"] / cfg.eval_every <= best[0]
    ]
    finished = bool(slices) and slices[-1]["stopped"] in ("plateau", "budget")
    out = {
        "state": ("plateau" if slices[-1]["stopped"] == "plateau" else "budget")
        if finished
        else "in progress",
        "label": ref.label,
        **_setup(ref),
        "steps_per_epoch": cfg.eval_every,
        "budget_epochs": cfg.steps // cfg.eval_every,
        "patience_epochs": cfg.patience,
        "event_shape": rd.read_json(run / rd.CONFIG)["event_shape"],
        "epochs": step / cfg.eval_every,
        "best_epoch": best[0] if best else None,
        "best_valid_nll": best[1] if best else None,
        "train_nll_at_best": statistics.fmean(at_best) if at_best else None,
        # how flat the curve is at its end: the valid NLL's change over the last 5 epochs
        "last_5_epochs_change": curve[-1][1] - curve[-6][1] if len(curve) > 5 else None,
        "curve": curve,
        "slices": slices,
        "wall_s": round(sum(s["wall_s"] for s in slices), 1),
        "cpu_s": round(sum(s["cpu_s"] for s in slices), 1),
        "ms_per_step": train_ms_per_step(run, lines),
    }
    if finished:
        kept = known.get("test") or {}
        same = kept and known.get("epochs") == out["epochs"]
        # a figure from before the file coders (and the in-context figure) were kept beside it
        coders = FILE_CODERS.get(ref.test)
        older = coders is not None and coders not in kept
        out["test"] = (
            known["test"] if same and not older else figure_on_test(ref.test, run, quick=quick)
        )
    elif best is not None:
        # the best weights so far on the test split: reported only, never used to stop or
        # to choose (early stopping reads the valid NLL); recomputed when the best epoch moves
        kept = known.get("test_so_far")
        same = kept and kept.get("best_epoch") == best[0]
        out["test_so_far"] = (
            kept if same else {**figure_on_test(ref.test, run, quick=quick), "best_epoch": best[0]}
        )
    return out


def plot(runs: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Every run's validation curve, one panel each, the best epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {k: r for k, r in runs.items() if r.get("curve")}
    if not shown:
        return None
    cols = min(3, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, (name, r) in zip(axes.flat, shown.items(), strict=False):
        epochs, nll = zip(*r["curve"], strict=True)
        ax.plot(epochs, nll, marker=".")
        ax.axvline(r["best_epoch"], color="grey", linestyle=":")
        ax.set_title(f"{name} ({r['state']})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("valid NLL, nats")
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)


def run(quick: bool = False, hours: float = 2.0, only: list[str] | None = None) -> dict[str, Any]:
    chosen = [r for r in RUNS if not only or r.name in only]
    unknown = set(only or ()) - {r.name for r in RUNS}
    if unknown:
        raise SystemExit(
            f"no reference run named {sorted(unknown)}: choose from {[r.name for r in RUNS]}"
        )
    torch.set_num_threads(1)
    root = runs_dir(NAME, quick)
    root.mkdir(parents=True, exist_ok=True)
    path = result_path(NAME, quick=quick)
    known = _read_json(path, {}).get("runs", {})
    carried = path.parent / CARRIED
    for ref in RUNS:  # an unfinished run's state, carried from another machine with its record
        record = known.get(ref.name, {})
        if record.get("state") == "in progress" and same_setup(record, ref, quick=quick):
            if restore(root / ref.name, carried / ref.name):
                log(f"{ref.name}: resume state restored from {carried / ref.name}")
    t0 = time.monotonic()
    deadline = t0 + hours * 3600

    for ref in chosen:
        record = known.get(ref.name, {})
        done = record.get("state") in ("plateau", "budget") and same_setup(record, ref, quick=quick)
        going = done or advance(ref, root, deadline, quick=quick)
        if (root / ref.name / SESSIONS).is_file():
            carry(root / ref.name, carried / ref.name)
        if not going:
            break  # stopped: the runs after it wait for the next invocation
    runs = {r.name: status(r, root, known.get(r.name, {}), quick=quick) for r in RUNS}
    figure = plot(runs, (path.parent / f"{NAME}_curves.png"))
    payload = {
        "description": "headline models trained to their plateau (early stopping on the valid NLL) "
        "or their epoch budget, in slices that resume exactly; one torch thread",
        "threads": [1],
        "curves_png": figure.name if figure else None,
        "runs": runs,
    }
    write_result(
        NAME, payload, quick=quick, seed=SEED, steps=None, wall_time_s=time.monotonic() - t0
    )
    return payload


def _figure(r: dict[str, Any]) -> str:
    """The test cell: the finished run's figure, or the best weights' so far, marked."""
    if r.get("test"):
        return _test_cell(r["test"])
    if r.get("test_so_far"):
        so_far = r["test_so_far"]
        return f"so far (epoch {so_far['best_epoch']:.0f}): {_test_cell(so_far)}"
    return "–"


def _valid_cell(r: dict[str, Any]) -> str:
    """The best valid NLL in nats, and in bits/dim where the test figure is in bits/dim."""
    nll, shape = r.get("best_valid_nll"), r.get("event_shape")
    test = r.get("test") or r.get("test_so_far") or {}
    if nll is None or shape is None or "bits_per_dim" not in test:
        return fmt(nll)
    return f"{nll:.2f} ({nll / (math.prod(shape) * math.log(2)):.3f} bits/dim)"


def _test_cell(test: dict[str, Any]) -> str:
    if "file_baselines_bits_per_dim" in test:
        files = test["file_baselines_bits_per_dim"]
        return (
            f"{test['bits_per_dim']:.3f} ± {test['bits_per_dim_se']:.3f} bits/dim "
            f"(PNG {files['png']:.3f}, lzma {files['lzma']:.3f}; {test['test_n']} images)"
        )
    if "bits_per_dim" in test:
        return f"{test['bits_per_dim']:.3f} bits/dim"
    if "nats_per_char" in test:
        cell = f"{test['nats_per_char']:.3f} nats/char"
        files = test.get("file_baselines_bits_per_char")
        if files:  # bits per character, the coders' unit, beside them
            cell += (
                f" = {test['nats_per_char'] / math.log(2):.3f} bits/char (lzma "
                f"{files['lzma']:.3f}, gzip {files['gzip']:.3f} bits/char of the whole test text)"
            )
        if "nats_per_char_in_context" in test:
            in_context = test["nats_per_char_in_context"]
            cell += (
                f"; in context (≥ {test['context_stride']} characters before each): "
                f"{in_context:.3f} nats/char = {in_context / math.log(2):.3f} bits/char"
            )
        return cell
    what = "−IWAE-100" if test["bound"].startswith("iwae") else "NLL"
    return f"{test['nll']:.2f} nats ({what})"


# a run at its budget whose valid NLL fell by more than this share over its last 5 epochs
# is read as still improving (VAE, GMVAE and MADE fell 0.03-0.04 %: flat)
STILL_FALLING = 0.001


def reading(name: str, r: dict[str, Any]) -> str | None:
    """What a run's test figure says beside the file coders on the same test data, and how
    far training and validation NLL had parted at its best epoch; None when nothing."""
    test = r.get("test") or r.get("test_so_far")
    if not test:
        return None
    when = "" if r.get("test") else f" (best epoch so far, {r['test_so_far']['best_epoch']:.0f})"
    parts = []
    if "file_baselines_bits_per_dim" in test:
        files, bpd = test["file_baselines_bits_per_dim"], test["bits_per_dim"]
        se = test["bits_per_dim_se"]

        def beside(coder: str, size: float) -> str:
            side = "below" if bpd < size else "above"
            return f"{side} {coder}'s {size:.3f} ({(size - bpd) / se:+.1f} standard errors)"

        parts.append(
            f"{bpd:.3f} ± {se:.3f} bits/dim{when}: {beside('lzma', files['lzma'])}, "
            f"{beside('PNG', files['png'])}, on the same {test['test_n']} test images"
        )
    files = test.get("file_baselines_bits_per_char")
    if files:
        in_context = "nats_per_char_in_context" in test
        nats = test["nats_per_char_in_context"] if in_context else test["nats_per_char"]
        bits, what = nats / math.log(2), " in context" if in_context else ""
        best = min(files, key=files.get)
        if bits < files[best]:
            parts.append(
                f"{bits:.3f} bits/char{what}{when}, below every file coder "
                f"({best} {files[best]:.3f})"
            )
        else:
            above = ", ".join(
                f"{k} {v:.3f}" for k, v in sorted(files.items(), key=lambda kv: kv[1]) if v < bits
            )
            parts.append(f"{bits:.3f} bits/char{what}{when}, above {above}")
            if in_context:
                parts.append(
                    f"the model, fitted to the train split, sees at most "
                    f"{2 * test['context_stride'] - 1} characters back; the coders adapt to the "
                    "test text itself as they read it and reach back over all of it"
                )
            elif r.get("data", {}).get("name") != "words":
                parts.append(
                    "the model reads each window from its start, the coders the whole test "
                    "text with all its earlier context"
                )
    change, valid = r.get("last_5_epochs_change"), r.get("best_valid_nll")
    falling = change is not None and valid and -change > STILL_FALLING * abs(valid)
    if r.get("state") == "budget" and falling:
        shape = r.get("event_shape")
        per_dim = (
            f" ({change / (math.prod(shape) * math.log(2)):+.3f} bits/dim)"
            if shape and "bits_per_dim" in test
            else ""
        )
        parts.append(
            f"still improving at its {r['budget_epochs']}-epoch budget (best epoch "
            f"{r['best_epoch']:.0f}; valid NLL {change:+.2f} nats{per_dim}, "
            f"{100 * change / abs(valid):+.2f} %, over the last 5 epochs): the figure is the "
            "budget's, not a plateau's"
        )
    train = r.get("train_nll_at_best")
    if train is not None and valid is not None and valid - train > 0.02 * abs(valid):
        parts.append(
            f"training NLL {train:.2f} against valid {valid:.2f} nats at its best epoch: "
            "it had begun to overfit its training split"
        )
    return f"- {name}: " + "; ".join(parts) + "." if parts else None


def table(record: dict[str, Any]) -> list[str]:
    header = ["run", "model", "data", "state", "epochs", "best epoch", "best valid NLL (nats)",
              "change over the last 5 epochs",
              "test", "wall h", "CPU h", "slices"]  # fmt: skip
    rows = []
    for name, r in record.get("runs", {}).items():
        if r.get("state") == "not started":
            rows.append([name, "–", "–", "not started", *["–"] * 8])
            continue
        data = r["data"]["name"] + "".join(
            f", {k} {v}" for k, v in r["data"].items() if k != "name"
        )
        rows.append(
            [
                name,
                r["label"],
                data,
                r["state"] + ("" if r["state"] == "plateau" else f" ({r['budget_epochs']} max)"),
                f"{r['epochs']:.1f}",
                fmt(r["best_epoch"], 0),
                _valid_cell(r),
                "–"
                if r.get("last_5_epochs_change") is None
                else f"{r['last_5_epochs_change']:+.2f}",
                _figure(r),
                f"{r['wall_s'] / 3600:.2f}",
                f"{r['cpu_s'] / 3600:.2f}",
                str(len(r["slices"])),
            ]
        )
    return [
        "**Reference runs** (headline model of each family trained until its valid NLL stops "
        "improving for `patience` epochs, or to its epoch budget; one evaluation per epoch; "
        "one torch thread; trained in slices that resume exactly, `python -m "
        "benchmarks.reference --hours H`). State: *plateau* (stopped early, so at a higher "
        "learning rate than its budget's: the rate warms up for 100 steps and decays by a "
        "cosine to 10 % over the whole budget; a longer patience might still find a lower "
        "valid NLL), *budget* (reached its epochs), *in progress* (will continue in the next "
        "slice: its curve so far is saved, and its resume state beside it in "
        "`benchmarks/results/reference_state/`, so that a fresh machine continues it). Test: "
        "the best validation weights on the test "
        "split; for a run in progress, those of its best epoch so far, marked *so far* "
        "(reported only: early stopping reads the validation NLL, never the test split). Below "
        "the table, each figure beside gzip/bz2/lzma (and PNG) of the same test data where it "
        "has a file-coder counterpart, the runs that ended at their budget with the valid NLL "
        "still falling (by more than 0.1 % over their last 5 epochs), and the runs whose "
        "training NLL was more than 2 % below their valid NLL at their best epoch. Curves: "
        "`benchmarks/results/reference_curves.png`.",
        "",
        *markdown_table(header, rows),
        "",
        *(line for name, r in record.get("runs", {}).items() if (line := reading(name, r))),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="2 epochs of 2 %% of the data; results/quick/"
    )
    p.add_argument(
        "--hours",
        type=float,
        default=2.0,
        help="wall-clock budget of this invocation (0: train nothing, refresh the records)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="these runs only: " + ", ".join(r.name for r in RUNS),
    )
    ns = p.parse_args(argv)
    if ns.hours < 0:
        p.error(f"--hours must be 0 (refresh only) or positive, got {ns.hours}")
    run(quick=ns.quick, hours=ns.hours, only=ns.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
