"""The command line: every verb end to end, and clear errors for bad input."""

import json

import pytest
from PIL import Image

from dgm.cli import main

TRAIN = [
    "train",
    "vae",
    "--data",
    "digits",
    "--binarize",
    "static",
    "--steps",
    "30",
    "--batch-size",
    "32",
    "--device",
    "cpu",
    "--latent-dim",
    "3",
    "--hidden-sizes",
    "32,32",
    "--eval-every",
    "10",
    "--sample-every",
    "30",
]


def test_list_names_models_and_datasets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("vae", "gmvae", "digits", "fashion_mnist", "mnist", "moons"):
        assert name in out


def test_train_eval_sample_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TRAIN, "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model_config"]["latent_dim"] == 3 and config["model_config"]["hidden_sizes"] == [
        32,
        32,
    ]
    assert config["train"]["batch_size"] == 32 and config["data"]["options"]["binarize"] == "static"
    out = capsys.readouterr().out  # a bound is a likelihood to evaluate: no sample-quality hint
    assert f"next:\n  dgm eval {run}\n  dgm sample {run} --out {run}/samples.png\n" in out

    assert main(["eval", str(run), "--json"]) == 0
    elbo = json.loads(capsys.readouterr().out)
    assert elbo["bound"] == "elbo" and elbo["split"] == "test" and elbo["n"] > 0
    assert elbo["bits_per_dim"] == pytest.approx(elbo["nll"] / (64 * 0.6931471805599453))
    assert main(["eval", str(run), "--iw-samples", "50", "--json"]) == 0
    iwae = json.loads(capsys.readouterr().out)
    assert iwae["bound"] == "iwae_50" and iwae["nll"] < elbo["nll"]  # the tighter bound

    png = tmp_path / "s.png"
    assert main(["sample", str(run), "-n", "16", "--out", str(png)]) == 0
    assert Image.open(png).size[0] > 8

    assert main(["resume", str(run), "--steps", "40"]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 40


def test_conditional_sampling_by_class(tmp_path):
    """`sample --class 3` writes the run's model's samples for class 3 (pixel for pixel the
    grid of ``model.sample(8, c=3)`` with the default seed, not class 5's); and on a model
    whose classes are far apart (naive Bayes on digits), the samples drawn for class k have
    class k's pixel means, not another class's."""
    import numpy as np
    import torch

    import dgm
    from dgm.report.plots import image_grid

    run = tmp_path / "cvae"
    assert main([*TRAIN, "--num-classes", "10", "--out", str(run)]) == 0
    png = tmp_path / "c.png"
    assert main(["sample", str(run), "-n", "8", "--class", "3", "--out", str(png)]) == 0
    model = dgm.load(run)
    value_range = tuple(json.loads((run / "config.json").read_text())["value_range"])

    def grid(k):
        with torch.no_grad():
            x = model.sample(8, torch.full((8,), k), generator=torch.Generator().manual_seed(0))
        return np.asarray(image_grid(x, value_range=value_range))

    written = np.asarray(Image.open(png))
    assert np.array_equal(written, grid(3)) and not np.array_equal(written, grid(5))

    nb = tmp_path / "nb"
    argv = ["train", "naive_bayes", "--data", "digits", "--binarize", "static"]
    assert main([*argv, "--num-classes", "10", "--steps", "1", "--out", str(nb)]) == 0
    model = dgm.load(nb)
    data = dgm.data.get("digits", "train", binarize="static")
    means = torch.stack([data.x[data.y == k].double().mean(0) for k in range(10)])  # (10, ...)
    for k in (0, 1, 7):
        png = tmp_path / f"nb{k}.png"
        assert main(["sample", str(nb), "-n", "400", "--class", str(k), "--out", str(png)]) == 0
        with torch.no_grad():
            x = model.sample(400, torch.full((400,), k), generator=torch.Generator().manual_seed(0))
        assert np.array_equal(np.asarray(Image.open(png)), np.asarray(image_grid(x)))
        distance = (x.double().mean(0) - means).flatten(1).abs().mean(1)  # (10,)
        assert distance.argmin() == k and distance[k] < 0.05


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "nope", "--data", "digits", "--steps", "1", "--out", "x"],
            "unknown model 'nope'",
        ),
        (
            ["train", "vae", "--data", "nope", "--steps", "1", "--out", "x"],
            "unknown dataset 'nope'",
        ),
        (
            [
                "train",
                "vae",
                "--data",
                "moons",
                "--binarize",
                "static",
                "--steps",
                "1",
                "--out",
                "x",
            ],
            "takes no option",
        ),
        (["eval", "/nonexistent/run"], "does not exist: give a run directory"),
    ],
)
def test_bad_input_is_a_clear_error(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_flag_for_the_model_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "train",
                "vae",
                "--data",
                "digits",
                "--steps",
                "1",
                "--out",
                "x",
                "--num-components",
                "3",
            ]
        )
    assert "--num-components" in capsys.readouterr().err


def test_two_dimensional_data_train_eval_and_scatter_plot(tmp_path, capsys):
    run = tmp_path / "moons"
    argv = [
        "train",
        "vae",
        "--data",
        "moons",
        "--num-samples",
        "500",
        "--decoder",
        "gaussian",
        "--latent-dim",
        "2",
        "--hidden-sizes",
        "16",
        "--steps",
        "20",
        "--batch-size",
        "50",
        "--device",
        "cpu",
        "--out",
        str(run),
    ]
    assert main(argv) == 0
    assert (run / "samples" / "step_0000020.png").exists()
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "valid", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "valid" and result["n"] == 500
    assert main(["sample", str(run), "-n", "200", "--out", str(tmp_path / "m.png")]) == 0
    assert Image.open(tmp_path / "m.png").size == (384, 384)


def test_asking_for_cuda_without_one_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main([*TRAIN, "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    run = tmp_path / "cpu"
    assert main([*TRAIN, "--steps", "2", "--out", str(run)]) == 0
    for verb in (["sample", str(run), "--out", str(tmp_path / "s.png")], ["eval", str(run)]):
        assert main([*verb, "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert main(["complete", str(run), "--mask", "bottom-half", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()


def test_demo_runs_end_to_end(tmp_path, capsys):
    from dgm.demo import main as demo

    assert demo(["--out", str(tmp_path / "demo"), "--steps", "40"]) == 0
    out = capsys.readouterr().out
    assert "NELBO" in out and "-IWAE-100" in out
    assert (tmp_path / "demo" / "model.safetensors").exists()
    # the printed bounds are the library's on the saved run: the ELBO, then 100 samples
    import re

    import torch

    from dgm.evaluate.likelihood import evaluate
    from dgm.run_dir import Run

    run = Run.open(tmp_path / "demo")
    model, test = run.model(device="cpu"), run.data("test")
    torch.manual_seed(0)
    elbo, iwae = evaluate(model, test), evaluate(model, test, iw_samples=100)
    printed = dict(re.findall(r"^(NELBO|-IWAE-100)\s+([\d.]+)", out, re.M))
    assert printed == {"NELBO": f"{elbo['nll']:.2f}", "-IWAE-100": f"{iwae['nll']:.2f}"}


def test_train_with_patience_stops_at_the_plateau_and_says_so(tmp_path, capsys):
    run = tmp_path / "made"
    flags = ["--binarize", "static", "--hidden-sizes", "64", "--lr", "0.02", "--sample-every", "0"]
    argv = ["train", "made", "--data", "digits", *flags, "--steps", "5000", "--out", str(run)]
    assert main([*argv, "--eval-every", "10", "--patience", "2"]) == 0
    out = capsys.readouterr().out
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    evals = {r["step"]: r["valid/nll"] for r in lines if "valid/nll" in r}
    best, stop = min(evals, key=evals.get), max(evals)
    assert stop == best + 20 < 5000
    assert f"stopped early at step {stop}: 2 evaluations" in out and f"(step {best})" in out
    assert f"dgm eval {run} --best" in out
