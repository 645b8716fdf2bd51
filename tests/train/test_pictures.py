"""A run's sample picture: how many samples it draws by default (an image grid of 64, 1000
2-D points drawn over 2000 training points) or as asked, and from which split's conditions."""

import contextlib

import pytest
import torch

import dgm
from dgm.data.dataset import TensorData
from dgm.train import pictures


def draw(model, tmp_path, train, valid, count):
    """``write_picture`` on CPU, seed 0, no progress bar and no signal guard."""
    pictures.write_picture(
        model,
        tmp_path / "p.png",
        train,
        valid,
        count=count,
        options={},
        seed=0,
        device=torch.device("cpu"),
        guard=contextlib.nullcontext,
        progress=False,
        desc="test",
    )


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
    draw(model, tmp_path, data, None, count)
    assert seen["x"].shape == (drawn, *shape)
    if over is None:
        assert "data" not in seen
    else:  # 2-D points are drawn over the data and the model's density
        assert seen["data"].shape == (over, *shape) and seen["model"] is model


def test_a_context_conditioned_picture_takes_its_contexts_from_the_valid_split(
    tmp_path, monkeypatch
):
    torch.manual_seed(0)
    model = dgm.create("gaussian_mlp", (2,), hidden_sizes=(4,), context_shape=(3,))
    train = TensorData(torch.rand(50, 2), name="toy", context=torch.zeros(50, 3))
    valid = TensorData(torch.rand(6, 2), name="toy", context=torch.randn(6, 3))
    given = []
    monkeypatch.setattr(pictures, "save_samples", lambda *a, **kw: None)
    monkeypatch.setattr(model, "sample", lambda n, c, **kw: given.append(c) or torch.zeros(n, 2))
    for valid_data, source in ((valid, valid), (None, train)):  # train only when no valid
        given.clear()
        draw(model, tmp_path, train, valid_data, 9)
        m = min(9, len(source))  # the first contexts of the split, cycled to 9 samples
        expected = source.context[torch.arange(9) % m]
        assert torch.equal(torch.cat(given), expected)


@pytest.mark.parametrize(("slow_s", "sizes"), [(1e9, [8, 12]), (0.0, [8, 8, 4])])
def test_a_slow_picture_is_drawn_in_chunks_that_add_up_to_its_count(monkeypatch, slow_s, sizes):
    """20 samples: the first 8 timed, then the other 12 at once, or (slow) in chunks of 8
    and the 4 left; each chunk takes its own rows of c."""
    monkeypatch.setattr(pictures, "SLOW_PICTURE_S", slow_s)
    model = dgm.create("gaussian_mlp", (2,), hidden_sizes=(4,), context_shape=(1,))
    c = torch.arange(20.0)[:, None]
    given = []
    monkeypatch.setattr(model, "sample", lambda n, c, **kw: given.append(c) or c.expand(n, 2))
    quiet = {"guard": contextlib.nullcontext, "progress": False, "desc": "t"}
    out = pictures.sample_in_chunks(model, 20, c, torch.Generator(), {}, **quiet)
    assert [len(part) for part in given] == sizes
    assert torch.equal(out, c.expand(20, 2))
