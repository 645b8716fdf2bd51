"""Conditioning across modalities on Fashion-MNIST: text to image and image to text.

The data are ``dgm.data.captions``: every Fashion-MNIST image paired with one of a few
paraphrases of its class name ("t-shirt", "a top", "tee", ...; 31 texts for 10 classes),
drawn once per split with a fixed seed.

1. **Text to image**: a ``vae`` (MLP 512-256, 16-dimensional latent, Bernoulli decoder on
   dynamically binarized pixels) conditioned on the caption, read by the character-level
   ``TextEncoder`` (embedding, GRU, 64 features) trained with the rest, trained by dgm's
   trainer on ``fashion_mnist_text``. For every one of the 31 paraphrases as the prompt,
   ``N_IMAGES`` images are drawn (the decoder's mean E[x | z], grey levels in [0, 1]) and
   classified by dgm's own Fashion-MNIST classifier (``dgm.evaluate.features``, its test
   accuracy reported beside): the accuracy is the share classified as the prompt's class
   (chance 10 %). Per class, the mean over its paraphrases.
2. **Image to text**: a ``char_rnn`` captioner (GRU, 256 units, the image fed through an
   MLP into the start state) trained on ``fashion_mnist_captions``; one caption drawn per
   test image (temperature 1) and one greedy caption (top-k 1). Caption accuracy is the
   share of captions that are exactly one of the paraphrases of the image's class;
   "well-formed" the share that are a paraphrase of any class. Per class too.

Everything on one torch thread, CPU. Runs are written to
``runs/bench[/quick]/cross_modal/<direction>``.

    python -m benchmarks.cross_modal [--quick]
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks import common
from benchmarks.common import (
    busy_warning,
    fashion_mnist_root,
    log,
    one_thread,
    runs_dir,
    train_briefly,
    write_result,
)
from dgm.data import DataConfig
from dgm.data.captions import CLASS_NAMES, PARAPHRASES, VOCAB
from dgm.data.text import decode, prompt_context
from dgm.evaluate.caption_accuracy import names_class

NAME = "cross_modal"
SEED = 0
BATCH = 128
LR = 1e-3
STEPS = {"text_to_image": 1500, "image_to_text": 800}  # ~0.1 and ~0.2 s/step, 1 thread
QUICK_STEPS = 60
N_IMAGES, QUICK_N_IMAGES = 200, 20  # images drawn per prompt
QUICK_TEST = 500  # test images captioned in quick mode (full: all 10 000)
VAE = {"latent_dim": 16, "hidden_sizes": (512, 256), "text_features": 64}
CAPTIONER = {"cell": "gru", "hidden_size": 256, "num_layers": 1, "embedding_dim": 32}


def _train(
    direction: str, model: str, data: DataConfig, steps: int, quick: bool, **cfg: Any
) -> tuple[Any, dict[str, Any]]:
    """Train ``model`` on ``data`` into runs/bench[/quick]/cross_modal/<direction>."""
    run_dir = runs_dir(NAME, quick) / direction
    trained, last, wall = train_briefly(
        model, data, run_dir, steps, batch_size=BATCH, lr=LR, seed=SEED, **cfg
    )
    loss = last.get("loss", float("nan"))
    log(f"  {direction}: {steps} steps in {wall:.0f} s, last loss {loss:.4g}")
    return trained, {"run_dir": str(run_dir), "steps": steps, "train_s": round(wall, 1)}


def text_to_image(quick: bool) -> dict[str, Any]:
    """Train the text-conditioned VAE; classify the images drawn for every paraphrase."""
    from dgm.evaluate.features import feature_classifier

    data = DataConfig(name="fashion_mnist_text", root=fashion_mnist_root(), binarize="dynamic")
    steps = QUICK_STEPS if quick else STEPS["text_to_image"]
    model, out = _train("text_to_image", "vae", data, steps, quick, **VAE)
    classifier = feature_classifier("fashion_mnist", fashion_mnist_root())
    net = classifier.net.eval()
    n = QUICK_N_IMAGES if quick else N_IMAGES
    gen = torch.Generator().manual_seed(SEED)
    prompts = []
    t0 = time.perf_counter()
    for label, texts in enumerate(PARAPHRASES):
        for text in texts:
            c = prompt_context(text, VOCAB, model.conditioning.context_shape)  # (T,)
            with torch.no_grad():
                images = model.sample(n, c, generator=gen, mean=True)  # (n, 1, 28, 28)
                predicted = net(images.float()).argmax(-1)  # (n,)
            acc = float((predicted == label).double().mean())
            prompts.append({"prompt": text, "class": label, "accuracy": acc})
            log(f"    {text!r:>18} -> {CLASS_NAMES[label]:<12} {acc:.3f}")
    per_class = [
        sum(p["accuracy"] for p in prompts if p["class"] == k) / len(PARAPHRASES[k])
        for k in range(len(PARAPHRASES))
    ]
    return {
        **out,
        "model": {"name": "vae", **VAE, "decoder": "bernoulli"},
        "images_per_prompt": n,
        "classifier": classifier.feature_space,
        "classifier_test_accuracy": classifier.test_accuracy,
        "prompts": prompts,
        "per_class": per_class,
        "accuracy": sum(per_class) / len(per_class),
        "eval_s": round(time.perf_counter() - t0, 1),
    }


def image_to_text(quick: bool) -> dict[str, Any]:
    """Train the captioner; caption the test images, sampled and greedy."""
    data = DataConfig(name="fashion_mnist_captions", root=fashion_mnist_root())
    steps = QUICK_STEPS if quick else STEPS["image_to_text"]
    model, out = _train("image_to_text", "char_rnn", data, steps, quick, **CAPTIONER)
    test = data.load("test")
    m = QUICK_TEST if quick else len(test)
    images, labels = test.context[:m], test.y[:m]
    gen = torch.Generator().manual_seed(SEED)
    t0 = time.perf_counter()
    result: dict[str, Any] = {**out, "model": {"name": "char_rnn", **CAPTIONER}, "test_images": m}
    for mode, options in (("sampled", {}), ("greedy", {"top_k": 1})):
        with torch.no_grad():
            tokens = torch.cat(
                [model.sample(len(c), c, generator=gen, **options) for c in images.split(500)]
            )
        texts = decode(tokens, VOCAB)
        right = torch.tensor(
            [names_class(t, y) for t, y in zip(texts, labels.tolist(), strict=True)]
        )
        every = {t for group in PARAPHRASES for t in group}
        well_formed = sum(t in every for t in texts) / m
        per_class = [float(right[labels == k].double().mean()) for k in range(len(PARAPHRASES))]
        result[mode] = {
            "accuracy": float(right.double().mean()),
            "well_formed": well_formed,
            "per_class": per_class,
            "examples": [
                {"caption": t, "class": CLASS_NAMES[y]}
                for t, y in zip(texts[:10], labels[:10].tolist(), strict=True)
            ],
        }
        log(
            f"    {mode}: caption accuracy {result[mode]['accuracy']:.3f}, well-formed "
            f"{well_formed:.3f}"
        )
    result["eval_s"] = round(time.perf_counter() - t0, 1)
    return result


def run(quick: bool = False) -> dict[str, Any]:
    with one_thread():
        warning = busy_warning()
        if warning:
            log(warning)
        t0 = time.perf_counter()
        payload: dict[str, Any] = {"threads": 1, "batch_size": BATCH, "lr": LR}
        log("-- text to image (vae on fashion_mnist_text)")
        payload["text_to_image"] = text_to_image(quick)
        log("-- image to text (char_rnn on fashion_mnist_captions)")
        payload["image_to_text"] = image_to_text(quick)
        wall = time.perf_counter() - t0
        steps = max(payload[d]["steps"] for d in ("text_to_image", "image_to_text"))
        path = write_result(NAME, payload, quick=quick, seed=SEED, steps=steps, wall_time_s=wall)
        log(f"{NAME}: {wall:.0f} s -> {path}")
        return payload


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for the README: per-class accuracy of both directions."""
    t2i, i2t = record["text_to_image"], record["image_to_text"]
    lines = [
        f"Cross-modal conditioning on Fashion-MNIST (captions: {sum(map(len, PARAPHRASES))} "
        "paraphrases of the 10 class names). Text to image: a VAE conditioned on the caption "
        f"({t2i['steps']} steps), {t2i['images_per_prompt']} images per prompt, the share "
        f"that {t2i['classifier']} (test accuracy {t2i['classifier_test_accuracy']:.3f}) "
        "puts in the prompt's class, averaged over the class's paraphrases. Image to text: a "
        f"char_rnn captioner ({i2t['steps']} steps) on {i2t['test_images']} test images, the "
        "share of captions that are a paraphrase of the image's class.",
        "",
        "| class | text → image | caption (sampled) | caption (greedy) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for k, name in enumerate(CLASS_NAMES):
        lines.append(
            f"| {name} | {t2i['per_class'][k]:.3f} | {i2t['sampled']['per_class'][k]:.3f} | "
            f"{i2t['greedy']['per_class'][k]:.3f} |"
        )
    lines.append(
        f"| **all** | **{t2i['accuracy']:.3f}** | **{i2t['sampled']['accuracy']:.3f}** | "
        f"**{i2t['greedy']['accuracy']:.3f}** |"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "60 steps each, 20 images per prompt, 500 test images", argv)


if __name__ == "__main__":
    raise SystemExit(main())
