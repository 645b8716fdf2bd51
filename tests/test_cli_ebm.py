"""The energy-based model from the command line: `dgm train ebm` on a 2-D toy, `dgm sample`
with the SGLD flags of its sampling options, `dgm eval` giving the quadrature NLL, and a
resumed run (replay buffer included) ending bit-identical to an uninterrupted one."""

import json

import torch
from PIL import Image
from safetensors.torch import load_file

import dgm
from dgm import run_dir as rd
from dgm.cli import main
from dgm.data import get

TRAIN = ["train", "ebm", "--data", "eight_gaussians", "--num-samples", "300"]
TRAIN += ["--hidden-sizes", "16", "--sgld-steps", "4", "--replay-size", "64"]
TRAIN += ["--quadrature-points", "40", "--batch-size", "32", "--device", "cpu"]
TRAIN += ["--eval-every", "2", "--sample-every", "0", "--log-every", "2", "--checkpoint-every", "2"]


def test_train_sample_and_eval_by_quadrature(tmp_path, capsys):
    run = tmp_path / "ebm"
    # 64 points, not the scatter's 1000: SGLD draws them 8 at a time, and the picture's
    # presence is what is checked
    picture = ["--sample-every", "4", "--sample-count", "64"]
    assert main([*TRAIN, "--steps", "4", *picture, "--out", str(run)]) == 0
    assert (run / "samples" / "step_0000004.png").is_file()  # points over the density
    capsys.readouterr()
    png = tmp_path / "s.png"
    flags = ["--sampling-steps", "100", "--step-size", "0.01", "--noise", "0.5", "--init", "replay"]
    assert main(["sample", str(run), "-n", "64", *flags, "--out", str(png)]) == 0
    assert Image.open(png).size[0] > 8
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bound"] == "exact"
    model = dgm.load(run)
    x = get("eight_gaussians", "test", num_samples=300).x
    with torch.no_grad():
        nll = -model.log_prob(x).double().mean().item()
    assert abs(out["nll"] - nll) < 1e-5 * max(1.0, abs(nll))


def test_a_resumed_run_with_its_replay_buffer_ends_bit_identical(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main([*TRAIN, "--steps", "6", "--out", str(whole)]) == 0
    assert main([*TRAIN, "--steps", "3", "--out", str(cut)]) == 0
    assert main(["resume", str(cut), "--steps", "6"]) == 0
    a, b = load_file(str(whole / rd.WEIGHTS)), load_file(str(cut / rd.WEIGHTS))
    assert "replay" in a and a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
