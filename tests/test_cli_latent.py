"""The latent-space verbs dgm interpolate, represent and design on tiny runs: pictures, JSON,
printed tables, and one-line errors (exit 2) for a model without a latent space, data
without labels, and bad flag values."""

import json

import pytest
import torch

from dgm.cli import main
from dgm.evaluate import features as feat

QUIET = ["--device", "cpu", "--eval-every", "0", "--sample-every", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A VAE on binarized digits (2-D codes), a VAE on unlabelled tensors and an FVSBN."""
    root = tmp_path_factory.mktemp("runs")
    vae, bare, fv = root / "vae", root / "bare", root / "fvsbn"
    args = ["train", "vae", "--data", "digits", "--binarize", "static", "--latent-dim", "2"]
    args += ["--hidden-sizes", "32", "--steps", "40", "--batch-size", "64", *QUIET]
    assert main([*args, "--out", str(vae)]) == 0
    x = torch.bernoulli(torch.full((40, 1, 2, 2), 0.5, dtype=torch.float32))
    torch.save({"x": x}, root / "x.pt")
    args = ["train", "vae", "--data", "tensors", "--data-root", str(root / "x.pt")]
    args += ["--latent-dim", "2", "--hidden-sizes", "4", "--steps", "2", "--batch-size", "8"]
    assert main([*args, *QUIET, "--out", str(bare)]) == 0
    args = ["train", "fvsbn", "--data", "digits", "--binarize", "static", "--steps", "2"]
    assert main([*args, *QUIET, "--out", str(fv)]) == 0
    args = ["train", "vae", "--data", "digits", "--binarize", "static", "--num-classes", "10"]
    args += ["--latent-dim", "2", "--hidden-sizes", "4", "--steps", "2", "--batch-size", "8"]
    assert main([*args, *QUIET, "--out", str(root / "cvae")]) == 0
    return vae, bare, fv


def error_line(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"dgm {argv[0]}: error: "), err
    return err[0]


def test_interpolate_writes_the_strip_and_the_arithmetic_grid(runs, tmp_path, capsys):
    vae, _, _ = runs
    strip, grid, out = tmp_path / "s.png", tmp_path / "g.png", tmp_path / "i.json"
    argv = ["interpolate", str(vae), "--a", "3", "--b", "7", "--method", "slerp", "--steps", "5"]
    argv += ["--out", str(strip), "--arithmetic", "1,0", "--scales", "0,1", "--rows", "3"]
    assert main([*argv, "-n", "300", "--arithmetic-out", str(grid), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "slerp between test examples 3 and 7 in 5 steps" in text
    assert "mean code of class 1 - class 0 over 300 train examples" in text
    assert strip.is_file() and grid.is_file()
    record = json.loads(out.read_text())
    assert record["method"] == "slerp" and len(record["code_norms"]) == 2
    assert record["arithmetic"]["classes"] == [1, 0] and record["arithmetic"]["rows"] == 3
    assert main(["interpolate", str(vae)]) == 0  # defaults: lerp of examples 0 and 1
    assert (vae / "interpolate-lerp.png").is_file()


def test_represent_prints_both_probes_and_writes_the_plot(runs, tmp_path, capsys):
    vae, _, _ = runs
    plot, out = tmp_path / "p.png", tmp_path / "r.json"
    argv = ["represent", str(vae), "-n", "200", "--train-n", "400", "--projection", "tsne"]
    assert main([*argv, "--out", str(plot), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "vae codes" in text and "raw pixels" in text and plot.stat().st_size > 1000
    record = json.loads(out.read_text())
    assert record["code_dims"] == 2 and record["n"] == 200 and record["train_n"] == 400
    assert 0.1 < record["probe_codes_accuracy"] <= 1  # chance is 0.1
    assert record["probe_pixels_accuracy"] > 0.7


def test_design_compares_bo_with_random_search(runs, tmp_path, capsys, monkeypatch):
    vae, _, _ = runs
    grid, out = tmp_path / "d.png", tmp_path / "d.json"
    argv = ["design", str(vae), "--objective", "mass:0.2", "--evaluations", "6", "--seeds", "2"]
    assert main([*argv, "--initial", "3", "--out", str(grid), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pixel mass - 0.2" in text and "BO" in text and grid.is_file()
    record = json.loads(out.read_text())
    assert len(record["bo_mean_curve"]) == 6 and len(record["random_best"]) == 2
    assert record["bo_mean_curve"][:3] == record["random_mean_curve"][:3]  # same start
    assert all(v <= 0 for v in record["bo_best"])  # −|mass − M|
    for side in ("bo", "random"):  # each side's bests end its own mean curve
        mean_best = sum(record[f"{side}_best"]) / 2
        assert record[f"{side}_mean_curve"][-1] == pytest.approx(mean_best, rel=1e-6)
    assert record["bo_best"] != record["random_best"]
    # class objective: dgm's feature classifier, a small one cached in the test's folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DGM_DATA", raising=False)
    monkeypatch.setattr(feat, "DEFAULT_SETTINGS", feat.ClassifierSettings(steps=60, batch_size=64))
    argv = ["design", str(vae), "--objective", "class:3", "--evaluations", "4", "--seeds", "1"]
    assert main([*argv, "--initial", "2", "--out", str(grid), "--json", str(out)]) == 0
    assert "p(class 3 | decoded z)" in capsys.readouterr().out
    assert all(0 <= v <= 1 for v in json.loads(out.read_text())["bo_mean_curve"])


def test_errors_are_one_line_with_the_fix(runs, capsys):
    vae, bare, fv = runs
    for verb in (["interpolate"], ["represent"], ["design", "--objective", "mass:0.5"]):
        line = error_line(capsys, [verb[0], str(fv), *verb[1:]])
        assert "FVSBN is not Encodable" in line and "vae" in line
    line = error_line(capsys, ["represent", str(bare)])
    assert "needs labelled data" in line and "'tensors'" in line
    line = error_line(capsys, ["interpolate", str(bare), "--arithmetic", "1,0"])
    assert "latent arithmetic needs labelled data" in line
    line = error_line(capsys, ["interpolate", str(vae), "--arithmetic", "1"])
    assert "give two class labels A,B" in line
    line = error_line(capsys, ["interpolate", str(vae), "--b", "100000"])
    assert "--b 100000 is outside" in line
    line = error_line(capsys, ["interpolate", str(vae), "--steps", "1"])
    assert "--steps must be at least 2" in line
    line = error_line(capsys, ["design", str(vae), "--objective", "mass:7"])
    assert "[0, 1]" in line
    line = error_line(capsys, ["design", str(vae), "--objective", "mass:0.5", "--seeds", "0"])
    assert "--seeds must be at least 1" in line
    cvae = vae.parent / "cvae"  # class-conditional: codes given the label
    line = error_line(capsys, ["represent", str(cvae)])
    assert "a probe on its codes would read the label" in line
    line = error_line(capsys, ["design", str(cvae), "--objective", "mass:0.5"])
    assert "needs a condition c for every decoding" in line
    assert main(["interpolate", str(cvae), "--arithmetic", "1,0", "-n", "100"]) == 0
    line = error_line(capsys, ["represent", str(vae), "--out", "plot.txt"])
    assert "name a picture file" in line


def test_the_arithmetic_grid_shifts_the_first_test_examples_of_class_b(runs, tmp_path):
    """Row r of the grid is the r-th test example of class B, then its decoding at code +
    s * (mean code of class A - mean code of class B) over the first n train examples."""
    import numpy as np
    from PIL import Image

    import dgm
    from dgm.data import DataConfig
    from dgm.tasks import interpolate as interp

    vae, _, _ = runs
    grid = tmp_path / "g.png"
    argv = ["interpolate", str(vae), "--arithmetic", "1,0", "--scales", "0,1", "--rows", "3"]
    assert main([*argv, "-n", "300", "--arithmetic-out", str(grid)]) == 0
    data = DataConfig("digits", binarize="static")
    train, test = data.load("train"), data.load("test")
    model = dgm.load(vae)
    with torch.no_grad():
        vector = interp.attribute_vector(model, train.x[:300], train.y[:300], 1, 0)
        inputs = test.x[test.y == 0][:3]  # (3, 1, 8, 8)
        shifted = interp.arithmetic(model, inputs, vector, (0.0, 1.0))  # (3, 2, 1, 8, 8)
    expected = torch.cat([inputs.unsqueeze(1), shifted], 1)[:, :, 0]  # (3, 3, 8, 8)
    img = np.asarray(Image.open(grid).convert("L"), dtype=np.float32)[::8, ::8]  # 8x up
    cells = [[img[2 + 10 * r :][:8, 2 + 10 * k :][:, :8] for k in range(3)] for r in range(3)]
    got = torch.from_numpy(np.array(cells)) / 255
    assert (got - expected).abs().max() <= 1 / 255 + 1e-6
    assert not torch.equal(test.x[:3], inputs)  # the first test examples are not all 0s


def test_represent_counts_every_entry_of_an_image_shaped_code(tmp_path, capsys):
    """A flow's code has the image's shape (1, 8, 8): 64 dimensions, as printed."""
    run, out = tmp_path / "nvp", tmp_path / "r.json"
    args = ["train", "realnvp", "--data", "digits", "--scale", "byte", "--dequantize", "uniform"]
    args += ["--steps", "2", "--num-couplings", "2", "--hidden-sizes", "8", "--architecture", "mlp"]
    assert main([*args, *QUIET, "--out", str(run)]) == 0
    assert main(["represent", str(run), "-n", "100", "--train-n", "200", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert json.loads(out.read_text())["code_dims"] == 64
    assert any(line.startswith("realnvp codes") and " 64 " in line for line in printed.splitlines())
