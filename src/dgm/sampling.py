"""Samples into a file, whatever their number: the output's suffix picks what is written,
and the draws are made in batches and streamed, so N samples never need N-sized
working memory beyond what the file itself holds.

- a picture (.png, .jpg, ...): a grid of images or a scatter of 2-D points, for at most
  ``MAX_PICTURE`` samples (a grid of more is no picture anyone can read);
- decoded text (.txt), one sequence per line, for a text run;
- the raw samples, any model: ``.npy`` (written batch by batch into a memory-mapped file:
  the disk holds them, not memory) or ``.pt`` (one tensor, so it is built in memory and
  refused when it would not fit, naming .npy).

``output_kind`` checks the suffix before anything is drawn or written.

Example:
    >>> import tempfile, os, numpy as np, dgm
    >>> model = dgm.create("gmm", (3,), num_components=2)
    >>> path = os.path.join(tempfile.mkdtemp(), "draws.npy")
    >>> kind = output_kind(path, model.event_shape, text=False, n=10)
    >>> write_array(sample_batches(model, 10, None, 4), path, 10)
    (10, 3)
    >>> np.load(path).shape
    (10, 3)
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dgm.capabilities import modality
from dgm.config import option
from dgm.io import atomic_write
from dgm.model import sample_batches

ARRAY_SUFFIXES = (".npy", ".pt")
MAX_PICTURE = 4096  # samples in one picture: a 64 x 64 grid of images, or a scatter
MAX_POINTS = 100_000  # 2-D points in one scatter plot


@dataclasses.dataclass
class SampleOptions:
    """What ``dgm sample`` draws and where it writes them (field comments are the help);
    a model's own sampling options come from its ``sample_options`` dataclass."""

    # output file, its suffix picks what it holds: a picture (.png, .jpg, .webp, ...) for
    # images (a grid) and 2-D points (a scatter); .txt for text runs (one decoded sequence
    # per line); .npy (streamed) or .pt for the samples themselves, any run. Missing
    # folders are created
    out: Path = option(metavar="FILE")
    n: int = option(64, flag="-n")  # number of samples
    cls: int | None = option(None, flag="--class", metavar="C")  # class label (conditional models)
    # text the samples are drawn for, for a model conditioned on a text (trained on
    # fashion_mnist_text): it becomes c, in the run's characters
    caption: str | None = option(None, metavar="TEXT")
    seed: int = 0  # seeds the draws
    # samples drawn at a time; -n beyond it is drawn in batches and streamed to a .npy or
    # .txt file
    batch_size: int = option(1024, metavar="B")
    # write a .pt even when the samples are estimated not to fit in memory
    force: bool = option(False, action="store_true")


def output_kind(
    path: str | Path, event_shape: tuple[int, ...] | torch.Size, *, text: bool, n: int
) -> str:
    """What ``path`` will hold: "npy", "pt", "text" or "picture"; a suffix that cannot hold
    these samples is refused naming the ones that can (ValueError)."""
    from dgm.report.plots import has_picture, picture_format

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        return suffix[1:]
    shape = tuple(event_shape)
    if text:
        if suffix == ".txt":
            return "text"
        raise ValueError(
            f"--out {path}: samples of a text run are written as decoded text: name a .txt "
            "file (or .npy / .pt for the token ids)"
        )
    if not has_picture(shape):
        raise ValueError(
            f"--out {path}: samples of shape {shape} have no picture: name a .npy or .pt "
            "file for the samples themselves"
        )
    limit = MAX_POINTS if modality(shape) == "points" else MAX_PICTURE
    if n > limit:
        raise ValueError(
            f"-n {n} is too many samples for one picture (at most {limit}): write them to "
            f"--out FILE.npy (streamed to disk) or FILE.pt"
        )
    try:
        picture_format(path)
    except ValueError as e:
        raise ValueError(f"{e}; or .npy / .pt for the samples themselves") from None
    return "picture"


def array_bytes(n: int, event_shape: tuple[int, ...] | torch.Size, itemsize: int = 4) -> int:
    """Bytes of n samples of ``event_shape`` at ``itemsize`` bytes per value."""
    return n * int(np.prod(tuple(event_shape), dtype=np.int64)) * itemsize


def write_array(batches: Iterator[Tensor], path: str | Path, n: int) -> tuple[int, ...]:
    """Write n samples arriving in ``batches`` to ``path`` (.npy streamed through a
    memory map; .pt as one tensor), atomically; returns the shape written."""
    path = Path(path)
    first = next(batches)
    shape = (n, *first.shape[1:])
    if path.suffix.lower() == ".npy":
        dtype = first.numpy().dtype

        def write_npy(tmp: Any) -> None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            _fill(lambda i, b: out.__setitem__(slice(i, i + len(b)), b.numpy()), first, batches)
            out.flush()
            del out

        atomic_write(path, write_npy)
        return shape
    whole = torch.empty(shape, dtype=first.dtype)
    _fill(lambda i, b: whole.__setitem__(slice(i, i + len(b)), b), first, batches)
    atomic_write(path, lambda tmp: torch.save(whole, tmp))
    return shape


def _fill(put: Callable[[int, Tensor], None], first: Tensor, rest: Iterator[Tensor]) -> None:
    """``put(offset, batch)`` for every batch, ``first`` then ``rest``."""
    offset = 0
    for batch in itertools.chain([first], rest):
        put(offset, batch)
        offset += len(batch)


def write_lines(lines: Iterator[str], path: str | Path) -> int:
    """Write ``lines`` (without newlines) one per line to ``path`` atomically, as they
    come; returns how many."""
    count = 0

    def write(tmp: Any) -> None:
        nonlocal count
        with open(tmp, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(f"{line}\n")
                count += 1

    atomic_write(path, write)
    return count


__all__ = [
    "ARRAY_SUFFIXES",
    "MAX_PICTURE",
    "MAX_POINTS",
    "Plan",
    "SampleOptions",
    "array_bytes",
    "output_kind",
    "plan",
    "sample_file",
    "write_array",
    "write_lines",
]


def sample_conditions(
    model: Any,
    n: int,
    *,
    label: int | None = None,
    caption: str | None = None,
    vocab: str | None = None,
    data: Any = None,
) -> Tensor | None:
    """The c of ``n`` samples: class ``label`` for each (a class-conditional model), the
    tokens of text ``caption`` in the run's ``vocab`` (a model conditioned on a text), else
    a grid: one row per class, or the first contexts of ``data`` (``grid_conditions``).
    A label or caption the model cannot take is a ValueError naming what it takes."""
    from dgm.data.dataset import grid_conditions

    cond = model.conditioning
    if label is not None:
        if cond.kind != "classes":
            raise ValueError(
                "--class needs a class-conditional model; this run was trained without "
                "--num-classes"
            )
        return torch.full((n,), label, dtype=torch.long, device=model.device)
    if caption is not None:
        if not (cond.context_vocab and vocab):
            takes = "no c" if cond.kind == "none" else f"c = {cond.describe()}"
            raise ValueError(
                f"--caption needs a model conditioned on a text; this run takes {takes} "
                "(train one with --data fashion_mnist_text)"
            )
        from dgm.data.text import prompt_context

        c = prompt_context(caption, vocab, cond.context_shape).to(model.device)
        return c.expand(n, *c.shape)  # (n, T): one c per sample, a view, sliced per batch
    return grid_conditions(model, data, n)


def write_text(
    batches: Iterator[Tensor], path: str | Path, vocab: str, data: Any = None
) -> tuple[int, str | None]:
    """Decode token samples with ``vocab`` and stream them to ``path``, one per line;
    returns (sequences written, the caption-accuracy line when ``data`` are the captioned
    test images the samples were drawn for, else None)."""
    from dgm.data.text import decode
    from dgm.evaluate.caption_accuracy import caption_accuracy_line

    texts: list[str] = []  # kept only to score captions (a context-conditional run)

    def lines() -> Iterator[str]:
        for x in batches:
            decoded = decode(x, vocab)
            if data is not None:
                texts.extend(decoded)
            yield from decoded

    count = write_lines(lines(), path)
    return count, caption_accuracy_line(data, texts) if data is not None else None


@dataclasses.dataclass
class Plan:
    """What ``dgm sample`` will draw, settled before any draw: the output kind
    (``output_kind``), the c of the samples, the captioned test data of a text-conditioned
    run (scored by ``write_text``) and the model's own sampling options, checked."""

    kind: str
    c: Tensor | None
    data: Any
    options: dict[str, Any]


def plan(run: Any, model: Any, options: SampleOptions, sample_options: dict[str, Any]) -> Plan:
    """Check ``options`` against the run (a ``dgm.run_dir.Run``) and its model before
    anything is drawn: the output's kind, a .pt that would not fit in memory (unless
    ``force``), the label or caption, and a ``--prompt`` text (encoded in the run's
    characters); the model's ``sample_options`` are applied to it."""
    from dgm.capabilities import model_modality
    from dgm.train.memory import available_bytes, gib

    vocab = run.vocab  # a text run: tokens decode to characters
    text = vocab is not None and model_modality(model) == "tokens"
    kind = output_kind(options.out, model.event_shape, text=text, n=options.n)
    if kind == "pt" and not options.force:  # one tensor in memory: refuse what cannot fit
        need = array_bytes(options.n, model.event_shape, 8 if model.integer_data else 4)
        free = available_bytes("cpu")
        if free is not None and need > free:
            raise ValueError(
                f"-n {options.n} samples need {gib(need)} in one tensor for "
                f"{options.out.name}, more than the {gib(free)} available: write --out "
                "FILE.npy (streamed to disk), or pass --force"
            )
    model.sample_settings(sample_options)
    grid = options.cls is None and options.caption is None
    data = run.data("test") if grid and model.conditioning.kind == "context" else None
    c = sample_conditions(
        model, options.n, label=options.cls, caption=options.caption, vocab=vocab, data=data
    )
    sample_options = dict(sample_options)
    if isinstance(sample_options.get("prompt"), str):  # --prompt text -> the run's token ids
        from dgm.data.text import encode_prompt

        if vocab is None:
            raise ValueError(f"--prompt needs a text run; {run.path} has no vocabulary")
        sample_options["prompt"] = encode_prompt(sample_options["prompt"], vocab)
    return Plan(kind, c, data, sample_options)


def sample_file(run: Any, model: Any, options: SampleOptions, planned: Plan) -> list[str]:
    """Draw ``options.n`` samples as ``planned`` into ``options.out``: an array (.npy
    streamed, .pt), text lines (with the caption accuracy of a text-conditioned run), or a
    picture (2-D points over the training data and the model's density). Returns the
    lines to print."""
    from dgm.capabilities import model_modality
    from dgm.data.dataset import take
    from dgm.report.plots import save_samples

    out, n = options.out, options.n
    out.parent.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator(model.device).manual_seed(options.seed)
    with torch.no_grad():
        batches = sample_batches(model, n, planned.c, options.batch_size, gen, **planned.options)
        if planned.kind in ("npy", "pt"):
            shape = write_array(batches, out, n)
            return [f"wrote {out} ({n} samples, array of shape {shape})"]
        if planned.kind == "text":
            count, score = write_text(batches, out, run.vocab, planned.data)
            lines = [f"wrote {out} ({count} sequences, one per line)"]
            return lines + ([score] if score is not None else [])
        x = torch.cat(list(batches))
    extra: dict[str, Any] = {}
    if model_modality(model) == "points":  # drawn over the training data and the density
        extra = {"model": model}
        try:
            train_data = run.data("train")
            extra["data"] = take(train_data, torch.arange(min(2000, len(train_data))), "cpu").x
        except (KeyError, TypeError, ValueError, OSError):  # data gone: the samples alone
            pass
    save_samples(x, out, value_range=run.value_range, **extra)
    return [f"wrote {out}"]
