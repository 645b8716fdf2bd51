"""Compressing and restoring files with a run's model, as ``dgm compress`` and ``dgm
decompress`` do: a ``.npy`` / ``.pt`` file of examples, or the UTF-8 text of a text run,
coded with the coder the model allows (range coding with a ``DiscreteAutoregressive``
model, bits-back coding with a VAE), and the options of both verbs."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dgm.config import option
from dgm.io import atomic_write
from dgm.model import DiscreteAutoregressive, GenerativeModel
from dgm.tasks.compression import bits_back, range_coding
from dgm.tasks.compression.coder import choose_coder
from dgm.tasks.compression.range_coding import BATCH_SIZE

TENSOR_SUFFIXES = (".npy", ".pt")


@dataclasses.dataclass
class CompressOptions:
    """The files of ``dgm compress`` (field comments are the command's help)."""

    # a .npy / .pt file of examples in the run's support, or a UTF-8 text (text runs)
    input: Path = option(flag="IN", positional=True)
    output: Path = option(flag="OUT", positional=True)  # the compressed file to write
    batch_size: int = BATCH_SIZE  # examples per model call


@dataclasses.dataclass
class DecompressOptions(CompressOptions):
    """The files of ``dgm decompress`` (field comments are the command's help)."""

    input: Path = option(flag="IN", positional=True)  # a file written by dgm compress
    # the .npy / .pt (or text) file to write
    output: Path = option(flag="OUT", positional=True)


@dataclasses.dataclass
class Compressed:
    """What ``compress_file`` wrote: the bytes, the examples as coded, and the units."""

    blob: bytes
    x: Tensor  # the examples coded, (n, *event_shape); a text's windows (n, T)
    dims: int  # the values coded: characters of a text, else x.numel()
    unit: str  # "char" or "dim"
    seconds: float  # coding time

    def lines(self, model: GenerativeModel, source: Path, target: Path) -> list[str]:
        """Sizes, ratio and bits per unit against the model's own NLL (or −ELBO)."""
        original = source.stat().st_size
        torch.manual_seed(0)  # a bound (the ELBO) is stochastic: the same figure each time
        nll = range_coding.nll_bits(model, self.x) if len(self.x) else 0.0
        what = "−ELBO" if model.likelihood.value == "lower_bound" else "NLL"
        payload = range_coding.payload_bits(self.blob)
        per = (lambda b: b / self.dims) if self.dims else (lambda b: math.nan)
        return [
            f"{source}: {original:,} bytes -> {target}: {len(self.blob):,} bytes "
            f"({original / max(len(self.blob), 1):.2f}x, {self.seconds:.2f} s)",
            f"payload {_bits(payload)}: {per(payload):.4f} bits/{self.unit}; model {what} "
            f"{_bits(nll)}: {per(nll):.4f} bits/{self.unit}; header "
            f"{len(self.blob) - payload // 8} bytes",
        ]


def check_codable(model: GenerativeModel, where: str) -> None:
    """Refuse a model that no coder takes, or one that needs a condition c (the files
    hold x alone) for the run in ``where``."""
    choose_coder(model)
    cond = model.conditioning
    if cond.kind != "none" and not cond.optional:
        raise ValueError(
            f"the model of {where} is conditional ({cond.describe()}); the command line "
            "compresses x alone: use dgm.tasks.compression.compress(model, x, c) from Python"
        )


def read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise ValueError(f"{path} does not exist: give the file to compress")
    return path.read_bytes()


def read_examples(path: Path) -> Tensor:
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


def compress_file(
    model: GenerativeModel, source: Path, target: Path, vocab: str | None, batch_size: int
) -> Compressed:
    """Compress file ``source`` into ``target``: the text of a text run (``vocab``) unless
    ``source`` is a .npy / .pt file, else its examples, by range coding or bits-back."""
    if vocab is not None and source.suffix not in TENSOR_SUFFIXES:
        from dgm.data.text import encode

        try:
            text = read_bytes(source).decode("utf-8")
        except UnicodeDecodeError as e:
            where = f"{e.reason} at byte {e.start}"
            raise ValueError(f"{source} is not UTF-8 text ({where})") from None
        start = time.perf_counter()
        blob = range_coding.compress_text(model, text, vocab, batch_size=batch_size)
        T = int(model.event_shape[0])  # the windows as coded, the padding included
        end = range_coding.END
        pad = (end if end in vocab else vocab[0]) * (-len(text) % T)
        x = encode(text + pad, vocab).view(-1, T)  # (n, T)
        dims, unit = len(text), "char"
    else:
        x = read_examples(source)
        start = time.perf_counter()
        if isinstance(model, DiscreteAutoregressive):
            blob = range_coding.compress(model, x, batch_size=batch_size)
        else:  # a latent-variable model: bits-back coding
            blob = bits_back.compress(model, x)
        dims, unit = x.numel(), "dim"
    seconds = time.perf_counter() - start
    atomic_write(target, lambda p: p.write_bytes(blob))
    return Compressed(blob, x, dims, unit, seconds)


def decompress_file(
    model: GenerativeModel,
    source: Path,
    target: Path,
    vocab: str | None,
    batch_size: int,
    where: str = "the run",
) -> str:
    """Restore file ``source`` (written by ``compress_file``) into ``target`` (text, or
    .npy / .pt examples as its suffix says) with the model of ``where``; returns what was
    written, in words."""
    blob = read_bytes(source)
    header = range_coding.read_header(blob)
    if header.get("kind") == "text":
        if vocab is None:
            raise ValueError(f"{source} holds text but {where} is not a text run")
        text = range_coding.decompress_text(model, blob, vocab, batch_size=batch_size)
        data = text.encode("utf-8")
        atomic_write(target, lambda p: p.write_bytes(data))
        return f"{len(text):,} characters ({len(data):,} bytes)"
    if target.suffix not in TENSOR_SUFFIXES:
        raise ValueError(f"{target}: name a .npy or .pt file for the examples")
    if header.get("kind") == "bits_back":
        x = bits_back.decompress(model, blob)
    else:
        x = range_coding.decompress(model, blob, batch_size=batch_size)
    if target.suffix == ".npy":
        atomic_write(target, lambda p: _save_npy(p, x.numpy()))
    else:
        atomic_write(target, lambda p: torch.save(x, p))
    return f"{len(x):,} examples of shape {tuple(x.shape[1:])}, {x.dtype}"


def _bits(n: float) -> str:
    return f"{n:,.0f} bits ({n / 8:,.0f} bytes)"


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add .npy to the temporary name
        np.save(f, array)


__all__ = [
    "TENSOR_SUFFIXES",
    "CompressOptions",
    "Compressed",
    "DecompressOptions",
    "check_codable",
    "compress_file",
    "decompress_file",
    "read_bytes",
    "read_examples",
]
