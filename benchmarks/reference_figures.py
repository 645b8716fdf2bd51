"""The test figures of the reference runs (``benchmarks.reference``): a run's best validation
weights scored on the test split, each beside the file coders of the same test data where
it has a counterpart (whole PNG and lzma files of the same 8-bit images; gzip, bz2 and lzma
of the same text), and text scored with its context as well as window by window."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import first_examples

QUICK_TEST = 200  # --quick: the first this many test examples
BOUND_SEED = 0  # the t's and noise of the DDPM's bound estimate


# the key of the file coders' sizes of the same test data, by kind of test figure (every
# bits/dim run is of 8-bit images: whole PNG and lzma files of them are its counterpart)
FILE_CODERS = {"per_char": "file_baselines_bits_per_char",
               "bits_per_dim": "file_baselines_bits_per_dim"}  # fmt: skip


def figure_on_test(kind: str, run: Path, *, quick: bool) -> dict[str, Any]:
    """The test figure of kind ``kind`` (``Reference.test``) of a run's best validation
    weights (its best so far while in progress)."""
    from dgm.evaluate.likelihood import evaluate
    from dgm.run_dir import Run

    opened = Run.open(run)
    model = opened.model(best=True, device="cpu")
    test = opened.data("test")
    if quick:
        test = first_examples(test, QUICK_TEST)
    if kind == "ddpm":
        return ddpm_figure(model, test, quick=quick)
    iw = 100 if kind == "iwae" else None
    batch = 50 if iw else 500
    r = evaluate(model, test, iw_samples=iw, batch_size=batch)
    out = {"bound": r["bound"], "nll": r["nll"], "nll_se": r.get("nll_se"), "test_n": r["n"]}
    if kind == "bits_per_dim":
        from benchmarks.ddpm import file_baselines

        out["bits_per_dim"], out["bits_per_dim_se"] = r["bits_per_dim"], r["bits_per_dim_se"]
        out["file_baselines_bits_per_dim"] = file_baselines(test.x)  # whole files, same images
    if kind == "per_char":
        out["nats_per_char"] = r["nats_per_token"]
        out["file_baselines_bits_per_char"] = text_file_baselines(test)
        if running_text(test):  # the windows were cut from one text: score it with context
            stride = test.x.shape[1] // 2
            out["nats_per_char_in_context"] = nats_per_char_in_context(model, test, stride)
            out["context_stride"] = stride
    return out


def running_text(data: Any) -> bool:
    """Whether text data are windows cut from one running text (no end token to pad)."""
    end = data.info.end_token
    return end is None or end < 0


@torch.no_grad()
def nats_per_char_in_context(model: Any, data: Any, stride: int, batch: int = 256) -> float:
    """Nats per character of the running text the test windows (N, T) were cut from, each
    character scored once with up to T − 1 characters of context: windows of T tokens
    start every ``stride`` tokens (and one more ends at the last token), and each scores
    only the tokens no earlier window scored, so every character but the first T − stride
    has at least T − stride of context (Hugging Face's strided perplexity). ``stride`` = T
    scores each window on its own, as the per-window figure does."""
    tokens = data.x.reshape(-1)  # (N·T,): the text, the windows joined back
    n, T = len(tokens), data.x.shape[1]
    if not 1 <= stride <= T:
        raise ValueError(f"stride {stride} must be in 1..{T} (the window length)")
    starts = list(range(0, n - T + 1, stride))
    if starts[-1] != n - T:
        starts.append(n - T)  # the tail the last stride left
    total, scored = 0.0, 0  # nats so far; tokens [0, scored) are scored
    for i in range(0, len(starts), batch):
        chunk = starts[i : i + batch]
        windows = torch.stack([tokens[s : s + T] for s in chunk])  # (B, T)
        logits = model.conditional_logits(windows)  # (B, T, V)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), windows, reduction="none")
        for row, s in zip(nll, chunk, strict=True):  # row (T,): nats of each position
            total += float(row[max(scored - s, 0) :].sum())
            scored = s + T
    return total / scored


def text_file_baselines(data: Any) -> dict[str, float]:
    """gzip, bz2 and lzma (strongest settings, headers included) of the test split as one
    UTF-8 file, in bits per character of the characters the model is scored on: padded
    words one per line (the newline is the end token the model's NLL counts), running-text
    windows joined back into the text they were cut from. The coders read the whole text
    with all its earlier context; the model reads each window from its start."""
    from benchmarks.compression import general_purpose

    end = data.info.end_token
    rows = []
    for row in data.x.tolist():  # (N, T) tokens
        if end is not None and end >= 0 and end in row:
            row = row[: row.index(end) + 1]
        rows.append("".join(data.info.vocab[t] for t in row))
    text = "".join(rows)
    coded = general_purpose(text.encode("utf-8"), len(text))
    return {name: c["bits_per_dim"] for name, c in coded.items()}


def ddpm_figure(model: Any, test: Any, *, quick: bool) -> dict[str, Any]:
    """The DDPM's bound on the first 500 test images, beside gzip, lzma and PNG on the same
    images (benchmarks.ddpm's estimator: 50 sampled t per image)."""
    from benchmarks.ddpm import _bound, file_baselines

    n = 50 if quick else 500
    x = test.x[:n]
    torch.manual_seed(BOUND_SEED)
    b = _bound(model, x, 4 if quick else 50, 100)
    per_dim = model.num_dims * math.log(2)
    return {
        "bound": "ddpm",
        "test_n": len(x),  # the images scored (fewer than n in a small test split)
        "bits_per_dim": b["nll"] / per_dim,
        "bits_per_dim_se": b["se"] / per_dim,
        "file_baselines_bits_per_dim": file_baselines(x),
    }
