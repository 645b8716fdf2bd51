"""Lossless compression with model conditionals (``dgm.tasks.compress``) against gzip,
bz2, lzma and PNG, on the same test data, with encode and decode throughput.

Three data sets, each coded by every briefly trained compressible model and by the
general-purpose coders:

- **binarized Fashion-MNIST** (static binarization, the first 20 test images): fvsbn,
  nade (500 hidden), made (one mask, 500 hidden), a gated pixelcnn (16 channels, 5
  layers) and a vae (latent 10, 300-300 MLPs: CS236's) by bits-back coding, whose "model
  NLL" is its −ELBO; the baselines code the images packed 8 pixels per byte
  (``np.packbits``: 1 bit/dim raw), gzip / bz2 / lzma at their strongest settings over
  the whole set, PNG (Pillow, 1-bit, ``optimize``) per image, its headers included.
- **8-bit Fashion-MNIST** (levels 0..255, the first 5 test images): a gated pixelcnn
  with a 256-way categorical head; the baselines code one byte per pixel, PNG as 8-bit
  greyscale. (The discretized logistic mixture head gives 256-way conditionals too, but
  forms all 784 x 256 of them from its mixture on every call: about 12 times slower to
  decode at equal width. Decoding is 784 model calls per batch: hence few images.)
- **words** (``/usr/share/dict/words``, test split, one word per 16-token window padded
  with the end token "\\n"): char_rnn (LSTM) and gpt; the models code the padded
  windows, the baselines the same words as text, one per line ("word\\n"), so both code
  the same information; bits per character count each word's letters and its newline.

Model rows: the payload's bits per dimension (per character for text), the file's (with
the container's header, ~350 bytes), the model's own NLL in bits per dimension on the
same data (the ideal code length: the payload is within 1 % of it), and the encode and
decode throughput in dimensions per second (decoding makes D model calls per batch of
examples, encoding one). Every decoded file is checked equal to its input. Training uses
dgm's trainer on one torch thread (AdamW, 500 steps: brief, far from the published
models; the sizes are small because decoding makes D model calls), batch 64 for images and text.

    python -m benchmarks.compression [--quick]
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import common
from benchmarks.common import (
    busy_warning,
    fashion_mnist_root,
    fresh_run_dir,
    log,
    runs_dir,
    write_result,
)
from dgm.data import DataConfig
from dgm.model import DiscreteAutoregressive
from dgm.tasks import bits_back as bb
from dgm.tasks import compress as cz
from dgm.train import TrainConfig, train

NAME = "compression"
SEED = 0
BATCH, LR = 64, 1e-3
CODE_BATCH = 128  # examples per model call while coding

BINARY = {  # label -> registry name, config
    "fvsbn": ("fvsbn", {}),
    "nade": ("nade", {"hidden_size": 500}),
    "made": ("made", {"hidden_sizes": (500,)}),
    "pixelcnn (gated)": ("pixelcnn", {"hidden_channels": 16, "num_layers": 5}),
    "vae (bits-back)": ("vae", {"latent_dim": 10, "hidden_sizes": (300, 300)}),
}
BYTE = {
    "pixelcnn (categorical)": (
        "pixelcnn",
        {"head": "categorical", "num_levels": 256, "hidden_channels": 16, "num_layers": 5},
    ),
}
TEXT = {
    "char_rnn (lstm)": ("char_rnn", {"cell": "lstm"}),
    "gpt": ("gpt", {}),
}
QUICK_SHRINK = {  # smaller networks in quick mode
    "nade": {"hidden_size": 32},
    "made": {"hidden_sizes": (32,)},
    "pixelcnn (gated)": {"hidden_channels": 8, "num_layers": 2},
    "vae (bits-back)": {"hidden_sizes": (32,)},
    "pixelcnn (categorical)": {"hidden_channels": 8, "num_layers": 2},
    "char_rnn (lstm)": {"hidden_size": 32},
    "gpt": {"n_layer": 1, "n_embd": 32, "n_head": 2},
}


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


def _train(label: str, name: str, data: DataConfig, cfg: dict, steps: int, quick: bool) -> Any:
    slug = label.replace(" ", "_").replace("(", "").replace(")", "")
    run_dir = fresh_run_dir(runs_dir(NAME, quick) / data.name / slug)
    config = TrainConfig(
        steps=steps,
        batch_size=BATCH,
        lr=LR,
        seed=SEED,
        device="cpu",
        grad_clip=1.0,
        warmup_steps=min(100, steps // 10),
        eval_every=0,
        sample_every=0,
        checkpoint_every=steps,
    )
    t0 = time.perf_counter()
    model, _ = train(name, data, run_dir, config, progress=False, **cfg)
    return model.eval(), time.perf_counter() - t0, run_dir


def model_row(model: Any, x: torch.Tensor, dims: int) -> dict[str, Any]:
    """Code x with the model: payload and file bits per dimension (``dims`` counts what a
    dimension is: pixels, or characters of text), its NLL, throughput; checked exact."""
    autoregressive = isinstance(model, DiscreteAutoregressive)
    t0 = time.perf_counter()
    blob = cz.compress(model, x, batch_size=CODE_BATCH) if autoregressive else bb.compress(model, x)
    t1 = time.perf_counter()
    if autoregressive:
        back = cz.decompress(model, blob, batch_size=CODE_BATCH)
    else:
        back = bb.decompress(model, blob)
    t2 = time.perf_counter()
    if not torch.equal(back, x):
        raise SystemExit("decoding did not give back the input: a bug in dgm.tasks.compress")
    torch.manual_seed(SEED)  # the VAE's bound is stochastic
    nll = cz.nll_bits(model, x)
    payload = cz.payload_bits(blob)
    return {
        "bytes": len(blob),
        "payload_bits": payload,
        "nll_bits": nll,
        "bits_per_dim": payload / dims,
        "file_bits_per_dim": 8 * len(blob) / dims,
        "nll_bits_per_dim": nll / dims,
        "overhead_vs_nll": payload / nll - 1,
        "encode_s": t1 - t0,
        "decode_s": t2 - t1,
        "encode_dims_per_s": dims / (t1 - t0),
        "decode_dims_per_s": dims / (t2 - t1),
    }


def image_set(
    title: str, data: DataConfig, models: dict, steps: int, n: int, quick: bool
) -> dict[str, Any]:
    test = data.load("test")
    x = test.x[:n]
    binary = data.binarize is not None
    arr = x.numpy()
    raw = np.packbits(arr.astype(np.uint8).reshape(-1)).tobytes() if binary else arr.tobytes()
    dims = x.numel()
    out: dict[str, Any] = {"data": title, "n": len(x), "dims": dims, "models": {}}
    out["raw_bits_per_dim"] = 8 * len(raw) / dims
    out["baselines"] = general_purpose(raw, dims)
    out["baselines"]["png"] = png(arr, "1" if binary else "L")
    for label, (name, cfg) in models.items():
        cfg = {**cfg, **(QUICK_SHRINK.get(label, {}) if quick else {})}
        model, wall, run_dir = _train(label, name, data, cfg, steps, quick)
        row = model_row(model, x, dims)
        row |= {"registry_name": name, "config": cfg, "steps": steps, "train_wall_s": wall}
        row["run_dir"] = str(run_dir)
        out["models"][label] = row
        log(
            f"  {label} on {title}: {row['bits_per_dim']:.4f} bits/dim (NLL "
            f"{row['nll_bits_per_dim']:.4f}), encode {row['encode_dims_per_s']:.0f} dims/s, "
            f"decode {row['decode_dims_per_s']:.0f} dims/s"
        )
    return out


def text_set(steps: int, n: int, quick: bool) -> dict[str, Any]:
    data = DataConfig(name="words")
    test = data.load("test")
    x, vocab = test.x[:n], test.vocab
    words = ["".join(vocab[t] for t in row).rstrip(cz.END) for row in x.tolist()]
    raw = "".join(w + "\n" for w in words).encode("utf-8")
    chars = sum(len(w) + 1 for w in words)  # letters and one end token per word
    out: dict[str, Any] = {"data": "words", "n": len(x), "dims": chars, "models": {}}
    out["raw_bits_per_dim"] = 8 * len(raw) / chars
    out["baselines"] = general_purpose(raw, chars)
    for label, (name, cfg) in TEXT.items():
        cfg = {**cfg, **(QUICK_SHRINK.get(label, {}) if quick else {})}
        model, wall, run_dir = _train(label, name, data, cfg, steps, quick)
        row = model_row(model, x, chars)
        row |= {"registry_name": name, "config": cfg, "steps": steps, "train_wall_s": wall}
        row["run_dir"] = str(run_dir)
        out["models"][label] = row
        log(
            f"  {label} on words: {row['bits_per_dim']:.3f} bits/char (NLL "
            f"{row['nll_bits_per_dim']:.3f}), decode {row['decode_dims_per_s']:.0f} chars/s"
        )
    return out


def run(quick: bool = False) -> dict[str, Any]:
    warning = busy_warning()
    if warning:
        log(warning)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if quick:
        steps = {"binary": 20, "byte": 20, "text": 20}
        n = {"binary": 8, "byte": 2, "text": 64}
    else:
        steps = {"binary": 500, "byte": 500, "text": 500}
        n = {"binary": 20, "byte": 5, "text": 500}
    root = fashion_mnist_root()
    sets = [
        (
            "binarized Fashion-MNIST",
            DataConfig(name="fashion_mnist", root=root, binarize="static"),
            BINARY,
            "binary",
        ),
        (
            "8-bit Fashion-MNIST",
            DataConfig(name="fashion_mnist", root=root, scale="byte"),
            BYTE,
            "byte",
        ),
    ]
    payload: dict[str, Any] = {"busy_warning": warning, "sets": []}

    def save() -> Path:
        return write_result(
            NAME,
            payload,
            quick=quick,
            seed=SEED,
            steps=None,
            wall_time_s=time.perf_counter() - t0,
        )

    for title, data, models, key in sets:
        log(f"{title}: {n[key]} test images")
        payload["sets"].append(image_set(title, data, models, steps[key], n[key], quick))
        save()
    log(f"words: {n['text']} test words")
    payload["sets"].append(text_set(steps["text"], n["text"], quick))
    path = save()
    log(f"wrote {path}")
    for line in table(payload):
        log(line)
    return payload


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for the README: bits per dimension (per character for text) of each
    model and baseline on each data set, with throughput."""
    lines = [
        "Lossless compression (`dgm compress`, range coding with the model's conditionals) "
        "against general-purpose coders on the same test data; models briefly trained. "
        "Bits per dimension (pixel, or character for words) of the payload, the model's "
        "NLL beside it (the vae's −ELBO: it is bits-back coded), encode and decode "
        "throughput in thousands of dimensions per second (one thread).",
        "",
        "| data | coder | bits/dim | model NLL | encode (k dims/s) | decode (k dims/s) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for s in record["sets"]:
        data = f"{s['data']} (n={s['n']})"
        for label, r in s["models"].items():
            lines.append(
                f"| {data} | {label} ({r['steps']} steps) | {r['bits_per_dim']:.4f} | "
                f"{r['nll_bits_per_dim']:.4f} | {r['encode_dims_per_s'] / 1e3:.1f} | "
                f"{r['decode_dims_per_s'] / 1e3:.2f} |"
            )
        for label, r in s["baselines"].items():
            lines.append(
                f"| {data} | {label} | {r['bits_per_dim']:.4f} | – | "
                f"{r['encode_dims_per_s'] / 1e3:.1f} | {r['decode_dims_per_s'] / 1e3:.1f} |"
            )
        lines.append(f"| {data} | raw | {s['raw_bits_per_dim']:.4f} | – | – | – |")
    return lines


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "20 steps, tiny networks, a few test examples", argv)


if __name__ == "__main__":
    raise SystemExit(main())
