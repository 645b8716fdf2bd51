"""``make demo``: a VAE on sklearn's 8x8 digits (shipped inside scikit-learn, so offline),
about 15 s on 2 CPU cores; prints the test NELBO and IWAE-100 bound.

Stopped by Ctrl-C or SIGTERM, training ends at the next step with a checkpoint; the demo
then says at which step, how to continue (``dgm resume``) and exits with 130, as ``dgm
train`` does, without evaluating the unfinished model."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

import torch

from dgm import run_dir
from dgm.data import DataConfig
from dgm.evaluate.likelihood import evaluate
from dgm.train import TrainConfig, train


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--steps", type=int, default=6000)
    args = p.parse_args(argv)
    if args.out.exists():
        if not (args.out / run_dir.CONFIG).exists():
            raise SystemExit(f"{args.out} exists and is not a dgm run: choose another --out")
        shutil.rmtree(args.out)  # the demo owns its run directory
    data = DataConfig("digits", binarize="static")
    config = TrainConfig(
        steps=args.steps,
        batch_size=64,
        lr=1e-3,
        eval_every=1000,
        sample_every=2000,
        checkpoint_every=2000,
        device="cpu",
    )
    t0 = time.perf_counter()
    model, last = train("vae", data, args.out, config, latent_dim=8, hidden_sizes=(256, 256))
    minutes = (time.perf_counter() - t0) / 60
    if last.get("interrupted"):
        return _interrupted(args.out, last.get("step"), args.steps)
    test = data.load("test")
    torch.manual_seed(0)
    elbo = evaluate(model, test)
    iwae = evaluate(model, test, iw_samples=100)
    print(f"\nVAE on digits (8x8, static binarization), {args.steps} steps in {minutes:.1f} min")
    print(f"run directory: {args.out}  (metrics.jsonl, model.safetensors, samples/*.png)")
    print(f"{'test bound':<12} {'nats':>8} {'bits/dim':>9}")
    for name, r in (("NELBO", elbo), ("-IWAE-100", iwae)):
        print(f"{name:<12} {r['nll']:8.2f} {r['bits_per_dim']:9.4f}")
    print(
        f"(KL {elbo['kl']:.2f} nats, reconstruction {elbo['reconstruction']:.2f} nats; "
        f"n = {elbo['n']})"
    )
    return 0


def _interrupted(out: Path, step: int | None, steps: int) -> int:
    """What the demo says when a signal stopped its training: where it stopped and how to
    go on; 130, the exit code of an interrupted ``dgm train``."""
    where = shlex.quote(str(out))
    print(
        f"demo interrupted at step {step} of {steps}; no test bound was computed. The run "
        f"directory {where} holds a checkpoint of step {step}: continue with\n"
        f"  dgm resume {where}\n"
        f"then evaluate with: dgm eval {where} --iw-samples 100 (or rerun the demo to "
        "start over)",
        file=sys.stderr,
    )
    return 130


if __name__ == "__main__":
    raise SystemExit(main())
