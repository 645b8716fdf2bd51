"""Class-conditional fixed-order autoregressive models from the command line: --num-classes
reaches the model, the trainer feeds it the labels, and `dgm sample --class` draws a class."""

import numpy as np
import pytest
import torch
from PIL import Image

import dgm
from dgm.cli import main

FLAGS = ["--data", "digits", "--binarize", "static", "--num-classes", "10", "--steps", "30"]
FLAGS += ["--batch-size", "32", "--device", "cpu", "--eval-every", "0", "--sample-every", "0"]


@pytest.mark.parametrize(("name", "extra"), [("fvsbn", []), ("nade", ["--hidden-size", "16"])])
def test_a_class_conditional_run_trains_on_the_labels_and_samples_a_class(
    name, extra, tmp_path, capsys
):
    run = tmp_path / name
    assert main(["train", name, *FLAGS, *extra, "--out", str(run)]) == 0
    model = dgm.load(run)
    assert model.num_classes == 10
    # the labels reached the loss: the class terms, zero at the start, moved apart
    terms = model.class_bias if name == "fvsbn" else model.class_hidden  # (10, D) or (10, H)
    assert torch.cdist(terms, terms).fill_diagonal_(1).min() > 0
    assert main(["eval", str(run), "--json"]) == 0
    out = tmp_path / "three.png"
    assert main(["sample", str(run), "-n", "4", "--class", "3", "--out", str(out)]) == 0
    assert set(np.unique(np.asarray(Image.open(out)))) <= {0, 128, 255}
    assert main(["sample", str(run), "-n", "10", "--out", str(tmp_path / "all.png")]) == 0
    capsys.readouterr()
    bad = ["sample", str(run), "-n", "4", "--class", "10", "--out", str(out)]
    assert main(bad) == 2
    assert "0..9" in capsys.readouterr().err
