"""Lossless compression with model conditionals (``dgm.tasks.compression``) against gzip,
bz2, lzma and PNG: whole files of every coder on the same test data, with encode and
decode throughput.

Four data sets (``--set``), each coded by trained compressible models and by the
general-purpose coders:

- **binary**: binarized Fashion-MNIST (static binarization, the first 1,000 test images):
  fvsbn, made (one mask, 500 hidden) and a vae (latent 10, 300-300 MLPs: CS236's) by
  bits-back coding, whose "model NLL" is its −ELBO; the baselines code the images packed
  8 pixels per byte (``np.packbits``: 1 bit/dim raw), gzip / bz2 / lzma at their strongest
  settings over the whole set as one file, PNG (Pillow, 1-bit, ``optimize``) as one file
  per image.
- **byte**: 8-bit Fashion-MNIST (levels 0..255, the first 1,000 test images): a gated
  pixelcnn (16 channels, 5 layers) with PixelCNN++'s discretized logistic mixture head
  (5 components), its validation NLL recorded every 100 steps on 1,200 held-out train
  images; the baselines code one byte per pixel, PNG as 8-bit greyscale.
- **text**: the word list of the pip package ``english-words`` (``web2``, Webster's
  Second International, public domain; 235,970 words, written sorted one per line to a
  file and loaded as dgm's ``words`` data set: the 229,166 words shorter than 16
  characters, one per 16-token window padded with the end token "\\n", split by dgm's
  seeded permutation, each split kept in the list's alphabetical order), the first
  12,000 words of the test split (122 kB of text): char_rnn (LSTM) and gpt code the
  padded windows, the baselines the same words as one text file, one word per line
  ("word\\n"), in that alphabetical order and again in a seeded shuffled order (sorted,
  neighbours share prefixes that lzma codes by reference; a model of independent words
  cannot use them); bits per character count each word's letters and its newline.
- **prose**: running text, the topics of the Python reference as CPython ships them
  (``pydoc_data.topics``, 465 k characters, no extra package), loaded as dgm's ``text``
  data set in windows of 128 characters: the last 25 % is the test split (116 kB), coded
  by char_rnn (LSTM) and gpt window by window and by the baselines as one file.

Every figure is a whole file: dgm's files with their header (the table notes list its
fields), gzip / bz2 / lzma with their container (headers, CRCs), PNG with its chunks.
Model rows give the model's own NLL on the same data in bits per dimension (the ideal
code length) and how far the file is above it; wherever a model's NLL is below an lzma
file of the same data, its file must be too, or the benchmark exits with an error. Every
file is encoded in full; decoding is checked bit for bit on the whole file where it fits
the budget (the vae's bits-back files), and otherwise on a file of the first examples
(``Row.decode_n``), whose time gives the decode throughput: decoding makes D model calls
per batch of examples (784 for an image, 16 for a word window, 128 for a window of
running text). Training uses dgm's trainer on one torch thread (AdamW, grad clip 1, a
cosine schedule; 400 or 500 steps per model, the CPU seconds recorded: brief next to
the published models, on a CPU shared with other work).

    python -m benchmarks.compression [--quick] [--set binary|byte|text|prose]

``--set`` reruns one data set into the existing results file (the others kept).
"""

from __future__ import annotations

import argparse
import bz2
import dataclasses
import gzip
import importlib.util
import io
import json
import lzma
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import (
    busy_warning,
    fashion_mnist_root,
    log,
    result_path,
    runs_dir,
    slug,
    train_briefly,
    write_result,
)
from dgm.data import DataConfig
from dgm.data.text import decode
from dgm.model import DiscreteAutoregressive
from dgm.tasks.compression import bits_back as bb
from dgm.tasks.compression import range_coding as cz

NAME = "compression"
SEED = 0
BATCH, LR = 64, 1e-3
CODE_BATCH = 128  # examples per model call while coding
N_IMAGES = 1000  # test images coded per image set: a 40-byte header is 0.0004 bits/dim
N_WORDS = 12_000  # test words coded: about 120 kB of text
WORDS_SOURCE = "web2"  # english-words' list: Webster's Second (1934), public domain
PROSE = {  # running text: the Python reference's topics as the standard library ships them
    "block_size": 128,  # characters per window: each window is coded on its own
    "valid_fraction": 0.05,
    "test_fraction": 0.25,  # 25 % of 465 k characters: a 116 kB test file
}


@dataclasses.dataclass(frozen=True)
class Row:
    """One model row: registry name, model config, training steps and what differs from
    the benchmark's defaults."""

    name: str
    config: dict[str, Any]
    steps: int
    decode_n: int | None = None  # examples whose own file is decoded; None: the whole file
    train: dict[str, Any] = dataclasses.field(default_factory=dict)  # TrainConfig overrides
    quick: dict[str, Any] = dataclasses.field(default_factory=dict)  # smaller net in --quick


BINARY = {  # (nade, 500 hidden, and a gated pixelcnn, 16 channels x 5 layers, were rows too:
    # their training and D-call decoding did not fit the budget on a CPU shared 8 ways)
    "fvsbn": Row("fvsbn", {}, 500, decode_n=50),
    "made": Row("made", {"hidden_sizes": (500,)}, 500, 50, quick={"hidden_sizes": (32,)}),
    "vae (bits-back)": Row(
        "vae", {"latent_dim": 10, "hidden_sizes": (300, 300)}, 500, quick={"hidden_sizes": (32,)}
    ),
}
BYTE = {  # a discretized logistic mixture head (PixelCNN++'s): 15 numbers per pixel instead
    # of 256 logits, and neighbouring levels share mass from the first step, so it learns
    # in hundreds of steps what the 256-way softmax needs thousands for (main's categorical
    # row: 4.405 bits/dim after 150 steps)
    "pixelcnn (logistic mixture)": Row(
        "pixelcnn",
        {"head": "logistic_mixture", "num_mixtures": 5, "hidden_channels": 16, "num_layers": 5},
        400,
        decode_n=1,  # 784 model calls per image
        train={"lr": 2e-3, "eval_every": 100},
        quick={"hidden_channels": 8, "num_layers": 2},
    ),
}
TEXT = {  # 16 model calls per 128 words: 12,000 words are ~1,500 calls
    "char_rnn (lstm)": Row("char_rnn", {"cell": "lstm"}, 500, 1000, quick={"hidden_size": 32}),
    "gpt": Row("gpt", {}, 500, 1000, quick={"n_layer": 1, "n_embd": 32, "n_head": 2}),
}
RUNNING = {  # 128 model calls per batch of windows
    "char_rnn (lstm)": Row(
        "char_rnn",
        {"cell": "lstm"},
        500,
        decode_n=16,
        train={"batch_size": 32, "eval_every": 100},
        quick={"hidden_size": 32},
    ),
    "gpt": Row(
        "gpt",
        {},
        500,
        decode_n=16,
        train={"batch_size": 32, "eval_every": 100},
        quick={"n_layer": 1, "n_embd": 32, "n_head": 2},
    ),
}
QUICK_N = {"binary": 40, "byte": 4, "text": 300, "prose": 8}
QUICK_STEPS = 20


# -- baselines ---------------------------------------------------------------------------------


def general_purpose(raw: bytes, dims: int) -> dict[str, dict[str, float]]:
    """gzip, bz2 and lzma (strongest settings) of ``raw``: bits per dimension and the
    encode / decode throughput in dimensions per second."""
    coders = {
        "gzip": (lambda b: gzip.compress(b, 9, mtime=0), gzip.decompress),
        "bz2": (lambda b: bz2.compress(b, 9), bz2.decompress),
        "lzma": (lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
    }
    out = {}
    for name, (enc, dec) in coders.items():
        t0 = time.perf_counter()
        blob = enc(raw)
        t1 = time.perf_counter()
        assert dec(blob) == raw
        t2 = time.perf_counter()
        out[name] = {
            "bytes": len(blob),
            "bits_per_dim": 8 * len(blob) / dims,
            "encode_dims_per_s": dims / max(t1 - t0, 1e-9),
            "decode_dims_per_s": dims / max(t2 - t1, 1e-9),
        }
    return out


def png(images: np.ndarray, mode: str) -> dict[str, float]:
    """Every image (n, 1, H, W) as its own PNG (Pillow, ``optimize``), headers included."""
    from PIL import Image

    dims = images.size
    t0 = time.perf_counter()
    blobs = []
    for img in images[:, 0]:
        buf = io.BytesIO()
        pic = Image.fromarray(img.astype(np.uint8) * (255 if mode == "1" else 1)).convert(mode)
        pic.save(buf, format="PNG", optimize=True)
        blobs.append(buf.getvalue())
    t1 = time.perf_counter()
    for blob, img in zip(blobs, images[:, 0], strict=True):
        back = np.asarray(Image.open(io.BytesIO(blob)).convert("L"))
        assert np.array_equal(back, img.astype(np.uint8) * (255 if mode == "1" else 1))
    t2 = time.perf_counter()
    total = sum(map(len, blobs))
    return {
        "bytes": total,
        "bits_per_dim": 8 * total / dims,
        "encode_dims_per_s": dims / (t1 - t0),
        "decode_dims_per_s": dims / (t2 - t1),
    }


# -- models ------------------------------------------------------------------------------------


def _train(label: str, row: Row, data: DataConfig, quick: bool) -> tuple[Any, float, Path]:
    """The row's model trained on ``data``: (model, wall seconds, run directory)."""
    run_dir = runs_dir(NAME, quick) / data.name / slug(label)
    steps = QUICK_STEPS if quick else row.steps
    train = {"batch_size": BATCH, "lr": LR, **row.train}
    batch_size, lr = train.pop("batch_size"), train.pop("lr")
    if quick:
        train.pop("eval_every", None)
    model, _, wall = train_briefly(
        row.name,
        data,
        run_dir,
        steps,
        batch_size=batch_size,
        lr=lr,
        seed=SEED,
        config={"grad_clip": 1.0, "warmup_steps": min(100, steps // 10), **train},
        **{**row.config, **(row.quick if quick else {})},
    )
    return model, wall, run_dir


def valid_curve(run_dir: Path) -> list[dict[str, float]]:
    """The validation records of a run's metrics.jsonl: step and the valid/ figures."""
    from dgm.run_dir import METRICS, read_metrics

    return [
        {"step": r["step"]} | {k: v for k, v in r.items() if k.startswith("valid/")}
        for r in read_metrics(run_dir / METRICS)
        if any(k.startswith("valid/") for k in r)
    ]


def _code(model: Any, x: torch.Tensor) -> tuple[bytes, float, bool]:
    """(file, encode seconds, bits-back?) of x coded with the model."""
    autoregressive = isinstance(model, DiscreteAutoregressive)
    t0 = time.perf_counter()
    blob = cz.compress(model, x, batch_size=CODE_BATCH) if autoregressive else bb.compress(model, x)
    return blob, time.perf_counter() - t0, not autoregressive


def _decode_check(model: Any, blob: bytes, x: torch.Tensor, bits_back: bool) -> float:
    """Seconds to decode ``blob``; exits if it does not give back x exactly."""
    t0 = time.perf_counter()
    back = (
        bb.decompress(model, blob)
        if bits_back
        else cz.decompress(model, blob, batch_size=CODE_BATCH)
    )
    seconds = time.perf_counter() - t0
    if not torch.equal(back, x):
        raise SystemExit("decoding did not give back the input: a bug in dgm.tasks.compression")
    return seconds


def model_row(model: Any, x: torch.Tensor, dims: int, decode_n: int | None) -> dict[str, Any]:
    """Code x with the model: whole-file and payload bits per dimension (``dims`` counts
    what a dimension is: pixels, or characters of text), the header's bytes, the model's
    NLL and the file's overhead over it, throughput. The file of all x is decoded and
    checked when ``decode_n`` is None, else a file of its first ``decode_n`` examples."""
    blob, encode_s, bits_back = _code(model, x)
    if decode_n is None:
        decode_s, decoded = _decode_check(model, blob, x, bits_back), len(x)
    else:
        decoded = min(decode_n, len(x))
        part, _, _ = _code(model, x[:decoded])
        decode_s = _decode_check(model, part, x[:decoded], bits_back)
    torch.manual_seed(SEED)  # the VAE's bound is stochastic
    nll = cz.nll_bits(model, x)
    payload = cz.payload_bits(blob)
    per_example = dims / len(x)
    return {
        "bytes": len(blob),
        "header_bytes": cz.read_header(blob)["header_bytes"],
        "payload_bits": payload,
        "nll_bits": nll,
        "file_bits_per_dim": 8 * len(blob) / dims,
        "payload_bits_per_dim": payload / dims,
        "nll_bits_per_dim": nll / dims,
        "file_overhead_vs_nll": 8 * len(blob) / nll - 1,
        "payload_overhead_vs_nll": payload / nll - 1,
        "encode_s": encode_s,
        "decode_s": decode_s,
        "decoded_n": decoded,
        "encode_dims_per_s": dims / encode_s,
        "decode_dims_per_s": decoded * per_example / decode_s,
    }


def _model_rows(
    out: dict[str, Any],
    models: dict[str, Row],
    data: DataConfig,
    x: torch.Tensor,
    dims: int,
    quick: bool,
) -> None:
    for label, spec in models.items():
        cpu = time.process_time()  # one torch thread: the CPU seconds the training costs
        model, wall, run_dir = _train(label, spec, data, quick)
        cpu = time.process_time() - cpu
        row = model_row(model, x, dims, None if quick else spec.decode_n)
        row |= {
            "registry_name": spec.name,
            "config": {**spec.config, **(spec.quick if quick else {})},
            "steps": QUICK_STEPS if quick else spec.steps,
            "train": spec.train,
            "train_wall_s": wall,
            "train_cpu_s": cpu,
            "valid_curve": valid_curve(run_dir),
            "run_dir": str(run_dir),
        }
        out["models"][label] = row
        log(
            f"  {label} on {out['data']}: file {row['file_bits_per_dim']:.4f} bits/dim "
            f"(NLL {row['nll_bits_per_dim']:.4f}, +{100 * row['file_overhead_vs_nll']:.2f} %, "
            f"header {row['header_bytes']} B), encode {row['encode_dims_per_s']:.0f} dims/s, "
            f"decode {row['decode_dims_per_s']:.0f} dims/s on {row['decoded_n']}"
        )
    out["lzma_check"] = lzma_check(out)
    for c in out["lzma_check"]:
        log(
            f"  {c['model']} vs {c['baseline']} ({c['baseline_bits_per_dim']:.4f}): NLL "
            f"{c['nll_bits_per_dim']:.4f}, file {c['file_bits_per_dim']:.4f}"
            + ("" if c["holds"] else "  <- the file loses where the NLL wins")
        )


def lzma_check(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Each model of the set against each lzma file of the set: where the model's NLL is
    below lzma's file, the model's file must be too (``holds``)."""
    out = []
    for label, r in s["models"].items():
        for base, b in s["baselines"].items():
            if not base.startswith("lzma"):
                continue
            nll_wins = r["nll_bits_per_dim"] < b["bits_per_dim"]
            file_wins = r["file_bits_per_dim"] < b["bits_per_dim"]
            out.append(
                {
                    "model": label,
                    "baseline": base,
                    "baseline_bits_per_dim": b["bits_per_dim"],
                    "nll_bits_per_dim": r["nll_bits_per_dim"],
                    "file_bits_per_dim": r["file_bits_per_dim"],
                    "nll_wins": nll_wins,
                    "file_wins": file_wins,
                    "holds": file_wins or not nll_wins,
                }
            )
    return out


def image_set(title: str, data: DataConfig, models: dict, n: int, quick: bool) -> dict[str, Any]:
    test = data.load("test")
    x = test.x[:n]
    binary = "binarize" in data.options
    arr = x.numpy()
    raw = np.packbits(arr.astype(np.uint8).reshape(-1)).tobytes() if binary else arr.tobytes()
    dims = x.numel()
    out: dict[str, Any] = {"data": title, "n": len(x), "dims": dims, "models": {}}
    out["raw_bits_per_dim"] = 8 * len(raw) / dims
    out["baselines"] = general_purpose(raw, dims)
    out["baselines"]["png"] = png(arr, "1" if binary else "L")
    _model_rows(out, models, data, x, dims, quick)
    return out


def words_file(quick: bool) -> Path:
    """english-words' ``web2`` list, sorted, one word per line, written under the runs
    folder: the ``words`` data set's file (the same on every machine, no Debian package)."""
    from english_words import get_english_words_set

    path = runs_dir(NAME, quick) / f"english_words_{WORDS_SOURCE}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(sorted(get_english_words_set([WORDS_SOURCE]))) + "\n")
    return path


def text_set(n: int, quick: bool) -> dict[str, Any]:
    """The first n words of the ``words`` test split: in the file's alphabetical order
    (the split keeps it), and the same words in a seeded shuffled order for the baselines
    (a model of independent words codes either order in the same bits)."""
    data = DataConfig(name="words", root=str(words_file(quick)))
    test = data.load("test")
    x, vocab = test.x[:n], test.vocab
    words = ["".join(vocab[t] for t in row).rstrip(cz.END) for row in x.tolist()]
    raw = "".join(w + "\n" for w in words).encode("utf-8")
    shuffled = random.Random(SEED).sample(words, len(words))
    raw_shuffled = "".join(w + "\n" for w in shuffled).encode("utf-8")
    chars = sum(len(w) + 1 for w in words)  # letters and one end token per word
    title = f"words (english-words {WORDS_SOURCE}, {len(raw) / 1e3:.0f} kB)"
    out: dict[str, Any] = {"data": title, "n": len(x), "dims": chars, "models": {}}
    out["text_bytes"] = len(raw)
    out["raw_bits_per_dim"] = 8 * len(raw) / chars
    out["baselines"] = general_purpose(raw, chars) | {
        f"{name}, shuffled order": r for name, r in general_purpose(raw_shuffled, chars).items()
    }
    _model_rows(out, TEXT, data, x, chars, quick)
    return out


def prose_file(quick: bool) -> Path:
    """The topics of the Python reference (``pydoc_data.topics``: running English with
    code examples, shipped with every CPython, PSF licence) in sorted topic order, written
    under the runs folder for dgm's ``text`` data set."""
    from pydoc_data.topics import topics

    path = runs_dir(NAME, quick) / "python_reference_topics.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(topics[k] for k in sorted(topics)), encoding="utf-8")
    return path


def prose_set(n: int | None, quick: bool) -> dict[str, Any]:
    """The test split of the running text (its last 25 %), windows of 128 characters: the
    models code each window on its own (no context from the window before), the baselines
    the same characters as one file."""
    data = DataConfig(name="text", root=str(prose_file(quick)), **PROSE)
    test = data.load("test")
    x = test.x[:n]
    raw = "".join(decode(x, test.vocab)).encode("utf-8")
    chars = x.numel()
    title = f"running text (Python reference topics, {len(raw) / 1e3:.0f} kB)"
    out: dict[str, Any] = {"data": title, "n": len(x), "dims": chars, "models": {}}
    out["text_bytes"] = len(raw)
    out["raw_bits_per_dim"] = 8 * len(raw) / chars
    out["baselines"] = general_purpose(raw, chars)
    _model_rows(out, RUNNING, data, x, chars, quick)
    return out


SETS = ("binary", "byte", "text", "prose")


def _one_set(key: str, quick: bool) -> dict[str, Any] | None:
    n = QUICK_N[key] if quick else {"text": N_WORDS, "prose": None}.get(key, N_IMAGES)
    if key == "prose":
        log("running text: the test split")
        return prose_set(n, quick)
    if key == "text":
        if importlib.util.find_spec("english_words") is None:
            log(
                "words skipped: english-words is not installed "
                "(pip install -c constraints.txt -e '.[bench]')"
            )
            return None
        log(f"words: {n} test words")
        return text_set(n, quick)
    root = fashion_mnist_root()
    if key == "binary":
        data = DataConfig(name="fashion_mnist", root=root, binarize="static")
        title, models = "binarized Fashion-MNIST", BINARY
    else:
        # 1,200 validation images (2 %): the NLL curve every 100 steps for ~5 s each
        data = DataConfig(name="fashion_mnist", root=root, scale="byte", valid_fraction=0.02)
        title, models = "8-bit Fashion-MNIST", BYTE
    log(f"{title}: {n} test images")
    return image_set(title, data, models, n, quick)


def run(quick: bool = False, only: str | None = None) -> dict[str, Any]:
    """Every data set, or ``only`` one of SETS written into the existing results file."""
    warning = busy_warning()
    if warning:
        log(warning)
    torch.set_num_threads(1)
    payload: dict[str, Any] = {"busy_warning": warning, "set_runs": {}}
    done: dict[str, dict[str, Any]] = {}
    path = result_path(NAME, quick=quick)

    def save() -> Path:
        sets, runs = dict(done), dict(payload["set_runs"])
        if only is not None and path.exists():  # keep the other sets, read just now: two
            old = json.loads(path.read_text())  # --set runs may write the file in turn
            sets = {s["key"]: s for s in old["sets"] if "key" in s} | sets
            runs = old.get("set_runs", {}) | runs
        return write_result(
            NAME,
            {
                "busy_warning": next(
                    (r["busy_warning"] for r in runs.values() if r["busy_warning"]), None
                ),
                "set_runs": runs,
                "sets": [sets[k] for k in SETS if k in sets],
            },
            quick=quick,
            seed=SEED,
            steps=None,
            wall_time_s=sum(r["wall_time_s"] for r in runs.values()),
        )

    for key in SETS if only is None else (only,):
        started = time.perf_counter()
        result = _one_set(key, quick)
        if result is None:
            continue
        done[key] = {"key": key, **result}
        payload["set_runs"][key] = {
            "wall_time_s": round(time.perf_counter() - started, 1),
            "busy_warning": warning,
        }
        path = save()
    log(f"wrote {path}")
    record = json.loads(path.read_text())
    for line in table(record):
        log(line)
    failed = [c for s in record["sets"] for c in lzma_check(s) if not c["holds"]]
    if failed:
        raise SystemExit(
            "a model whose NLL beats lzma gave a file that does not: "
            + "; ".join(f"{c['model']} vs {c['baseline']}" for c in failed)
            + " (a coding overhead in dgm.tasks.compression)"
        )
    return payload


HEADER_NOTE = (
    "dgm's file = a 14-byte prefix (magic `DGMZ` 4 B, format version u16, header length "
    "u32, header CRC-32 u32) + header fields (kind u8; model id: 8 bytes of the SHA-256 of "
    "its class, config, shape and weights; dtype u8; flags u8; example count varint; CRC-32 "
    "of the data u32 (of c u32 when conditional); payload length varint; payload CRC-32 "
    "u32; then the range coder's chunk count and each chunk's length as varints, or for "
    "bits-back the seed words kept, varint) + the payload. Shape, alphabet and "
    "quantisation follow from the model and the format version."
)


PUBLISHED_8BIT = (
    "Published likelihood models at convergence, for scale: on 8-bit MNIST (the same "
    "28 x 28 size, easier images) flows reach 0.99–1.06 bits/dim (FFJORD's table, "
    "arXiv:1810.01367); on CIFAR-10 the gated PixelCNN 3.03 (arXiv:1606.05328) and "
    "PixelCNN++ 2.92 (arXiv:1701.05517), after days of GPU training; we found no PixelCNN "
    "figure on 8-bit Fashion-MNIST to cite."
)


def _k(dims_per_s: float) -> str:
    """Thousands of dimensions per second, readable from 0.0031 to 155000."""
    k = dims_per_s / 1e3
    return f"{k:.1f}" if k >= 1 else f"{k:.2g}"


def _steps_label(r: dict[str, Any]) -> str:
    batch = r.get("train", {}).get("batch_size", BATCH)
    return f"{r['steps']} steps" + ("" if batch == BATCH else f", batch {batch}")


def _curve(r: dict[str, Any]) -> str:
    """A row's validation curve, "3.726 at 100, ...": bits per dimension (pixel or
    character) at each evaluated step, or "not recorded"."""
    points = [
        f"{c.get('valid/bits_per_dim', c.get('valid/bits_per_token')):.3f} at {c['step']}"
        for c in r.get("valid_curve", [])
        if "valid/bits_per_dim" in c or "valid/bits_per_token" in c
    ]
    return ", ".join(points) or "not recorded"


def _trained(label: str, r: dict[str, Any]) -> str:
    """ "the gpt (300 steps, batch 32, 4 CPU-minutes of training, one thread)"."""
    minutes = r.get("train_cpu_s", r["train_wall_s"]) / 60
    return f"the {label} ({_steps_label(r)}, {minutes:.1f} CPU-minutes of training, one thread)"


def _set_notes(s: dict[str, Any]) -> list[str]:
    """What a reader needs next to a set's rows: the 8-bit model's training and the
    published scale, the words' order, the running text's windows."""
    base = s["baselines"]
    notes = []
    lzma = base["lzma"]["bits_per_dim"]
    if s["key"] == "byte":
        for label, r in s["models"].items():
            verdict = (
                "beats lzma"
                if r["nll_bits_per_dim"] < lzma
                else f"is still above lzma's {lzma:.3f}: the gap is training budget"
            )
            notes.append(
                f"8-bit Fashion-MNIST: {_trained(label, r)} reaches an NLL of "
                f"{r['nll_bits_per_dim']:.3f} bits/dim on the test images (validation "
                f"bits/dim at step: {_curve(r)}) and {verdict}. " + PUBLISHED_8BIT
            )
    if s["key"] == "text":
        shuffled = {k.split(",")[0]: v for k, v in base.items() if k.endswith("shuffled order")}
        if shuffled:
            moved = "; ".join(
                f"{k} {base[k]['bits_per_dim']:.3f} -> {v['bits_per_dim']:.3f}"
                for k, v in shuffled.items()
            )
            best = min(shuffled.values(), key=lambda v: v["bits_per_dim"])["bits_per_dim"]
            winners = [k for k, r in s["models"].items() if r["file_bits_per_dim"] < best]
            notes.append(
                "Words: the test split keeps the list's alphabetical order, so a general-purpose "
                "coder codes each word against its neighbours' shared prefixes, which a model "
                "of independent words cannot use (its file is the same in any order). On the "
                f"same words in a seeded shuffled order: {moved} bits/char"
                + (
                    f"; {' and '.join(winners)} beat every shuffled-order coder."
                    if winners
                    else "."
                )
            )
    if s["key"] == "prose":
        trained = "; ".join(
            f"{_trained(label, r)}: NLL {r['nll_bits_per_dim']:.3f} bits/char "
            f"(validation at step: {_curve(r)})"
            for label, r in s["models"].items()
        )
        behind = [k for k, r in s["models"].items() if r["nll_bits_per_dim"] > lzma]
        falling = all(
            c[-1] < c[-2]
            for r in s["models"].values()
            if len(c := [p["valid/bits_per_token"] for p in r.get("valid_curve", [])]) > 1
        )
        notes.append(
            "Running text: the test split (the last 25 %) of the Python reference's topics "
            "(`pydoc_data.topics`, shipped with CPython), in windows of 128 characters that "
            "the models code each on its own (no context carried over a window's start), "
            f"while gzip, bz2 and lzma code the same characters as one stream. "
            f"{trained[0].upper()}{trained[1:]}; lzma {lzma:.3f}."
            + (
                f" The NLL of {' and '.join(behind)} is above lzma's file, so their files "
                "lose as the NLL does: a few hundred steps on a CPU shared with other work"
                + (", validation still falling at the last step" if falling else "")
                + ": these models are far from trained."
                if behind
                else ""
            )
        )
    return notes


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for the docs: whole-file bits per dimension (per character for
    text) of each model and baseline on each data set, the model's NLL and the file's
    overhead over it, with throughput; then the lzma check and each set's notes."""
    headers = sorted({r["header_bytes"] for s in record["sets"] for r in s["models"].values()})
    checks = [c for s in record["sets"] for c in lzma_check(s)]
    held = [c for c in checks if c["nll_wins"]]
    worst = max(r["file_overhead_vs_nll"] for s in record["sets"] for r in s["models"].values())
    lines = [
        "Lossless compression (`dgm compress`: range coding with the model's conditionals; "
        "the vae by bits-back coding) against general-purpose coders on the same test "
        "data, n examples; models briefly trained on one CPU thread (steps per row, batch "
        f"{BATCH} unless shown). Every figure is a whole file's bits per dimension (pixel, "
        f"or character for text), headers included: dgm's header is {headers[0]}–"
        f"{headers[-1]} bytes here; gzip, bz2 and lzma code the set as one file, PNG one "
        "file per image. Model NLL: the model's own −log2 p per dimension on the same data "
        "(the vae's −ELBO, one sample of z); 'over NLL': the file above it. Encode and "
        "decode in thousands of dimensions per second (one thread); decode on the whole "
        "file, or on a file of the first k examples where shown (D model calls per batch: "
        "784 per image, 16 per word window, 128 per window of running text).",
        "",
        "| data | coder | file bits/dim | model NLL | over NLL | encode (k dims/s) "
        "| decode (k dims/s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in record["sets"]:
        data = f"{s['data']} (n={s['n']:,})"
        for label, r in s["models"].items():
            on = "" if r["decoded_n"] == s["n"] else f" (k={r['decoded_n']})"
            lines.append(
                f"| {data} | {label} ({_steps_label(r)}) | {r['file_bits_per_dim']:.4f} | "
                f"{r['nll_bits_per_dim']:.4f} | {100 * r['file_overhead_vs_nll']:+.2f} % | "
                f"{_k(r['encode_dims_per_s'])} | {_k(r['decode_dims_per_s'])}{on} |"
            )
        for label, r in s["baselines"].items():
            lines.append(
                f"| {data} | {label} | {r['bits_per_dim']:.4f} | – | – | "
                f"{_k(r['encode_dims_per_s'])} | {_k(r['decode_dims_per_s'])} |"
            )
        lines.append(f"| {data} | raw | {s['raw_bits_per_dim']:.4f} | – | – | – | – |")
    lines += [
        "",
        f"Where a model's NLL is below an lzma file of the same data its file is too: "
        f"{sum(c['holds'] for c in held)} of {len(held)} such pairs hold ("
        + "; ".join(
            f"{c['model']} {c['file_bits_per_dim']:.3f} vs {c['baseline']} "
            f"{c['baseline_bits_per_dim']:.3f}"
            for c in held
        )
        + "); the benchmark exits with an error when one does not. Every file stays within "
        f"{100 * worst:.2f} % of its model's NLL, so where the NLL is above lzma the file "
        "loses as the NLL does.",
    ]
    for s in record["sets"]:
        lines += ["", *_set_notes(s)] if _set_notes(s) else []
    lines += ["", HEADER_NOTE]
    if record.get("busy_warning"):
        lines += ["", "Timed on a CPU busy with other work: throughputs are slow and noisy."]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="20 steps, tiny networks, few examples")
    p.add_argument("--set", choices=SETS, help="rerun one data set into the existing results")
    ns = p.parse_args(argv)
    run(quick=ns.quick, only=ns.set)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
