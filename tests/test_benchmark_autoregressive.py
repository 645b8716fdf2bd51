"""benchmarks.autoregressive_speed's NADE references compute the model's own logits: the naive
O(HD²) loop and the one-tensor cumulative sum, with either activation."""

import importlib
from pathlib import Path

import pytest
import torch

import dgm

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_nade_references_equal_the_models_logits(monkeypatch, activation):
    monkeypatch.syspath_prepend(str(ROOT))
    bench = importlib.import_module("benchmarks.autoregressive_speed")
    torch.manual_seed(0)
    model = dgm.create("nade", (12,), hidden_size=5, activation=activation).double()
    with torch.no_grad():  # pre-activations well past ±20 too: no saturation is assumed
        model.c.normal_(0.0, 30.0)
        model.W.normal_(0.0, 10.0)
    x = (torch.rand(7, 12, generator=torch.Generator().manual_seed(1)) < 0.4).double()
    logits = model._outputs(x)
    torch.testing.assert_close(bench.nade_naive_logits(model, x), logits)
    torch.testing.assert_close(bench.nade_one_tensor_logits(model, x), logits)
