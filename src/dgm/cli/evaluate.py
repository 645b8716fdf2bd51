"""The verbs that read a trained run's model: ``dgm eval``, ``dgm sample`` and
``dgm complete``.

dgm eval DIR [--split test] [--iw-samples K] [--json] [--sample-quality [--num-samples N]]
         [--cas [--cas-n N]]
dgm sample DIR --out FILE [-n 64] [--class C | --caption TEXT] [--seed S] [model options]
dgm complete DIR --mask bottom-half|top-half|left-half|right-half|center|random [-n 8]

``sample``'s --out suffix picks what is written (``dgm.sampling``); a model's own sampling
options (a GPT's --prompt, a diffusion model's --sampler ...) are generated from its
``sample_options`` dataclass. complete (inpainting) needs an image run whose model is
``Completable``.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dgm import config as cfg
from dgm.cli import common
from dgm.registry import available_models, spec
from dgm.tasks.cas import CasOptions
from dgm.tasks.inpaint import MASKS

# Sampling options whose field name is a flag with another meaning elsewhere: --steps is
# the training steps of train and resume, so a sampler's steps are --sampling-steps.
SAMPLING_FLAGS = {"steps": "--sampling-steps"}


def add_parsers(sub: Any, sampled: str | None = None) -> dict[str, argparse.ArgumentParser]:
    """Add eval, sample and complete to the subparsers ``sub``; ``sampled`` (the model of
    the run named) adds its sampling options to eval and sample. Returns their parsers."""
    e = sub.add_parser(
        "eval",
        help="negative log-likelihood (or its bound) on a split, and with --sample-quality "
        "FD/KID/precision/recall of samples",
        allow_abbrev=False,
    )
    common.run_dir_arg(e)
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument(
        "--iw-samples", type=int, default=None, help="importance samples K (latent models)"
    )
    e.add_argument("--batch-size", type=int, default=None)
    common.run_flags(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument(
        "--sample-quality",
        action="store_true",
        help="also measure samples against the split: FD, KID, precision, recall (image "
        "runs: in dgm's own classifier features; 2-D toys: raw points, mode coverage); the "
        "only evaluation of models without a likelihood (GANs)",
    )
    e.add_argument(
        "--num-samples",
        type=int,
        default=5000,
        metavar="N",
        help="samples drawn for --sample-quality, compared with as many data examples "
        "(default: 5000; FD and KID are biased by the sample size: compare equal N)",
    )
    e.add_argument(
        "--class",
        dest="classes",
        type=int,
        action="append",
        default=None,
        metavar="C",
        help="--sample-quality of a class-conditional run: draw for class C (repeat the flag "
        "for several; default: every class)",
    )
    e.add_argument(
        "--cas",
        action="store_true",
        help="classification accuracy score of a class-conditional run: a classifier "
        "trained on its samples, scored on the real test split, beside the same classifier "
        "trained on real data and on both (dgm.tasks.cas)",
    )
    cfg.add_arguments(e.add_argument_group("--cas options"), CasOptions, prefix="cas_")
    if sampled in available_models():
        common.check_model_flags(sampled)
    if sampled in available_models() and spec(sampled).cls.sample_options is not None:
        cfg.add_arguments(  # how --sample-quality, --cas draw, e.g. a diffusion model's --sampler
            e.add_argument_group(f"{sampled} sampling options (with --sample-quality or --cas)"),
            spec(sampled).cls.sample_options,
            flags=SAMPLING_FLAGS,
        )

    s = sub.add_parser("sample", help="draw samples into a picture", allow_abbrev=False)
    common.run_dir_arg(s)
    s.add_argument("-n", type=int, default=64, help="number of samples (default: 64)")
    s.add_argument(
        "--class", dest="cls", type=int, default=None, help="class label (conditional models)"
    )
    s.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="output file, its suffix picks what it holds: a picture (.png, .jpg, .webp, "
        "...) for images (a grid) and 2-D points (a scatter); .txt for text runs (one "
        "decoded sequence per line); .npy (streamed) or .pt for the samples themselves, "
        "any run. Missing folders are created",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--batch-size",
        type=int,
        default=1024,
        metavar="B",
        help="samples drawn at a time (default: 1024); -n beyond it is drawn in batches and "
        "streamed to a .npy or .txt file",
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="write a .pt even when the samples are estimated not to fit in memory",
    )
    common.run_flags(s)
    options = spec(sampled).cls.sample_options if sampled in available_models() else None
    if options is not None:
        cfg.add_arguments(
            s.add_argument_group(f"{sampled} sampling options"), options, flags=SAMPLING_FLAGS
        )
    s.add_argument(
        "--caption",
        default=None,
        metavar="TEXT",
        help="text the samples are drawn for, for a model conditioned on a text (trained "
        "on fashion_mnist_text): it becomes c, in the run's characters",
    )
    m = sub.add_parser(
        "complete",
        help="inpaint hidden pixels of data examples (Completable image models)",
        allow_abbrev=False,
    )
    common.run_dir_arg(m)
    m.add_argument(
        "--mask",
        required=True,
        choices=MASKS,
        help="pixels to hide: a half, the central square, or each pixel with probability 0.5",
    )
    m.add_argument("-n", type=int, default=8, help="examples to complete (default: 8)")
    m.add_argument("--split", default="test", choices=["train", "valid", "test"])
    m.add_argument("--seed", type=int, default=0, help="for the random mask and the draws")
    m.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="picture file (its suffix picks the format; missing folders are created); "
        "rows of originals, masked inputs and completions. Default: "
        "RUN_DIR/complete-MASK.png",
    )
    common.run_flags(m)
    return {"eval": e, "sample": s, "complete": m}


def cmd_eval(ns: argparse.Namespace) -> int:
    from dgm.evaluate.likelihood import evaluate
    from dgm.evaluate.sample_quality import data_kind, sample_quality, sample_quality_lines
    from dgm.model import Likelihood
    from dgm.tasks.cas import cas_lines, check_class_conditional, classification_accuracy_score

    run, model = common.open_run(ns)
    if ns.cas:  # before any work: a model without class labels is refused at once
        check_class_conditional(model, f"the {run.name} model of {ns.run_dir}")
    if ns.sample_quality:  # before any work: text runs are refused at once
        data_kind(tuple(model.event_shape), model.integer_data)
    elif model.likelihood is Likelihood.NONE and not ns.cas:
        raise ValueError(
            f"the {run.name} model of {ns.run_dir} has no likelihood: measure its "
            f"samples with dgm eval {shlex.quote(str(ns.run_dir))} --sample-quality or --cas"
        )
    elif ns.classes is not None:
        raise ValueError("--class picks the classes of --sample-quality: add that flag")
    data = run.data(ns.split)
    torch.manual_seed(0)  # the ELBO and IWAE estimates are stochastic: make them repeatable
    batch = ns.batch_size or (max(1, 100_000 // ns.iw_samples) if ns.iw_samples else 500)
    result: dict[str, Any] = {"split": ns.split}
    if model.likelihood is not Likelihood.NONE:
        result |= evaluate(model, data, iw_samples=ns.iw_samples, batch_size=batch, progress=True)
    if ns.sample_quality:
        options = _sampling_options(ns, model)
        model.sample_settings(options)
        result["sample_quality"] = sample_quality(
            model,
            data,
            num_samples=ns.num_samples,
            batch_size=batch,
            classes=ns.classes,
            root=run.data_config.root,
            options=options,
        )
    if ns.cas:
        options = _sampling_options(ns, model)
        model.sample_settings(options)
        cas = CasOptions(**{k[4:]: v for k, v in vars(ns).items() if k.startswith("cas_")})
        result["cas"] = classification_accuracy_score(
            model, run.data("train"), run.data("test"), cas, sample_options=options
        )
    if ns.json:
        print(json.dumps(result))
        return 0
    for k, v in result.items():
        if k not in ("sample_quality", "cas"):
            print(f"{k:>16}: {v:.4f}" if isinstance(v, float) else f"{k:>16}: {v}")
    for line in sample_quality_lines(result.get("sample_quality", {})):
        print(line)
    for line in cas_lines(result["cas"]) if "cas" in result else []:
        print(line)
    return 0


def _sampling_options(ns: argparse.Namespace, model: Any) -> dict[str, Any]:
    """The model's sampling options as parsed, checked (bad ones before any draw)."""
    if model.sample_options is None:
        return {}
    options = common.fields_of(ns, model.sample_options)
    cfg.check_counts(model.sample_options, options, SAMPLING_FLAGS)
    return options


def cmd_sample(ns: argparse.Namespace) -> int:
    from dgm import sampling
    from dgm.capabilities import model_modality
    from dgm.data.dataset import take
    from dgm.report.plots import save_samples
    from dgm.train.memory import available_bytes, gib

    out: Path = ns.out
    common.not_a_folder(out, "a picture file", "samples.png")
    run, model = common.open_run(ns)
    vocab = run.vocab  # a text run: tokens decode to characters
    text = vocab is not None and model_modality(model) == "tokens"
    kind = sampling.output_kind(out, model.event_shape, text=text, n=ns.n)  # before drawing
    if kind == "pt" and not ns.force:  # one tensor in memory: refuse what cannot fit
        need = sampling.array_bytes(ns.n, model.event_shape, 8 if model.integer_data else 4)
        free = available_bytes("cpu")
        if free is not None and need > free:
            raise ValueError(
                f"-n {ns.n} samples need {gib(need)} in one tensor for {out.name}, more than "
                f"the {gib(free)} available: write --out FILE.npy (streamed to disk), or "
                "pass --force"
            )
    options = _sampling_options(ns, model)
    model.sample_settings(options)
    grid = ns.cls is None and ns.caption is None
    data = run.data("test") if grid and model.conditioning.kind == "context" else None
    c = sampling.sample_conditions(
        model, ns.n, label=ns.cls, caption=ns.caption, vocab=vocab, data=data
    )
    if isinstance(options.get("prompt"), str):  # --prompt text -> the run's token ids
        from dgm.data.text import encode_prompt

        if vocab is None:
            raise ValueError(f"--prompt needs a text run; {ns.run_dir} has no vocabulary")
        options["prompt"] = encode_prompt(options["prompt"], vocab)
    with common.writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator(model.device).manual_seed(ns.seed)
    with torch.no_grad():
        batches = sampling.draws(model, ns.n, c, ns.batch_size, gen, **options)
        if kind in ("npy", "pt"):
            with common.writing(out):
                shape = sampling.write_array(batches, out, ns.n)
            print(f"wrote {out} ({ns.n} samples, array of shape {shape})")
            return 0
        if kind == "text":
            assert vocab is not None
            with common.writing(out):
                count, score = sampling.write_text(batches, out, vocab, data)
            print(f"wrote {out} ({count} sequences, one per line)")
            if score is not None:
                print(score)
            return 0
        x = torch.cat(list(batches))
    extra: dict[str, Any] = {}
    if model_modality(model) == "points":  # drawn over the training data and the density
        extra = {"model": model}
        try:
            train_data = run.data("train")
            extra["data"] = take(train_data, torch.arange(min(2000, len(train_data))), "cpu").x
        except (KeyError, TypeError, ValueError, OSError):  # data gone: the samples alone
            pass
    with common.writing(out):
        save_samples(x, out, value_range=run.value_range, **extra)
    print(f"wrote {out}")
    return 0


def cmd_complete(ns: argparse.Namespace) -> int:
    from dgm.capabilities import model_modality, require
    from dgm.data.dataset import take
    from dgm.model import Completable
    from dgm.report.plots import default_range, image_grid, picture_format, save_picture
    from dgm.tasks.inpaint import completion_grid, image_mask

    out: Path = ns.out if ns.out is not None else ns.run_dir / f"complete-{ns.mask}.png"
    common.not_a_folder(out, "a picture file", "complete.png")
    picture_format(out)  # a suffix Pillow writes, checked before the model runs
    run, model = common.open_run(ns)
    require(model, Completable, "inpainting", f"the {run.name} model of {ns.run_dir}")
    if model_modality(model) != "image":
        raise ValueError(
            f"dgm complete inpaints images (event shape (C, H, W) with C 1 or 3); the run "
            f"in {ns.run_dir} has event shape {tuple(model.event_shape)}"
        )
    data = run.data(ns.split)
    n = min(ns.n, len(data))
    gen = torch.Generator().manual_seed(ns.seed)  # CPU: the mask and dynamic binarization
    index = torch.arange(n)
    x = take(data, index, model.device, gen).x
    c = run.conditions(ns.split, index, device=model.device)
    mask = image_mask(ns.mask, x.shape, gen).to(model.device)
    draws = torch.Generator(model.device).manual_seed(ns.seed)
    with torch.no_grad():
        completed = model.complete(x, mask, c, draws)
    value_range = run.value_range or default_range(x)
    images, columns = completion_grid(x, mask, completed, value_range)
    with common.writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        save_picture(image_grid(images, nrow=columns, value_range=tuple(value_range)), out)
    hidden = int((~mask[:, 0]).sum())
    total = mask[:, 0].numel()
    print(
        f"filled {hidden} of {total} pixels ({100 * hidden / total:.1f} %) in {n} "
        f"{ns.split} examples, mask {ns.mask}; wrote {out} (rows: originals, masked, "
        "completions)"
    )
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "eval": cmd_eval,
    "sample": cmd_sample,
    "complete": cmd_complete,
}

__all__ = ["COMMANDS", "SAMPLING_FLAGS", "add_parsers"]
