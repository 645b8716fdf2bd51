"""The ``dgm`` command. It parses arguments and calls the library; it holds no logic of its own.

dgm list
dgm train MODEL --data NAME --steps N --out DIR [--seed S] [--device cpu|cuda|auto] ...
dgm resume DIR --steps N
dgm eval DIR [--split test] [--iw-samples K] [--json]
dgm sample DIR -n 64 [--class C] --out FILE.png
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dgm import config as cfg
from dgm.data import DataConfig, available_datasets
from dgm.data.dataset import dataset_spec
from dgm.registry import available_models, spec
from dgm.train.config import TrainConfig

# Trainer fields with their own spelling on the command line (the interface).
_TRAIN_SKIP = ("steps",)


def _parser(model: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dgm", description="Deep generative models: train, evaluate, sample."
    )
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="registered models and datasets")

    t = sub.add_parser("train", help="train a new model into a run directory")
    t.add_argument("model", metavar="MODEL", help=f"one of: {', '.join(available_models())}")
    t.add_argument("--data", required=True, help=f"one of: {', '.join(available_datasets())}")
    t.add_argument("--steps", type=int, required=True, help="total training steps")
    t.add_argument("--out", required=True, type=Path, help="run directory to create")
    data_flags = t.add_argument_group("data options")
    cfg.add_arguments(data_flags, DataConfig, skip=("name", "root"), unset="the dataset's own")
    data_flags.add_argument(
        "--data-root",
        dest="root",
        default=argparse.SUPPRESS,
        help="folder with the data files (IDX for mnist, fashion_mnist)",
    )
    cfg.add_arguments(t.add_argument_group("training options"), TrainConfig, skip=_TRAIN_SKIP)
    if model is not None and model in available_models():
        group = t.add_argument_group(f"{model} options")
        cfg.add_arguments(group, spec(model).config_cls)

    r = sub.add_parser("resume", help="continue a run to N total steps")
    r.add_argument("run_dir", type=Path)
    r.add_argument("--steps", type=int, default=None, help="total steps (default: the run's own)")

    e = sub.add_parser("eval", help="negative log-likelihood (or its bound) on a split")
    e.add_argument("run_dir", type=Path)
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument(
        "--iw-samples", type=int, default=None, help="importance samples K (latent models)"
    )
    e.add_argument("--batch-size", type=int, default=None)
    e.add_argument("--best", action="store_true", help="evaluate best.safetensors (best valid NLL)")
    e.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    e.add_argument("--json", action="store_true", help="print one JSON object")

    s = sub.add_parser("sample", help="draw samples into a PNG grid")
    s.add_argument("run_dir", type=Path)
    s.add_argument("-n", type=int, default=64)
    s.add_argument(
        "--class", dest="cls", type=int, default=None, help="class label (conditional models)"
    )
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--best", action="store_true")
    return p


def _model_name(argv: Sequence[str]) -> str | None:
    """MODEL of ``dgm train MODEL ...``, needed before parsing to add its config flags."""
    args = list(argv)
    if len(args) >= 2 and args[0] == "train" and not args[1].startswith("-"):
        return args[1]
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
    data = DataConfig(
        name=ns.data, **{k: v for k, v in _split(ns, DataConfig).items() if k != "name"}
    )
    dataset_spec(data.name)
    train_cfg = TrainConfig(
        steps=ns.steps, **{k: v for k, v in _split(ns, TrainConfig).items() if k != "steps"}
    )
    model_cfg = {k: v for k, v in _split(ns, spec(ns.model).config_cls).items()}
    _, last = train(ns.model, data, ns.out, train_cfg, **model_cfg)
    return _finish(ns.out, last)


def cmd_resume(ns: argparse.Namespace) -> int:
    from dgm.train import resume

    _, last = resume(ns.run_dir, ns.steps)
    return _finish(ns.run_dir, last)


def _finish(run_dir: Path, last: dict[str, Any]) -> int:
    if last.get("interrupted"):
        print(
            f"interrupted at step {last.get('step')}; continue with: dgm resume {run_dir}",
            file=sys.stderr,
        )
        return 130
    summary = {
        k: round(v, 4) if isinstance(v, float) else v for k, v in last.items() if k != "interrupted"
    }
    print(json.dumps(summary), file=sys.stderr)
    return 0


def cmd_eval(ns: argparse.Namespace) -> int:
    from dgm.evaluate.likelihood import evaluate
    from dgm.train import checkpoint as ckpt
    from dgm.train.trainer import resolve_device

    saved = ckpt.read_json(ns.run_dir / ckpt.CONFIG)
    model = ckpt.load_model(ns.run_dir, best=ns.best).to(resolve_device(ns.device))
    data = cfg.from_dict(DataConfig, saved["data"]).load(ns.split)
    torch.manual_seed(0)  # the ELBO and IWAE estimates are stochastic: make them repeatable
    batch = ns.batch_size or (max(1, 100_000 // ns.iw_samples) if ns.iw_samples else 500)
    result = {
        "split": ns.split,
        **evaluate(model, data, iw_samples=ns.iw_samples, batch_size=batch),
    }
    if ns.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>16}: {v:.4f}" if isinstance(v, float) else f"{k:>16}: {v}")
    return 0


def cmd_sample(ns: argparse.Namespace) -> int:
    from dgm.report.plots import save_samples
    from dgm.train import checkpoint as ckpt

    model = ckpt.load_model(ns.run_dir, best=ns.best)
    c = None
    if ns.cls is not None or model.conditional:
        if ns.cls is None:
            c = torch.arange(ns.n) % model.num_classes  # one row per class
        else:
            c = torch.full((ns.n,), ns.cls, dtype=torch.long)
    gen = torch.Generator(model.device).manual_seed(ns.seed)
    with torch.no_grad():
        x = model.sample(ns.n, c, generator=gen)
    if not save_samples(x, ns.out):
        torch.save(x, ns.out.with_suffix(".pt"))
        print(
            f"samples of shape {tuple(x.shape)} have no picture; wrote {ns.out.with_suffix('.pt')}"
        )
        return 0
    print(f"wrote {ns.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ns = _parser(_model_name(argv)).parse_args(argv)
    commands = {
        "list": lambda: cmd_list(),
        "train": lambda: cmd_train(ns),
        "resume": lambda: cmd_resume(ns),
        "eval": lambda: cmd_eval(ns),
        "sample": lambda: cmd_sample(ns),
    }
    try:
        return commands[ns.command]()
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"dgm {ns.command}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        from dgm.train.trainer import TrainingDiverged

        if isinstance(e, TrainingDiverged):
            print(f"dgm {ns.command}: training stopped: {e}", file=sys.stderr)
            return 3
        raise
    finally:
        from dgm.train import distributed

        distributed.teardown()
