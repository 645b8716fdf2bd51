"""Two gloo processes on the CPU train exactly as one process with the combined batch,
each rank draws its own noise, every phase of a multi-phase model trains, and only rank
0 writes."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import ddp_jobs
from dgm import run_dir as rd
from dgm.train.lock import LOCK

SCRIPT = textwrap.dedent("""
    import json, os, shutil, sys, torch
    sys.path.insert(0, {tests!r})
    import ddp_jobs
    from helpers import DiagonalGaussian, GaussianConfig, ToyGAN, ToyGANConfig
    from dgm.cli import main
    from dgm.train import distributed

    batch, out, jobs = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
    # one process group for every job: gloo under torchrun does not join a second one
    # after the first is destroyed, so the group is left at the very end
    leave, distributed.teardown = distributed.teardown, lambda: None
    torch.set_default_dtype(torch.float64)

    def fit(model, steps, **kw):
        return ddp_jobs.fit(model, batch, steps, **kw)

    def state(model):
        return {{k: v.clone() for k, v in model.state_dict().items()}}

    if "gaussian" in jobs:  # deterministic: 2 x 16 must equal 1 x 32
        rank, trained = ddp_jobs.gaussian(batch)
        torch.save(trained, f"{{out}}/gaussian{{rank}}.pt")
    if "noise" in jobs:  # the loss draws torch.randn: each rank its own
        torch.manual_seed(0)
        model = DiagonalGaussian((3,), GaussianConfig(noise=0.1))
        rank = fit(model, 3)
        torch.save(torch.stack(model.noise_draws), f"{{out}}/noise{{rank}}.pt")
    if "gan" in jobs:  # two phases, the critic twice per step
        torch.manual_seed(0)
        model = ToyGAN((3,), ToyGANConfig(critic_steps=2))
        before = state(model)
        rank = fit(model, 4)
        torch.save({{"before": before, "after": state(model)}}, f"{{out}}/gan{{rank}}.pt")
    torch.set_default_dtype(torch.float32)
    if "cli" in jobs:  # `dgm train`, then `dgm resume`, as `torchrun -m dgm` runs them
        rank, run = int(os.environ["RANK"]), f"{{out}}/run"
        codes = [main(["train", *sys.argv[4:], "--out", run])]
        if rank == 0:  # the run as train left it (only rank 0 writes: nothing changes it)
            shutil.copytree(run, f"{{out}}/trained")
        codes.append(main(["resume", run, "--steps", "8"]))
        with open(f"{{out}}/cli{{rank}}.json", "w") as f:
            json.dump(codes, f)
    leave()
""")


def _run(cmd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def _torchrun(*args):
    """Two processes on this machine; --standalone picks a free port."""
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return _run([*run, *map(str, args)])


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "ddp_script.py"
    path.write_text(SCRIPT.format(tests=str(Path(__file__).parents[1])))
    return path


# the CLI part of the one torchrun (3 processes starting torch cost seconds each): a VAE
CLI = ["vae", "--data", "digits", "--binarize", "static", "--steps", "6", "--batch-size", "16"]
CLI += ["--device", "cpu", "--log-every", "2", "--eval-every", "3", "--latent-dim", "2"]
CLI += ["--hidden-sizes", "16"]


@pytest.fixture(scope="module")
def two_ranks(script):
    out = script.parent / "two"
    out.mkdir()
    _torchrun(script, 16, out, "gaussian,noise,gan,cli", *CLI)
    return out


def _load(path):
    return torch.load(path, weights_only=True)


def test_two_gloo_processes_match_one_process_with_the_combined_batch(two_ranks):
    r0, r1 = (_load(two_ranks / f"gaussian{r}.pt") for r in (0, 1))
    rank, single = ddp_jobs.gaussian(32)  # one process: this one, with the same code
    assert rank == 0
    for k in single:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between ranks"
        assert torch.allclose(r0[k], single[k], rtol=1e-9, atol=1e-12), f"{k}: 2x16 != 1x32"
    assert not torch.allclose(
        single["loc"], torch.zeros_like(single["loc"]), atol=0.5
    )  # it trained


def test_each_rank_draws_its_own_noise(two_ranks):
    d0, d1 = (_load(two_ranks / f"noise{r}.pt") for r in (0, 1))
    assert d0.shape == d1.shape == (3, 16, 3)  # 3 steps of a batch of 16
    for step in range(3):  # the same draws on both ranks would count one sample twice
        assert not torch.allclose(d0[step], d1[step]), f"step {step}: both ranks drew alike"


def test_every_phase_of_a_multi_phase_model_trains_under_ddp(two_ranks):
    r0, r1 = (_load(two_ranks / f"gan{r}.pt") for r in (0, 1))
    for k in r0["after"]:
        assert torch.equal(r0["after"][k], r1["after"][k]), f"{k} differs between ranks"
    for part in ("discriminator", "generator"):
        keys = [k for k in r0["after"] if k.startswith(part)]
        assert keys, part
        for k in keys:
            assert not torch.equal(r0["before"][k], r0["after"][k]), f"{k} did not change"


def test_torchrun_cli_trains_a_vae_and_only_rank_zero_writes(two_ranks):
    # `main` in each torchrun process: the CLI's path under torchrun, without two more
    # torchrun starts (a launcher and two workers each importing torch)
    for rank in (0, 1):
        assert json.loads((two_ranks / f"cli{rank}.json").read_text()) == [0, 0], rank
    out = two_ranks / "trained"  # as `dgm train` left it
    assert (out / rd.WEIGHTS).exists() and (out / rd.CONFIG).exists()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temp files
    records = rd.read_metrics(out / rd.METRICS)
    # one line per logged step and per evaluation: a second writer would double them
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6]
    assert [r["step"] for r in records if "valid/nll" in r] == [3, 6]
    assert len(records) == 5
    # resumed under torchrun: rank 0 alone takes the run's lock, so no rank refuses another
    out = two_ranks / "run"
    assert rd.committed(out).step == 8 and not (out / LOCK).exists()
    assert [r["step"] for r in rd.read_metrics(out / rd.METRICS) if "loss" in r] == [2, 4, 6, 8]
