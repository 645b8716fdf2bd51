"""The base class: conditioning kinds, integer and float x, dtype and device from buffers,
and models whose buffers take their shape from the data."""

import dataclasses

import pytest
import torch

import dgm
from dgm.model import Conditioning, GenerativeModel, Likelihood
from dgm.registry import register, unregister


def test_conditioning_kinds_and_their_checks():
    assert Conditioning().kind == "none"
    assert Conditioning(num_classes=3).kind == "classes"
    assert Conditioning(context_shape=(2,), context_vocab=5).kind == "context"
    with pytest.raises(ValueError, match="not both"):
        Conditioning(num_classes=3, context_shape=(2,))
    with pytest.raises(ValueError, match="needs a context_shape"):
        Conditioning(context_vocab=4)
    y, ctx = torch.zeros(2, dtype=torch.long), torch.zeros(2, 3)
    assert Conditioning(num_classes=3).pick(y, ctx) is y
    assert Conditioning(context_shape=(3,)).pick(y, ctx) is ctx
    assert Conditioning().pick(y, ctx) is None
    with pytest.raises(ValueError, match="--condition lowres"):
        Conditioning(context_shape=(3,)).pick(y, None)


@dataclasses.dataclass
class CountsConfig:
    size: int = 3  # cells


class Counts(GenerativeModel):
    """Buffers only (like naive Bayes counts or KDE points), one of them data-sized."""

    likelihood = Likelihood.EXACT
    data_sized_buffers = ("points",)

    def __init__(self, event_shape, config) -> None:
        super().__init__(event_shape, config)
        self.register_buffer("counts", torch.ones(config.size))
        self.register_buffer("points", torch.zeros(0, *self.event_shape))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def log_prob(self, x, c=None):
        x = self.check_x(x)
        return (x.flatten(1) * self.counts.sum()).sum(-1) + self.points.sum()


def test_dtype_and_device_come_from_buffers_when_there_are_no_parameters():
    model = Counts((2,), CountsConfig())
    assert model.dtype == torch.float32
    model = model.double()
    assert model.dtype == torch.float64  # the long buffer does not count
    assert model.log_prob(torch.ones(3, 2)).dtype == torch.float64


def test_data_sized_buffers_load_through_dgm_load_and_a_wrong_model_is_still_refused(tmp_path):
    from dgm import run_dir

    register("test_counts", CountsConfig)(Counts)
    try:
        model = Counts((2,), CountsConfig())
        model.points = torch.randn(7, 2)  # fitted on 7 points
        run_dir.write_json(tmp_path / run_dir.CONFIG, run_dir.run_config(model))
        run_dir.save_weights(tmp_path / run_dir.WEIGHTS, model, step=0)
        loaded = dgm.load(tmp_path)
        assert loaded.points.shape == (7, 2) and torch.equal(loaded.points, model.points)
        x = torch.ones(4, 2)
        assert torch.equal(loaded.log_prob(x), model.log_prob(x))
        wrong = Counts((2,), CountsConfig(size=5))  # a fixed-size buffer of another shape
        with pytest.raises(ValueError, match="shape mismatches"):
            run_dir.load_weights(tmp_path / run_dir.WEIGHTS, wrong)
        vae = dgm.create("vae", (2,))
        with pytest.raises(ValueError, match="holds weights of model 'test_counts'"):
            run_dir.load_weights(tmp_path / run_dir.WEIGHTS, vae)
    finally:
        unregister("test_counts")


def test_integer_and_float_x_are_told_apart():
    cat = dgm.create("vae", (3,), decoder="categorical", latent_dim=2, hidden_sizes=(4,))
    assert cat.integer_data
    assert cat.check_x(torch.tensor([[0, 1, 255]], dtype=torch.uint8)).dtype == torch.long
    with pytest.raises(ValueError, match=r"dtype torch.float32 .* pass an integer tensor"):
        cat.check_x(torch.zeros(1, 3))
    gauss = dgm.create("vae", (3,), decoder="gaussian", latent_dim=2, hidden_sizes=(4,))
    assert not gauss.integer_data
    with pytest.raises(ValueError, match=r"dtype torch.int64 .* pass a float tensor"):
        gauss.check_x(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="cannot marginalise missing values"):
        gauss.check_x(torch.tensor([[0.0, float("nan"), 1.0]]))


def test_check_values_off_skips_only_the_value_scan():
    model = dgm.create("vae", (3,), latent_dim=2, hidden_sizes=(4,))
    bad = torch.full((2, 3), 0.5)  # not binary
    with pytest.raises(ValueError, match="outside the support"):
        model.check_x(bad)
    model.check_values = False
    assert model.check_x(bad) is not None
    with pytest.raises(ValueError, match="expected"):
        model.check_x(torch.zeros(2, 4))  # shapes are always checked
    model.check_values = True
