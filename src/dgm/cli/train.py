"""The verbs that make runs: ``dgm list``, ``dgm train MODEL ...`` and ``dgm resume DIR``.

dgm train MODEL --data NAME --steps N --out DIR [--seed S] [--device cpu|cuda|auto] ...
dgm resume DIR [--steps N]
dgm convert --data NAME [--data-root ...] --out DIR [--shard-size N]

``train`` takes the flags of the model's config, the data's and the trainer's dataclasses
(generated, with the field comments as help) and the model's sampling options for the
pictures in samples/ (``--sample-...``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dgm import config as cfg
from dgm.cli import common
from dgm.data import available_datasets
from dgm.data.config import add_data_arguments
from dgm.data.config import from_flags as data_config_from_flags
from dgm.data.dataset import dataset_spec
from dgm.registry import available_models, spec
from dgm.train.config import TrainConfig

# Trainer fields with their own spelling on the command line (the interface), and
# sample_options, which the model's own sampling flags fill (--sample-steps, ...).
_TRAIN_SKIP = ("steps", "sample_options")
_PICTURE = "sample_"  # prefix of the picture's sampling flags on `dgm train`


def add_parsers(sub: Any, model: str | None = None) -> dict[str, argparse.ArgumentParser]:
    """Add list, train and resume to the subparsers ``sub``; ``model`` adds that model's
    config and sampling flags to ``train``. Returns their parsers."""
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
    common.threads_flag(t)
    t.add_argument(
        "--force",
        action="store_true",
        help="train even when the model is estimated not to fit in the memory available",
    )
    _data_flags(t)
    cfg.add_arguments(t.add_argument_group("training options"), TrainConfig, skip=_TRAIN_SKIP)
    if model is not None and model in available_models():
        common.check_model_flags(model)
        group = t.add_argument_group(f"{model} options")
        cfg.add_arguments(group, spec(model).config_cls)
        options = spec(model).cls.sample_options
        if options is not None:  # how the pictures in samples/ are drawn: --sample-steps ...
            group = t.add_argument_group(f"{model} sampling options for the pictures in samples/")
            cfg.add_arguments(group, options, prefix=_PICTURE)

    r = sub.add_parser("resume", help="continue a run to N total steps", allow_abbrev=False)
    common.run_dir_arg(r)
    r.add_argument(
        "--steps",
        type=int,
        default=None,
        help="total steps, more than the run has done (default: the run's own)",
    )
    common.threads_flag(r)

    c = sub.add_parser(
        "convert",
        help="write a dataset as numpy shards + index.json, to stream with --data shards",
        allow_abbrev=False,
    )
    c.add_argument("--data", required=True, help=f"one of: {', '.join(available_datasets())}")
    c.add_argument("--out", required=True, type=Path, help="folder for the shards (created)")
    c.add_argument(
        "--shard-size", type=int, default=10000, metavar="N", help="examples per shard (10000)"
    )
    _data_flags(c)

    return {"list": sub.choices["list"], "train": t, "resume": r, "convert": c}


def _data_flags(p: argparse.ArgumentParser) -> None:
    """--data-root and the data options of every dataset, grouped by dataset."""
    p.add_argument(
        "--data-root",
        dest="root",
        default=argparse.SUPPRESS,
        help="folder with the data files (IDX for mnist, fashion_mnist; a `dgm convert` "
        "folder for shards)",
    )
    add_data_arguments(p)


def _data_config(ns: argparse.Namespace) -> Any:
    """The DataConfig the flags give (one-line errors for an unknown dataset or an option
    the dataset does not take)."""
    return data_config_from_flags(ns.data, vars(ns))


def _picture_options(ns: argparse.Namespace, model: str) -> dict[str, Any]:
    """The model's sampling options given as ``dgm train --sample-...`` flags, for the
    pictures in samples/ (``TrainConfig.sample_options``)."""
    options = spec(model).cls.sample_options
    if options is None:
        return {}
    names = [f.name for f in cfg.dataclasses.fields(options)]
    return {name: getattr(ns, _PICTURE + name) for name in names if hasattr(ns, _PICTURE + name)}


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
    data = _data_config(ns)
    train_cfg = TrainConfig(
        steps=ns.steps,
        sample_options=_picture_options(ns, ns.model),
        **{k: v for k, v in common.fields_of(ns, TrainConfig).items() if k != "steps"},
    )
    model_cfg = {k: v for k, v in common.fields_of(ns, spec(ns.model).config_cls).items()}
    cfg.check_counts(spec(ns.model).config_cls, model_cfg)
    created = _created_folders(ns.out)
    if created:  # before the data are loaded: a bad --out fails at once
        with common.writing(ns.out, "create the run directory"):
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


def cmd_convert(ns: argparse.Namespace) -> int:
    from dgm.data.shards import convert

    if ns.shard_size < 1:
        raise ValueError(f"--shard-size must be at least 1, got {ns.shard_size}")
    index = convert(_data_config(ns), ns.out, ns.shard_size)
    for split, shards in index["splits"].items():
        n = sum(s["count"] for s in shards)
        print(f"{split}: {n} examples in {len(shards)} shard(s)")
    where = shlex.quote(str(ns.out))
    print(f"wrote {ns.out / 'index.json'}; train with: --data shards --data-root {where}")
    return 0


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


def _finish(run_dir: Path, last: dict[str, Any], model: Any) -> int:
    """What a finished (or stopped) train or resume tells the user, and the exit code."""
    from dgm.model import Likelihood

    code = 130 if last.get("interrupted") else 0
    if not common.rank_zero():
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
    if last.get("stopped_early"):
        print(
            f"stopped early at step {last['step']}: {last['patience']} evaluations "
            f"without a lower valid NLL than {last['best_nll']:.4g} nats (step "
            f"{last['best_step']}); those weights: dgm eval {where} --best"
        )
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
    from dgm.run_dir import Run

    try:  # a text run (its config holds a vocabulary) samples into decoded text
        text = Run.open(run_dir).vocab is not None and len(model.event_shape) == 1
    except (OSError, ValueError):
        text = False
    samples = run_dir / ("samples.txt" if text else "samples.png")
    print(f"  dgm sample {where} --out {shlex.quote(str(samples))}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": lambda ns: cmd_list(),
    "train": cmd_train,
    "resume": cmd_resume,
    "convert": cmd_convert,
}

__all__ = ["COMMANDS", "add_parsers"]
