"""Two gloo processes on the CPU train exactly as one process with the combined batch."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    from helpers import DiagonalGaussian, GaussianConfig
    from dgm.data import TensorData
    from dgm.train import TrainConfig, Trainer
    from dgm.train import distributed

    torch.set_default_dtype(torch.float64)
    batch, out = int(sys.argv[1]), sys.argv[2]
    g = torch.Generator().manual_seed(0)
    data = TensorData(torch.randn(400, 3, generator=g) * 0.7 + 1.0)
    torch.manual_seed(0)
    model = DiagonalGaussian((3,), GaussianConfig())
    cfg = TrainConfig(steps=25, batch_size=batch, lr=0.05, warmup_steps=3, grad_clip=1.0,
                      eval_every=0, sample_every=0, log_every=0, checkpoint_every=0, device="cpu")
    trainer = Trainer(model, data, None, cfg, progress=False)
    trainer.fit()
    state = {{k: v.clone() for k, v in model.state_dict().items()}}
    torch.save(state, f"{{out}}/rank{{trainer.rank}}.pt")
    distributed.teardown()
""")


def _run(cmd, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_two_gloo_processes_match_one_process_with_the_combined_batch(tmp_path):
    script = tmp_path / "ddp_script.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parents[1])))
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            str(script),
            "16",
            str(tmp_path / "two"),
        ]
    )
    _run([sys.executable, str(script), "32", str(tmp_path / "one")])
    r0, r1 = (torch.load(tmp_path / "two" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    single = torch.load(tmp_path / "one" / "rank0.pt", weights_only=True)
    for k in single:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between ranks"
        assert torch.allclose(r0[k], single[k], rtol=1e-9, atol=1e-12), f"{k}: 2x16 != 1x32"
    assert not torch.allclose(
        single["loc"], torch.zeros_like(single["loc"]), atol=0.5
    )  # it trained


def test_torchrun_cli_trains_a_vae_and_only_rank_zero_writes(tmp_path):
    out = tmp_path / "run"
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29518",
            "-m",
            "dgm",
            "train",
            "vae",
            "--data",
            "digits",
            "--binarize",
            "static",
            "--steps",
            "6",
            "--batch-size",
            "16",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--eval-every",
            "3",
            "--latent-dim",
            "2",
            "--hidden-sizes",
            "16",
        ]
    )
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
    assert (
        sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    )  # no temp files left
