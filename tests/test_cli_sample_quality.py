"""`dgm eval DIR --sample-quality` from the command line: likelihood and sample quality
side by side (a GMM on eight Gaussians, a class-conditional VAE on digits), sample quality
alone for a model without a likelihood, and refusals that name the fix (text runs, counts,
--class without a class-conditional run)."""

import json

import pytest

from dgm.cli import main
from dgm.evaluate import features as feat

QUIET = ["--device", "cpu", "--eval-every", "0", "--sample-every", "0", "--log-every", "1"]


@pytest.fixture(autouse=True)
def tiny_feature_network(tmp_path, monkeypatch):
    """A feature network of a few seconds, cached in the test's own folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DGM_DATA", raising=False)
    monkeypatch.setattr(feat, "DEFAULT_SETTINGS", feat.ClassifierSettings(steps=150, batch_size=64))


def test_gmm_on_eight_gaussians_reports_nll_and_mode_coverage(tmp_path, capsys):
    run = tmp_path / "gmm"
    flags = ["--num-components", "8", "--steps", "20", "--num-samples", "1000"]
    assert (
        main(["train", "gmm", "--data", "eight_gaussians", *flags, *QUIET, "--out", str(run)]) == 0
    )
    capsys.readouterr()
    assert main(["eval", str(run), "--sample-quality", "--num-samples", "800", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bound"] == "exact" and out["nll"] < 3.0  # the likelihood beside ...
    quality = out["sample_quality"]  # ... the samples' quality
    assert quality["feature_space"] == "raw 2-D points" and quality["num_samples"] == 800
    assert quality["modes_captured"] == 8 and quality["high_quality"] > 0.9
    assert quality["precision"] > 0.8 and quality["recall"] > 0.8
    assert main(["eval", str(run), "--sample-quality", "--num-samples", "800"]) == 0
    text = capsys.readouterr().out
    assert "FD (raw 2-D points)" in text and "modes captured: 8 of 8" in text and "nll" in text


def test_conditional_vae_on_digits_reports_features_and_class_accuracy(tmp_path, capsys):
    run = tmp_path / "cvae"
    flags = ["--num-classes", "10", "--latent-dim", "2", "--hidden-sizes", "16"]
    assert main(["train", "vae", "--data", "digits", "--binarize", "static", "--steps", "10",
                 "--batch-size", "32", *flags, *QUIET, "--out", str(run)]) == 0  # fmt: skip
    capsys.readouterr()
    args = ["eval", str(run), "--sample-quality", "--num-samples", "100", "--class", "3"]
    assert main([*args, "--class", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    quality = out["sample_quality"]
    assert "nll" in out and quality["feature_space"] == "dgm digits features"
    assert set(quality["class_accuracy"]) == {"3", "5"}  # JSON keys
    assert 0 <= quality["accuracy"] <= 1 and quality["classifier_test_accuracy"] > 0.7
    cached = list((tmp_path / "cache" / "dgm").glob("features-digits-*.safetensors"))
    assert len(cached) == 1 and cached[0].with_suffix(".json").is_file()
    assert main([*args]) == 0  # the cached network: no training message
    captured = capsys.readouterr()
    assert "training the" not in captured.err
    assert "FD (dgm digits features)" in captured.out and "FID" not in captured.out
    assert "accuracy on class-conditional samples" in captured.out
    assert main(["eval", str(run), "--sample-quality", "--class", "10"]) == 2
    assert "classes must lie in 0..9" in capsys.readouterr().err


def test_a_model_without_likelihood_gets_sample_quality_alone(tmp_path, capsys):
    from helpers import registered

    run = tmp_path / "gan"
    with registered():
        data = ["--data", "eight_gaussians", "--num-samples", "256"]
        assert main(["train", "test_gan", *data, *QUIET, "--steps", "3", "--out", str(run)]) == 0
        capsys.readouterr()
        assert main(["eval", str(run)]) == 2
        err = capsys.readouterr().err
        assert "no likelihood" in err and "--sample-quality" in err
        assert main(["eval", str(run), "--sample-quality", "--num-samples", "200", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert "nll" not in out and out["sample_quality"]["modes"] == 8
        assert main(["eval", str(run), "--sample-quality", "--class", "1"]) == 2
        assert "class-conditional" in capsys.readouterr().err


def test_wrong_inputs_exit_2_with_the_fix(tmp_path, capsys):
    run = tmp_path / "gmm"
    flags = ["--num-components", "2", "--steps", "2", "--num-samples", "200"]
    assert main(["train", "gmm", "--data", "moons", *flags, *QUIET, "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--sample-quality", "--num-samples", "0"]) == 2
    assert "--num-samples must be at least 1" in capsys.readouterr().err
    assert main(["eval", str(run), "--sample-quality", "--num-samples", "-3"]) == 2
    assert "--num-samples must be at least 1" in capsys.readouterr().err
    assert main(["eval", str(run), "--sample-quality", "--num-samples", "1"]) == 2
    assert "--num-samples) must be at least 2" in capsys.readouterr().err
    assert main(["eval", str(run), "--class", "1"]) == 2
    assert "--sample-quality" in capsys.readouterr().err
    words = tmp_path / "corpus.txt"
    words.write_text("the cat sat on the mat " * 40, encoding="utf-8")
    text = tmp_path / "rnn"
    assert main(["train", "char_rnn", "--data", "text", "--data-root", str(words),
                 "--block-size", "8", "--hidden-size", "8", "--num-layers", "1", "--steps", "1",
                 "--batch-size", "8", *QUIET, "--out", str(text)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["eval", str(text), "--sample-quality"]) == 2
    err = capsys.readouterr().err
    assert "image data" in err and "text" in err and "Traceback" not in err


def test_sampling_options_reach_the_sampler_of_sample_quality(tmp_path, capsys):
    # a GAN at temperature 0 draws G(0) every time: its samples collapse to one point,
    # where temperature 1 spreads them
    run = tmp_path / "gan"
    flags = ["--steps", "300", "--batch-size", "128", "--num-samples", "1000", "--lr", "2e-3"]
    assert (
        main(["train", "gan", "--data", "eight_gaussians", *flags, *QUIET, "--out", str(run)]) == 0
    )
    capsys.readouterr()
    quality = {}
    for t in ("0", "1"):
        args = ["eval", str(run), "--sample-quality", "--num-samples", "400", "--json"]
        assert main([*args, "--temperature", t]) == 0
        quality[t] = json.loads(capsys.readouterr().out)["sample_quality"]
    # one point: its k-NN ball has radius 0, so no real point lies in one
    assert quality["0"]["recall"] == 0 < quality["1"]["recall"]
    assert quality["0"]["modes_captured"] <= 1 and quality["0"]["fd"] != quality["1"]["fd"]
