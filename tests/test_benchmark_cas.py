"""The CAS benchmark's rows are measured on samples a real image could be: every model the
benchmark trains, built as the benchmark builds it (its config filled in from the data
view, its sampling options), draws pixels inside the value range of that view. An
untrained network is the hard case: a DDPM on real-valued [0, 1] pixels never clips its
x̂_0 and, untrained or briefly trained, draws values of ±100 (the 88,758 FD of the first
DDPM row); on 8-bit levels it clips to [−1, 1] and rounds to 0..255."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dgm
from dgm.data import DataConfig
from dgm.registry import config_for_data

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():  # benchmarks/ is a top-level folder
    import sys

    sys.path.insert(0, str(ROOT))
    try:
        import benchmarks.cas as module
    finally:
        sys.path.remove(str(ROOT))
    return module


@pytest.mark.parametrize("name", ["vae", "made", "maf", "gan", "ddpm"])
def test_every_row_samples_inside_its_data_range(bench, name: str) -> None:
    config, data_options, sampling, _ = bench.MODELS[name]
    train = DataConfig(name="digits", **data_options).load("train")  # the same view, 8x8
    config = config_for_data(name, train, {**config, "num_classes": 10})
    torch.manual_seed(0)
    model = dgm.create(name, tuple(train.x.shape[1:]), **config).eval()
    gen = torch.Generator().manual_seed(0)
    x = model.sample(20, torch.arange(20) % 10, generator=gen, **sampling)
    lo, hi = train.value_range
    assert torch.isfinite(x.double()).all()
    assert lo <= float(x.min()) and float(x.max()) <= hi, (float(x.min()), float(x.max()))


def _row(model: str, view: dict, fd: float, cas: float, recognised: float = 0.5) -> dict:
    return {
        "model": model,
        "data": {"options": view},
        "fd": fd,
        "cas": {"cas": cas},
        "recall": 0.1,
        "feature_accuracy": recognised,
    }


def test_the_note_names_a_lower_fd_with_a_lower_cas_within_one_view(bench) -> None:
    grey, byte, binary = {}, {"scale": "byte"}, {"binarize": "static"}
    runs = [
        _row("gan", grey, 25.0, 0.44, recognised=0.54),
        _row("maf", byte, 31.0, 0.73, recognised=0.46),  # grey levels: the same test images
        _row("made", binary, 8.0, 0.30),  # binarized: its FD is not comparable with theirs
    ]
    pairs = bench._fd_against_cas(runs)
    assert len(pairs) == 1 and pairs[0].startswith("gan has the lower FD (25.0 against maf's")
    assert "lack its variety" in pairs[0]  # as recognisable, so less varied
    runs[0]["feature_accuracy"] = 0.30
    assert "wrong class" in bench._fd_against_cas(runs)[0]
    assert bench._fd_against_cas([_row("a", grey, 1.0, 0.50), _row("b", grey, 2.0, 0.51)]) == []
