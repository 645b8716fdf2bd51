"""The latent-space verbs of the ``dgm`` command: parsers and command functions, no logic of
their own (that lives in ``dgm.tasks.interpolate``, ``represent`` and ``design``).

dgm interpolate DIR [--a I] [--b J] [--method lerp|slerp] [--steps K] [--split test]
                [--out strip.png] [--arithmetic A,B [--scales 0,0.5,1,1.5,2] [--rows R]
                [-n N] [--arithmetic-out grid.png]] [--json FILE]
dgm represent DIR [--projection pca|tsne] [-n N] [--train-n N] [--out plot.png] [--json FILE]
dgm design DIR --objective class:K|mass:M [--evaluations N] [--seeds S] [--initial N0]
           [--width 3] [--out grid.png] [--json FILE]

Every verb needs an ``Encodable`` model (a latent space: VAE, GMVAE, the flows, DDIM's x_T); latent
arithmetic and ``represent`` need labelled data. ``add_parsers(sub)`` adds the verbs to the
``dgm`` parser; ``COMMANDS`` maps each name to its function of the parsed arguments. Wrong
input raises ``ValueError`` with the fix, which ``dgm.cli.parser`` prints as one line and
exits 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dgm import config as cfg
from dgm.capabilities import model_modality
from dgm.cli import common
from dgm.cli.tasks import task_parser
from dgm.run_dir import Run
from dgm.tasks.design import DesignOptions
from dgm.tasks.interpolate import InterpolateOptions
from dgm.tasks.represent import RepresentOptions


def add_parsers(sub: Any) -> dict[str, argparse.ArgumentParser]:
    """Add interpolate, represent and design to the subparsers ``sub``; returns their parsers."""
    verbs = {
        "interpolate": (
            "decode a path between two encoded inputs (lerp or slerp); latent arithmetic",
            InterpolateOptions,
        ),
        "represent": (
            "linear probe on the codes vs on raw pixels, and a 2-D projection of the codes",
            RepresentOptions,
        ),
        "design": (
            "Bayesian optimisation vs random search in the latent space of a black-box "
            "objective over decoded samples",
            DesignOptions,
        ),
    }
    return {name: task_parser(sub, name, *what) for name, what in verbs.items()}


# -- shared pieces ---------------------------------------------------------------------------


def _image(model: Any) -> bool:
    return model_modality(model) == "image"


def _labelled(data: Any, what: str) -> None:
    if data.num_classes < 2:
        raise ValueError(
            f"{what} needs labelled data: dataset {data.name!r} has no class labels; train "
            "the model on a labelled dataset (e.g. digits, fashion_mnist)"
        )


def _value_range(run: Run, x: torch.Tensor) -> tuple[float, float]:
    from dgm.report.plots import default_range

    return tuple(run.value_range or default_range(x))  # type: ignore[return-value]


def _save_grid(images: torch.Tensor, nrow: int, out: Path, value_range: Any, what: str) -> None:
    from PIL import Image

    from dgm.report.plots import image_grid, save_picture

    img = image_grid(images.float().cpu(), nrow=nrow, value_range=value_range)
    scale = max(1, 96 // img.height)  # a strip of 8x8 digits would be a few pixels high
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_picture(img, out)
    print(f"wrote {out} ({what})")


# -- interpolate -----------------------------------------------------------------------------


def cmd_interpolate(ns: argparse.Namespace) -> int:
    from dgm.report.plots import picture_format
    from dgm.tasks import interpolate as interp
    from dgm.tasks.represent import check_encodable

    o = cfg.options_from(ns, InterpolateOptions)
    run, model = common.open_run(ns)
    check_encodable(model, "interpolation")
    out = o.out if o.out is not None else ns.run_dir / f"interpolate-{o.method}.png"
    if _image(model):
        picture_format(out)
    elif o.out is not None and out.suffix.lower() not in (".npy", ".pt"):
        raise ValueError(
            f"--out {out}: the run's examples of shape {tuple(model.event_shape)} have no "
            "picture; name a .npy or .pt file for the strip (input a, decodings, input b)"
        )
    pair = interp.parse_pair(o.arithmetic) if o.arithmetic is not None else None
    scales = interp.parse_scales(o.scales)
    data = run.data(ns.split)
    for flag, index in (("--a", o.a), ("--b", o.b)):
        if not 0 <= index < len(data):
            raise ValueError(
                f"{flag} {index} is outside the {ns.split} split's 0..{len(data) - 1}: "
                "choose an example index in it"
            )
    batch, c = common.examples(run, ns.split, [o.a, o.b], model.device, ns.seed)
    strip = interp.interpolate(model, batch.x, o.steps, o.method, c)  # (K, *event)
    ends = interp.codes(model, batch.x, c).flatten(1).norm(dim=1).tolist()
    print(
        f"{o.method} between {ns.split} examples {o.a} and {o.b} in {o.steps} steps; "
        f"code norms {ends[0]:.3f} and {ends[1]:.3f}"
    )
    record: dict[str, Any] = {
        "run_dir": str(ns.run_dir),
        "split": ns.split,
        "a": o.a,
        "b": o.b,
        "method": o.method,
        "steps": o.steps,
        "code_norms": ends,
    }
    value_range = _value_range(run, batch.x)
    if _image(model):
        row = torch.cat([batch.x[:1].to(strip), strip, batch.x[1:].to(strip)])  # (K + 2, ...)
        _save_grid(row, len(row), out, value_range, "input a, decodings, input b")
        record["out"] = str(out)
    elif o.out is not None:  # the strip itself: input a, the decodings, input b
        from dgm.sampling import write_array

        row = torch.cat([batch.x[:1].to(strip), strip, batch.x[1:].to(strip)]).cpu()
        shape = write_array(iter([row]), out, len(row))
        print(f"wrote {out} (input a, {o.steps} decodings, input b: array of shape {shape})")
        record["out"] = str(out)
    if pair is not None:
        record["arithmetic"] = _arithmetic(ns, run, model, data, pair, scales, value_range)
    common.write_json(ns.json, record)
    return 0


def _arithmetic(
    ns: argparse.Namespace,
    run: Run,
    model: Any,
    test: Any,
    pair: tuple[int, int],
    scales: tuple[float, ...],
    value_range: Any,
) -> dict[str, Any]:
    from dgm.report.plots import picture_format
    from dgm.tasks import interpolate as interp

    o = cfg.options_from(ns, InterpolateOptions)
    a, b = pair
    train = run.data("train")
    _labelled(train, "latent arithmetic")
    for k in pair:
        if not 0 <= k < train.num_classes:
            raise ValueError(
                f"--arithmetic {a},{b}: class {k} is outside 0..{train.num_classes - 1}"
            )
    out = o.arithmetic_out or ns.run_dir / f"arithmetic-{a}-{b}.png"
    if _image(model):
        picture_format(out)
    fit, fit_c = common.examples(run, "train", o.n, model.device, ns.seed)
    vector = interp.attribute_vector(model, fit.x, fit.y, a, b, fit_c)
    rows = torch.nonzero(test.y == b).flatten()[: o.rows]
    if len(rows) == 0:
        raise ValueError(f"the {ns.split} split has no example of class {b} to shift")
    batch, c = common.examples(run, ns.split, rows.tolist(), model.device, ns.seed)
    grid = interp.arithmetic(model, batch.x, vector, scales, c)
    norm = float(vector.norm())
    print(
        f"attribute vector: mean code of class {a} - class {b} over {len(fit.x)} train "
        f"examples, norm {norm:.3f}; added at scales {', '.join(f'{s:g}' for s in scales)} "
        f"to {len(rows)} {ns.split} examples of class {b}"
    )
    if _image(model):
        images = torch.cat([batch.x.unsqueeze(1).to(grid), grid], dim=1)  # (R, 1 + S, ...)
        cols = images.shape[1]
        what = "rows: inputs; columns: the input, then code + s * vector for each scale"
        _save_grid(images.flatten(0, 1), cols, out, value_range, what)
    return {
        "classes": [a, b],
        "vector_norm": norm,
        "scales": list(scales),
        "rows": len(rows),
        "out": str(out) if _image(model) else None,
    }


# -- represent -------------------------------------------------------------------------------


def cmd_represent(ns: argparse.Namespace) -> int:
    from dgm.io import atomic_write
    from dgm.report.plots import picture_format
    from dgm.tasks import represent

    o = cfg.options_from(ns, RepresentOptions)
    run, model = common.open_run(ns)
    represent.check_probeable(model)
    out = o.out if o.out is not None else ns.run_dir / f"represent-{o.projection}.png"
    picture_format(out)
    train = run.data("train")
    test = run.data(ns.split)
    _labelled(train, "a linear probe")
    fit, fit_c = common.examples(run, "train", o.train_n, model.device, ns.seed)
    batch, c = common.examples(run, ns.split, o.n, model.device, ns.seed + 1)
    bs = ns.batch_size or represent.BATCH_SIZE
    z_test, on_codes, on_pixels = represent.compare_probes(
        model, (fit.x, fit.y, fit_c), (batch.x, batch.y, c), batch_size=bs, seed=ns.seed
    )
    name = run.name
    print(
        f"linear probe (logistic regression on standardised features), {len(fit.x)} train "
        f"and {len(batch.x)} {ns.split} examples of {test.name}"
    )
    print(f"{'features':<40} {'dims':>6} {'accuracy':>9}")
    print(f"{f'{name} codes':<40} {z_test[0].numel():>6} {on_codes:>9.4f}")  # image codes too
    print(f"{'raw pixels':<40} {model.num_dims:>6} {on_pixels:>9.4f}")
    points = represent.project(z_test.double().cpu().numpy(), o.projection, seed=ns.seed)
    title = f"{name} codes of {test.name} ({ns.split}), {o.projection.upper()}"
    img = represent.projection_plot(points, batch.y, title=title)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda p: img.save(p, format=picture_format(out)))
    print(f"wrote {out} ({o.projection} of the codes, coloured by label)")
    record = {
        "run_dir": str(ns.run_dir),
        "dataset": test.name,
        "split": ns.split,
        "n": len(batch.x),
        "train_n": len(fit.x),
        "code_dims": int(z_test[0].numel()),
        "probe_codes_accuracy": on_codes,
        "probe_pixels_accuracy": on_pixels,
        "projection": o.projection,
        "out": str(out),
    }
    common.write_json(ns.json, record)
    return 0


# -- design ----------------------------------------------------------------------------------


def cmd_design(ns: argparse.Namespace) -> int:
    from dgm.report.plots import picture_format
    from dgm.tasks import design
    from dgm.tasks.represent import decode_mean

    o = cfg.options_from(ns, DesignOptions)
    kind, _ = design.parse_objective(o.objective)  # before the run is read
    run, model = common.open_run(ns)
    design.check_designable(model)
    bounds = design.latent_box(model, o.width)
    out = o.out if o.out is not None else ns.run_dir / "design.png"
    if _image(model):
        picture_format(out)
    data = run.data("train")
    value_range = _value_range(run, data.x[:1])
    objective, what = design.objective_for(run, model, o.objective, value_range)
    results = design.compare(
        objective, bounds, o.evaluations, o.seeds, initial=o.initial, warp=design.warp_for(kind)
    )
    curves = {k: design.mean_curve(v) for k, v in results.items()}
    print(
        f"objective: {what}; box ±{o.width:g} prior std in {bounds.shape[1]} dimensions; "
        f"{o.evaluations} evaluations, seeds 0..{o.seeds - 1} (mean best value so far)"
    )
    print(f"{'evaluations':>11} {'BO':>10} {'random':>10}")
    marks = design.report_points(o.evaluations, o.initial)
    for n in marks:
        print(f"{n:>11} {curves['bo'][n - 1]:>10.4f} {curves['random'][n - 1]:>10.4f}")
    record = {
        "run_dir": str(ns.run_dir),
        "objective": o.objective,
        "evaluations": o.evaluations,
        "seeds": o.seeds,
        "initial": o.initial,
        "width": o.width,
        "latent_dims": int(bounds.shape[1]),
        "bo_mean_curve": curves["bo"].tolist(),
        "random_mean_curve": curves["random"].tolist(),
        "bo_best": [r.best_value for r in results["bo"]],
        "random_best": [r.best_value for r in results["random"]],
    }
    if _image(model):
        best = torch.stack([r.best_z for r in results["bo"] + results["random"]])  # (2S, d)
        z = best.reshape(len(best), *model.prior().event_shape).to(model.device, model.dtype)
        images = decode_mean(model, z)
        _save_grid(images, o.seeds, out, value_range, "best designs: BO row over random row")
        record["out"] = str(out)
    common.write_json(ns.json, record)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "interpolate": cmd_interpolate,
    "represent": cmd_represent,
    "design": cmd_design,
}

__all__ = ["COMMANDS", "add_parsers"]
