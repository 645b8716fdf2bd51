"""A run's sample picture: how many samples it draws by default (an image grid of 64, 1000
2-D points drawn over 2000 training points) or as asked, and from which split's conditions."""

import contextlib

import pytest
import torch

import dgm
from dgm.data.dataset import TensorData
from dgm.train import pictures


@pytest.mark.parametrize(
    ("shape", "count", "drawn", "over"),
    [((2,), 0, 1000, 2000), ((2,), 7, 7, 2000), ((1, 4, 4), 0, 64, None), ((1, 4, 4), 5, 5, None)],
)
def test_the_picture_draws_its_default_count_or_the_asked_one(
    tmp_path, monkeypatch, shape, count, drawn, over
):
    torch.manual_seed(0)
    points = len(shape) == 1
    model = dgm.create("realnvp", shape, **({} if points else {"architecture": "conv"}))
    data = TensorData(torch.rand(2500, *shape), name="toy")
    seen = {}
    monkeypatch.setattr(
        pictures, "save_samples", lambda x, path, value_range, **kw: seen.update(x=x, **kw)
    )
    pictures.write_picture(
        model,
        tmp_path / "p.png",
        data,
        None,
        count=count,
        options={},
        seed=0,
        device=torch.device("cpu"),
        guard=contextlib.nullcontext,
        progress=False,
        desc="test",
    )
    assert seen["x"].shape == (drawn, *shape)
    if over is None:
        assert "data" not in seen
    else:  # 2-D points are drawn over the data and the model's density
        assert seen["data"].shape == (over, *shape) and seen["model"] is model
