"""The compression verbs of the ``dgm`` command: parsers and command functions, no logic
(that lives in ``dgm.tasks.compression.files``).

dgm compress DIR IN OUT [--batch-size N] [--best] [--no-ema] [--threads N]
dgm decompress DIR IN OUT [--batch-size N] [--best] [--no-ema] [--threads N]

IN of ``compress`` is a ``.npy`` / ``.pt`` file of examples (n, *event_shape) in the run's
support (binary images, 8-bit levels, categories), or, for a text run (its config.json
holds a ``vocab``), a UTF-8 text file of the run's characters. ``decompress`` writes the
examples back, bit for bit, to a ``.npy`` or ``.pt`` OUT (its suffix picks), or the exact
text. Both need a model with per-dimension conditionals (``DiscreteAutoregressive``),
range-coded, or a latent-variable model of discrete x (a VAE), bits-back coded, and
the same run (and the same --best / --no-ema choice) on both sides. Wrong input raises
``ValueError`` with the fix, which ``dgm.cli.parser`` prints as one line and exits 2.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from dgm import config as cfg
from dgm.cli import common
from dgm.tasks.compression.files import CompressOptions, DecompressOptions


def add_parsers(sub: Any) -> dict[str, argparse.ArgumentParser]:
    """Add compress and decompress to the subparsers ``sub``; returns their parsers."""
    c = sub.add_parser(
        "compress",
        help="lossless compression with the model's conditionals (range coding)",
        allow_abbrev=False,
    )
    d = sub.add_parser(
        "decompress", help="restore a file written by dgm compress", allow_abbrev=False
    )
    for p, options in ((c, CompressOptions), (d, DecompressOptions)):
        common.run_dir_arg(p)
        cfg.add_arguments(p, options)
        common.run_flags(p, device=False)  # coded on the CPU: both sides must compute alike
    return {"compress": c, "decompress": d}


def cmd_compress(ns: argparse.Namespace) -> int:
    from dgm.tasks.compression import files

    o = cfg.options_from(ns, CompressOptions)
    run, model = common.open_run(ns)
    files.check_codable(model, str(ns.run_dir))
    done = files.compress_file(model, o.input, o.output, run.vocab, o.batch_size)
    for line in done.lines(model, o.input, o.output):
        print(line)
    return 0


def cmd_decompress(ns: argparse.Namespace) -> int:
    from dgm.tasks.compression import files

    o = cfg.options_from(ns, DecompressOptions)
    run, model = common.open_run(ns)
    files.check_codable(model, str(ns.run_dir))
    start = time.perf_counter()
    what = files.decompress_file(model, o.input, o.output, run.vocab, o.batch_size, str(ns.run_dir))
    seconds = time.perf_counter() - start
    size = o.input.stat().st_size
    print(f"{o.input}: {size:,} bytes -> {o.output}: {what} ({seconds:.2f} s)")
    return 0


COMMANDS = {"compress": cmd_compress, "decompress": cmd_decompress}
