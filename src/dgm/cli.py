"""The ``dgm`` command. It parses arguments and calls the library; it holds no logic of its own.

dgm list
dgm train MODEL --data NAME --steps N --out DIR [--seed S] [--device cpu|cuda|auto] ...
dgm resume DIR --steps N
dgm eval DIR [--split test] [--iw-samples K] [--json] [--sample-quality [--num-samples N]]
dgm sample DIR -n 64 [--class C | --prompt TEXT] --out FILE.png
dgm complete DIR --mask bottom-half|top-half|left-half|right-half|center|random [-n 8]
             [--split test] [--seed S] [--out FILE.png] [--best] [--no-ema]
dgm anomaly DIR --ood mnist_subset [--in fashion_mnist] [--background DIR2] [-n N] [--json FILE]
dgm impute DIR --mask bottom-half|random|...|FILE [-m 5] [--out grid.png] [--json FILE]
dgm classify DIR [-n N] [--json FILE]
dgm --version

Flags are never abbreviated (``--step`` is not ``--steps``); a misspelled one is refused
with the subcommand's usage and the closest flag. train, resume, eval, sample and complete
take ``--threads N``. complete (inpainting) needs an image run whose model is ``Completable``.
The task verbs (anomaly, impute, classify) live in ``dgm.cli_tasks``.
The report verbs (report, compare) live in ``dgm.cli_report``.
The latent-space verbs (interpolate, represent, design) live in ``dgm.cli_latent``.
The compression verbs (compress, decompress) live in ``dgm.cli_compress``.
Errors are one line on stderr: exit 2 for bad input or files, 3 when training diverged,
130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import re
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from dgm import cli_compress, cli_latent, cli_report, cli_tasks
from dgm import config as cfg
from dgm.data import DataConfig, available_datasets
from dgm.data.config import add_data_arguments
from dgm.data.config import from_flags as data_config_from_flags
from dgm.data.dataset import dataset_spec
from dgm.registry import available_models, spec
from dgm.train.config import TrainConfig
from dgm.version import __version__

# Trainer fields with their own spelling on the command line (the interface), and
# sample_options, which the model's own sampling flags fill (--sample-steps, ...).
_TRAIN_SKIP = ("steps", "sample_options")
_PICTURE = "sample_"  # prefix of the picture's sampling flags on `dgm train`


# Counts that must be at least 1, checked after parsing (one line, not argparse's usage).
_POSITIVE = {"n": "-n", "iw_samples": "--iw-samples", "batch_size": "--batch-size"}
_POSITIVE |= {"threads": "--threads", "steps": "--steps", "num_samples": "--num-samples"}


# Sampling options whose field name is a flag with another meaning elsewhere: --steps is
# the training steps of train and resume, so a sampler's steps are --sampling-steps.
SAMPLING_FLAGS = {"steps": "--sampling-steps"}

# Flags renamed so that one flag has one meaning across verbs: verb -> {old: new}.
RENAMED = {
    "sample": {"--steps": "--sampling-steps"},
    "eval": {"--steps": "--sampling-steps"},
    "anomaly": {"--out": "--ood", "--out-root": "--ood-root"},
}


def _threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads torch uses (default: torch's own choice, usually one per core)",
    )


def _device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        choices=["cpu", "cuda", "auto"],
        help="where the model runs (default: auto, CUDA when torch sees it)",
    )


def _parser(
    model: str | None, sampled: str | None = None
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and its subcommands' parsers; ``model`` adds that model's config flags to
    ``train``, ``sampled`` (the model of the run being sampled) its sampling-option flags to
    ``sample``. No parser takes abbreviations: ``--step`` is refused, not read as --steps."""
    p = argparse.ArgumentParser(
        prog="dgm",
        description="Deep generative models: train, evaluate, sample.",
        allow_abbrev=False,
    )
    p.add_argument("--version", action="version", version=f"dgm {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="registered models and datasets", allow_abbrev=False)

    t = sub.add_parser("train", help="train a new model into a run directory", allow_abbrev=False)
    t.add_argument("model", metavar="MODEL", help=f"one of: {', '.join(available_models())}")
    t.add_argument("--data", required=True, help=f"one of: {', '.join(available_datasets())}")
    t.add_argument("--steps", type=int, required=True, help="total training steps")
    t.add_argument(
        "--out",
        required=True,
        type=Path,
        help="run directory to create (missing folders are created); one whose run never "
        "reached its first checkpoint is replaced, one with weights only with --overwrite",
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the weights and files of the run already in --out and start afresh",
    )
    t.add_argument(
        "--init-from",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="start from the weights of this run (same model; its model options are the "
        "defaults) as a new run in --out: optimizers and schedule start afresh",
    )
    _threads(t)
    t.add_argument(
        "--force",
        action="store_true",
        help="train even when the model is estimated not to fit in the memory available",
    )
    t.add_argument(
        "--data-root",
        dest="root",
        default=argparse.SUPPRESS,
        help="folder with the data files (IDX for mnist, fashion_mnist)",
    )
    add_data_arguments(t)
    cfg.add_arguments(t.add_argument_group("training options"), TrainConfig, skip=_TRAIN_SKIP)
    if model is not None and model in available_models():
        group = t.add_argument_group(f"{model} options")
        cfg.add_arguments(group, spec(model).config_cls)
        options = spec(model).cls.sample_options
        if options is not None:  # how the pictures in samples/ are drawn: --sample-steps ...
            group = t.add_argument_group(f"{model} sampling options for the pictures in samples/")
            cfg.add_arguments(group, options, prefix=_PICTURE)

    r = sub.add_parser("resume", help="continue a run to N total steps", allow_abbrev=False)
    r.add_argument("run_dir", type=Path)
    r.add_argument(
        "--steps",
        type=int,
        default=None,
        help="total steps, more than the run has done (default: the run's own)",
    )
    _threads(r)

    e = sub.add_parser(
        "eval",
        help="negative log-likelihood (or its bound) on a split, and with --sample-quality "
        "FD/KID/precision/recall of samples",
        allow_abbrev=False,
    )
    e.add_argument("run_dir", type=Path)
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument(
        "--iw-samples", type=int, default=None, help="importance samples K (latent models)"
    )
    e.add_argument("--batch-size", type=int, default=None)
    e.add_argument("--best", action="store_true", help="evaluate best.safetensors (best valid NLL)")
    e.add_argument("--no-ema", action="store_true", help="the raw weights, not their EMA")
    _device(e)
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
    _threads(e)
    if sampled in available_models() and spec(sampled).cls.sample_options is not None:
        cfg.add_arguments(  # how --sample-quality draws, e.g. a diffusion model's --sampler
            e.add_argument_group(f"{sampled} sampling options (with --sample-quality)"),
            spec(sampled).cls.sample_options,
            flags=SAMPLING_FLAGS,
        )

    s = sub.add_parser("sample", help="draw samples into a picture", allow_abbrev=False)
    s.add_argument("run_dir", type=Path)
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
    s.add_argument("--best", action="store_true")
    s.add_argument("--no-ema", action="store_true", help="the raw weights, not their EMA")
    _device(s)
    _threads(s)
    options = spec(sampled).cls.sample_options if sampled in available_models() else None
    if options is not None:
        cfg.add_arguments(
            s.add_argument_group(f"{sampled} sampling options"), options, flags=SAMPLING_FLAGS
        )
    if options is None or "prompt" not in {f.name for f in cfg.dataclasses.fields(options)}:
        s.add_argument(  # a model's own prompt option (the start of x) takes the flag first
            "--prompt",
            default=None,
            metavar="TEXT",
            help="text the samples are drawn for, for a model conditioned on a text (trained "
            "on fashion_mnist_text): it becomes c, in the run's characters",
        )
    from dgm.tasks.inpaint import MASKS

    m = sub.add_parser(
        "complete",
        help="inpaint hidden pixels of data examples (Completable image models)",
        allow_abbrev=False,
    )
    m.add_argument("run_dir", type=Path)
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
    m.add_argument("--best", action="store_true")
    m.add_argument("--no-ema", action="store_true", help="the raw weights, not their EMA")
    _device(m)
    _threads(m)
    parsers = {"list": sub.choices["list"], "train": t, "resume": r, "eval": e, "sample": s}
    tasks = cli_tasks.add_parsers(sub) | cli_report.add_parsers(sub)
    tasks |= cli_latent.add_parsers(sub)
    tasks |= cli_compress.add_parsers(sub)
    return p, parsers | {"complete": m} | tasks


def _picture_options(ns: argparse.Namespace, model: str) -> dict[str, Any]:
    """The model's sampling options given as ``dgm train --sample-...`` flags, for the
    pictures in samples/ (``TrainConfig.sample_options``)."""
    options = spec(model).cls.sample_options
    if options is None:
        return {}
    names = [f.name for f in cfg.dataclasses.fields(options)]
    return {name: getattr(ns, _PICTURE + name) for name in names if hasattr(ns, _PICTURE + name)}


def _renamed(command: str, args: Sequence[str]) -> str | None:
    """The one-line refusal of a flag renamed for ``command`` (RENAMED), or None."""
    for arg in args:
        if arg == "--":
            return None
        new = RENAMED.get(command, {}).get(arg.split("=", 1)[0])
        if new is not None:
            return f"{arg.split('=', 1)[0]} is now {new} for dgm {command}; pass {new}"
    return None


def _check_flags(parser: argparse.ArgumentParser, args: Sequence[str]) -> None:
    """Refuse a flag ``parser`` does not know, with its usage and the closest flag it does
    (before argparse, whose complaint about a missing required flag would come first)."""
    known = [o for action in parser._actions for o in action.option_strings]
    for arg in args:
        if arg == "--":
            return
        if not re.match(r"--?[A-Za-z]", arg):  # values, including negative numbers
            continue
        name = arg.split("=", 1)[0]
        if name in known or (not name.startswith("--") and name[:2] in known):  # -n4
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"see {parser.prog} --help"
        parser.error(f"unrecognized argument {name}: {hint}")


def _model_name(argv: Sequence[str]) -> str | None:
    """MODEL of ``dgm train MODEL ...``, needed before parsing to add its config flags."""
    args = list(argv)
    if len(args) >= 2 and args[0] == "train" and not args[1].startswith("-"):
        return args[1]
    return None


def _sampled_model(argv: Sequence[str]) -> str | None:
    """The model of the run in ``dgm sample RUN_DIR ...`` (or ``dgm eval RUN_DIR``), to add
    its sampling options."""
    from dgm.io import read_json

    args = list(argv)
    if len(args) >= 2 and args[0] in ("sample", "eval") and not args[1].startswith("-"):
        config = Path(args[1]) / "config.json"
        if config.is_file():
            try:
                return str(read_json(config).get("model"))
            except ValueError:
                return None  # cmd_sample reports the unreadable file
    return None


def _split(ns: argparse.Namespace, cls: type) -> dict[str, Any]:
    names = {f.name for f in cfg.dataclasses.fields(cls)}
    return {k: v for k, v in vars(ns).items() if k in names}


def cmd_list() -> int:
    print("models:")
    for name in available_models():
        print(f"  {name:<16} {spec(name).summary}")
    print("datasets:")
    for name in available_datasets():
        print(f"  {name:<16} {dataset_spec(name).summary}")
    return 0


def cmd_train(ns: argparse.Namespace) -> int:
    from dgm.train import train

    if ns.model not in available_models():
        raise ValueError(f"unknown model {ns.model!r}; available: {', '.join(available_models())}")
    data = data_config_from_flags(ns.data, vars(ns))
    train_cfg = TrainConfig(
        steps=ns.steps,
        sample_options=_picture_options(ns, ns.model),
        **{k: v for k, v in _split(ns, TrainConfig).items() if k != "steps"},
    )
    model_cfg = {k: v for k, v in _split(ns, spec(ns.model).config_cls).items()}
    cfg.check_counts(spec(ns.model).config_cls, model_cfg)
    created = _created_folders(ns.out)
    if created:  # before the data are loaded: a bad --out fails at once
        with _writing(ns.out, "create the run directory"):
            ns.out.mkdir(parents=True, exist_ok=True)
    try:
        model, last = train(
            ns.model,
            data,
            ns.out,
            train_cfg,
            check_memory=not ns.force,
            overwrite=ns.overwrite,
            init_from=ns.init_from,
            **model_cfg,
        )
    except (ValueError, OSError):
        _remove_empty(created)  # a refused start leaves no empty run directory behind
        raise
    return _finish(ns.out, last, model)


def _created_folders(path: Path) -> list[Path]:
    """The folders that creating ``path`` makes, deepest first."""
    return [p for p in (path, *path.parents) if not p.exists()]


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) that are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def cmd_resume(ns: argparse.Namespace) -> int:
    from dgm.train import resume

    model, last = resume(ns.run_dir, ns.steps)
    return _finish(ns.run_dir, last, model)


def _rank_zero() -> bool:
    """True unless this is a torchrun process other than rank 0 (which alone reports)."""
    return int(os.environ.get("RANK", "0")) == 0


def _finish(run_dir: Path, last: dict[str, Any], model: Any) -> int:
    """What a finished (or stopped) train or resume tells the user, and the exit code."""
    from dgm.model import Likelihood

    code = 130 if last.get("interrupted") else 0
    if not _rank_zero():
        return code
    where = shlex.quote(str(run_dir))
    if last.get("finished"):
        step = last["step"]
        print(
            f"{run_dir} has already finished its {step} steps; nothing was changed. "
            f"To train further: dgm resume {where} --steps N, with N more than {step}"
        )
        return 0
    if last.get("interrupted"):
        print(
            f"interrupted at step {last.get('step')}; continue with: dgm resume {where}",
            file=sys.stderr,
        )
        return code
    losses = [k for k in last if k.rpartition("/")[2] == "loss" and not k.startswith("valid/")]
    numbers = [f"{'train ' if k == 'loss' else ''}{k} {last[k]:.4g}" for k in losses]
    if isinstance(last.get("valid/nll"), float):
        numbers.append(f"valid NLL {last['valid/nll']:.4g} nats")
    print(f"trained to step {last.get('step')}" + (": " + ", ".join(numbers) if numbers else ""))
    print(f"run directory: {run_dir} (model.safetensors, metrics.jsonl, curves.png)")
    print("next:")
    if model.likelihood is not Likelihood.NONE:
        print(f"  dgm eval {where}")
    else:
        print(f"  dgm eval {where} --sample-quality")
    from dgm.io import read_json

    try:  # a text run (its config holds a vocabulary) samples into decoded text
        text = "vocab" in read_json(run_dir / "config.json") and len(model.event_shape) == 1
    except (OSError, ValueError):
        text = False
    samples = run_dir / ("samples.txt" if text else "samples.png")
    print(f"  dgm sample {where} --out {shlex.quote(str(samples))}")
    return 0


def cmd_eval(ns: argparse.Namespace) -> int:
    from dgm import run_dir as rd
    from dgm.evaluate.likelihood import evaluate
    from dgm.evaluate.sample_quality import data_kind, sample_quality, sample_quality_lines
    from dgm.model import Likelihood

    saved = rd.read_json(ns.run_dir / rd.CONFIG)
    model = rd.load_model(ns.run_dir, best=ns.best, ema=not ns.no_ema)
    model = model.to(rd.resolve_device(ns.device))
    if ns.sample_quality:  # before any work: text runs are refused at once
        data_kind(tuple(model.event_shape), model.integer_data)
    elif model.likelihood is Likelihood.NONE:
        raise ValueError(
            f"the {saved.get('model')} model of {ns.run_dir} has no likelihood: measure its "
            f"samples with dgm eval {shlex.quote(str(ns.run_dir))} --sample-quality"
        )
    elif ns.classes is not None:
        raise ValueError("--class picks the classes of --sample-quality: add that flag")
    data = cfg.from_dict(DataConfig, saved["data"]).load(ns.split)
    torch.manual_seed(0)  # the ELBO and IWAE estimates are stochastic: make them repeatable
    batch = ns.batch_size or (max(1, 100_000 // ns.iw_samples) if ns.iw_samples else 500)
    result: dict[str, Any] = {"split": ns.split}
    if model.likelihood is not Likelihood.NONE:
        result |= evaluate(model, data, iw_samples=ns.iw_samples, batch_size=batch, progress=True)
    if ns.sample_quality:
        root = saved["data"].get("root")
        options = _split(ns, model.sample_options) if model.sample_options is not None else {}
        if model.sample_options is not None:
            cfg.check_counts(model.sample_options, options, SAMPLING_FLAGS)
            model.sample_settings(options)
        quality = sample_quality(
            model,
            data,
            num_samples=ns.num_samples,
            batch_size=batch,
            classes=ns.classes,
            root=root,
            options=options,
        )
        result["sample_quality"] = quality
    if ns.json:
        print(json.dumps(result))
        return 0
    for k, v in result.items():
        if k != "sample_quality":
            print(f"{k:>16}: {v:.4f}" if isinstance(v, float) else f"{k:>16}: {v}")
    for line in sample_quality_lines(result.get("sample_quality", {})):
        print(line)
    return 0


def cmd_sample(ns: argparse.Namespace) -> int:
    from dgm import run_dir as rd
    from dgm import sampling
    from dgm.data.dataset import grid_conditions, take
    from dgm.report.plots import save_samples
    from dgm.train.memory import available_bytes, gib

    out: Path = ns.out
    if out.is_dir():
        raise ValueError(
            f"--out {out} is a folder: name a picture file, e.g. {out / 'samples.png'}"
        )
    saved = rd.read_json(ns.run_dir / rd.CONFIG)
    model = rd.load_model(ns.run_dir, best=ns.best, ema=not ns.no_ema)
    model = model.to(rd.resolve_device(ns.device))
    vocab = saved.get("vocab")  # a text run: tokens decode to characters
    text = vocab is not None and model.integer_data and len(model.event_shape) == 1
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
    cond = model.conditioning
    if ns.cls is not None and cond.kind != "classes":
        raise ValueError(
            f"--class needs a class-conditional model; the run in {ns.run_dir} was trained "
            "without --num-classes"
        )
    options = _split(ns, model.sample_options) if model.sample_options is not None else {}
    if model.sample_options is not None:  # bad options (--temperature inf) before any draw
        cfg.check_counts(model.sample_options, options, SAMPLING_FLAGS)
    model.sample_settings(options)
    text_c = getattr(ns, "prompt", None) if "prompt" not in options else None  # --prompt -> c
    if text_c is not None and not (cond.context_vocab and vocab):
        takes = "no c" if cond.kind == "none" else f"c = {cond.describe()}"
        raise ValueError(
            f"--prompt needs a model conditioned on a text; the run in {ns.run_dir} takes "
            f"{takes} (train one with --data fashion_mnist_text)"
        )
    data = None
    if ns.cls is not None:
        c = torch.full((ns.n,), ns.cls, dtype=torch.long, device=model.device)
    elif text_c is not None:
        from dgm.data.text import prompt_context

        c = prompt_context(text_c, vocab, cond.context_shape).to(model.device)
        c = c.expand(ns.n, *c.shape)  # (n, T): one c per sample, a view, sliced per batch
    else:  # one row per class, or the test split's first contexts
        if cond.kind == "context":
            data = cfg.from_dict(DataConfig, saved["data"]).load("test")
        c = grid_conditions(model, data, ns.n)
    if isinstance(options.get("prompt"), str):  # --prompt text -> the run's token ids
        from dgm.data.text import encode_prompt

        if vocab is None:
            raise ValueError(f"--prompt needs a text run; {ns.run_dir} has no vocabulary")
        options["prompt"] = encode_prompt(options["prompt"], vocab)
    with _writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator(model.device).manual_seed(ns.seed)
    with torch.no_grad():
        batches = sampling.draws(model, ns.n, c, ns.batch_size, gen, **options)
        if kind in ("npy", "pt"):
            with _writing(out):
                shape = sampling.write_array(batches, out, ns.n)
            print(f"wrote {out} ({ns.n} samples, array of shape {shape})")
            return 0
        if kind == "text":
            return _write_text(out, batches, vocab, data)
        x = torch.cat(list(batches))
    extra: dict[str, Any] = {}
    if tuple(model.event_shape) == (2,):  # drawn over the training data and the density
        extra = {"model": model}
        try:
            train_data = cfg.from_dict(DataConfig, saved["data"]).load("train")
            extra["data"] = take(train_data, torch.arange(min(2000, len(train_data))), "cpu").x
        except (KeyError, TypeError, ValueError, OSError):  # data gone: the samples alone
            pass
    with _writing(out):
        save_samples(x, out, value_range=saved.get("value_range"), **extra)
    print(f"wrote {out}")
    return 0


def _write_text(out: Path, batches: Iterator[torch.Tensor], vocab: Any, data: Any) -> int:
    """Decoded sequences, one per line, streamed to ``out``; for captions of test images
    also how often they name the image's class."""
    from dgm.data.text import decode
    from dgm.evaluate.caption_accuracy import caption_accuracy_line
    from dgm.sampling import write_lines

    texts: list[str] = []  # kept only to score captions (a context-conditional run)

    def lines() -> Iterator[str]:
        for x in batches:
            decoded = decode(x, vocab)
            if data is not None:
                texts.extend(decoded)
            yield from decoded

    with _writing(out):
        count = write_lines(lines(), out)
    print(f"wrote {out} ({count} sequences, one per line)")
    score = caption_accuracy_line(data, texts) if data is not None else None
    if score is not None:
        print(score)
    return 0


def cmd_complete(ns: argparse.Namespace) -> int:
    from dgm import run_dir as rd
    from dgm.data.dataset import take
    from dgm.model import Completable
    from dgm.report.plots import default_range, image_grid, picture_format, save_picture
    from dgm.tasks.inpaint import completion_grid, image_mask

    out: Path = ns.out if ns.out is not None else ns.run_dir / f"complete-{ns.mask}.png"
    if out.is_dir():
        raise ValueError(
            f"--out {out} is a folder: name a picture file, e.g. {out / 'complete.png'}"
        )
    picture_format(out)  # a suffix Pillow writes, checked before the model runs
    saved = rd.read_json(ns.run_dir / rd.CONFIG)
    model = rd.load_model(ns.run_dir, best=ns.best, ema=not ns.no_ema)
    model = model.to(rd.resolve_device(ns.device))
    name = saved.get("model", type(model).__name__)
    if not isinstance(model, Completable):
        able = [m for m in available_models() if issubclass(spec(m).cls, Completable)]
        raise ValueError(
            f"the {name} model of {ns.run_dir} is not Completable (it has no "
            f"complete(x, observed_mask)); inpainting needs one of: {', '.join(able)}"
        )
    shape = tuple(model.event_shape)
    if not (len(shape) == 3 and shape[0] in (1, 3)):
        raise ValueError(
            f"dgm complete inpaints images (event shape (C, H, W) with C 1 or 3); the run "
            f"in {ns.run_dir} has event shape {shape}"
        )
    data = cfg.from_dict(DataConfig, saved["data"]).load(ns.split)
    n = min(ns.n, len(data))
    gen = torch.Generator().manual_seed(ns.seed)  # CPU: the mask and dynamic binarization
    batch = take(data, torch.arange(n), model.device, gen)
    cond = model.conditioning
    c = {"classes": batch.y, "context": batch.context}.get(cond.kind)
    mask = image_mask(ns.mask, batch.x.shape, gen).to(model.device)
    draws = torch.Generator(model.device).manual_seed(ns.seed)
    with torch.no_grad():
        completed = model.complete(batch.x, mask, c, draws)
    value_range = saved.get("value_range") or default_range(batch.x)
    images, columns = completion_grid(batch.x, mask, completed, value_range)
    with _writing(out):
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


class _WriteError(OSError):
    """A failed write, already explained in one line."""


@contextlib.contextmanager
def _writing(path: Path, what: str = "write") -> Iterator[None]:
    """Turns an OSError while writing ``path`` into one line that names it and says why."""
    try:
        yield
    except _WriteError:
        raise
    except OSError as e:
        raise _WriteError(f"cannot {what} {path}: {_why(e, path)}") from None


def _why(error: OSError, path: Path | None = None) -> str:
    """Why writing ``path`` (default: the error's file) failed, in words: a parent that is
    a file, or the OS's reason, naming the folder that could not be made if it is not
    ``path`` itself."""
    path = path if path is not None else Path(error.filename or ".")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            break
    reason = error.strerror or str(error)
    failed = Path(error.filename) if error.filename else None
    if failed is not None and failed in path.parents:
        return f"{reason} ({failed})"
    return reason


def _check_counts(ns: argparse.Namespace) -> None:
    for name, flag in _POSITIVE.items():
        if name == "steps" and ns.command in ("sample", "eval"):
            continue  # a sampler's --sampling-steps, checked with the sampling options
        value = getattr(ns, name, None)
        if isinstance(value, int) and value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    model = _model_name(argv)
    if model is not None and model not in available_models():
        close = difflib.get_close_matches(model, available_models(), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        print(
            f"dgm train: error: unknown model {model!r}; {hint}available: "
            f"{', '.join(available_models())}",
            file=sys.stderr,
        )
        return 2
    parser, commands_parsers = _parser(model, _sampled_model(argv))
    if argv and argv[0] in commands_parsers:
        renamed = _renamed(argv[0], argv[1:])
        if renamed is not None:
            print(f"dgm {argv[0]}: error: {renamed}", file=sys.stderr)
            return 2
        _check_flags(commands_parsers[argv[0]], argv[1:])
    ns, extra = parser.parse_known_args(argv)
    if extra:  # e.g. a second run directory: the subcommand's usage, not the top-level one
        commands_parsers[ns.command].error(f"unrecognized arguments: {' '.join(extra)}")
    commands = {
        "list": lambda: cmd_list(),
        "train": lambda: cmd_train(ns),
        "resume": lambda: cmd_resume(ns),
        "eval": lambda: cmd_eval(ns),
        "sample": lambda: cmd_sample(ns),
        "complete": lambda: cmd_complete(ns),
        **{name: (lambda fn=fn: fn(ns)) for name, fn in cli_tasks.COMMANDS.items()},
        **{name: (lambda fn=fn: fn(ns)) for name, fn in cli_report.COMMANDS.items()},
        **{name: (lambda fn=fn: fn(ns)) for name, fn in cli_latent.COMMANDS.items()},
        **{name: (lambda fn=fn: fn(ns)) for name, fn in cli_compress.COMMANDS.items()},
    }
    try:
        _check_counts(ns)
        if getattr(ns, "threads", None) is not None:
            torch.set_num_threads(ns.threads)
        return commands[ns.command]()
    except ValueError as e:
        print(f"dgm {ns.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # our own messages, else the path and the reason
        text = str(e) if e.filename is None else f"{e.filename}: {_why(e)}"
        print(f"dgm {ns.command}: error: {text}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        from dgm.train.trainer import TrainingDiverged

        if isinstance(e, TrainingDiverged):
            from dgm.run_dir import has_weights

            again = ""
            if ns.command == "train" and not has_weights(ns.out):
                again = " (then the same dgm train --out starts afresh)"
            if _rank_zero():
                print(f"dgm {ns.command}: training stopped: {e}{again}", file=sys.stderr)
            return 3
        raise
    finally:
        from dgm.train import distributed

        distributed.teardown()
