"""DDPM from the command line: train on a 2-D toy and on 8-bit digits (class-conditional
with label dropout, and super-resolution from the pooled image), sample with DDIM and
classifier-free guidance flags, and `dgm eval` the variational bound in bits/dim."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import dgm
from dgm.cli import main

RUN = ["--device", "cpu", "--eval-every", "0", "--sample-every", "0", "--log-every", "5"]
DIGITS = ["--data", "digits", "--scale", "byte", "--num-levels", "256", "--batch-size", "16"]
DIGITS += ["--unet-channels", "4", "--channel-mult", "1,2", "--num-timesteps", "20"]


def test_toy_run_trains_samples_with_ddim_and_reports_the_bound(tmp_path, capsys):
    run = tmp_path / "toy"
    flags = ["--data", "eight_gaussians", "--num-samples", "256", "--num-timesteps", "40"]
    flags += ["--hidden-size", "16", "--num-blocks", "1", "--steps", "20", "--batch-size", "64"]
    assert main(["train", "ddpm", *flags, *RUN, "--ema-decay", "0.9", "--out", str(run)]) == 0
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    logged = [line for line in lines if "loss" in line]
    assert logged and all(line["loss"] == line["eps_mse"] for line in logged)  # L_simple
    out = tmp_path / "s.png"
    argv = ["sample", str(run), "-n", "64", "--sampler", "ddim", "--sampling-steps", "10"]
    argv += ["--eta", "0"]
    assert main([*argv, "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 0
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bound"] == "elbo" and math.isfinite(result["nll"])
    assert result["bits_per_dim"] == pytest.approx(result["nll"] / (2 * math.log(2)))


def test_digits_class_conditional_run_samples_with_guidance_and_evaluates(tmp_path, capsys):
    run = tmp_path / "digits"
    cond = ["--num-classes", "10", "--condition-dropout", "0.2", "--steps", "3"]
    assert main(["train", "ddpm", *DIGITS, *cond, *RUN, "--out", str(run)]) == 0
    out = tmp_path / "seven.png"
    argv = ["sample", str(run), "-n", "4", "--sampler", "ddim", "--sampling-steps", "5"]
    assert main([*argv, "--guidance-scale", "3", "--class", "7", "--out", str(out)]) == 0
    assert np.asarray(Image.open(out)).size > 0
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bound"] == "elbo" and result["bits_per_dim"] > 0
    assert math.isfinite(result["bits_per_dim"])
    model = dgm.load(run)
    x = model.sample(3, torch.tensor([1, 2, 3]), generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.long and x.min() >= 0 and x.max() <= 255


def test_super_resolution_run_conditions_on_the_pooled_image(tmp_path):
    run = tmp_path / "sr"
    cond = ["--condition", "lowres", "--lowres-factor", "2", "--steps", "2"]
    assert main(["train", "ddpm", *DIGITS, *cond, *RUN, "--out", str(run)]) == 0
    model = dgm.load(run)
    assert model.conditioning.context_shape == (1, 4, 4)
    out = tmp_path / "sr.png"
    assert main(["sample", str(run), "-n", "4", "--sampling-steps", "4", "--out", str(out)]) == 0
    # the grid holds the samples given the test split's first four pooled images ...
    from dgm.report.plots import image_grid

    data = dgm.data.get("digits", "test", scale="byte", condition="lowres", lowres_factor=2)
    pooled = torch.nn.functional.avg_pool2d(data.x[:4].double(), 2)  # (4, 1, 4, 4)
    ctx = data.context[:4].double()
    torch.testing.assert_close(ctx, pooled / 255, rtol=0.01, atol=2e-3)  # the pooled image
    value_range = tuple(json.loads((run / "config.json").read_text())["value_range"])

    def draw(c):
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            return model.sample(4, c, generator=g, steps=4)

    given_data = draw(data.context[:4].to(model.dtype))
    written = np.asarray(Image.open(out))
    assert np.array_equal(written, np.asarray(image_grid(given_data, value_range=value_range)))
    # ... and they depend on the pooled image: another context, the same noise, differs
    assert not torch.equal(given_data, draw(1 - data.context[:4].to(model.dtype)))


def test_guidance_without_label_dropout_is_refused_with_the_fix(tmp_path, capsys):
    run = tmp_path / "nodrop"
    assert main(["train", "ddpm", *DIGITS, "--num-classes", "10", "--steps", "1", *RUN,
                 "--out", str(run)]) == 0  # fmt: skip
    argv = ["sample", str(run), "--guidance-scale", "3", "--class", "7"]
    assert main([*argv, "--out", str(tmp_path / "x.png")]) != 0
    assert "--condition-dropout > 0" in capsys.readouterr().err
