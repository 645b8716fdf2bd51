"""The autoregressive family (except PixelCNN): speed pairs, text, binarized images.

Three parts, each saved as soon as it is done (partial results survive a crash):

- speed: NADE's one-pass conditionals against the naive O(H D²) loop and a one-tensor
  cumulative sum, and GPT generation of 256 tokens with and without the key-value cache,
  each pair timed side by side at one thread and at two (``benchmarks.autoregressive_speed``).
- text: ``char_rnn`` (LSTM, GRU) and ``gpt`` trained by dgm's trainer on ``words`` (one
  word per sequence, 16 tokens) and ``fortunes`` (windows of 64 characters); validation
  nats per character over real characters (``evaluate``'s ``nats_per_token``: a word's
  letters and its end token, never the padding positions) and a few decoded samples.
- images: ``fvsbn``, ``nade``, ``made`` (one mask) and ``made`` (8 masks, ensembled at test)
  on statically binarized Fashion-MNIST (the VAE table's data), and MNIST too when
  ``$DGM_MNIST_ROOT`` names its IDX files: test NLL in nats per example, steps, wall time.

Quick mode (``--quick``, about a minute) runs every part with tiny step counts, smaller
batches for the speed pairs and evaluation on the first examples only.

    python -m benchmarks.autoregressive [--quick]
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks import common
from benchmarks.autoregressive_speed import (
    GPT_TOKENS,
    QUICK_GPT_TOKENS,
    THREADS,
    gpt_speed,
    nade_speed,
)
from benchmarks.common import (
    binarized_image_data,
    busy_warning,
    first_examples,
    fmt,
    log,
    markdown_table,
    runs_dir,
    slug,
    threads_label,
    train_briefly,
    write_result,
)
from dgm import run_dir as run_files  # not `run_dir`: the runs' own paths use that name
from dgm.data import DataConfig
from dgm.data.text import decode
from dgm.evaluate.likelihood import evaluate

NAME = "autoregressive"
SEED = 0
TRAIN_THREADS = 1  # training and evaluation: steady on a shared 2-core machine (threads.py)

# -- text --------------------------------------------------------------------------------------

TEXT_MODELS: dict[str, tuple[str, dict[str, Any], float]] = {  # label -> name, config, lr
    "char_rnn (lstm)": ("char_rnn", {"cell": "lstm"}, 2e-3),
    "char_rnn (gru)": ("char_rnn", {"cell": "gru"}, 2e-3),
    "gpt": ("gpt", {}, 1e-3),
}
TEXT_BATCH = 64
NANOGPT_NOTE = (
    "For scale only: nanoGPT's character-level model reaches a validation loss of about "
    "1.47 nats per character on its tiny-Shakespeare corpus (README of karpathy/nanoGPT, "
    "config/train_shakespeare_char.py: 6 layers, 6 heads, 384 wide, 256-character "
    "context, 5000 steps on a GPU); a different text, context and budget: not comparable."
)

# -- images ------------------------------------------------------------------------------------

IMAGE_BATCH, IMAGE_LR = 100, 1e-3
MADE_MASKS = 8
IMAGE_MODELS: dict[str, tuple[str, dict[str, Any]]] = {  # label -> name, config
    "fvsbn": ("fvsbn", {}),
    "nade": ("nade", {"hidden_size": 500}),
    "made (1 mask)": ("made", {"hidden_sizes": (500,)}),
    f"made ({MADE_MASKS} masks)": ("made", {"hidden_sizes": (500,), "num_masks": MADE_MASKS}),
}
SALAKHUTDINOV = (
    "MNIST binarized once by sampling each pixel from its grey level (Salakhutdinov & "
    "Murray 2008; the fixed train/valid/test files of Larochelle)"
)
REFERENCES = [  # published negative log-likelihoods on binarized MNIST, nats per example
    {
        "model": "fvsbn",
        "nll": 97.45,
        "source": "Larochelle & Murray 2011, Table 2",
        "binarization": SALAKHUTDINOV,
    },
    {
        "model": "nade",
        "nll": 88.86,
        "source": "Larochelle & Murray 2011, Table 2",
        "binarization": SALAKHUTDINOV,
    },
    {
        "model": "made (1 mask)",
        "nll": 88.04,
        "source": "Germain et al. 2015 (figure as quoted in issue 7)",
        "binarization": SALAKHUTDINOV,
    },
    {
        "model": "made (32 masks)",
        "nll": 86.64,
        "source": "Germain et al. 2015, 32 masks ensembled at test",
        "binarization": SALAKHUTDINOV,
    },
    {
        "model": "nade",
        "nll": 85.65,
        "source": "pytorch-generative README",
        "binarization": "dynamic: a fresh Bernoulli draw of every train and test image "
        "each time it is loaded (pytorch_generative/datasets.py, _dynamically_binarize)",
    },
    {
        "model": "made",
        "nll": 84.87,
        "source": "pytorch-generative README (its made.py: one hidden layer of 8000, 1 mask)",
        "binarization": "dynamic: a fresh Bernoulli draw of every train and test image "
        "each time it is loaded (pytorch_generative/datasets.py, _dynamically_binarize)",
    },
]


# -- training through dgm's trainer ------------------------------------------------------------


def _train(
    folder: str,
    label: str,
    model_name: str,
    data: DataConfig,
    model_config: dict[str, Any],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    quick: bool,
    grad_clip: float | None = None,
) -> tuple[Any, dict[str, Any], Path]:
    run_dir = runs_dir(NAME, quick) / folder / slug(label)
    model, last, wall = train_briefly(  # evaluated below, once, on the held-out split
        model_name,
        data,
        run_dir,
        steps,
        batch_size=batch_size,
        lr=lr,
        seed=SEED,
        config={"grad_clip": grad_clip, "warmup_steps": min(100, steps // 10)},
        **model_config,
    )
    saved = run_files.Run.open(run_dir).config
    info = {
        "model": label,
        "registry_name": model_name,
        "dataset": data.name,
        "data": dataclasses.asdict(data),
        "model_config": saved["model_config"],
        "train_config": saved["train"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": steps,
        "batch_size": batch_size,
        "seed": SEED,
        "run_dir": str(run_dir),
        "weights": f"final (step {steps})",
        "ms_per_step": 1000 * last["train_time_s"] / steps,
        "train_time_s": last["train_time_s"],
        "train_wall_s": wall,
    }
    log(
        f"  {label} on {data.name}: {steps} steps in {wall:.1f} s "
        f"({info['ms_per_step']:.1f} ms/step of training)"
    )
    return model, info, run_dir


# -- text --------------------------------------------------------------------------------------


def text_run(
    label: str, data: DataConfig, *, steps: int, eval_n: int | None, quick: bool
) -> dict[str, Any]:
    model_name, config, lr = TEXT_MODELS[label]
    model, info, _ = _train(
        "text_" + data.name,
        label,
        model_name,
        data,
        config,
        steps=steps,
        batch_size=TEXT_BATCH,
        lr=lr,
        quick=quick,
        grad_clip=1.0,
    )
    valid = first_examples(data.load("valid"), eval_n)
    vocab = valid.vocab
    T = valid.x.shape[1]
    t0 = time.perf_counter()
    torch.manual_seed(SEED)
    r = evaluate(model, valid, batch_size=512)
    per_char = r["nats_per_token"]  # over real characters: a word's letters and its end
    n_samples = 8 if data.name == "words" else 3
    gen = torch.Generator().manual_seed(SEED)
    samples = {
        str(temp): decode(model.sample(n_samples, generator=gen, temperature=temp), vocab)
        for temp in (1.0, 0.8)
    }
    info.update(
        {
            "split": "valid",
            "valid_n": r["n"],
            "valid_size": len(data.load("valid")),
            "block_size": T,
            "vocab_size": len(vocab),
            "nll_per_sequence": r["nll"],
            "chars_per_sequence": r["tokens"],
            "nats_per_char": per_char,
            "nats_per_char_se": r["nats_per_token_se"],
            "bits_per_char": r["bits_per_token"],
            "samples": samples,
            "eval_wall_s": time.perf_counter() - t0,
        }
    )
    log(
        f"  {label} on {data.name}: {per_char:.3f} nats/char (valid, {r['n']} sequences); "
        f"sample: {samples['0.8'][0][:60]!r}"
    )
    return info


# -- images ------------------------------------------------------------------------------------


def image_run(
    label: str, data: DataConfig, *, steps: int, eval_n: int | None, quick: bool
) -> dict[str, Any]:
    model_name, config = IMAGE_MODELS[label]
    model, info, _ = _train(
        "images_" + data.name,
        label,
        model_name,
        data,
        config,
        steps=steps,
        batch_size=IMAGE_BATCH,
        lr=IMAGE_LR,
        quick=quick,
    )
    full = data.load("test")
    test = first_examples(full, eval_n)
    t0 = time.perf_counter()
    r = evaluate(model, test, batch_size=250 if model_name == "nade" else 1000)
    info.update(
        {"split": "test", "test_n": r["n"], "test_size": len(full), "nll": r["nll"]},
    )
    if model_name == "made" and model.config.num_masks > 1:  # mask set 0 alone, beside
        model.config.ensemble_masks = False
        info["nll_mask_0_alone"] = evaluate(model, test, batch_size=1000)["nll"]
        model.config.ensemble_masks = True
    info["eval_wall_s"] = time.perf_counter() - t0
    alone = f" (mask 0 alone {info['nll_mask_0_alone']:.2f})" if "nll_mask_0_alone" in info else ""
    log(f"  {label} on {data.name}: test NLL {r['nll']:.2f} nats{alone} on {r['n']} examples")
    return info


# -- the benchmark -----------------------------------------------------------------------------


def run(quick: bool = False) -> dict[str, Any]:
    if quick:
        speed = {
            "nade_batch": 32,
            "gpt_batch": 2,
            "tokens": QUICK_GPT_TOKENS,
            "repeats": 3,
            "max_s": 5,
        }
        text_steps = {"words": 10, "fortunes": 3}
        image_steps = {
            "fvsbn": 30,
            "nade": 2,
            "made (1 mask)": 30,
            f"made ({MADE_MASKS} masks)": 30,
        }
        text_eval_n, image_eval_n = 200, 100
    else:
        speed = {"nade_batch": 512, "gpt_batch": 8, "tokens": GPT_TOKENS, "repeats": 5, "max_s": 60}
        text_steps = {"words": 1500, "fortunes": 200}
        image_steps = {
            "fvsbn": 3000,
            "nade": 2000,
            "made (1 mask)": 6000,
            f"made ({MADE_MASKS} masks)": 6000,
        }
        text_eval_n, image_eval_n = None, None
    warning = busy_warning()
    if warning:
        log(warning)
    t_start = time.perf_counter()
    text_runs: list[dict[str, Any]] = []
    image_runs: list[dict[str, Any]] = []
    payload: dict[str, Any] = {
        "description": "autoregressive family: NADE one-pass and GPT KV-cache speed pairs; "
        "char_rnn and gpt on words and fortunes (valid nats/char); fvsbn, nade, made on "
        "statically binarized images (test NLL, nats)",
        "complete": False,
        "threads": list(THREADS),
        "train_threads": TRAIN_THREADS,
        "steps_trained": 0,  # training steps of every run together
        "busy_warning": warning,
        "speed": {},
        "text": {
            "runs": text_runs,
            "batch_size": TEXT_BATCH,
            "grad_clip": 1.0,
            "eval_examples": text_eval_n,
            "units": "nats per character of the valid split (dgm.evaluate's nats_per_token): "
            "each sequence's NLL over its real characters; words: the letters of each word "
            "and its end token, not the padding after it (whose predictions, nearly free "
            "once trained, stay in the NLL); fortunes: every character of non-overlapping "
            "64-character windows, each read without earlier context",
            "nanogpt_note": NANOGPT_NOTE,
        },
        "images": {
            "runs": image_runs,
            "batch_size": IMAGE_BATCH,
            "lr": IMAGE_LR,
            "eval_examples": image_eval_n,
            "made_masks": f"{MADE_MASKS} connectivities (hidden degrees shuffled per mask), "
            "natural pixel order shared, cycled one per training step, log-mean-exp of the "
            "8 likelihoods at test",
            "binarization": "static: every pixel drawn once from Bernoulli(grey level) with "
            "the data seed, as for the CS236 VAE table",
            "units": "nats per example",
            "references": REFERENCES,
            "references_note": "published binarized-MNIST numbers: for scale beside MNIST "
            "rows, not comparable with Fashion-MNIST ones",
        },
    }

    def save() -> Path:
        wall = time.perf_counter() - t_start
        steps = payload["steps_trained"]
        return write_result(NAME, payload, quick=quick, seed=SEED, steps=steps, wall_time_s=wall)

    log("  speed: NADE one pass vs naive, GPT sampling with vs without the KV cache")
    payload["speed"]["nade"] = nade_speed(
        speed["nade_batch"], speed["repeats"], warmup=1, max_s=speed["max_s"]
    )
    payload["speed"]["gpt_kv_cache"] = gpt_speed(
        speed["gpt_batch"], speed["tokens"], speed["repeats"], warmup=1, max_s=speed["max_s"]
    )
    save()
    default_threads = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        _train_all(payload, text_steps, image_steps, text_eval_n, image_eval_n, quick, save)
    finally:
        torch.set_num_threads(default_threads)
    payload["complete"] = True
    log(f"autoregressive: {len(text_runs)} text and {len(image_runs)} image runs  -> {save()}")
    return payload


def _train_all(
    payload: dict[str, Any],
    text_steps: dict[str, int],
    image_steps: dict[str, int],
    text_eval_n: int | None,
    image_eval_n: int | None,
    quick: bool,
    save: Callable[[], Path],
) -> None:
    text_runs, image_runs = payload["text"]["runs"], payload["images"]["runs"]
    for name in ("words", "fortunes"):
        data = DataConfig(name=name)
        for label in TEXT_MODELS:
            text_runs.append(
                text_run(label, data, steps=text_steps[name], eval_n=text_eval_n, quick=quick)
            )
            payload["steps_trained"] += text_steps[name]
            save()
    for data in binarized_image_data():
        for label in IMAGE_MODELS:
            image_runs.append(
                image_run(label, data, steps=image_steps[label], eval_n=image_eval_n, quick=quick)
            )
            payload["steps_trained"] += image_steps[label]
            save()


def _cell(text: str, width: int = 60) -> str:
    """A sample as a markdown table cell: cut to ``width`` characters, pipes escaped."""
    text = text if len(text) <= width else text[: width - 1] + "…"
    text = text.replace("`", "'").replace("|", "¦").replace("\t", "\\t")
    return f"`{text}`" if text else "(empty)"


def _text_sample(run: dict[str, Any]) -> str:
    """The sample cell of a text run: the first sample at temperature 0.8; for ``words``
    the first five words, each cut at its end token."""
    samples = run["samples"].get("0.8") or [""]
    if run["dataset"] == "words":
        return _cell(", ".join(s.split("\\n")[0] for s in samples[:5]))
    return _cell(samples[0])


def _published(label: str, references: list[dict[str, Any]]) -> str:
    """The published binarized-MNIST NLLs to print beside our row ``label``."""

    def row_of(ref: dict[str, Any]) -> str:  # which of our rows a reference stands beside
        model = ref["model"]
        if model.startswith("made"):
            return "made (1 mask)" if "masks" not in model else "made (M masks)"
        return model

    ours = "made (M masks)" if label.startswith("made") and "1 mask" not in label else label
    cells = []
    for ref in references:
        if row_of(ref) == ours:
            masks = f", {ref['model'].split('(')[1][:-1]}" if "masks" in ref["model"] else ""
            cells.append(f"{fmt(ref['nll'])} ({ref['source'].split(',')[0].split(' (')[0]}{masks})")
    return "; ".join(cells) or "–"


def table(record: dict[str, Any]) -> list[str]:
    """Speed pairs, text and binarized-image tables of benchmarks/autoregressive.py."""
    out: list[str] = []
    speed = record.get("speed", {})
    rows = []
    nade, gpt = speed.get("nade"), speed.get("gpt_kv_cache")
    pairs = [  # (result, label, dgm side, reference side, ratio key, goal)
        (
            nade,
            "NADE conditionals: O(HD) recursion (`log_prob`) vs naive per dimension",
            "one_pass",
            "naive",
            "ratio_naive_over_one_pass",
            "≥ 20",
        ),
        (
            nade,
            "NADE conditionals: O(HD) recursion vs the same sum as one (B, D, H) tensor",
            "one_pass",
            "one_tensor",
            "ratio_one_tensor_over_one_pass",
            "–",
        ),
        (
            gpt,
            f"GPT, {gpt['tokens'] if gpt else '?'} tokens: `sample(use_cache=True)` vs `False`",
            "cached",
            "uncached",
            "ratio_uncached_over_cached",
            "≥ 3",
        ),
    ]
    for result, label, ours, ref, ratio, goal in pairs:
        for t, r in (result or {}).get("threads", {}).items():
            rows.append(
                [
                    label,
                    t,
                    fmt(r["ms"][ours], 1),
                    fmt(r["ms"][ref], 1),
                    fmt(r[ratio]),
                    goal,
                ]
            )
    if rows:
        g = gpt["model_config"] if gpt else {}
        out += [
            "**Autoregressive speed pairs** (each pair timed side by side in one process, "
            f"up to {nade['repeats'] if nade else gpt['repeats']} interleaved repeats after "
            "a warm-up; ms is the median, the ratio the median of the per-repeat ratios; both "
            "sides of each pair are checked to give the same logits first). NADE: H = "
            f"{nade['hidden_size'] if nade else '?'}, D = {nade['dims'] if nade else '?'}, "
            f"batch {nade['batch_size'] if nade else '?'}; naive: every h_d recomputed from "
            f"x_<d, O(HD²). GPT: {g.get('n_layer')} layers, {g.get('n_head')} heads, "
            f"{g.get('n_embd')} wide, vocabulary {g.get('vocab_size')}, batch "
            f"{gpt['batch_size'] if gpt else '?'}, same seed on both sides:",
            "",
            *markdown_table(
                ["computation", "threads", "dgm ms", "reference ms", "reference ÷ dgm", "goal"],
                rows,
            ),
        ]
        if record.get("busy_warning"):
            out += [
                "",
                "Other processes kept the CPUs busy during this run, so the times are slow and "
                "noisy (two threads suffer most when they must share the cores); each ratio "
                "still compares the two sides of a pair under the same conditions.",
            ]
    text = record.get("text", {})
    if text.get("runs"):
        rows = [
            [
                r["model"],
                r["dataset"],
                f"{r['parameters']:,}",
                str(r["steps"]),
                fmt(r["ms_per_step"], 1),
                fmt(r["nats_per_char"], 3),
                fmt(r["bits_per_char"], 3),
                _text_sample(r),
            ]
            for r in text["runs"]
        ]
        threads = threads_label(record.get("train_threads", "?"))
        out += [
            *([""] if out else []),
            f"**Character-level text** (dgm's trainer, batch {text['batch_size']}, AdamW with "
            f"the default warm-up and cosine decay, gradient norm clipped at "
            f"{text.get('grad_clip')}, {threads}; validation split; `words`: one word of "
            "Debian's wamerican per 16-token sequence (this run predates the switch of `words` "
            "to english-words' web2), nats per letter counting its end "
            "token but not the padding; `fortunes`: 64-character windows of Debian's "
            "fortunes, each read without earlier context; samples drawn at temperature 0.8, "
            "`\\n` a newline):",
            "",
            *markdown_table(
                [
                    "model",
                    "corpus",
                    "parameters",
                    "steps",
                    "ms/step",
                    "nats/char",
                    "bits/char",
                    "sample (T = 0.8)",
                ],
                rows,
            ),
            "",
            text.get("nanogpt_note", ""),
        ]
    images = record.get("images", {})
    if images.get("runs"):
        refs = images.get("references", [])
        rows = []
        for r in images["runs"]:
            total = r.get("test_size", r["test_n"])
            name = r["model"] + (
                f" (first {r['test_n']} test examples)" if r["test_n"] < total else ""
            )
            alone = r.get("nll_mask_0_alone")
            rows.append(
                [
                    name,
                    r["dataset"],
                    str(r["steps"]),
                    fmt(r["ms_per_step"], 1),
                    fmt(r["train_wall_s"] + r.get("eval_wall_s", 0.0), 0),
                    fmt(r["nll"]) + (f" (mask 0 alone: {fmt(alone)})" if alone is not None else ""),
                    _published(r["model"], refs),
                ]
            )
        sources: dict[str, list[str]] = {}  # binarization -> the sources that used it
        for ref in refs:
            src = ref["source"].split(",")[0].split(" (")[0]
            if src not in sources.setdefault(ref["binarization"], []):
                sources[ref["binarization"]].append(src)
        out += [
            *([""] if out else []),
            f"**Fully visible models on binarized images** (dgm's trainer, batch "
            f"{images['batch_size']}, AdamW lr {images['lr']} with the default warm-up and "
            f"cosine decay, {threads_label(record.get('train_threads', '?'))}; "
            f"{images['binarization']}; test NLL in nats per example, exact; MADE: one "
            f"hidden layer of 500; the M-mask MADE: {images['made_masks']}; wall s: training "
            "and test evaluation). The last column is for orientation only, other data and "
            "budget: published binarized-MNIST figures of larger networks trained for "
            "hundreds of epochs; not comparable with Fashion-MNIST rows, nor reachable at "
            "this budget on MNIST ones.",
            "",
            *markdown_table(
                [
                    "model",
                    "dataset",
                    "steps",
                    "ms/step",
                    "wall s",
                    "test NLL",
                    "for orientation: published, binarized MNIST (other data/budget)",
                ],
                rows,
            ),
            "",
            "Binarization of each published source: "
            + "; ".join(f"{' and '.join(src)}: {how}" for how, src in sources.items())
            + ".",
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "tiny step counts and batches (about a minute)", argv)


if __name__ == "__main__":
    raise SystemExit(main())
