"""The compression verbs of the ``dgm`` command: parsers and command functions, no logic.

dgm compress DIR IN OUT [--batch-size N] [--best] [--no-ema] [--threads N]
dgm decompress DIR IN OUT [--batch-size N] [--best] [--no-ema] [--threads N]

IN of ``compress`` is a ``.npy`` / ``.pt`` file of examples (n, *event_shape) in the run's
support (binary images, 8-bit levels, categories), or, for a text run (its config.json
holds a ``vocab``), a UTF-8 text file of the run's characters. ``decompress`` writes the
examples back, bit for bit, to a ``.npy`` or ``.pt`` OUT (its suffix picks), or the exact
text. Both need a model with per-dimension conditionals (``DiscreteAutoregressive``),
range-coded, or a latent-variable model of discrete x (a VAE), bits-back coded, and
the same run (and the same --best / --no-ema choice) on both sides. Wrong input raises
``ValueError`` with the fix, which ``dgm.cli.parser`` prints as one line and exits 2.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dgm.cli import common
from dgm.run_dir import Run

TENSOR_SUFFIXES = (".npy", ".pt")


def _flags(p: argparse.ArgumentParser, what_in: str, what_out: str) -> None:
    common.run_dir_arg(p)
    p.add_argument("input", type=Path, metavar="IN", help=what_in)
    p.add_argument("output", type=Path, metavar="OUT", help=what_out)
    p.add_argument(
        "--batch-size", type=int, default=None, help="examples per model call (default: 64)"
    )
    common.run_flags(p, device=False)  # coded on the CPU: both sides must compute alike


def add_parsers(sub: Any) -> dict[str, argparse.ArgumentParser]:
    """Add compress and decompress to the subparsers ``sub``; returns their parsers."""
    c = sub.add_parser(
        "compress",
        help="lossless compression with the model's conditionals (range coding)",
        allow_abbrev=False,
    )
    _flags(
        c,
        "a .npy / .pt file of examples in the run's support, or a UTF-8 text (text runs)",
        "the compressed file to write",
    )
    d = sub.add_parser(
        "decompress", help="restore a file written by dgm compress", allow_abbrev=False
    )
    _flags(d, "a file written by dgm compress", "the .npy / .pt (or text) file to write")
    return {"compress": c, "decompress": d}


# -- shared pieces ---------------------------------------------------------------------------


def _load(ns: argparse.Namespace) -> tuple[Run, Any]:
    """The run and its model on the CPU, refused unless it can code x alone."""
    run, model = common.open_run(ns)
    from dgm.tasks.compression import choose_coder

    choose_coder(model)
    cond = model.conditioning
    if cond.kind != "none" and not cond.optional:
        raise ValueError(
            f"the model of {ns.run_dir} is conditional ({cond.describe()}); the command line "
            "compresses x alone: use dgm.tasks.compression.compress(model, x, c) from Python"
        )
    return run, model


def _read_input(path: Path) -> bytes:
    if not path.is_file():
        raise ValueError(f"{path} does not exist: give the file to compress")
    return path.read_bytes()


def _read_tensor(path: Path) -> torch.Tensor:
    """The examples of a .npy or .pt file (a tensor, or a dict with one under "x")."""
    if path.suffix not in TENSOR_SUFFIXES:
        raise ValueError(
            f"{path}: give the examples as a .npy or .pt file (a text file needs a text run)"
        )
    if not path.is_file():
        raise ValueError(f"{path} does not exist: give the file to compress")
    try:
        if path.suffix == ".npy":
            return torch.from_numpy(np.load(path, allow_pickle=False))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # numpy's and torch's own reasons for an unreadable file
        raise ValueError(f"{path} could not be read as {path.suffix}: {e}") from e
    if isinstance(obj, dict) and isinstance(obj.get("x"), torch.Tensor):
        obj = obj["x"]
    if not isinstance(obj, torch.Tensor):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a tensor of examples")
    return obj


def _write(path: Path, write: Any) -> None:
    from dgm.io import atomic_write

    atomic_write(path, write)


def _bits(n: float) -> str:
    return f"{n:,.0f} bits ({n / 8:,.0f} bytes)"


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add .npy to the temporary name
        np.save(f, array)


# -- compress --------------------------------------------------------------------------------


def cmd_compress(ns: argparse.Namespace) -> int:
    from dgm.tasks import compression as cz

    run, model = _load(ns)
    bs = ns.batch_size or cz.BATCH_SIZE
    vocab = run.vocab
    if vocab is not None and ns.input.suffix not in TENSOR_SUFFIXES:
        from dgm.data.text import encode

        raw = _read_input(ns.input)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            where = f"{e.reason} at byte {e.start}"
            raise ValueError(f"{ns.input} is not UTF-8 text ({where})") from None
        start = time.perf_counter()
        blob = cz.compress_text(model, text, vocab, batch_size=bs)
        T = int(model.event_shape[0])  # the windows as coded, the padding included
        pad = (cz.END if cz.END in vocab else vocab[0]) * (-len(text) % T)
        x = encode(text + pad, vocab).view(-1, T)  # (n, T)
        dims, unit = len(text), "char"
    else:
        from dgm.model import DiscreteAutoregressive
        from dgm.tasks.compression import bits_back

        x = _read_tensor(ns.input)
        start = time.perf_counter()
        if isinstance(model, DiscreteAutoregressive):
            blob = cz.compress(model, x, batch_size=bs)
        else:  # a latent-variable model: bits-back coding
            blob = bits_back.compress(model, x)
        dims, unit = x.numel(), "dim"
    seconds = time.perf_counter() - start
    _write(ns.output, lambda p: p.write_bytes(blob))
    original = ns.input.stat().st_size
    torch.manual_seed(0)  # a bound (the ELBO) is stochastic: the same figure each time
    nll = cz.nll_bits(model, x) if len(x) else 0.0
    what = "−ELBO" if model.likelihood.value == "lower_bound" else "NLL"
    payload = cz.payload_bits(blob)
    per = (lambda b: b / dims) if dims else (lambda b: math.nan)
    print(
        f"{ns.input}: {original:,} bytes -> {ns.output}: {len(blob):,} bytes "
        f"({original / max(len(blob), 1):.2f}x, {seconds:.2f} s)"
    )
    print(
        f"payload {_bits(payload)}: {per(payload):.4f} bits/{unit}; model {what} "
        f"{_bits(nll)}: {per(nll):.4f} bits/{unit}; header {len(blob) - payload // 8} bytes"
    )
    return 0


# -- decompress ------------------------------------------------------------------------------


def cmd_decompress(ns: argparse.Namespace) -> int:
    from dgm.tasks import compression as cz

    run, model = _load(ns)
    blob = _read_input(ns.input)
    header = cz.read_header(blob)
    start = time.perf_counter()
    if header.get("kind") == "text":
        vocab = run.vocab
        if vocab is None:
            raise ValueError(f"{ns.input} holds text but {ns.run_dir} is not a text run")
        text = cz.decompress_text(model, blob, vocab, batch_size=ns.batch_size)
        data = text.encode("utf-8")
        _write(ns.output, lambda p: p.write_bytes(data))
        what = f"{len(text):,} characters ({len(data):,} bytes)"
    else:
        if ns.output.suffix not in TENSOR_SUFFIXES:
            raise ValueError(f"{ns.output}: name a .npy or .pt file for the examples")
        if header.get("kind") == "bits_back":
            from dgm.tasks.compression import bits_back

            x = bits_back.decompress(model, blob)
        else:
            x = cz.decompress(model, blob, batch_size=ns.batch_size)
        if ns.output.suffix == ".npy":
            _write(ns.output, lambda p: _save_npy(p, x.numpy()))
        else:
            _write(ns.output, lambda p: torch.save(x, p))
        what = f"{len(x):,} examples of shape {tuple(x.shape[1:])}, {x.dtype}"
    seconds = time.perf_counter() - start
    print(f"{ns.input}: {len(blob):,} bytes -> {ns.output}: {what} ({seconds:.2f} s)")
    return 0


COMMANDS = {"compress": cmd_compress, "decompress": cmd_decompress}
