"""What every verb of the ``dgm`` command shares, said once: the run flags (``--best``,
``--no-ema``, ``--device``, ``--threads``), the counts that must be positive, opening a
run, output paths, writing JSON results, the flag names a model may not take, and the
layer that turns an ``OSError`` into one line naming the file and the reason."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from dgm.run_dir import Run

# Hand-written counts that must be at least 1 (the generated ones carry their own minimum:
# dgm.config.count_minimum), checked after parsing, before any work: namespace attribute.
POSITIVE = ("batch_size", "threads", "steps")

# -- flags a model may not take -----------------------------------------------------------
# A model's config fields become `dgm train` flags and its sampling options `dgm sample`
# flags, beside the trainer's (TrainConfig), the data's (DataConfig) and the command's own:
# a field named like one of these would collide. Checked when the parsers are built and, for
# every registered model, by tests/test_registry.py.
TRAIN_CLI_FLAGS = (
    "model",
    "data",
    "data_root",
    "out",
    "overwrite",
    "init_from",
    "threads",
    "force",
    "help",
    "version",
)
SAMPLE_CLI_FLAGS = (
    "run_dir",
    "n",
    "out",
    "seed",
    "cls",
    "caption",
    "best",
    "no_ema",
    "device",
    "threads",
    "batch_size",
    "force",
    "help",
)


def reserved_train_flags() -> dict[str, str]:
    """Every name ``dgm train`` already uses for a flag, with who owns it."""
    from dgm.data.config import DataConfig, data_flag_names, option_names
    from dgm.train.config import TrainConfig

    owners = {f.name: "the trainer (TrainConfig)" for f in dataclasses.fields(TrainConfig)}
    owners |= {f.name: "the data (DataConfig)" for f in dataclasses.fields(DataConfig)}
    data = "the data (a dataset's options)"  # flag --binarize, stored as data_binarize
    owners |= {name: data for name in data_flag_names()}
    owners |= {"data_" + name: data for name in option_names()}
    owners |= {name: "the dgm train command" for name in TRAIN_CLI_FLAGS}
    return owners


def check_fields(name: str, cls: type, reserved: dict[str, str], what: str) -> None:
    """Refuse a config dataclass whose fields would collide with ``reserved`` flags, or
    that nests another dataclass (configs stay flat: one flag per field)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"the {what} of model {name!r} must be a dataclass, got {cls!r}")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in reserved:
            raise ValueError(
                f"model {name!r}: {what} field {f.name!r} collides with the flag "
                f"--{f.name.replace('_', '-')} of {reserved[f.name]}; rename the field "
                f"(e.g. {name}_{f.name})"
            )
        if dataclasses.is_dataclass(hints[f.name]):
            raise ValueError(
                f"model {name!r}: {what} field {f.name!r} is a nested dataclass; keep "
                "configs flat (one field per command-line flag)"
            )


def check_model_flags(name: str) -> None:
    """Refuse registered model ``name`` if its config or sampling options would take a
    flag of ``dgm train`` or ``dgm sample``."""
    from dgm.registry import spec

    found = spec(name)
    check_fields(name, found.config_cls, reserved_train_flags(), "config")
    if found.cls.sample_options is not None:
        reserved = {k: "the dgm sample command" for k in SAMPLE_CLI_FLAGS}
        check_fields(name, found.cls.sample_options, reserved, "sample option")


# -- flags ---------------------------------------------------------------------------------


def threads_flag(p: argparse.ArgumentParser | Any) -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads torch uses (default: torch's own choice, usually one per core)",
    )


def run_flags(p: argparse.ArgumentParser, *, device: bool = True) -> None:
    """The flags that choose how a saved run's model is loaded: --best, --no-ema,
    --device (``device``) and --threads."""
    p.add_argument("--best", action="store_true", help="best.safetensors (best valid NLL)")
    p.add_argument("--no-ema", action="store_true", help="the raw weights, not their EMA")
    if device:
        p.add_argument(
            "--device",
            default="auto",
            choices=["cpu", "cuda", "auto"],
            help="where the model runs (default: auto, CUDA when torch sees it)",
        )
    threads_flag(p)


def split_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--split",
        default="test",
        choices=["train", "valid", "test"],
        help="the run's data split the examples come from (default: test)",
    )


def run_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="DIR", help="a run directory (dgm train --out)")


def check_counts(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse a count below its minimum in one line naming the flag, not the field: every
    flag of ``parser`` generated from a dataclass count field (its ``minimum``) and the
    hand-written POSITIVE ones."""
    from dgm.config import count_error

    for action in parser._actions:
        low = getattr(action, "minimum", 1 if action.dest in POSITIVE else None)
        value = getattr(ns, action.dest, None)
        if low is None or not action.option_strings or isinstance(value, bool):
            continue
        if isinstance(value, int) and value < low:
            raise ValueError(count_error(action.option_strings[0], value, low))


def fields_of(ns: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The parsed values of the fields of dataclass ``cls`` (its generated flags)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(ns).items() if k in names}


def rank_zero() -> bool:
    """True unless this is a torchrun process other than rank 0 (which alone reports)."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


# -- runs and outputs -------------------------------------------------------------------


def open_run(ns: argparse.Namespace, path: Path | None = None) -> tuple[Run, Any]:
    """The run in ``path`` (default: ``ns.run_dir``) and its model loaded as the run flags
    ask (--best, --no-ema, --device; the CPU for verbs without --device)."""
    run = Run.open(path if path is not None else ns.run_dir)
    device = getattr(ns, "device", "cpu")
    return run, run.model(best=ns.best, ema=not ns.no_ema, device=device)


def not_a_folder(out: Path, what: str, example: str) -> None:
    """Refuse an --out that is an existing folder, suggesting file ``example`` in it."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: name {what}, e.g. {out / example}")


def write_json(path: Path | None, record: dict[str, Any]) -> None:
    """Write a verb's results to ``path`` (--json FILE), when given."""
    if path is None:
        return
    from dgm.io import write_json as write

    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, record)
    print(f"wrote {path}")


class WriteError(OSError):
    """A failed write, already explained in one line."""


@contextlib.contextmanager
def writing(path: Path, what: str = "write") -> Iterator[None]:
    """Turns an OSError while writing ``path`` into one line that names it and says why."""
    try:
        yield
    except WriteError:
        raise
    except OSError as e:
        raise WriteError(f"cannot {what} {path}: {why(e, path)}") from None


def why(error: OSError, path: Path | None = None) -> str:
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


def os_error_line(error: OSError) -> str:
    """An OSError as one line: our own message, else the path and the reason."""
    return str(error) if error.filename is None else f"{error.filename}: {why(error)}"


def examples(
    run: Run, split: str, which: int | list[int], device: Any, seed: int
) -> tuple[Any, Any]:
    """(Batch, c) of examples of the run's ``split`` on ``device``: the first
    min(which, len) when ``which`` is a count, else those at the indices ``which``; c
    through ``Run.conditions``. ``seed`` draws dynamic binarization."""
    data = run.data(split)
    return batch_of(data, which, device, seed), run.conditions(
        split, _index(data, which), device=device
    )


def batch_of(data: Any, which: int | list[int], device: Any, seed: int) -> Any:
    """Examples of ``data`` (a count from the start, or indices) as a Batch on ``device``."""
    from dgm.data.dataset import take

    gen = torch.Generator().manual_seed(seed)  # dynamic binarization
    return take(data, _index(data, which), device, gen)


def _index(data: Any, which: int | list[int]) -> Any:
    if isinstance(which, int):
        if len(data) == 0:
            raise ValueError(f"dataset {data.name!r} has no examples in this split")
        return torch.arange(min(which, len(data)))
    return torch.as_tensor(which)
