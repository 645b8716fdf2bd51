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
from dgm.evaluate.sample_quality import EvalOptions
from dgm.registry import available_models, spec
from dgm.sampling import SampleOptions
from dgm.tasks.cas import CasOptions
from dgm.tasks.inpaint import CompleteOptions

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
    common.split_flag(e)
    e.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="examples per forward pass (default: 500, 100000 / K with --iw-samples K)",
    )
    common.run_flags(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    cfg.add_arguments(e, EvalOptions)
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
    cfg.add_arguments(s, SampleOptions)
    common.run_flags(s)
    options = spec(sampled).cls.sample_options if sampled in available_models() else None
    if options is not None:
        cfg.add_arguments(
            s.add_argument_group(f"{sampled} sampling options"), options, flags=SAMPLING_FLAGS
        )
    m = sub.add_parser(
        "complete",
        help="inpaint hidden pixels of data examples (Completable image models)",
        allow_abbrev=False,
    )
    common.run_dir_arg(m)
    common.split_flag(m)
    m.add_argument("--seed", type=int, default=0, help="for the random mask and the draws")
    cfg.add_arguments(m, CompleteOptions)
    common.run_flags(m)
    return {"eval": e, "sample": s, "complete": m}


def cmd_eval(ns: argparse.Namespace) -> int:
    from dgm.evaluate.likelihood import evaluate
    from dgm.evaluate.sample_quality import data_kind, sample_quality, sample_quality_lines
    from dgm.model import Likelihood
    from dgm.tasks.cas import cas_lines, check_class_conditional, classification_accuracy_score

    o = cfg.options_from(ns, EvalOptions)
    run, model = common.open_run(ns)
    if ns.cas:  # before any work: a model without class labels is refused at once
        check_class_conditional(model, f"the {run.name} model of {ns.run_dir}")
    if o.sample_quality:  # before any work: text runs are refused at once
        data_kind(tuple(model.event_shape), model.integer_data)
    elif model.likelihood is Likelihood.NONE and not ns.cas:
        raise ValueError(
            f"the {run.name} model of {ns.run_dir} has no likelihood: measure its "
            f"samples with dgm eval {shlex.quote(str(ns.run_dir))} --sample-quality or --cas"
        )
    elif o.classes is not None:
        raise ValueError("--class picks the classes of --sample-quality: add that flag")
    data = run.data(ns.split)
    torch.manual_seed(0)  # the ELBO and IWAE estimates are stochastic: make them repeatable
    batch = ns.batch_size or (max(1, 100_000 // o.iw_samples) if o.iw_samples else 500)
    result: dict[str, Any] = {"split": ns.split}
    if model.likelihood is not Likelihood.NONE:
        result |= evaluate(model, data, iw_samples=o.iw_samples, batch_size=batch, progress=True)
    if o.sample_quality:
        options = _sampling_options(ns, model)
        model.sample_settings(options)
        result["sample_quality"] = sample_quality(
            model,
            data,
            num_samples=o.num_samples,
            batch_size=batch,
            classes=o.classes,
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

    o = cfg.options_from(ns, SampleOptions)
    common.not_a_folder(o.out, "a picture file", "samples.png")
    run, model = common.open_run(ns)
    planned = sampling.plan(run, model, o, _sampling_options(ns, model))  # before drawing
    with common.writing(o.out):
        lines = sampling.sample_file(run, model, o, planned)
    print("\n".join(lines))
    return 0


def cmd_complete(ns: argparse.Namespace) -> int:
    from dgm.capabilities import model_modality, require
    from dgm.data.dataset import take
    from dgm.model import Completable
    from dgm.report.plots import default_range, picture_format
    from dgm.tasks.inpaint import image_mask, save_completion_grid

    o = cfg.options_from(ns, CompleteOptions)
    out: Path = o.out if o.out is not None else ns.run_dir / f"complete-{o.mask}.png"
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
    n = min(o.n, len(data))
    gen = torch.Generator().manual_seed(ns.seed)  # CPU: the mask and dynamic binarization
    index = torch.arange(n)
    x = take(data, index, model.device, gen).x
    c = run.conditions(ns.split, index, device=model.device)
    mask = image_mask(o.mask, x.shape, gen).to(model.device)
    draws = torch.Generator(model.device).manual_seed(ns.seed)
    with torch.no_grad():
        completed = model.complete(x, mask, c, draws)
    value_range = run.value_range or default_range(x)
    with common.writing(out):
        save_completion_grid(x, mask, completed, value_range, out)
    hidden = int((~mask[:, 0]).sum())
    total = mask[:, 0].numel()
    print(
        f"filled {hidden} of {total} pixels ({100 * hidden / total:.1f} %) in {n} "
        f"{ns.split} examples, mask {o.mask}; wrote {out} (rows: originals, masked, "
        "completions)"
    )
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "eval": cmd_eval,
    "sample": cmd_sample,
    "complete": cmd_complete,
}

__all__ = ["COMMANDS", "SAMPLING_FLAGS", "add_parsers"]
