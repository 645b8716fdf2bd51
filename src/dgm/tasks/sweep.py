"""Bias–variance curves: train one model per point of a grid over its size and the amount
of training data, and compare train and test NLL.

A small model underfits (train and test NLL both high: bias); a large one fitted to few
examples overfits (train NLL keeps falling while test NLL rises: variance). The gap
between the two curves is the generalisation gap; the minimum of test NLL is the size
(or data amount) the data support. With ``early_stopping`` each point is scored at the
step of its best validation NLL, and the step where validation NLL turned is recorded.

Each grid point is a run directory of its own under ``out`` (``point-<i>-<values>``),
trained by ``dgm.train.run.train``; a point whose ``sweep_point.json`` exists is done and
skipped, one interrupted after a checkpoint continues with ``dgm.train.run.resume``, so a
sweep that stops (killed, out of time) picks up where it was.

References:
    Hastie, Tibshirani & Friedman 2009, The Elements of Statistical Learning, ch. 7
    (model assessment, the bias–variance decomposition); Schwarz 1978, Estimating the
    Dimension of a Model (BIC).

Example:
    >>> parse_vary("gmm", ["num_components=1,2", "train_fraction=0.5"])
    {'num_components': (1, 2), 'train_fraction': (0.5,)}
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import re
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from dgm import run_dir as rd
from dgm.config import check_counts
from dgm.data.config import DataConfig
from dgm.io import read_json, write_json
from dgm.registry import available_models, spec

POINT_FILE = "sweep_point.json"  # a finished point's result, in its run directory
RESULT_FILE = "sweep.json"  # the whole sweep's table, in the sweep's folder


@dataclass
class SweepOptions:
    """How every point of a sweep trains and is scored."""

    steps: int = 1000  # training steps of every grid point
    batch_size: int = 128  # examples per step
    lr: float = 1e-3  # peak learning rate
    seed: int = 0  # seeds every point's initialisation and data order
    early_stopping: bool = (
        False  # score each point at its best validation NLL; show where it turned
    )
    eval_every: int = 0  # steps between validation NLLs; 0: steps // 20
    device: Literal["cpu", "cuda", "auto"] = "cpu"  # where the points train


def _fields(model: str) -> dict[str, tuple[str, Any]]:
    """What --vary may name: the model's config fields and the data's, with their types."""
    if model not in available_models():
        close = difflib.get_close_matches(model, available_models(), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ValueError(
            f"unknown model {model!r}; {hint}available: {', '.join(available_models())}"
        )
    out: dict[str, tuple[str, Any]] = {}
    for owner, cls in (("data", DataConfig), ("model", spec(model).config_cls)):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in ("name", "root"):
                out[f.name] = (owner, hints[f.name])
    return out


def _convert(tp: Any, text: str) -> Any:
    """One --vary value ``text`` as type ``tp``; a tuple's entries are separated by "/"."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        if text.lower() == "none":
            return None
        return _convert(next(a for a in typing.get_args(tp) if a is not type(None)), text)
    if origin is tuple:
        return tuple(_convert(typing.get_args(tp)[0], t) for t in text.split("/"))
    if origin is Literal:
        if text not in typing.get_args(tp):
            raise ValueError(f"choose from {', '.join(map(str, typing.get_args(tp)))}")
        return text
    if tp is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError("true or false")
        return text.lower() == "true"
    return tp(text)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        return f"sizes like 64 or 64/64 ({_type_name(typing.get_args(tp)[0])}s)"
    if origin in (Union, types.UnionType):
        return _type_name(next(a for a in typing.get_args(tp) if a is not type(None))) + " or none"
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    return {int: "an integer", float: "a number", str: "a word", bool: "true or false"}.get(
        tp, str(tp)
    )


def parse_vary(model: str, texts: list[str]) -> dict[str, tuple[Any, ...]]:
    """``FIELD=V1,V2,...`` strings (``--vary``) as field -> values, each value of the
    field's type (a tuple field's entries separated by "/": ``hidden_sizes=64/64,256/256``).
    A field the model and the data do not have is refused naming the close ones; a value
    of the wrong type naming the type."""
    fields = _fields(model)
    grid: dict[str, tuple[Any, ...]] = {}
    for text in texts:
        name, sep, values = text.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values.strip():
            raise ValueError(f"--vary {text!r}: write FIELD=V1,V2,..., e.g. hidden_sizes=16,64,256")
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ValueError(
                f"--vary {name}: {model} and its data have no option {name!r}; {hint}"
                f"they have: {', '.join(sorted(fields))}"
            )
        if name in grid:
            raise ValueError(f"--vary {name} is given twice: list all its values in one flag")
        owner, tp = fields[name]
        try:
            parsed = tuple(_convert(tp, v.strip()) for v in values.split(","))
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"--vary {text}: {name} takes {_type_name(tp)} ({e}), e.g. {name}="
                f"{'16,64,256' if typing.get_origin(tp) is tuple or tp is int else '0.1,1.0'}"
            ) from None
        cls = DataConfig if owner == "data" else spec(model).config_cls
        for value in parsed:
            check_counts(cls, {name: value}, {name: f"--vary {name}"})
        grid[name] = parsed
    if not grid:
        raise ValueError("a sweep needs at least one --vary FIELD=V1,V2,...")
    return grid


def _label(value: Any) -> str:
    return "/".join(map(str, value)) if isinstance(value, tuple) else str(value)


def points(grid: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first field varying slowest."""
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]


def point_name(i: int, values: dict[str, Any]) -> str:
    """The folder of point ``i``: its index and values, in safe characters."""
    text = "_".join(f"{k}={_label(v)}" for k, v in values.items())
    return f"point-{i:03d}-" + re.sub(r"[^A-Za-z0-9_.=-]", "-", text)


def _valid_curve(run: rd.Run) -> list[tuple[int, float]]:
    """(step, validation NLL) of each validation the trainer logged."""
    return [
        (int(r["step"]), float(r["valid/nll"]))
        for r in run.metrics()
        if "valid/nll" in r and "step" in r and math.isfinite(float(r["valid/nll"]))
    ]


def _score(path: Path, data: DataConfig, options: SweepOptions) -> dict[str, Any]:
    """NLLs of a trained point on its train split, the valid split and the test split."""
    from dgm.evaluate.likelihood import evaluate
    from dgm.train.run import load_splits

    run = rd.Run.open(path)
    best = options.early_stopping and (path / rd.BEST_WEIGHTS).is_file()
    model = run.model(best=best, device=options.device)
    train, valid = load_splits(data)
    record: dict[str, Any] = {"train_nll": evaluate(model, train)["nll"], "num_train": len(train)}
    record["valid_nll"] = evaluate(model, valid)["nll"] if valid is not None else None
    record["test_nll"] = evaluate(model, data.load("test"))["nll"]
    record["num_params"] = sum(t.numel() for t in model.state_dict().values())
    curve = _valid_curve(run)
    record["valid_curve"] = curve
    record["best_step"] = min(curve, key=lambda sv: sv[1])[0] if curve else None
    record["scored_at"] = "best validation" if best else "last step"
    return record


def train_config(options: SweepOptions, num_train: int) -> Any:
    """The TrainConfig of every point: batches of at most ``num_train`` (the point's train
    split), checkpoints four times per run (to resume), samples never, validation every
    ``eval_every`` steps."""
    from dgm.train.config import TrainConfig

    every = options.eval_every or max(1, options.steps // 20)
    return TrainConfig(
        steps=options.steps,
        batch_size=min(options.batch_size, num_train),
        lr=options.lr,
        seed=options.seed,
        device=options.device,
        warmup_steps=min(100, options.steps // 10),
        eval_every=every,
        log_every=every,
        sample_every=0,
        checkpoint_every=max(1, options.steps // 4),
    )


def run_point(
    model: str, data: DataConfig, path: Path, values: dict[str, Any], options: SweepOptions
) -> dict[str, Any]:
    """Train (or resume, or skip) one grid point in ``path`` and score it; returns its
    record with ``status`` "done before", "resumed" or "trained"."""
    from dgm.train import run as training

    if (path / POINT_FILE).is_file():
        return {**read_json(path / POINT_FILE), "status": "done before"}
    data_values = {
        k: v for k, v in values.items() if k in {f.name for f in dataclasses.fields(DataConfig)}
    }
    model_values = {k: v for k, v in values.items() if k not in data_values}
    point_data = dataclasses.replace(data, **data_values)
    start = time.process_time()
    if (path / rd.CONFIG).is_file() and rd.checkpoint_step(path) is not None:
        training.resume(path, options.steps, progress=False)
        status = "resumed"
    else:
        config = train_config(options, len(point_data.load("train")))
        training.train(model, point_data, path, config, progress=False, **model_values)
        status = "trained"
    record = {"values": {k: _label(v) for k, v in values.items()}, "raw_values": values}
    record |= _score(path, point_data, options)
    record["cpu_seconds"] = time.process_time() - start
    write_json(path / POINT_FILE, record)
    return {**record, "status": status}


def sweep(
    model: str,
    data: DataConfig,
    vary: dict[str, tuple[Any, ...]],
    out: str | Path,
    options: SweepOptions | None = None,
    *,
    log: Any = None,
) -> dict[str, Any]:
    """Train ``model`` on ``data`` at every point of grid ``vary`` (field -> values, model
    config or data fields, as ``parse_vary`` gives) into ``out``/point-*, and write the
    table ``out``/sweep.json. ``log`` (e.g. ``print``) is told of each point as it ends.

    Returns ``model``, ``data``, ``vary`` (the values as labels), ``options`` and
    ``points``: one record per grid point with its ``values``, ``train_nll``,
    ``valid_nll``, ``test_nll`` (nats per example, the last step's weights or, with
    ``early_stopping``, the best validation's), ``gap`` (test − train), ``num_train``,
    ``num_params``, ``bic`` (2 N·train NLL + parameters·ln N, Schwarz's criterion with
    every stored number counted as a parameter), ``best_step`` and ``valid_curve``.
    """
    options = options or SweepOptions()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file: name a folder for the sweep")
    for name, values in vary.items():  # values given directly (Python callers) checked too
        parse_vary(model, [f"{name}={','.join(_label(v) for v in values)}"])
    records = []
    for i, values in enumerate(points(vary)):
        record = run_point(model, data, out / point_name(i, values), values, options)
        record["point"] = point_name(i, values)
        record["gap"] = record["test_nll"] - record["train_nll"]
        n = record["num_train"]
        record["bic"] = 2 * n * record["train_nll"] + record["num_params"] * math.log(n)
        records.append(record)
        if log is not None:
            log(
                f"{record['point']}: {record['status']}, train NLL {record['train_nll']:.3f}, "
                f"test NLL {record['test_nll']:.3f}"
            )
    result = {
        "model": model,
        "data": dataclasses.asdict(data),
        "vary": {k: [_label(v) for v in vs] for k, vs in vary.items()},
        "options": dataclasses.asdict(options),
        "points": [{k: v for k, v in r.items() if k != "raw_values"} for r in records],
    }
    write_json(out / RESULT_FILE, result)
    return result


def minimum(result: dict[str, Any], key: str = "test_nll") -> dict[str, Any]:
    """The point of ``result`` with the smallest ``key``."""
    return min(result["points"], key=lambda p: p[key])


def table(result: dict[str, Any]) -> str:
    """The sweep as a markdown table, its test-NLL minimum in bold."""
    best = minimum(result)["point"]
    fields = list(result["vary"])
    head = [*fields, "train NLL", "test NLL", "gap", "valid NLL", "best step", "params", "BIC"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in result["points"]:
        bold = "**" if p["point"] == best else ""
        valid = "–" if p["valid_nll"] is None else f"{p['valid_nll']:.3f}"
        step = "–" if p["best_step"] is None else str(p["best_step"])
        cells = [p["values"][f] for f in fields] + [
            f"{p['train_nll']:.3f}",
            f"{bold}{p['test_nll']:.3f}{bold}",
            f"{p['gap']:.3f}",
            valid,
            step,
            str(p["num_params"]),
            f"{p['bic']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load(out: str | Path) -> dict[str, Any]:
    """The sweep.json of a sweep folder."""
    return read_json(Path(out) / RESULT_FILE)


__all__ = [
    "SweepOptions",
    "load",
    "minimum",
    "parse_vary",
    "point_name",
    "points",
    "run_point",
    "sweep",
    "table",
    "train_config",
]
