"""Dequantized image flows from the command line: `dgm train FLOW --scale byte --dequantize
uniform` trains on the integer pixels, `dgm eval` reports the discrete-data bound on the
0..255 scale as the model computes it, and a glow run with an EMA resumes bit for bit."""

import json
import math

import torch
from safetensors.torch import load_file

import dgm
from dgm import run_dir as rd
from dgm.cli import main
from dgm.data import get
from helpers import assert_same_weights

DATA = ["--data", "digits", "--scale", "byte", "--dequantize", "uniform", "--device", "cpu"]
DATA += ["--batch-size", "32", "--eval-every", "0", "--sample-every", "0", "--log-every", "2"]
GLOW = ["glow", "--steps-per-level", "1", "--hidden-channels", "4", "--ema-decay", "0.9"]
GLOW += ["--checkpoint-every", "3", "--decay-steps", "6", "--warmup-steps", "2"]


def test_dgm_eval_reports_the_dequantized_bound_in_bits_per_dim_on_the_byte_scale(tmp_path, capsys):
    run = tmp_path / "realnvp"
    flags = ["--architecture", "conv", "--hidden-channels", "4", "--steps", "3"]
    assert main(["train", "realnvp", *DATA, *flags, "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bound"] == "dequantized" and out["levels"] == 256
    model = dgm.load(run)
    x = get("digits", "test", scale="byte").x  # (300, 1, 8, 8) uint8 on 0..255
    torch.manual_seed(0)  # dgm eval's seed: the same dequantization noise
    with torch.no_grad():
        lp = model.eval().log_prob(x)  # nats on the 0..255 scale: no correction
    assert out["nll"] == -lp.double().mean().item()
    assert out["bits_per_dim"] == -lp.double().mean().item() / (64 * math.log(2))
    assert math.isfinite(out["bits_per_dim"]) and out["bits_per_dim"] > 0
    assert main(["eval", str(run)]) == 0
    text = capsys.readouterr().out
    assert "bound: dequantized" in text and "levels: 256" in text
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "s.png")]) == 0


def test_a_resumed_glow_run_with_ema_ends_bit_identical(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["train", *GLOW, *DATA, "--steps", "6", "--out", str(whole)]) == 0
    assert main(["train", *GLOW, *DATA, "--steps", "3", "--out", str(cut)]) == 0
    assert main(["resume", str(cut), "--steps", "6"]) == 0
    assert_same_weights(whole, cut, (rd.WEIGHTS, rd.EMA_WEIGHTS))
    ema, raw = load_file(str(whole / rd.EMA_WEIGHTS)), load_file(str(whole / rd.WEIGHTS))
    scales = [k for k in raw if k.endswith("log_scale") and "transforms.1." in k]
    assert scales  # the first ActNorm: its EMA started from its initialised value
    for k in scales:
        assert (ema[k] - raw[k]).abs().max() < 0.05 * raw[k].abs().max()
