"""GANs from the command line: train on a 2-D toy, sample a class of a conditional run,
and `dgm eval` without --sample-quality says why there is no likelihood, in one line."""

import pytest

import dgm
from dgm.cli import main

QUIET = ["--device", "cpu", "--batch-size", "32", "--eval-every", "0", "--sample-every", "0"]
QUIET += ["--log-every", "2", "--warmup-steps", "1"]


def test_train_a_gan_on_eight_gaussians_then_eval_explains_itself(tmp_path, capsys):
    run = tmp_path / "gan"
    flags = ["--objective", "wgan_gp", "--n-critic", "2", "--hidden-sizes", "16,16"]
    flags += ["--latent-dim", "2", "--lr-discriminator", "4e-4", "--ema-decay", "0.9"]
    data = ["--data", "eight_gaussians", "--num-samples", "256"]
    assert main(["train", "gan", *data, *flags, *QUIET, "--steps", "4", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "discriminator/loss" in out and "generator/loss" in out
    assert f"next:\n  dgm eval {run} --sample-quality\n" in out  # no likelihood to evaluate
    assert (run / "ema.safetensors").is_file()
    model = dgm.load(run)
    assert model.phases == ("discriminator", "discriminator", "generator")
    assert main(["sample", str(run), "-n", "50", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2  # a clear one-line error, not a traceback
    err = capsys.readouterr().err
    assert "likelihood" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_sample_a_class_of_a_conditional_gan(tmp_path, capsys):
    run = tmp_path / "cgan"
    flags = ["--num-classes", "10", "--conv-channels", "4", "--latent-dim", "4"]
    flags += ["--objective", "hinge", "--spectral-norm"]
    assert main(["train", "gan", "--data", "digits", *flags, *QUIET, "--steps", "2",
                 "--out", str(run)]) == 0  # fmt: skip
    out = tmp_path / "three.png"
    assert main(["sample", str(run), "-n", "8", "--class", "3", "--out", str(out)]) == 0
    assert out.is_file()
    assert main(["sample", str(run), "-n", "8", "--temperature", "0.5", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "4", "--class", "10", "--out", str(out)]) == 2
    assert "labels outside 0..9" in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--output", "binary"], ["--scale", "byte"]])
def test_data_outside_the_output_support_is_refused_with_the_fix(tmp_path, capsys, flag):
    run = tmp_path / "bad"
    args = ["train", "gan", "--data", "digits", *flag, *QUIET, "--steps", "1", "--out", str(run)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--binarize static" in err or "x.float()" in err


def test_train_help_lists_every_objective(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "gan", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "f_total_variation" in out and "--lr-discriminator" in out


def test_a_gan_reusing_its_fakes_resumes_bit_identical_and_differs_from_fresh_z(tmp_path):
    # --reuse-fakes keeps the discriminator phase's fakes for the generator phase of the
    # same step only: a run cut after 3 steps and resumed to 6 ends on the same weights as
    # a run of 6; and it is another algorithm than fresh z (the weights differ)
    import torch
    from safetensors.torch import load_file

    from dgm import run_dir as rd
    from helpers import assert_same_weights

    flags = ["--objective", "hinge", "--n-critic", "2", "--hidden-sizes", "16,16"]
    flags += ["--latent-dim", "2", "--num-classes", "8", "--ema-decay", "0.9"]
    data = ["--data", "eight_gaussians", "--num-samples", "256", "--checkpoint-every", "3"]
    args = ["train", "gan", *data, *flags, *QUIET, "--decay-steps", "6"]  # the cut run's lr too
    whole, cut, fresh = tmp_path / "whole", tmp_path / "cut", tmp_path / "fresh"
    assert main([*args, "--reuse-fakes", "--steps", "6", "--out", str(whole)]) == 0
    assert main([*args, "--reuse-fakes", "--steps", "3", "--out", str(cut)]) == 0
    assert main(["resume", str(cut), "--steps", "6"]) == 0
    assert main([*args, "--steps", "6", "--out", str(fresh)]) == 0
    assert dgm.load(whole).config.reuse_fakes and not dgm.load(fresh).config.reuse_fakes
    assert_same_weights(whole, cut, (rd.WEIGHTS, rd.EMA_WEIGHTS))
    a, other = load_file(str(whole / rd.WEIGHTS)), load_file(str(fresh / rd.WEIGHTS))
    assert any(not torch.equal(a[k], other[k]) for k in a if k.startswith("generator."))
